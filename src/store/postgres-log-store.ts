/**
 * The log store on PostgreSQL (node-postgres, a pool of its own), used when DATABASE_URL is set: every
 * API replica reads and follows the same logs, and no answer depends on a replica's disk. The same
 * rows, order and cursors as the SQLite store (the contract in test/support/log-store-contract.ts):
 *
 * - `time` is fixed-width UTC text `COLLATE "C"`, as in the read model: text order is time order, and a
 *   cursor in a page token is the same string on both backends.
 * - A batch is one statement: its rows are inserted from arrays (`unnest`), an entry already stored is
 *   skipped, and the bytes of the rows that were new are added to their job's total in `log_job_bytes`,
 *   so `storedBytes` sums one row per job instead of scanning every line.
 * - A page is read in chunks along the cursor, so a page of long lines never sits in memory whole.
 * - U+0000 is stored as U+FFFD (storableText), as the SQLite store does.
 */
import { Pool, type PoolClient } from 'pg';
import { inTransaction } from './postgres-client';
import { compileLogQuery, type LogEntry, LOG_COLUMNS, type LogCursor, LogPageFiller, type LogPage, type LogQuery, type LogStore, storableText } from './log-store';

/** Bumped when the tables change; a database written by a newer build is refused. */
export const POSTGRES_LOG_SCHEMA_VERSION = 1;
/** Serialises schema creation between processes starting at once (pg_advisory_xact_lock key, "blogs"). */
const SCHEMA_LOCK_KEY = 0x626c6f6773;
const SCHEMA_TABLE = 'log_store_schema';
const TIMESTAMP_PATTERN = String.raw`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`;
/** Rows per read of a page: at most this many lines of up to 64 KiB are in memory at once. */
const CHUNK_ROWS = 256;

export interface PostgresLogStoreOptions {
  /** Most connections the pool opens (default 10). */
  maxConnections?: number;
  /** How long to wait for a connection before failing (default 10 s), so a dead server fails calls instead of hanging them. */
  connectionTimeoutMs?: number;
  /** Told about errors on idle pooled connections (e.g. a server restart); the pool drops such a connection either way. */
  onIdleError?: (error: Error) => void;
}

const POSTGRES_DIALECT = {
  placeholder: (index: number) => `$${index}`,
  contains: (column: string, needle: string) => `strpos(${column}, ${needle}) > 0`,
};

interface Row {
  job: string;
  attempt: number;
  rank: number;
  seq: string | number;
  time: string;
  stream: 'stdout' | 'stderr';
  message: string;
}

export class PostgresLogStore implements LogStore {
  private closing: Promise<void> | undefined;

  private constructor(private readonly pool: Pool) {}

