/**
 * The read model on PostgreSQL (node-postgres, one pool). The same tables, columns, filters, orders
 * and keyset cursors as the SQLite read model (see read-model-tables.ts), so a list answers alike on
 * both; only the SQL spelling and the column types differ:
 *
 * - Text columns are `COLLATE "C"`: byte order, as SQLite's BINARY, whatever the database's default
 *   collation. A linguistic collation (en_US, ICU) would order 'j042-new' before 'j042' differently
 *   from the cursor comparison, and make LIKE unable to use an index.
 * - Timestamps stay fixed-width UTC text (`YYYY-MM-DDTHH:MM:SS.sssZ`, checked by a constraint), not
 *   timestamptz: text order is time order, an absent startTime still sorts as '' through
 *   `COALESCE(col, '')`, and cursor values in page tokens stay the same strings on both backends.
 * - `version` and integer fields are bigint, read back as JS numbers (every value written is a safe
 *   integer); `shared` is boolean; `body` is `json` (validated, stored as written, unlike jsonb's
 *   re-encoding, which also refuses the \u0000 escape).
 * - PostgreSQL text cannot hold U+0000, so a NUL in a column value or a bound filter/cursor value
 *   becomes U+FFFD on both sides of every comparison; the body keeps the exact resource.
 */
import { Pool, type PoolClient, type QueryResultRow, TypeOverrides } from 'pg';
import { inTransaction, withClient } from './postgres-client';
import { ApiError } from '../domain/errors';
import { type FilterExpr } from '../domain/filter';
import { type JobCount, type ListPage, type ListQuery, type ReadModel, type ResourceKind, type StoredResource } from './read-model';
import { type ColumnSpec, columnNames, JOB_COUNTS_SQL, FILTER_COLUMNS, indexName, ORDER_COLUMNS, rowOf, TABLES, type TableSpec, updatedColumns } from './read-model-tables';
import { compileFilter, compileListPage, listPageOf } from './sql-list';
import { avoidHostsColumn, type LoadedPool, type PoolAmendment, POOL_QUEUE_TABLE, POOL_STATE_TABLE, POOL_TOTALS_TABLE, type PoolSync, type PoolSyncResult, queueOrderSql, type QueuePositions, type QueueRow, queueRowOf, queueTermsColumn, readAfter, type StoredPoolSnapshot, type StoredQueueRow } from './pool-store';
import { DEFAULT_PRIORITY } from '../domain/sharing';

/** Bumped when the tables change; a database written by a newer build is refused. */
export const POSTGRES_SCHEMA_VERSION = 5; // 2: the pools' queue and snapshot tables; 3: pool_queue.avoid_hosts; 4: pool_queue.priority and terms; 5: pool_state.step
/** Serialises schema creation between processes starting at once (pg_advisory_xact_lock key, "batchd"). */
const SCHEMA_LOCK_KEY = 0x6261746368;
const SCHEMA_TABLE = 'read_model_schema';
const TIMESTAMP_PATTERN = String.raw`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`;

export interface PostgresReadModelOptions {
  /** Most connections the pool opens (default 10). */
  maxConnections?: number;
  /** How long to wait for a connection before failing (default 10 s), so a dead server fails calls instead of hanging them. */
  connectionTimeoutMs?: number;
  /** Told about errors on idle pooled connections (e.g. a server restart); the pool drops such a connection either way. */
  onIdleError?: (error: Error) => void;
}

/** bigint columns and COUNT(*) come back as numbers, not strings: every value this model writes is a safe integer. */
const TYPES = new TypeOverrides();
TYPES.setTypeParser(20 /* int8 */, (text: string) => {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`bigint ${text} is beyond a safe integer`);
  return n;
});

type Bindable = string | number | boolean | null;

export class PostgresReadModel implements ReadModel {
  private closing: Promise<void> | undefined;

  private constructor(private readonly pool: Pool) {}

