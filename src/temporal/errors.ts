/**
 * Temporal's errors as ApiErrors, for every caller that turns a Temporal call's failure into an answer:
 * the API, and admission in the validation activity. And Temporal's errors in words, for log lines and
 * for the reason a start gives up: the SDK wraps the server's answer (`Failed to start Workflow`) around
 * the gRPC status that says what went wrong, and only the pair says it.
 */
import { WorkflowNotFoundError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { ApiError, GrpcCode, isGrpcCodeName } from '../domain/errors';
import { API_ERROR_FAILURE_PREFIX } from '../domain/errors';

/** How deep a chain of causes is followed (the SDK nests two or three). */
const MAX_CAUSES = 8;

/** A gRPC status as grpc-js (the client) and the native connection (workers) throw it. */
export interface GrpcStatusLike {
  code: number;
  details?: string;
  message: string;
}

/** The errors of a chain, outermost first: err, its cause, the cause's cause… */
function chain(err: unknown): unknown[] {
  const out: unknown[] = [];
  let cause: unknown = err;
  while (cause && out.length < MAX_CAUSES && !out.includes(cause)) {
    out.push(cause);
    cause = (cause as { cause?: unknown }).cause;
  }
  return out;
}

/** The gRPC status in err or its causes (a ServiceError carries it as its cause). */
export function grpcStatusOf(err: unknown): GrpcStatusLike | undefined {
  for (const e of chain(err)) {
    const g = e as { code?: unknown; details?: unknown; message?: unknown };
    if (typeof g.code === 'number' && g.code >= 0 && g.code <= 16) {
      return { code: g.code, message: typeof g.message === 'string' ? g.message : '', ...(typeof g.details === 'string' ? { details: g.details } : {}) };
    }
  }
  return undefined;
}

/**
 * What went wrong, in one line: each message of the chain once (a cause's message often repeats its
 * wrapper's), never a stack. `Failed to start Workflow: 3 INVALID_ARGUMENT: Namespace x has no
 * mapping defined for search attribute BatchdAccount`.
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (const e of chain(err)) {
    const message = (e instanceof Error ? e.message : typeof e === 'string' ? e : JSON.stringify(e) ?? String(e)).trim();
    if (!message || parts.some((p) => p.includes(message))) continue;
    parts.push(message);
  }
  return parts.join(': ') || 'unknown error';
}

/** Converts what a Temporal call threw into an ApiError when it means something to the caller. */
export function fromTemporal(err: unknown): ApiError | undefined {
  if (err instanceof ApiError) return err;
  if (err instanceof WorkflowNotFoundError) return new ApiError('NOT_FOUND', 'not found');
  // An update or activity failure that carries an ApiError code (type `ApiError:<CODE>`).
  for (const cause of chain(err).slice(0, 4)) {
    const type = (cause as { type?: unknown }).type;
    if (typeof type === 'string' && type.startsWith(API_ERROR_FAILURE_PREFIX)) {
      const code = type.slice(API_ERROR_FAILURE_PREFIX.length);
      if (isGrpcCodeName(code)) return new ApiError(code, (cause as Error).message);
    }
  }
  // An update whose call ran out of time (no worker took it, or the server is away).
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
    return new ApiError('UNAVAILABLE', 'the Temporal server did not answer in time; retry with backoff');
  }
  // The SDK wraps the server's status (`Failed to start Workflow`, cause: 14 UNAVAILABLE).
  const g = grpcStatusOf(err);
  if (g) {
    if (g.code === GrpcCode.UNAVAILABLE) return new ApiError('UNAVAILABLE', 'the Temporal server is unavailable; retry with backoff');
    if (g.code === GrpcCode.DEADLINE_EXCEEDED) return new ApiError('UNAVAILABLE', 'the Temporal server did not answer in time; retry with backoff');
    if (g.code === GrpcCode.RESOURCE_EXHAUSTED) return new ApiError('RESOURCE_EXHAUSTED', 'the Temporal server is throttling requests; retry with backoff');
  }
  return undefined;
}
