/**
 * The log store in a SQLite file under DATA_DIR (better-sqlite3, WAL): the store of one process, and of
 * every deployment without DATABASE_URL. Writes are one transaction per batch.
 *
 * Schema versions (PRAGMA user_version): 0 had no attempt, and (job, rank, seq) for its key; 1 adds
 * `attempt` to every row and to the key, so a job's second attempt stores its own lines from seq 0.
 * Opening a version-0 file moves its rows into the new table as attempt 1, in one transaction: the
 * first start after the upgrade copies the file's rows once.
 */
import Database from 'better-sqlite3';
import { compileLogQuery, LOG_COLUMNS, type LogEntry, LogPageFiller, type LogPage, type LogQuery, type LogStore, storableText } from './log-store';

/** 1: the attempt column, and in the key. */
export const SQLITE_LOG_SCHEMA_VERSION = 1;

const CREATE_TABLE = `
  CREATE TABLE log_entries (
    job TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 1, rank INTEGER NOT NULL, seq INTEGER NOT NULL,
    time TEXT NOT NULL, stream TEXT NOT NULL, message TEXT NOT NULL,
    PRIMARY KEY (job, attempt, rank, seq)
  ) WITHOUT ROWID;
  CREATE INDEX log_entries_by_time ON log_entries (job, time, attempt, rank, seq);
`;

const SQLITE_DIALECT = {
  placeholder: () => '?',
  contains: (column: string, needle: string) => `instr(${column}, ${needle}) > 0`,
};

export class SqliteLogStore implements LogStore {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly insertMany: (entries: readonly LogEntry[]) => void;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    try {
      this.migrate();
    } catch (error) {
      this.db.close();
      throw error;
    }
    this.insert = this.db.prepare(
      'INSERT OR IGNORE INTO log_entries (job, attempt, rank, seq, time, stream, message) VALUES (@job, @attempt, @rank, @seq, @time, @stream, @message)',
    );
    this.insertMany = this.db.transaction((entries: readonly LogEntry[]) => {
      for (const e of entries) this.insert.run({ job: e.job, attempt: e.attempt, rank: e.rank, seq: e.seq, time: e.time, stream: e.stream, message: storableText(e.message) });
    });
  }

  /** Creates the schema, or brings a file of an older version to this one; refuses a newer file. */
  private migrate(): void {
    this.db.transaction(() => {
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version > SQLITE_LOG_SCHEMA_VERSION) {
        throw new Error(`the log store ${this.db.name} has schema version ${version}, newer than this build's ${SQLITE_LOG_SCHEMA_VERSION}`);
      }
      if (version === SQLITE_LOG_SCHEMA_VERSION) return;
      const exists = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_entries'").get() !== undefined;
      if (exists) {
        // Version 0: its key lacks the attempt, and SQLite cannot change a key in place.
        this.db.exec('DROP INDEX IF EXISTS log_entries_by_time; ALTER TABLE log_entries RENAME TO log_entries_v0;');
        this.db.exec(CREATE_TABLE);
        this.db.exec(`INSERT INTO log_entries (${LOG_COLUMNS}) SELECT job, 1, rank, seq, time, stream, message FROM log_entries_v0; DROP TABLE log_entries_v0;`);
      } else {
        this.db.exec(CREATE_TABLE);
      }
      this.db.pragma(`user_version = ${SQLITE_LOG_SCHEMA_VERSION}`);
    }).immediate();
  }

  append(entries: readonly LogEntry[]): Promise<void> {
    return settle(() => {
      if (entries.length > 0) this.insertMany(entries);
    });
  }

  query(q: LogQuery): Promise<LogPage> {
    return settle(() => {
      const { where, order, params } = compileLogQuery(q, SQLITE_DIALECT);
      const rows = this.db.prepare(`SELECT ${LOG_COLUMNS} FROM log_entries WHERE ${where} ORDER BY ${order} LIMIT ?`).iterate(...params, q.pageSize + 1) as IterableIterator<LogEntry>;
      // Rows are read one at a time and the read stops at the byte cap, so a page of huge lines never sits in memory whole.
      const page = new LogPageFiller(q);
      for (const row of rows) if (!page.add(row)) break;
      return page.page();
    });
  }

  deleteJob(job: string): Promise<number> {
    return settle(() => this.db.prepare('DELETE FROM log_entries WHERE job = ?').run(job).changes);
  }

  storedBytes(): Promise<number> {
    return settle(() => (this.db.prepare('SELECT COALESCE(SUM(length(CAST(message AS BLOB))), 0) AS n FROM log_entries').get() as { n: number }).n);
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.db.open) this.db.close();
    });
  }
}

/** A synchronous call's result or error as a promise, so callers of either backend handle both alike. */
function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}
