/**
 * Temporal's errors as ApiErrors, for every caller that turns a Temporal call's failure into an answer:
 * the API, and admission in the validation activity.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { ApiError, GrpcCode, isGrpcCodeName } from '../domain/errors';
import { API_ERROR_FAILURE_PREFIX } from '../domain/errors';

interface GrpcLike {
  code?: unknown;
  details?: unknown;
}

/** Converts what a Temporal call threw into an ApiError when it means something to the caller. */
export function fromTemporal(err: unknown): ApiError | undefined {
  if (err instanceof ApiError) return err;
  if (err instanceof WorkflowNotFoundError) return new ApiError('NOT_FOUND', 'not found');
  // An update or activity failure that carries an ApiError code (type `ApiError:<CODE>`).
  let cause: unknown = err;
  for (let i = 0; i < 4 && cause; i++) {
    const type = (cause as { type?: unknown }).type;
    if (typeof type === 'string' && type.startsWith(API_ERROR_FAILURE_PREFIX)) {
      const code = type.slice(API_ERROR_FAILURE_PREFIX.length);
      if (isGrpcCodeName(code)) return new ApiError(code, (cause as Error).message);
    }
    cause = (cause as { cause?: unknown }).cause;
  }
  const g = err as GrpcLike;
  if (g && typeof g.code === 'number') {
    if (g.code === GrpcCode.UNAVAILABLE || g.code === GrpcCode.DEADLINE_EXCEEDED) {
      return new ApiError('UNAVAILABLE', 'the Temporal server is unavailable; retry with backoff');
    }
    if (g.code === GrpcCode.RESOURCE_EXHAUSTED) return new ApiError('RESOURCE_EXHAUSTED', 'the Temporal server is throttling requests; retry with backoff');
  }
  return undefined;
}