  /** Connects, creates the schema if it is missing (idempotent, safe to race), and returns the model. */
  static async connect(url: string, options: PostgresReadModelOptions = {}): Promise<PostgresReadModel> {
    const pool = new Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
      application_name: 'batchd',
      types: TYPES,
    });
    // Without a listener, an idle connection's error (server restart) would crash the process.
    pool.on('error', (error) => options.onIdleError?.(error));
    const model = new PostgresReadModel(pool);
    try {
      await model.transaction('READ COMMITTED', (client) => createSchema(client));
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw error;
    }
    return model;
  }

  async put(kind: ResourceKind, account: string, resource: StoredResource, version: number): Promise<boolean> {
    const spec = TABLES[kind];
    const updates = updatedColumns(spec).map((n) => `${n} = excluded.${n}`);
    const sql = `${insertSql(spec)} ON CONFLICT (name) DO UPDATE SET ${updates.join(', ')} WHERE excluded.version > ${spec.table}.version`;
    const result = await this.pool.query(sql, bind(rowOf(kind, account, resource, version)));
    return (result.rowCount ?? 0) > 0;
  }

  async putIfAbsent(kind: ResourceKind, account: string, resource: StoredResource, version: number): Promise<boolean> {
    const sql = `${insertSql(TABLES[kind])} ON CONFLICT (name) DO NOTHING`;
    const result = await this.pool.query(sql, bind(rowOf(kind, account, resource, version)));
    return (result.rowCount ?? 0) > 0;
  }

  async get<T extends StoredResource>(kind: ResourceKind, name: string): Promise<{ resource: T; version: number } | undefined> {
    const result = await this.pool.query<{ body: T; version: number }>(`SELECT body, version FROM ${TABLES[kind].table} WHERE name = $1`, bind([name]));
    const row = result.rows[0];
    return row && { resource: row.body, version: row.version };
  }

  async remove(kind: ResourceKind, name: string): Promise<boolean> {
    const result = await this.pool.query(`DELETE FROM ${TABLES[kind].table} WHERE name = $1`, bind([name]));
    return (result.rowCount ?? 0) > 0;
  }

  async list<T extends StoredResource>(kind: ResourceKind, query: ListQuery): Promise<ListPage<T>> {
    const statements = compileListPage(TABLES[kind].table, ORDER_COLUMNS[kind], this.scope(kind, query.account, query.filter), query, 'postgres');
    // A cursor value of the wrong type would be a database error (500) here, where SQLite just compares.
    if (query.after && !statements.terms.every((t, i) => fitsColumn(kind, t.field, query.after?.[i]))) {
      throw ApiError.invalidField('pageToken', 'does not fit this query; start again without a pageToken');
    }
    // One REPEATABLE READ transaction: the page and its totalSize come from the same snapshot.
    return this.transaction('REPEATABLE READ READ ONLY', async (client) => {
      const rows = (await client.query<QueryResultRow>(statements.page.sql, bind(statements.page.params))).rows;
      const { n } = (await client.query<{ n: number }>(statements.count.sql, bind(statements.count.params))).rows[0]!;
      return listPageOf(rows, n, statements, query.pageSize, (r) => r.body as T);
    });
  }

  async listAll<T extends StoredResource>(kind: ResourceKind): Promise<T[]> {
    const result = await this.pool.query<{ body: T }>(`SELECT body FROM ${TABLES[kind].table} ORDER BY name`);
    return result.rows.map((r) => r.body);
  }

  async count(kind: ResourceKind, account: string, filter?: FilterExpr): Promise<number> {
    const scope = this.scope(kind, account, filter);
    const result = await this.pool.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${TABLES[kind].table} WHERE ${scope.sql}`, bind(scope.params));
    return result.rows[0]!.n;
  }

  async jobCounts(): Promise<JobCount[]> {
    return (await this.pool.query<JobCount>(JOB_COUNTS_SQL)).rows;
  }

  syncPool(step: PoolSync): Promise<PoolSyncResult> {
    return this.transaction('READ COMMITTED', async (client): Promise<PoolSyncResult> => {
      // The snapshot first: a step that follows a lost one writes nothing (pool-store.ts, expectStep).
      // The row lock orders this step after any other of the same pool (a lost task's step may still run).
      const stored = (await client.query<{ version: number; step: number }>(`SELECT version, step FROM ${POOL_STATE_TABLE} WHERE pool = $1 FOR UPDATE`, bind([step.pool]))).rows[0];
      const lostStep = async (): Promise<PoolSyncResult> => {
        const lost = (await snapshotRow(client, step.pool)) as StoredPoolSnapshot;
        return { inserted: 0, removed: 0, ...(await queueTotals(client, step.pool)), rows: [], step: lost.step, lost };
      };
      const storedStep = stored?.step ?? 0;
      if (step.expectStep !== undefined && storedStep > step.expectStep) return lostStep();
      let stepNumber = storedStep;
      if (step.snapshot && (step.expectStep !== undefined || !stored || step.snapshot.version >= stored.version)) {
        // A checked step follows the stored snapshot, so it replaces it whatever its version; an
        // unchecked one (runs from before the check) only when its version is not older.
        stepNumber = storedStep + 1;
        const params = bind([step.pool, step.snapshot.version, JSON.stringify(step.snapshot.state), stepNumber]);
        if (stored) {
          await client.query(`UPDATE ${POOL_STATE_TABLE} SET version = $2, state = $3, step = $4 WHERE pool = $1`, params);
        } else if (step.expectStep !== undefined) {
          // No row to lock: if another step inserted one meanwhile, that step came first and this one follows it.
          const result = await client.query(`INSERT INTO ${POOL_STATE_TABLE} (pool, version, state, step) VALUES ($1, $2, $3, $4) ON CONFLICT (pool) DO NOTHING`, params);
          if ((result.rowCount ?? 0) === 0) return lostStep();
        } else {
          const result = await client.query<{ step: number }>(
            `INSERT INTO ${POOL_STATE_TABLE} (pool, version, state, step) VALUES ($1, $2, $3, $4) ON CONFLICT (pool) DO UPDATE SET version = excluded.version, state = excluded.state, step = ${POOL_STATE_TABLE}.step + 1 WHERE excluded.version >= ${POOL_STATE_TABLE}.version RETURNING step`,
            params,
          );
          stepNumber = result.rows[0]?.step ?? (await client.query<{ step: number }>(`SELECT step FROM ${POOL_STATE_TABLE} WHERE pool = $1`, bind([step.pool]))).rows[0]!.step;
        }
      }
      let inserted = 0;
      let insertedRanks = 0;
      let removed = 0;
      let removedRanks = 0;
      for (const r of step.inserts) {
        const result = await client.query(
          `INSERT INTO ${POOL_QUEUE_TABLE} (pool, seq, job_name, workflow_id, ranks, enqueued_at, avoid_hosts, priority, terms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
          bind([step.pool, r.seq, r.jobName, r.workflowId, r.ranks, r.enqueuedAt, avoidHostsColumn(r), r.priority ?? DEFAULT_PRIORITY, queueTermsColumn(r)]),
        );
        if ((result.rowCount ?? 0) > 0) {
          inserted++;
          insertedRanks += r.ranks;
        }
      }
      if (step.removes.length > 0) {
        const result = await client.query<{ ranks: number }>(`DELETE FROM ${POOL_QUEUE_TABLE} WHERE pool = $1 AND job_name = ANY($2::text[]) RETURNING ranks`, [
          bind([step.pool])[0],
          bind(step.removes),
        ]);
        removed = result.rows.length;
        removedRanks = result.rows.reduce((n, r) => n + r.ranks, 0);
      }
      // The totals are kept, not counted: a step costs the same with 10 or 100,000 jobs queued.
      if (inserted > 0 || removed > 0) {
        await client.query(
          `INSERT INTO ${POOL_TOTALS_TABLE} (pool, length, ranks) VALUES ($1, $2, $3) ON CONFLICT (pool) DO UPDATE SET length = ${POOL_TOTALS_TABLE}.length + excluded.length, ranks = ${POOL_TOTALS_TABLE}.ranks + excluded.ranks`,
          bind([step.pool, inserted - removed, insertedRanks - removedRanks]),
        );
      }
      const rows = step.read ? await queueRows(client, step.pool, readAfter(step.read), step.read.limit) : [];
      return { inserted, removed, ...(await queueTotals(client, step.pool)), rows, step: stepNumber };
    });
  }

  loadPool(pool: string, windowSize: number): Promise<LoadedPool> {
    return this.transaction('REPEATABLE READ READ ONLY', async (client) => {
      const snapshot = await snapshotRow(client, pool);
      return {
        ...(snapshot ? { snapshot } : {}),
        ...(await queueTotals(client, pool)),
        maxSeq: (await client.query<{ n: number }>(`SELECT COALESCE(MAX(seq), 0)::bigint AS n FROM ${POOL_QUEUE_TABLE} WHERE pool = $1`, bind([pool]))).rows[0]!.n,
        rows: await queueRows(client, pool, undefined, windowSize),
      };
    });
  }

  poolSnapshot(pool: string): Promise<StoredPoolSnapshot | undefined> {
    return snapshotRow(this.pool, pool);
  }

  amendPoolSnapshot<T>(pool: string, amend: (state: unknown) => PoolAmendment<T>): Promise<T> {
    return this.transaction('READ COMMITTED', async (client): Promise<T> => {
      // The row lock orders the amendment with the pool's steps (syncPool locks the same row).
      const row = (await client.query<{ state: unknown }>(`SELECT state FROM ${POOL_STATE_TABLE} WHERE pool = $1 FOR UPDATE`, bind([pool]))).rows[0];
      const { answer, write } = amend(row?.state);
      if (write !== undefined) await client.query(`UPDATE ${POOL_STATE_TABLE} SET state = $2, step = step + 1 WHERE pool = $1`, bind([pool, JSON.stringify(write)]));
      return answer;
    });
  }

  queuePositions(pool: string, jobNames: readonly string[]): Promise<QueuePositions> {
    return this.transaction('REPEATABLE READ READ ONLY', async (client) => {
      const positions: Record<string, number> = {};
      if (jobNames.length > 0) {
        const result = await client.query<{ job_name: string; ahead: number }>(
          `SELECT q.job_name, (SELECT COUNT(*) FROM ${POOL_QUEUE_TABLE} b WHERE b.pool = q.pool AND (b.priority > q.priority OR (b.priority = q.priority AND b.seq < q.seq))) AS ahead FROM ${POOL_QUEUE_TABLE} q WHERE q.pool = $1 AND q.job_name = ANY($2::text[])`,
          [bind([pool])[0], bind(jobNames)],
        );
        for (const r of result.rows) positions[r.job_name] = r.ahead + 1;
      }
      return { length: await queueLength(client, pool), positions };
    });
  }

  async queuedJobs(pool: string, limit: number): Promise<string[]> {
    return withClient(this.pool, async (client) => (await queueRows(client, pool, undefined, limit)).map((r) => r.jobName));
  }

  async dropPool(pool: string): Promise<void> {
    await this.transaction('READ COMMITTED', async (client) => {
      await client.query(`DELETE FROM ${POOL_QUEUE_TABLE} WHERE pool = $1`, bind([pool]));
      await client.query(`DELETE FROM ${POOL_TOTALS_TABLE} WHERE pool = $1`, bind([pool]));
      await client.query(`DELETE FROM ${POOL_STATE_TABLE} WHERE pool = $1`, bind([pool]));
    });
  }

  /** Ends the pool after running queries finish; calling it again waits for the same end. */
  close(): Promise<void> {
    this.closing ??= this.pool.end();
    return this.closing;
  }

  /** `account = $1` AND the filter in its own parentheses, so no filter can widen the account scope. */
  private scope(kind: ResourceKind, account: string, filter: FilterExpr | undefined): { sql: string; params: unknown[] } {
    if (!filter) return { sql: 'account = $1', params: [account] };
    const compiled = compileFilter(filter, FILTER_COLUMNS[kind], 'postgres', 2);
    return { sql: `account = $1 AND (${compiled.sql})`, params: [account, ...compiled.params] };
  }

  private transaction<T>(mode: string, work: (client: PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, mode, work);
  }
}

