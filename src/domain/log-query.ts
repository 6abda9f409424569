/**
 * The parts of reading rank logs that are rules, not storage: a job's attempts (absent means 1, as
 * every message from before retries), how an agent keys a job's run on its host, the query parameters
 * `ranks` and `attempt` of `:getLogs` and `:followLogs`, and the order entries are read in.
 */
import { ApiError } from './errors';

/** The largest attempt a log query may name: the store's column is a 32-bit integer. */
export const MAX_LOG_ATTEMPT = 2_147_483_647;

/** The attempt a message or entry names; absent (older agents, workflows and spools) is attempt 1. */
export function attemptOf(attempt: number | undefined): number {
  return attempt ?? 1;
}

/**
 * How an agent keys one attempt of a job on its host (its runs, its stop memory, its pid files): the
 * job's name for attempt 1, exactly as before retries, so activities already in flight behave the
 * same; `<name>@attempt-<n>` for later ones, which a stop of another attempt never matches.
 */
export function runKey(jobName: string, attempt: number | undefined): string {
  const n = attemptOf(attempt);
  return n === 1 ? jobName : `${jobName}@attempt-${n}`;
}

/** The job a run key belongs to (job names never hold "@"). */
export function jobOfRunKey(key: string): string {
  const at = key.indexOf('@attempt-');
  return at < 0 ? key : key.slice(0, at);
}

/** The `ranks` query parameter (repeatable): each a rank number, else 400 naming it. */
export function parseLogRanks(raw: unknown): number[] | undefined {
  if (raw === undefined) return undefined;
  return (Array.isArray(raw) ? raw : [raw]).map((v) => {
    if (typeof v !== 'string' || !/^\d+$/.test(v)) throw ApiError.invalidField('ranks', `"${String(v)}" is not a rank number`);
    return Number(v);
  });
}

/** The `attempt` query parameter: one attempt number (1 or more), else 400 INVALID_ARGUMENT naming it. */
export function parseLogAttempt(raw: unknown): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (Array.isArray(raw)) throw ApiError.invalidField('attempt', 'must be given at most once');
  const text = typeof raw === 'string' ? raw : typeof raw === 'number' ? String(raw) : '';
  if (!/^\d{1,10}$/.test(text) || Number(text) < 1 || Number(text) > MAX_LOG_ATTEMPT) {
    throw ApiError.invalidField('attempt', `must be an attempt number (1 for a job's first run, 2 for its first retry, …), got ${JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)}`);
  }
  return Number(text);
}

/**
 * Where an entry is in a job's log order, and the cursor of a page: (time, attempt, rank, seq), unique
 * per job. Time first, so lines of different hosts and ranks interleave as they were written.
 */
export type LogCursor = [time: string, attempt: number, rank: number, seq: number];

/**
 * The cursor of a page token: today's four parts, or the (time, rank, seq) of a token issued before
 * attempts, whose entries were all attempt 1. Undefined for anything else.
 */
export function logCursorOf(after: unknown): LogCursor | undefined {
  if (!Array.isArray(after)) return undefined;
  const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
  if (after.length === 4 && typeof after[0] === 'string' && isInt(after[1]) && isInt(after[2]) && isInt(after[3])) return [after[0], after[1], after[2], after[3]];
  if (after.length === 3 && typeof after[0] === 'string' && isInt(after[1]) && isInt(after[2])) return [after[0], 1, after[1], after[2]];
  return undefined;
}
