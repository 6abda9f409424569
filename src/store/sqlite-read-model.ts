/**
 * The read model on an embedded SQLite file (better-sqlite3, WAL). One table per resource kind, each
 * with the full resource JSON in `body` and a typed column per filterable or orderable field, so
 * every list query is a plain indexed SELECT. Timestamps are stored as fixed-width UTC text
 * (`YYYY-MM-DDTHH:MM:SS.sssZ`), so text order is time order.
 */
import Database from 'better-sqlite3';
import { type FilterExpr } from '../domain/filter';
import { DEFAULT_PRIORITY } from '../domain/sharing';
import { type JobCount, type ListPage, type ListQuery, type ReadModel, type ResourceKind, type StoredResource } from './read-model';
import { columnNames, JOB_COUNTS_SQL, FILTER_COLUMNS, indexName, ORDER_COLUMNS, rowOf, TABLES, type TableSpec, updatedColumns } from './read-model-tables';
import { compileFilter, compileListPage, listPageOf } from './sql-list';
import { avoidHostsColumn, type LoadedPool, type PoolAmendment, POOL_QUEUE_TABLE, POOL_STATE_TABLE, POOL_TOTALS_TABLE, type PoolSync, type PoolSyncResult, queueOrderSql, type QueuePositions, type QueueRow, queueRowOf, queueTermsColumn, readAfter, type StoredPoolSnapshot, type StoredQueueRow } from './pool-store';

// The tables and the resource → row mapping are shared with the other backends; re-exported for existing callers.
export { filterColumns, orderColumns, TABLES } from './read-model-tables';

/** `INSERT … VALUES (…)` of every column of a kind's table, in rowOf's order. */
function insertSql(spec: TableSpec): string {
  const names = columnNames(spec);
  return `INSERT INTO ${spec.table} (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`;
}

/** The upsert that only a newer version wins. */
function putSql(spec: TableSpec): string {
  const updates = updatedColumns(spec).map((n) => `${n} = excluded.${n}`);
  return `${insertSql(spec)} ON CONFLICT (name) DO UPDATE SET ${updates.join(', ')} WHERE excluded.version > ${spec.table}.version`;
}

/** 2: the pools' queue and snapshot tables. 3: pool_queue.avoid_hosts. 4: pool_queue.priority and terms. 5: pool_state.step. */
const SCHEMA_VERSION = 5;
const STATEMENT_CACHE_LIMIT = 500;

export interface SqliteReadModelOptions {
  /** How long a writer waits for another connection's lock before SQLITE_BUSY. */
  busyTimeoutMs?: number;
}

type SqlValue = string | number | null;

export class SqliteReadModel implements ReadModel {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement<unknown[]>>();

