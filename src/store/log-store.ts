/**
 * Durable per-rank logs: every stdout/stderr line with its time, rank and sequence number, in a SQLite
 * file under DATA_DIR. Writers batch lines into one transaction per flush; writes are idempotent on
 * (job, rank, seq), so a batch shipped twice by a remote agent is stored once.
 */
import Database from 'better-sqlite3';

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
      .all(...params, q.pageSize + 1) as LogEntry[];
    const entries = rows.slice(0, q.pageSize);
    const last = entries[entries.length - 1];
    return rows.length > q.pageSize && last ? { entries, next: [last.time, last.rank, last.seq] } : { entries };
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

/** Buffers lines per rank and flushes them to a sink every interval, so a chatty rank costs one transaction per flush. */
export class LogWriter {
  private buffer: LogEntry[] = [];
  private readonly seqs = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly sink: LogSink,
    private readonly job: string,
    private readonly firstSeq: (rank: number) => number,
    private readonly intervalMs = 200,
  ) {}

  write(rank: number, stream: 'stdout' | 'stderr', message: string): void {
    let seq = this.seqs.get(rank);
    if (seq === undefined) seq = this.firstSeq(rank);
    this.seqs.set(rank, seq + 1);
    this.buffer.push({ job: this.job, rank, seq, time: new Date().toISOString(), stream, message });
    this.timer ??= setTimeout(() => void this.flush(), this.intervalMs);
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(async () => {
      if (batch.length > 0) await this.sink.append(batch);
    });
    return this.flushing;
  }
}
