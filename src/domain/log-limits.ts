/**
 * The byte rules of rank logs, as pure functions: a job's log budget (past it lines are dropped and
 * one marker line says how many), the longest line the ingest endpoint takes (a longer one is cut with
 * a marker), how many entries of a list fit a byte cap (batches to the ingest endpoint, `:getLogs`
 * pages, the agent's spool), and the words of every marker. Sizes are UTF-8 bytes.
 */
import { utf8Length } from './annotations';

/** The longest log message the ingest endpoint accepts, in bytes of UTF-8. */
export const MAX_LOG_LINE_BYTES = 64 * 1024;

/** Prefix of every line batchd itself puts into a job's logs, so a reader can tell it from the job's. */
export const LOG_MARKER_PREFIX = 'batchd:';

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

const lines = (n: number) => `${n} line${n === 1 ? '' : 's'}`;

/**
 * A job's log budget on one writer: admits lines while the bytes stored stay within the limit, then
 * drops every later line (the job keeps running) and counts what it dropped.
 */
export class LogBudget {
  private used = 0;
  private droppedLines = 0;
  private droppedBytes = 0;

  constructor(readonly limitBytes: number) {}

  /** Whether a line of this many bytes may be stored; once one is refused, every later one is too. */
  admit(bytes: number): boolean {
    if (this.droppedLines === 0 && this.used + bytes <= this.limitBytes) {
      this.used += bytes;
      return true;
    }
    this.droppedLines += 1;
    this.droppedBytes += bytes;
    return false;
  }

  get dropped(): { lines: number; bytes: number } {
    return { lines: this.droppedLines, bytes: this.droppedBytes };
  }

  /** The one line that says what was dropped, once anything was. */
  marker(): string | undefined {
    if (this.droppedLines === 0) return undefined;
    return `${LOG_MARKER_PREFIX} this job's log budget of ${formatBytes(this.limitBytes)} (LOG_BUDGET_BYTES_PER_JOB) was reached; ${lines(this.droppedLines)} (${formatBytes(this.droppedBytes)}) after it were dropped`;
  }
}

/** The job's share of the budget on a host that runs `localRanks` of its `worldSize` ranks. */
export function hostShareOfBudget(budgetBytes: number, localRanks: number, worldSize: number): number {
  if (worldSize <= 0 || localRanks >= worldSize) return budgetBytes;
  return Math.max(1, Math.floor((budgetBytes * localRanks) / worldSize));
}

/** The line that says log lines were lost because they could not be written. */
export function lostLinesMarker(lost: number, why: string): string {
  return `${LOG_MARKER_PREFIX} ${lines(lost)} of this job's log could not be stored and were lost (${why})`;
}

/** The line that says a spool full of undelivered lines dropped its oldest. */
export function spoolDropMarker(lost: number, capBytes: number): string {
  return `${LOG_MARKER_PREFIX} ${lines(lost)} of this job's log were dropped on the host: its spool of undelivered lines reached ${formatBytes(capBytes)} while the API could not be reached`;
}

/** The longest prefix of `text` of at most `maxBytes` bytes of UTF-8 that does not split a character. */
export function utf8Prefix(text: string, maxBytes: number): string {
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const n = utf8Length(ch);
    if (bytes + n > maxBytes) break;
    bytes += n;
    end += ch.length;
  }
  return text.slice(0, end);
}

/**
 * A line cut to at most `maxBytes` bytes, ending with a marker that says how much was cut; the line
 * itself when it fits.
 */
export function truncateLine(message: string, maxBytes = MAX_LOG_LINE_BYTES): { message: string; cutBytes: number } {
  const total = utf8Length(message);
  if (total <= maxBytes) return { message, cutBytes: 0 };
  // The marker's own length depends on the number it states; the worst case is the whole line.
  const room = maxBytes - utf8Length(truncationMarker(total));
  const kept = utf8Prefix(message, Math.max(0, room));
  const cutBytes = total - utf8Length(kept);
  return { message: `${kept}${truncationMarker(cutBytes)}`, cutBytes };
}

function truncationMarker(cutBytes: number): string {
  return ` … [${LOG_MARKER_PREFIX} line truncated, ${cutBytes} more bytes dropped]`;
}

/**
 * How many entries from the head of `sizes` fit within `maxBytes` and `maxEntries` together; at least
 * one when there is any, so an entry bigger than the cap still moves (its receiver decides).
 */
export function headWithinBytes(sizes: readonly number[], maxBytes: number, maxEntries = Number.POSITIVE_INFINITY): number {
  let bytes = 0;
  let n = 0;
  for (const size of sizes) {
    if (n >= maxEntries || (n > 0 && bytes + size > maxBytes)) break;
    bytes += size;
    n += 1;
  }
  return n;
}

/** How many of the oldest entries to drop so that the rest fit within `maxBytes`. */
export function oldestToDrop(sizes: readonly number[], maxBytes: number): number {
  let total = sizes.reduce((a, b) => a + b, 0);
  let n = 0;
  while (total > maxBytes && n < sizes.length) {
    total -= sizes[n] ?? 0;
    n += 1;
  }
  return n;
}