  constructor(path: string, options: SqliteReadModelOptions = {}) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
    // The read model can be rebuilt from Temporal, so WAL's cheaper NORMAL sync is enough.
    this.db.pragma('synchronous = NORMAL');
    // Filter wildcards compile to LIKE, which must match case exactly as = does.
    this.db.pragma('case_sensitive_like = ON');
    this.createSchema();
  }

  put(kind: ResourceKind, account: string, resource: StoredResource, version: number): Promise<boolean> {
    return settle(() => this.statement(putSql(TABLES[kind])).run(...this.rowOf(kind, account, resource, version)).changes > 0);
  }

  putIfAbsent(kind: ResourceKind, account: string, resource: StoredResource, version: number): Promise<boolean> {
    const sql = `${insertSql(TABLES[kind])} ON CONFLICT (name) DO NOTHING`;
    return settle(() => this.statement(sql).run(...this.rowOf(kind, account, resource, version)).changes > 0);
  }

  get<T extends StoredResource>(kind: ResourceKind, name: string): Promise<{ resource: T; version: number } | undefined> {
    return settle(() => {
      const row = this.statement(`SELECT body, version FROM ${TABLES[kind].table} WHERE name = ?`).get(name) as { body: string; version: number } | undefined;
      return row && { resource: JSON.parse(row.body) as T, version: row.version };
    });
  }

  remove(kind: ResourceKind, name: string): Promise<boolean> {
    return settle(() => this.statement(`DELETE FROM ${TABLES[kind].table} WHERE name = ?`).run(name).changes > 0);
  }

  list<T extends StoredResource>(kind: ResourceKind, query: ListQuery): Promise<ListPage<T>> {
    return settle(() => {
      const statements = compileListPage(TABLES[kind].table, ORDER_COLUMNS[kind], this.scope(kind, query.account, query.filter), query, 'sqlite');
      // One read transaction: the page and its totalSize come from the same snapshot.
      return this.db.transaction(() => {
        const rows = this.statement(statements.page.sql).all(...statements.page.params) as Record<string, unknown>[];
        const { n } = this.statement(statements.count.sql).get(...statements.count.params) as { n: number };
        return listPageOf(rows, n, statements, query.pageSize, (r) => JSON.parse(r.body as string) as T);
      })();
    });
  }

  listAll<T extends StoredResource>(kind: ResourceKind): Promise<T[]> {
    return settle(() => {
      const rows = this.statement(`SELECT body FROM ${TABLES[kind].table} ORDER BY name`).all() as { body: string }[];
      return rows.map((r) => JSON.parse(r.body) as T);
    });
  }

  count(kind: ResourceKind, account: string, filter?: FilterExpr): Promise<number> {
    return settle(() => {
      const scope = this.scope(kind, account, filter);
      const row = this.statement(`SELECT COUNT(*) AS n FROM ${TABLES[kind].table} WHERE ${scope.sql}`).get(...scope.params) as { n: number };
      return row.n;
    });
  }

  jobCounts(): Promise<JobCount[]> {
    return settle(() => this.statement(JOB_COUNTS_SQL).all() as JobCount[]);
  }

  syncPool(step: PoolSync): Promise<PoolSyncResult> {
    return settle(() =>
      this.db.transaction((): PoolSyncResult => {
        // The snapshot first: a step that follows a lost one writes nothing (pool-store.ts, expectStep).
        const stored = this.statement(`SELECT version, step FROM ${POOL_STATE_TABLE} WHERE pool = ?`).get(step.pool) as { version: number; step: number } | undefined;
        const storedStep = stored?.step ?? 0;
        if (step.expectStep !== undefined && storedStep > step.expectStep) {
          const lost = this.snapshotRow(step.pool) as StoredPoolSnapshot;
          return { inserted: 0, removed: 0, ...this.queueTotals(step.pool), rows: [], step: storedStep, lost };
        }
        let stepNumber = storedStep;
        if (step.snapshot && (step.expectStep !== undefined || !stored || step.snapshot.version >= stored.version)) {
          // A checked step follows the stored snapshot, so it replaces it whatever its version; an
          // unchecked one (runs from before the check) only when its version is not older.
          stepNumber = storedStep + 1;
          this.statement(
            `INSERT INTO ${POOL_STATE_TABLE} (pool, version, state, step) VALUES (?, ?, ?, ?) ON CONFLICT (pool) DO UPDATE SET version = excluded.version, state = excluded.state, step = excluded.step`,
          ).run(step.pool, step.snapshot.version, JSON.stringify(step.snapshot.state), stepNumber);
        }
        let inserted = 0;
        let insertedRanks = 0;
        let removed = 0;
        let removedRanks = 0;
        const insert = this.statement(
          `INSERT INTO ${POOL_QUEUE_TABLE} (pool, seq, job_name, workflow_id, ranks, enqueued_at, avoid_hosts, priority, terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
        );
        for (const r of step.inserts) {
          if (insert.run(step.pool, r.seq, r.jobName, r.workflowId, r.ranks, r.enqueuedAt, avoidHostsColumn(r), r.priority ?? DEFAULT_PRIORITY, queueTermsColumn(r)).changes > 0) {
            inserted++;
            insertedRanks += r.ranks;
          }
        }
        const remove = this.statement(`DELETE FROM ${POOL_QUEUE_TABLE} WHERE pool = ? AND job_name = ? RETURNING ranks`);
        for (const name of step.removes) {
          const gone = remove.get(step.pool, name) as { ranks: number } | undefined;
          if (gone) {
            removed++;
            removedRanks += gone.ranks;
          }
        }
        // The totals are kept, not counted: a step costs the same with 10 or 100,000 jobs queued.
        if (inserted > 0 || removed > 0) {
          this.statement(
            `INSERT INTO ${POOL_TOTALS_TABLE} (pool, length, ranks) VALUES (?, ?, ?) ON CONFLICT (pool) DO UPDATE SET length = length + excluded.length, ranks = ranks + excluded.ranks`,
          ).run(step.pool, inserted - removed, insertedRanks - removedRanks);
        }
        const rows = step.read ? this.queueRows(step.pool, readAfter(step.read), step.read.limit) : [];
        return { inserted, removed, ...this.queueTotals(step.pool), rows, step: stepNumber };
      })(),
    );
  }

  loadPool(pool: string, windowSize: number): Promise<LoadedPool> {
    return settle(() =>
      this.db.transaction(() => {
        const snapshot = this.snapshotRow(pool);
        return {
          ...(snapshot ? { snapshot } : {}),
          ...this.queueTotals(pool),
          maxSeq: (this.statement(`SELECT COALESCE(MAX(seq), 0) AS n FROM ${POOL_QUEUE_TABLE} WHERE pool = ?`).get(pool) as { n: number }).n,
          rows: this.queueRows(pool, undefined, windowSize),
        };
      })(),
    );
  }

  poolSnapshot(pool: string): Promise<StoredPoolSnapshot | undefined> {
    return settle(() => this.snapshotRow(pool));
  }

  amendPoolSnapshot<T>(pool: string, amend: (state: unknown) => PoolAmendment<T>): Promise<T> {
    return settle(() =>
      // IMMEDIATE: the write lock from the read on, so no step of the pool comes between.
      this.db.transaction((): T => {
        const { answer, write } = amend(this.snapshotRow(pool)?.state);
        if (write !== undefined) this.statement(`UPDATE ${POOL_STATE_TABLE} SET state = ?, step = step + 1 WHERE pool = ?`).run(JSON.stringify(write), pool);
        return answer;
      }).immediate(),
    );
  }

  private snapshotRow(pool: string): StoredPoolSnapshot | undefined {
    const row = this.statement(`SELECT version, state, step FROM ${POOL_STATE_TABLE} WHERE pool = ?`).get(pool) as { version: number; state: string; step: number } | undefined;
    return row ? { version: row.version, state: JSON.parse(row.state) as unknown, step: row.step } : undefined;
  }

  queuePositions(pool: string, jobNames: readonly string[]): Promise<QueuePositions> {
    return settle(() =>
      this.db.transaction(() => {
        const positions: Record<string, number> = {};
        const at = this.statement(
          `SELECT (SELECT COUNT(*) FROM ${POOL_QUEUE_TABLE} b WHERE b.pool = q.pool AND (b.priority > q.priority OR (b.priority = q.priority AND b.seq < q.seq))) AS ahead FROM ${POOL_QUEUE_TABLE} q WHERE q.pool = ? AND q.job_name = ?`,
        );
        for (const name of jobNames) {
          const row = at.get(pool, name) as { ahead: number } | undefined;
          if (row) positions[name] = row.ahead + 1;
        }
        return { length: this.queueLength(pool), positions };
      })(),
    );
  }

  queuedJobs(pool: string, limit: number): Promise<string[]> {
    return settle(() => this.queueRows(pool, undefined, limit).map((r) => r.jobName));
  }

  dropPool(pool: string): Promise<void> {
    return settle(() =>
      this.db.transaction(() => {
        this.statement(`DELETE FROM ${POOL_QUEUE_TABLE} WHERE pool = ?`).run(pool);
        this.statement(`DELETE FROM ${POOL_TOTALS_TABLE} WHERE pool = ?`).run(pool);
        this.statement(`DELETE FROM ${POOL_STATE_TABLE} WHERE pool = ?`).run(pool);
      })(),
    );
  }

  private queueLength(pool: string): number {
    return (this.statement(`SELECT COALESCE((SELECT length FROM ${POOL_TOTALS_TABLE} WHERE pool = ?), 0) AS n`).get(pool) as { n: number }).n;
  }

  private queueTotals(pool: string): { length: number; ranks: number; maxRanks: number } {
    const totals = this.statement(`SELECT length, ranks FROM ${POOL_TOTALS_TABLE} WHERE pool = ?`).get(pool) as { length: number; ranks: number } | undefined;
    // MAX over the (pool, ranks) index: one index probe, whatever the queue's length.
    const max = this.statement(`SELECT COALESCE(MAX(ranks), 0) AS m FROM ${POOL_QUEUE_TABLE} WHERE pool = ?`).get(pool) as { m: number };
    return { length: totals?.length ?? 0, ranks: totals?.ranks ?? 0, maxRanks: max.m };
  }

  /** Rows in queue order (priority, then seq), after a key or from the start. */
  private queueRows(pool: string, after: { priority: number; seq: number } | undefined, limit: number): QueueRow[] {
    const order = queueOrderSql(after, () => '?', 0);
    const rows = this.statement(
      `SELECT job_name AS jobName, workflow_id AS workflowId, ranks, seq, enqueued_at AS enqueuedAt, avoid_hosts AS avoidHosts, priority, terms FROM ${POOL_QUEUE_TABLE} WHERE pool = ?${order.where} ORDER BY priority DESC, seq LIMIT ?`,
    ).all(pool, ...order.params, Math.max(0, Math.trunc(limit))) as StoredQueueRow[];
    return rows.map(queueRowOf);
  }

  close(): Promise<void> {
    return settle(() => {
      this.statements.clear();
      this.db.close();
    });
  }

  /** `account = ?` AND the filter in its own parentheses, so no filter can widen the account scope. */
  private scope(kind: ResourceKind, account: string, filter: FilterExpr | undefined): { sql: string; params: unknown[] } {
    if (!filter) return { sql: 'account = ?', params: [account] };
    const compiled = compileFilter(filter, FILTER_COLUMNS[kind], 'sqlite');
    return { sql: `account = ? AND (${compiled.sql})`, params: [account, ...compiled.params] };
  }

  private rowOf(kind: ResourceKind, account: string, resource: StoredResource, version: number): SqlValue[] {
    // better-sqlite3 binds no booleans: they are stored as 0/1.
    return rowOf(kind, account, resource, version).map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v));
  }

  private statement(sql: string): Database.Statement<unknown[]> {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      if (this.statements.size >= STATEMENT_CACHE_LIMIT) this.statements.clear();
      stmt = this.db.prepare<unknown[]>(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private createSchema(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > SCHEMA_VERSION) {
      throw new Error(`the read model file has schema version ${current}, newer than this build's ${SCHEMA_VERSION}`);
    }
    this.db.transaction(() => {
      for (const { table, columns, indexes } of Object.values(TABLES)) {
        const defs = columns.map((c) => `${c.column} ${c.type === 'int' || c.type === 'bool' ? 'INTEGER' : 'TEXT'}${c.optional ? '' : ' NOT NULL'}`);
        this.db.exec(
          `CREATE TABLE IF NOT EXISTS ${table} (name TEXT PRIMARY KEY, account TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL, ${defs.join(', ')}) STRICT`,
        );
        for (const index of indexes) {
          this.db.exec(`CREATE INDEX IF NOT EXISTS ${indexName(table, index)} ON ${table} (${index})`);
        }
      }
      this.db.exec(
        `CREATE TABLE IF NOT EXISTS ${POOL_QUEUE_TABLE} (pool TEXT NOT NULL, seq INTEGER NOT NULL, job_name TEXT NOT NULL, workflow_id TEXT NOT NULL, ranks INTEGER NOT NULL, enqueued_at TEXT NOT NULL, avoid_hosts TEXT, priority INTEGER NOT NULL DEFAULT 0, terms TEXT, PRIMARY KEY (pool, job_name)) STRICT`,
      );
      // Schema 3: a file from before it has the table without the column (NULL: the request avoids nothing).
      // Schema 4: priority (0 for rows from before it) and the other sharing terms (NULL: none).
      if (current < 4) {
        const columns = this.db.pragma(`table_info(${POOL_QUEUE_TABLE})`) as Array<{ name: string }>;
        if (!columns.some((c) => c.name === 'avoid_hosts')) this.db.exec(`ALTER TABLE ${POOL_QUEUE_TABLE} ADD COLUMN avoid_hosts TEXT`);
        if (!columns.some((c) => c.name === 'priority')) this.db.exec(`ALTER TABLE ${POOL_QUEUE_TABLE} ADD COLUMN priority INTEGER NOT NULL DEFAULT 0`);
        if (!columns.some((c) => c.name === 'terms')) this.db.exec(`ALTER TABLE ${POOL_QUEUE_TABLE} ADD COLUMN terms TEXT`);
      }
      this.db.exec(`CREATE UNIQUE INDEX IF NOT EXISTS ${POOL_QUEUE_TABLE}_by_pool_seq ON ${POOL_QUEUE_TABLE} (pool, seq)`);
      this.db.exec(`CREATE INDEX IF NOT EXISTS ${POOL_QUEUE_TABLE}_by_pool_ranks ON ${POOL_QUEUE_TABLE} (pool, ranks)`);
      this.db.exec(`CREATE INDEX IF NOT EXISTS ${POOL_QUEUE_TABLE}_by_pool_order ON ${POOL_QUEUE_TABLE} (pool, priority DESC, seq)`);
      this.db.exec(`CREATE TABLE IF NOT EXISTS ${POOL_TOTALS_TABLE} (pool TEXT PRIMARY KEY, length INTEGER NOT NULL, ranks INTEGER NOT NULL) STRICT`);
      this.db.exec(`CREATE TABLE IF NOT EXISTS ${POOL_STATE_TABLE} (pool TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0) STRICT`);
      // Schema 5: the step number of each snapshot (0 for snapshots from before it).
      if (current < 5) {
        const columns = this.db.pragma(`table_info(${POOL_STATE_TABLE})`) as Array<{ name: string }>;
        if (!columns.some((c) => c.name === 'step')) this.db.exec(`ALTER TABLE ${POOL_STATE_TABLE} ADD COLUMN step INTEGER NOT NULL DEFAULT 0`);
      }
      this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  }
}


/** Runs synchronous SQLite work and reports its outcome as a promise (a throw becomes a rejection). */
function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}