  /** Connects, creates the schema if it is missing (idempotent, safe to race), and returns the store. */
  static async connect(url: string, options: PostgresLogStoreOptions = {}): Promise<PostgresLogStore> {
    const pool = new Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
      application_name: 'batchd-logs',
    });
    // Without a listener, an idle connection's error (server restart) would crash the process.
    pool.on('error', (error) => options.onIdleError?.(error));
    try {
      await inTransaction(pool, 'READ COMMITTED', createSchema);
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw error;
    }
    return new PostgresLogStore(pool);
  }

  async append(entries: readonly LogEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const column = <T>(pick: (e: LogEntry) => T): T[] => entries.map(pick);
    // Totals are updated in job order, so two batches of the same jobs never wait on each other in a cycle.
    await this.pool.query(
      `WITH inserted AS (
         INSERT INTO log_entries (${LOG_COLUMNS})
         SELECT * FROM unnest($1::text[], $2::integer[], $3::integer[], $4::bigint[], $5::text[], $6::text[], $7::text[])
         ON CONFLICT DO NOTHING
         RETURNING job, octet_length(message) AS bytes
       )
       INSERT INTO log_job_bytes (job, bytes)
       SELECT job, SUM(bytes) FROM inserted GROUP BY job ORDER BY job
       ON CONFLICT (job) DO UPDATE SET bytes = log_job_bytes.bytes + excluded.bytes`,
      [
        column((e) => e.job),
        column((e) => e.attempt),
        column((e) => e.rank),
        column((e) => e.seq),
        column((e) => e.time),
        column((e) => e.stream),
        column((e) => storableText(e.message)),
      ],
    );
  }

  async query(q: LogQuery): Promise<LogPage> {
    const page = new LogPageFiller(q);
    let after: LogCursor | undefined = q.after;
    let wanted = q.pageSize + 1;
    while (wanted > 0) {
      const { where, order, params } = compileLogQuery(q, POSTGRES_DIALECT, after);
      const limit = Math.min(wanted, CHUNK_ROWS);
      const rows = (await this.pool.query<Row>(`SELECT ${LOG_COLUMNS} FROM log_entries WHERE ${where} ORDER BY ${order} LIMIT ${limit}`, params)).rows;
      for (const row of rows) {
        const entry: LogEntry = { job: row.job, attempt: row.attempt, rank: row.rank, seq: Number(row.seq), time: row.time, stream: row.stream, message: row.message };
        if (!page.add(entry)) return page.page();
        after = [entry.time, entry.attempt, entry.rank, entry.seq];
      }
      if (rows.length < limit) break;
      wanted -= rows.length;
    }
    return page.page();
  }

  async deleteJob(job: string): Promise<number> {
    const result = await this.pool.query<{ n: string }>(
      `WITH removed AS (DELETE FROM log_entries WHERE job = $1 RETURNING 1), total AS (DELETE FROM log_job_bytes WHERE job = $1)
       SELECT COUNT(*) AS n FROM removed`,
      [job],
    );
    return Number(result.rows[0]?.n ?? 0);
  }

  async storedBytes(): Promise<number> {
    const result = await this.pool.query<{ n: string }>('SELECT COALESCE(SUM(bytes), 0) AS n FROM log_job_bytes');
    return Number(result.rows[0]?.n ?? 0);
  }

  /** Ends the pool after running queries finish; calling it again waits for the same end. */
  close(): Promise<void> {
    this.closing ??= this.pool.end();
    return this.closing;
  }
}

async function createSchema(client: PoolClient): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK_KEY})`);
  await client.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA_TABLE} (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), version integer NOT NULL)`);
  const stored = (await client.query<{ version: number }>(`SELECT version FROM ${SCHEMA_TABLE}`)).rows[0]?.version ?? 0;
  if (stored > POSTGRES_LOG_SCHEMA_VERSION) {
    throw new Error(`the log store's tables have schema version ${stored}, newer than this build's ${POSTGRES_LOG_SCHEMA_VERSION}`);
  }
  await client.query(
    `CREATE TABLE IF NOT EXISTS log_entries (
       job text COLLATE "C" NOT NULL,
       attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
       rank integer NOT NULL CHECK (rank >= 0),
       seq bigint NOT NULL CHECK (seq >= 0),
       time text COLLATE "C" NOT NULL CHECK (time ~ '${TIMESTAMP_PATTERN}'),
       stream text NOT NULL CHECK (stream IN ('stdout', 'stderr')),
       message text NOT NULL,
       PRIMARY KEY (job, attempt, rank, seq)
     )`,
  );
  await client.query('CREATE INDEX IF NOT EXISTS log_entries_by_time ON log_entries (job, time, attempt, rank, seq)');
  await client.query('CREATE TABLE IF NOT EXISTS log_job_bytes (job text COLLATE "C" PRIMARY KEY, bytes bigint NOT NULL)');
  await client.query(`INSERT INTO ${SCHEMA_TABLE} (version) VALUES ($1) ON CONFLICT (singleton) DO UPDATE SET version = excluded.version`, [POSTGRES_LOG_SCHEMA_VERSION]);
}
