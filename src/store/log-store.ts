/**
 * Durable per-rank logs: every stdout/stderr line with its time, rank and sequence number, in a SQLite
 * file under DATA_DIR. Writers batch lines into one transaction per flush; writes are idempotent on
 * (job, rank, seq), so a batch shipped twice by a remote agent is stored once.
 */
import Database from 'better-sqlite3';
import { LogBudget, lostLinesMarker } from '../domain/log-limits';

export interface LogEntry {
  job: string;
  rank: number;
  seq: number;
  /** RFC 3339 UTC with milliseconds: fixed width, so text order is time order. */
  time: string;
  stream: 'stdout' | 'stderr';
  message: string;
}

export interface LogQuery {
  job: string;
  ranks?: number[];
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
  /** (time, rank, seq) of the last entry of the previous page. */
  after?: [string, number, number];
}

export interface LogPage {
  entries: LogEntry[];
  next?: [string, number, number];
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

export class LogStore implements LogSink {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly insertMany: (entries: readonly LogEntry[]) => void;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS log_entries (
        job TEXT NOT NULL, rank INTEGER NOT NULL, seq INTEGER NOT NULL,
        time TEXT NOT NULL, stream TEXT NOT NULL, message TEXT NOT NULL,
        PRIMARY KEY (job, rank, seq)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS log_entries_by_time ON log_entries (job, time, rank, seq);
    `);
    this.insert = this.db.prepare(
      'INSERT OR IGNORE INTO log_entries (job, rank, seq, time, stream, message) VALUES (@job, @rank, @seq, @time, @stream, @message)',
    );
    this.insertMany = this.db.transaction((entries: readonly LogEntry[]) => {
      for (const e of entries) this.insert.run(e);
    });
  }

  append(entries: readonly LogEntry[]): void {
    if (entries.length > 0) this.insertMany(entries);
  }

  /** The next sequence number for a rank, so a restarted writer continues after what is stored. */
  nextSeq(job: string, rank: number): number {
    const row = this.db.prepare('SELECT MAX(seq) AS seq FROM log_entries WHERE job = ? AND rank = ?').get(job, rank) as { seq: number | null };
    return (row.seq ?? -1) + 1;
  }

  query(q: LogQuery): LogPage {
    const where = ['job = ?'];
    const params: unknown[] = [q.job];
    if (q.ranks && q.ranks.length > 0) {
      where.push(`rank IN (${q.ranks.map(() => '?').join(', ')})`);
      params.push(...q.ranks);
    }
    if (q.startTime !== undefined) {
      where.push('time >= ?');
      params.push(q.startTime);
    }
    if (q.filter) {
      where.push('instr(message, ?) > 0');
      params.push(q.filter);
    }
    if (q.after) {
      const [t, r, s] = q.after;
      const cmp = q.fromHead ? '>' : '<';
      where.push(`(time ${cmp} ? OR (time = ? AND (rank ${cmp} ? OR (rank = ? AND seq ${cmp} ?))))`);
      params.push(t, t, r, r, s);
    }
    const dir = q.fromHead ? 'ASC' : 'DESC';
    const rows = this.db
      .prepare(`SELECT job, rank, seq, time, stream, message FROM log_entries WHERE ${where.join(' AND ')} ORDER BY time ${dir}, rank ${dir}, seq ${dir} LIMIT ?`)
      .iterate(...params, q.pageSize + 1) as IterableIterator<LogEntry>;
    // Rows are read one at a time and the read stops at the byte cap, so a page of huge lines never sits in memory whole.
    const entries: LogEntry[] = [];
    let bytes = 0;
    let more = false;
    for (const row of rows) {
      const size = Buffer.byteLength(row.message, 'utf8');
      if (entries.length >= q.pageSize || (q.maxBytes !== undefined && entries.length > 0 && bytes + size > q.maxBytes)) {
        more = true;
        break;
      }
      entries.push(row);
      bytes += size;
    }
    const last = entries[entries.length - 1];
    return more && last ? { entries, next: [last.time, last.rank, last.seq] } : { entries };
  }

  deleteJob(job: string): number {
    return this.db.prepare('DELETE FROM log_entries WHERE job = ?').run(job).changes;
  }

  /** Bytes of log text stored (for metrics). */
  storedBytes(): number {
    const row = this.db.prepare('SELECT COALESCE(SUM(length(message)), 0) AS n FROM log_entries').get() as { n: number };
    return row.n;
  }

  close(): void {
    this.db.close();
  }
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
    this.buffer.push({ job: this.job, rank, seq, time: new Date().toISOString(), stream, message });
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
