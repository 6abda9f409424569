/**
 * Durable per-rank logs: every stdout/stderr line with its time, attempt, rank and sequence number. The
 * store is SQLite under DATA_DIR (sqlite-log-store.ts), or PostgreSQL with DATABASE_URL
 * (postgres-log-store.ts), so that any API replica pages, filters and follows the same logs; both
 * answer this interface alike (test/support/log-store-contract.ts). Writers batch lines into one
 * write per flush; writes are idempotent on (job, attempt, rank, seq), so a batch shipped twice by a
 * remote agent is stored once.
 */
import { LogBudget, lostLinesMarker } from '../domain/log-limits';
import { attemptOf, type LogCursor } from '../domain/log-query';

export type { LogCursor };

export interface LogEntry {
  job: string;
  /** The job's attempt that wrote the line (1-based). */
  attempt: number;
  rank: number;
  /** Per (job, attempt, rank), from 0. */
  seq: number;
  /** RFC 3339 UTC with milliseconds: fixed width, so text order is time order. */
  time: string;
  stream: 'stdout' | 'stderr';
  message: string;
}

export interface LogQuery {
  job: string;
  ranks?: number[];
  /** Only the lines of this attempt. */
  attempt?: number;
  /** Entries before this time are not returned. */
  startTime?: string;
  /** Case-sensitive substring. */
  filter?: string;
  /** true: oldest first; false (default): newest first. */
  fromHead: boolean;
  pageSize: number;
  /**
   * Most bytes of message text in the page (at least one entry is returned, however long): a page of
   * long lines ends early and its `next` continues after its last entry.
   */
  maxBytes?: number;
  /** The cursor of the last entry of the previous page. */
  after?: LogCursor;
}

export interface LogPage {
  entries: LogEntry[];
  next?: LogCursor;
}

export interface LogSink {
  append(entries: readonly LogEntry[]): void | Promise<void>;
}

/** Sinks that must know which host writes (the shipper of remote agents: the API checks placement). */
export interface HostLogSinks {
  forHost(host: string): LogSink;
}

/** Where an agent's rank logs go: one sink for every host (the local store), or one per host. */
export type AgentLogs = LogSink | HostLogSinks;

export function sinkOfHost(logs: AgentLogs, host: string): LogSink {
  return 'forHost' in logs ? logs.forHost(host) : logs;
}

/** The log store, on either backend. */
export interface LogStore extends LogSink {
  /** Stores the entries; one already stored (same job, attempt, rank and seq) is left as it is. */
  append(entries: readonly LogEntry[]): Promise<void>;
  query(q: LogQuery): Promise<LogPage>;
  /** Removes every line of the job (a deleted job); how many there were. */
  deleteJob(job: string): Promise<number>;
  /** Bytes of log message text stored, UTF-8 (for metrics). */
  storedBytes(): Promise<number>;
  close(): Promise<void>;
}

/** The columns of a log entry, in the order every backend selects them. */
export const LOG_COLUMNS = 'job, attempt, rank, seq, time, stream, message';

/**
 * PostgreSQL text cannot hold U+0000, so both backends store it as U+FFFD (as the decoder already
 * stores bytes that are not UTF-8), and compare filters the same way: a log reads alike on either.
 */
export function storableText(text: string): string {
  return text.includes('\0') ? text.replaceAll('\0', '\uFFFD') : text;
}

/**
 * The WHERE and ORDER BY of a log query, the same on both backends but for the placeholder of each
 * value (`?` or `$n`) and the substring test. Row-value comparison keeps the cursor condition on the
 * (job, time, attempt, rank, seq) index.
 */
export function compileLogQuery(
  q: LogQuery,
  dialect: { placeholder(index: number): string; contains(column: string, needle: string): string },
  after: LogCursor | undefined = q.after,
): { where: string; order: string; params: unknown[] } {
  const params: unknown[] = [];
  const bind = (value: unknown): string => {
    params.push(value);
    return dialect.placeholder(params.length);
  };
  const where = [`job = ${bind(q.job)}`];
  if (q.ranks && q.ranks.length > 0) where.push(`rank IN (${q.ranks.map((r) => bind(r)).join(', ')})`);
  if (q.attempt !== undefined) where.push(`attempt = ${bind(q.attempt)}`);
  if (q.startTime !== undefined) where.push(`time >= ${bind(q.startTime)}`);
  if (q.filter) where.push(dialect.contains('message', bind(storableText(q.filter))));
  if (after) {
    const [t, a, r, s] = after;
    where.push(`(time, attempt, rank, seq) ${q.fromHead ? '>' : '<'} (${bind(t)}, ${bind(a)}, ${bind(r)}, ${bind(s)})`);
  }
  const dir = q.fromHead ? 'ASC' : 'DESC';
  return { where: where.join(' AND '), order: `time ${dir}, attempt ${dir}, rank ${dir}, seq ${dir}`, params };
}

/**
 * Fills one page from rows read in order: at most `pageSize` entries and `maxBytes` of message text,
 * at least one entry. `add` says false once a row does not fit: the page is full and there is more.
 */