function queueLength(client: PoolClient, pool: string): Promise<number> {
  return client.query<{ n: number }>(`SELECT COALESCE((SELECT length FROM ${POOL_TOTALS_TABLE} WHERE pool = $1), 0)::bigint AS n`, bind([pool])).then((r) => r.rows[0]!.n);
}

/** A pool's stored snapshot (the driver parses its JSON column), read by a pool client or the pool itself. */
async function snapshotRow(client: Pick<PoolClient, 'query'>, pool: string): Promise<StoredPoolSnapshot | undefined> {
  const row = (await client.query<{ version: number; state: unknown; step: number }>(`SELECT version, state, step FROM ${POOL_STATE_TABLE} WHERE pool = $1`, bind([pool]))).rows[0];
  return row ? { version: row.version, state: row.state, step: row.step } : undefined;
}

async function queueTotals(client: PoolClient, pool: string): Promise<{ length: number; ranks: number; maxRanks: number }> {
  const totals = (await client.query<{ length: number; ranks: number }>(`SELECT length, ranks FROM ${POOL_TOTALS_TABLE} WHERE pool = $1`, bind([pool]))).rows[0];
  // MAX over the (pool, ranks) index: one index probe, whatever the queue's length.
  const max = (await client.query<{ m: number }>(`SELECT COALESCE(MAX(ranks), 0)::bigint AS m FROM ${POOL_QUEUE_TABLE} WHERE pool = $1`, bind([pool]))).rows[0]!;
  return { length: totals?.length ?? 0, ranks: totals?.ranks ?? 0, maxRanks: max.m };
}

