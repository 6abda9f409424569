/**
 * The rules of a job's retries, time limits and dependencies (batchd's extensions to the batch job,
 * docs/api.md "Retries, time limits, dependencies, priority"): which attempt endings retry, how long
 * to wait before the next attempt, and whether a dependency is met, still pending, or can no longer
 * be met.
 *
 * Schema-free and pure: the job workflow loads it, and unit tests drive it directly.
 */
import { type BatchJobState, type DependencyCondition, type RetryPolicy, isTerminal } from './batch-job-model';

export const MAX_ATTEMPTS = 10;
export const DEFAULT_INITIAL_BACKOFF = '10s';
export const DEFAULT_MAX_BACKOFF = '300s';
/** The longest run or queue limit, and the longest backoff: 365 days. */
export const MAX_DURATION_MS = 365 * 24 * 3600 * 1000;

const DURATION = /^(\d{1,12})(?:\.(\d{1,9}))?s$/;

/**
 * Milliseconds of a protobuf Duration in its JSON form ("3600s", "1.5s"), or undefined when the text
 * is not one. Negative durations are not accepted: no limit or backoff is negative.
 */
export function durationMs(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  const seconds = Number(m[1]);
  const fraction = m[2] ? Number(`0.${m[2]}`) : 0;
  return Math.round((seconds + fraction) * 1000);
}

/** What is wrong with a duration field, or undefined. At least 1 ms, at most 365 days. */
export function durationProblem(text: string): string | undefined {
  const ms = durationMs(text);
  if (ms === undefined) return 'must be a duration in seconds as protobuf JSON writes it, e.g. "3600s" or "1.5s"';
  if (ms < 1) return 'must be at least 0.001s';
  if (ms > MAX_DURATION_MS) return 'must be at most 365 days (31536000s)';
  return undefined;
}

/** A duration for people: "90s" → "1m30s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  let s = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.join('');
}

const EXIT_CODE = /^(\d{1,3})(?:-(\d{1,3}))?$/;

/** An exit code item's bounds ("7" → [7, 7], "3-9" → [3, 9]), or a reason it is not one. */
export function exitCodeRange(item: string): [number, number] | string {
  const m = EXIT_CODE.exec(item);
  if (!m) return 'must be an exit code "N" or a range "N-M" of exit codes (0-255)';
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 255 || hi > 255) return 'exit codes are 0-255';
  if (hi < lo) return `the range ${item} is empty: write the smaller code first`;
  return [lo, hi];
}

export function exitCodeMatches(items: readonly string[] | undefined, code: number): boolean {
  return (items ?? []).some((item) => {
    const range = exitCodeRange(item);
    return typeof range !== 'string' && code >= range[0] && code <= range[1];
  });
}

/** How an attempt ended, as far as retrying is concerned. */
export type AttemptEnd =
  | { kind: 'exit'; exitCode: number | null; signal: string | null; outOfMemory: boolean; message: string }
  | { kind: 'host-lost'; host: string; message: string }
  | { kind: 'preempted'; message: string }
  | { kind: 'run-time-limit'; message: string }
  | { kind: 'error'; message: string };

export type RetryDecision = { retry: true; delayMs: number; why: string } | { retry: false; why: string };

/** The wait before attempt `next` (2 or later): initialBackoff doubled per attempt since, at most maxBackoff. */
export function backoffMs(policy: RetryPolicy, next: number): number {
  const initial = durationMs(policy.initialBackoff ?? DEFAULT_INITIAL_BACKOFF) ?? 0;
  const max = durationMs(policy.maxBackoff ?? DEFAULT_MAX_BACKOFF) ?? initial;
  const doublings = Math.max(0, next - 2);
  return Math.min(max, initial * 2 ** Math.min(doublings, 40));
}

/**
 * Whether a failed attempt is retried. Only the conditions the policy names retry; a time limit, an
 * agent error or a cancel never do. `attempt` is the attempt that just ended (1-based).
 */
export function retryDecision(policy: RetryPolicy | undefined, attempt: number, end: AttemptEnd): RetryDecision {
  const max = policy?.maxAttempts ?? 1;
  const matched = policy ? matchedCondition(policy, end) : undefined;
  if (!policy || max <= 1) return { retry: false, why: 'the job has no retry policy' };
  if (matched === undefined) return { retry: false, why: notRetriedWhy(end) };
  if (attempt >= max) return { retry: false, why: `${matched}, but that was the last of ${max} attempts` };
  return { retry: true, delayMs: backoffMs(policy, attempt + 1), why: matched };
}

function matchedCondition(policy: RetryPolicy, end: AttemptEnd): string | undefined {
  const conditions = policy.conditions ?? [];
  switch (end.kind) {
    case 'exit':
      if (end.outOfMemory && conditions.includes('OUT_OF_MEMORY')) return 'a rank ran out of memory (OUT_OF_MEMORY retries)';
      if (end.exitCode !== null && exitCodeMatches(policy.exitCodes, end.exitCode)) return `exit code ${end.exitCode} is in retryPolicy.exitCodes`;
      return undefined;
    case 'host-lost':
      return conditions.includes('HOST_LOST') ? `host ${end.host} was lost (HOST_LOST retries)` : undefined;
    case 'preempted':
      return conditions.includes('PREEMPTED') ? 'the job was preempted (PREEMPTED retries)' : undefined;
    case 'run-time-limit':
    case 'error':
      return undefined;
  }
}

function notRetriedWhy(end: AttemptEnd): string {
  switch (end.kind) {
    case 'exit':
      if (end.outOfMemory) return 'OUT_OF_MEMORY is not in retryPolicy.conditions';
      return end.exitCode === null ? `a rank was killed by ${end.signal ?? 'a signal'}, which no exit code matches` : `exit code ${end.exitCode} is not in retryPolicy.exitCodes`;
    case 'host-lost':
      return 'HOST_LOST is not in retryPolicy.conditions';
    case 'preempted':
      return 'PREEMPTED is not in retryPolicy.conditions';
    case 'run-time-limit':
      return 'a run time limit is never retried';
    case 'error':
      return 'an agent error is never retried';
  }
}

/** Where a dependency stands: met, still possible, or never to be met. */
export type DependencyVerdict = 'met' | 'waiting' | 'impossible';

/**
 * A dependency's verdict from its job's state, or `undefined` when the job no longer exists (it was
 * deleted: it ended, but not as COMPLETED or FAILED for anyone to see).
 */
export function dependencyVerdict(condition: DependencyCondition, state: BatchJobState | undefined): DependencyVerdict {
  if (state === undefined || state === 'DELETING') return condition === 'ENDED' ? 'met' : 'impossible';
  if (!isTerminal(state)) return 'waiting';
  if (condition === 'ENDED') return 'met';
  return state === condition ? 'met' : 'impossible';
}