export class LogPageFiller {
  readonly entries: LogEntry[] = [];
  private bytes = 0;
  private more = false;

  constructor(private readonly q: Pick<LogQuery, 'pageSize' | 'maxBytes'>) {}

  add(row: LogEntry): boolean {
    const size = Buffer.byteLength(row.message, 'utf8');
    if (this.entries.length >= this.q.pageSize || (this.q.maxBytes !== undefined && this.entries.length > 0 && this.bytes + size > this.q.maxBytes)) {
      this.more = true;
      return false;
    }
    this.entries.push(row);
    this.bytes += size;
    return true;
  }

  page(): LogPage {
    const last = this.entries[this.entries.length - 1];
    return this.more && last ? { entries: this.entries, next: cursorOf(last) } : { entries: this.entries };
  }
}

export function cursorOf(e: LogEntry): LogCursor {
  return [e.time, e.attempt, e.rank, e.seq];
}

/** What a writer lost, by reason: over the job's log budget, or not stored because the sink failed. */
export interface LogLoss {
  budgetLines: number;
  budgetBytes: number;
  failedLines: number;
}

/** This process's log lines dropped or lost since it started (for metrics and the service log). */
export const logLossTotals: LogLoss = { budgetLines: 0, budgetBytes: 0, failedLines: 0 };

export interface LogWriterOptions {
  /** The job's attempt whose lines these are (absent: 1); every entry carries it. */
  attempt?: number;
  /** Bytes of message text this writer may store; past it lines are dropped (the job keeps running). */
  budgetBytes?: number;
  /** Milliseconds between flushes (default 200). */
  intervalMs?: number;
  /** Told once per failed flush (the lines are counted as lost, never retried here). */
  onError?: (err: unknown, lines: number) => void;
}

/**
 * Buffers lines per rank and flushes them to a sink every interval, so a chatty rank costs one
 * transaction per flush. A writer can neither crash its process nor stop its job: past the budget it
 * drops lines, and a flush that fails (disk full, a SQLite error) loses that batch and counts it.
 * `close` writes the one line that says what was dropped or lost, and never throws.
 */
export class LogWriter {
  private buffer: LogEntry[] = [];
  private readonly seqs = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly budget: LogBudget | undefined;
  private failedLines = 0;
  private lastFailure = '';
  private firstRank: number | undefined;

  constructor(
    private readonly sink: LogSink,
    private readonly job: string,
    private readonly firstSeq: (rank: number) => number,
    private readonly options: LogWriterOptions = {},
  ) {
    this.budget = options.budgetBytes === undefined ? undefined : new LogBudget(options.budgetBytes);
  }

  write(rank: number, stream: 'stdout' | 'stderr', message: string): void {
    this.firstRank ??= rank;
    if (this.budget && !this.budget.admit(Buffer.byteLength(message, 'utf8'))) {
      logLossTotals.budgetLines += 1;
      logLossTotals.budgetBytes += Buffer.byteLength(message, 'utf8');
      return;
    }
    this.push(rank, stream, message);
  }

  private push(rank: number, stream: 'stdout' | 'stderr', message: string): void {
    let seq = this.seqs.get(rank);
    if (seq === undefined) seq = this.firstSeq(rank);
    this.seqs.set(rank, seq + 1);
    this.buffer.push({ job: this.job, attempt: attemptOf(this.options.attempt), rank, seq, time: new Date().toISOString(), stream, message });
    this.timer ??= setTimeout(() => void this.flush(), this.options.intervalMs ?? 200);
  }

  /** Stores what is buffered. Resolves (never rejects) once it is stored or counted as lost. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(async () => {
      if (batch.length === 0) return;
      try {
        await this.sink.append(batch);
      } catch (err) {
        this.failedLines += batch.length;
        logLossTotals.failedLines += batch.length;
        this.lastFailure = err instanceof Error ? err.message : String(err);
        this.options.onError?.(err, batch.length);
      }
    });
    return this.flushing;
  }

  /** What this writer dropped over its budget and lost to failed writes. */
  get loss(): { budget: { lines: number; bytes: number }; failedLines: number } {
    return { budget: this.budget?.dropped ?? { lines: 0, bytes: 0 }, failedLines: this.failedLines };
  }

  /** Flushes, then adds one line for what the budget dropped and one for what failed writes lost. */
  async close(): Promise<void> {
    await this.flush();
    const rank = this.firstRank;
    if (rank === undefined) return;
    const dropped = this.budget?.marker();
    if (dropped) this.push(rank, 'stderr', dropped);
    if (this.failedLines > 0) this.push(rank, 'stderr', lostLinesMarker(this.failedLines, shortReason(this.lastFailure)));
    await this.flush();
  }
}

/** The first line of an error message, bounded: a marker must not carry an error's whole text. */
function shortReason(message: string): string {
  const first = message.split('\n')[0] ?? '';
  return first.length > 200 ? `${first.slice(0, 200)}…` : first || 'the log store failed';
}