/** Rows in queue order (priority, then seq), after a key or from the start. */
async function queueRows(client: PoolClient, pool: string, after: { priority: number; seq: number } | undefined, limit: number): Promise<QueueRow[]> {
  const order = queueOrderSql(after, (i) => `$${i}`, 2);
  const result = await client.query<StoredQueueRow>(
    `SELECT job_name AS "jobName", workflow_id AS "workflowId", ranks, seq, enqueued_at AS "enqueuedAt", avoid_hosts AS "avoidHosts", priority, terms FROM ${POOL_QUEUE_TABLE} WHERE pool = $1${order.where} ORDER BY priority DESC, seq LIMIT $${order.params.length + 2}`,
    bind([pool, ...order.params, Math.max(0, Math.trunc(limit))]),
  );
  return result.rows.map(queueRowOf);
}

/** `INSERT … VALUES ($1, …)` of every column of a kind's table, in rowOf's order. */
function insertSql(spec: TableSpec): string {
  const names = columnNames(spec);
  return `INSERT INTO ${spec.table} (${names.join(', ')}) VALUES (${names.map((_n, i) => `$${i + 1}`).join(', ')})`;
}

/** Bound values as PostgreSQL takes them: text cannot hold U+0000, so it becomes U+FFFD (the same for stored and compared values). */
function bind(values: readonly unknown[]): Bindable[] {
  return values.map((v) => {
    if (typeof v === 'string') return v.includes('\0') ? v.replaceAll('\0', '\uFFFD') : v;
    if (typeof v === 'number' || typeof v === 'boolean' || v === null) return v;
    throw new Error(`cannot bind a ${typeof v} to a read model query`);
  });
}

/** Whether a cursor value has the type of the order column of `field` (numbers for integer columns, strings otherwise). */
function fitsColumn(kind: ResourceKind, field: string, value: unknown): boolean {
  const spec = TABLES[kind].columns.find((c) => c.field === field);
  return spec?.type === 'int' ? Number.isSafeInteger(value) : typeof value === 'string';
}

function columnDef(c: ColumnSpec): string {
  const nullity = c.optional ? '' : ' NOT NULL';
  switch (c.type) {
    case 'text':
      return `${c.column} text COLLATE "C"${nullity}`;
    case 'timestamp':
      return `${c.column} text COLLATE "C"${nullity} CHECK (${c.column} ~ '${TIMESTAMP_PATTERN}')`;
    case 'int':
      return `${c.column} bigint${nullity}`;
    case 'bool':
      return `${c.column} boolean${nullity}`;
  }
}

async function createSchema(client: PoolClient): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK_KEY})`);
  await client.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA_TABLE} (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), version integer NOT NULL)`);
  const stored = (await client.query<{ version: number }>(`SELECT version FROM ${SCHEMA_TABLE}`)).rows[0]?.version ?? 0;
  if (stored > POSTGRES_SCHEMA_VERSION) {
    throw new Error(`the read model database has schema version ${stored}, newer than this build's ${POSTGRES_SCHEMA_VERSION}`);
  }
  for (const { table, columns, indexes } of Object.values(TABLES)) {
    const defs = [`name text COLLATE "C" PRIMARY KEY`, `account text COLLATE "C" NOT NULL`, 'version bigint NOT NULL', 'body json NOT NULL', ...columns.map(columnDef)];
    await client.query(`CREATE TABLE IF NOT EXISTS ${table} (${defs.join(', ')})`);
    for (const index of indexes) {
      await client.query(`CREATE INDEX IF NOT EXISTS ${indexName(table, index)} ON ${table} (${index})`);
    }
  }
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${POOL_QUEUE_TABLE} (pool text COLLATE "C" NOT NULL, seq bigint NOT NULL, job_name text COLLATE "C" NOT NULL, workflow_id text NOT NULL, ranks bigint NOT NULL, enqueued_at text NOT NULL, avoid_hosts json, priority integer NOT NULL DEFAULT 0, terms json, PRIMARY KEY (pool, job_name))`,
  );
  // Schema 3: a database from before it has the table without the column (NULL: the request avoids nothing).
  if (stored < 3) await client.query(`ALTER TABLE ${POOL_QUEUE_TABLE} ADD COLUMN IF NOT EXISTS avoid_hosts json`);
  // Schema 4: priority (0 for rows from before it) and the other sharing terms (NULL: none).
  if (stored < 4) {
    await client.query(`ALTER TABLE ${POOL_QUEUE_TABLE} ADD COLUMN IF NOT EXISTS priority integer NOT NULL DEFAULT 0`);
    await client.query(`ALTER TABLE ${POOL_QUEUE_TABLE} ADD COLUMN IF NOT EXISTS terms json`);
  }
  await client.query(`CREATE UNIQUE INDEX IF NOT EXISTS ${POOL_QUEUE_TABLE}_by_pool_seq ON ${POOL_QUEUE_TABLE} (pool, seq)`);
  await client.query(`CREATE INDEX IF NOT EXISTS ${POOL_QUEUE_TABLE}_by_pool_ranks ON ${POOL_QUEUE_TABLE} (pool, ranks)`);
  await client.query(`CREATE INDEX IF NOT EXISTS ${POOL_QUEUE_TABLE}_by_pool_order ON ${POOL_QUEUE_TABLE} (pool, priority DESC, seq)`);
  await client.query(`CREATE TABLE IF NOT EXISTS ${POOL_TOTALS_TABLE} (pool text COLLATE "C" PRIMARY KEY, length bigint NOT NULL, ranks bigint NOT NULL)`);
  await client.query(`CREATE TABLE IF NOT EXISTS ${POOL_STATE_TABLE} (pool text COLLATE "C" PRIMARY KEY, version bigint NOT NULL, state json NOT NULL, step bigint NOT NULL DEFAULT 0)`);
  // Schema 5: the step number of each snapshot (0 for snapshots from before it).
  if (stored < 5) await client.query(`ALTER TABLE ${POOL_STATE_TABLE} ADD COLUMN IF NOT EXISTS step bigint NOT NULL DEFAULT 0`);
  await client.query(
    `INSERT INTO ${SCHEMA_TABLE} (version) VALUES ($1) ON CONFLICT (singleton) DO UPDATE SET version = excluded.version`,
    [POSTGRES_SCHEMA_VERSION],
  );
}
