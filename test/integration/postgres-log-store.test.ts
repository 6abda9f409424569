/**
 * The log store on a real PostgreSQL (test/support/postgres.ts; without the server binaries every case
 * fails, saying what to install): the contract (test/support/log-store-contract.ts) on a database per
 * place, with a second store instance as another API replica; then what only PostgreSQL has: its
 * tables and their types, concurrent schema creation beside the read model, the schema version guard,
 * the time format kept against writes that bypass the store, and openLogStore's choice of backend and
 * its URL errors.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Client } from 'pg';
import { compileLogQuery, type LogCursor } from '../../src/store/log-store';
import { openLogStore } from '../../src/store/open-log-store';
import { POSTGRES_LOG_SCHEMA_VERSION, PostgresLogStore } from '../../src/store/postgres-log-store';
import { PostgresReadModel } from '../../src/store/postgres-read-model';
import { SqliteLogStore } from '../../src/store/sqlite-log-store';
import { sharedPostgres, sql } from '../support/postgres';
import { line, logApiContract, logStoreContract, type LogStoreBackend } from '../support/log-store-contract';

const pg = sharedPostgres('logs');
const freshDatabase = () => pg.freshDatabase();

const backend: LogStoreBackend = {
  async open() {
    const url = await freshDatabase();
    return { store: await PostgresLogStore.connect(url), replica: () => PostgresLogStore.connect(url) };
  },
  readModel: () => PostgresReadModel.connect(pg.current),
  cleanup: () => Promise.resolve(),
};

after(async () => {
  await pg.stop();
});

describe('PostgresLogStore: the database', () => {
  it('creates its tables with byte-ordered text, the attempt in the key and the time index, beside the read model', async () => {
    const url = await freshDatabase();
    // Both stores of a process start at once on one database.
    const [logs, model] = await Promise.all([PostgresLogStore.connect(url), PostgresReadModel.connect(url)]);
    await logs.close();
    await model.close();
    const tables = (await sql<{ table_name: string }>(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'log%' ORDER BY table_name")).map((t) => t.table_name);
    assert.deepEqual(tables, ['log_entries', 'log_job_bytes', 'log_store_schema']);
    const cols = await sql<{ column_name: string; data_type: string; collation_name: string | null; is_nullable: string }>(
      url,
      "SELECT column_name, data_type, collation_name, is_nullable FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'log_entries' ORDER BY ordinal_position",
    );
    assert.deepEqual(
      cols.map((c) => [c.column_name, c.data_type, c.collation_name, c.is_nullable]),
      [
        ['job', 'text', 'C', 'NO'],
        ['attempt', 'integer', null, 'NO'],
        ['rank', 'integer', null, 'NO'],
        ['seq', 'bigint', null, 'NO'],
        ['time', 'text', 'C', 'NO'],
        ['stream', 'text', null, 'NO'],
        ['message', 'text', null, 'NO'],
      ],
    );
    const indexes = (await sql<{ indexdef: string }>(url, "SELECT indexdef FROM pg_indexes WHERE tablename = 'log_entries' ORDER BY indexname")).map((i) => i.indexdef.replace(/^.* USING btree /, ''));
    assert.deepEqual(indexes, ['(job, "time", attempt, rank, seq)', '(job, attempt, rank, seq)']);
    assert.deepEqual(await sql(url, 'SELECT version FROM log_store_schema'), [{ version: POSTGRES_LOG_SCHEMA_VERSION }]);
  });

  it('reads a page along the time index in either direction, with no sort, from a cursor', async () => {
    const url = await freshDatabase();
    const store = await PostgresLogStore.connect(url);
    await store.close();
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      // Seq scans off: the question is whether the index can serve the cursor and the order, not what a tiny table costs.
      await client.query('SET enable_seqscan = off');
      for (const fromHead of [true, false]) {
        const q = { job: 'accounts/a/batchJobs/j', fromHead, pageSize: 10, ranks: [0, 1], attempt: 2, after: [new Date().toISOString(), 1, 0, 5] as LogCursor };
        const { where, order, params } = compileLogQuery(q, { placeholder: (i) => `$${i}`, contains: (c, n) => `strpos(${c}, ${n}) > 0` });
        const plan = (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT * FROM log_entries WHERE ${where} ORDER BY ${order} LIMIT 11`, params)).rows.map((r) => r['QUERY PLAN']).join('\n');
        assert.match(plan, /Index Scan( Backward)? using log_entries_by_time/, plan);
        assert.doesNotMatch(plan, /Sort/, plan);
      }
    } finally {
      await client.end();
    }
  });

  it('creates the schema once when replicas start at the same time, and keeps lines across reconnects', async () => {
    const url = await freshDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresLogStore.connect(url)));
    await stores[0]!.append([line(0, 0, 0, 'kept')]);
    assert.equal((await stores[3]!.query({ job: line(0, 0, 0).job, fromHead: true, pageSize: 10 })).entries.length, 1);
    await Promise.all(stores.map((s) => s.close()));
    const again = await PostgresLogStore.connect(url);
    assert.equal((await again.query({ job: line(0, 0, 0).job, fromHead: true, pageSize: 10 })).entries[0]?.message, 'kept');
    await again.close();
    await again.close(); // closing twice is harmless
  });

  it('refuses a database whose log tables a newer build wrote', async () => {
    const url = await freshDatabase();
    await (await PostgresLogStore.connect(url)).close();
    await sql(url, 'UPDATE log_store_schema SET version = $1', [POSTGRES_LOG_SCHEMA_VERSION + 1]);
    await assert.rejects(PostgresLogStore.connect(url), new RegExp(`schema version ${POSTGRES_LOG_SCHEMA_VERSION + 1}, newer than this build's ${POSTGRES_LOG_SCHEMA_VERSION}`));
  });

  it('keeps times fixed-width UTC text and attempts positive even against writes that bypass the store', async () => {
    const url = await freshDatabase();
    await (await PostgresLogStore.connect(url)).close();
    const insert = (attempt: number, time: string) =>
      sql(url, "INSERT INTO log_entries (job, attempt, rank, seq, time, stream, message) VALUES ('accounts/a/batchJobs/j', $1, 0, 0, $2, 'stdout', 'x')", [attempt, time]);
    await assert.rejects(insert(1, '2026-01-01T00:00:00Z'), /time_check/);
    await assert.rejects(insert(0, '2026-01-01T00:00:00.000Z'), /attempt_check/);
    await insert(1, '2026-01-01T00:00:00.000Z');
  });
});

describe('openLogStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'batchd-open-log-store-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('opens PostgreSQL when a database URL is set, and the SQLite file when it is unset or empty', async () => {
    const url = await freshDatabase();
    const onPostgres = await openLogStore({ databaseUrl: url, sqliteFile: join(dir, 'unused.sqlite') });
    assert.ok(onPostgres instanceof PostgresLogStore);
    await onPostgres.append([line(0, 0, 0, 'in postgres', 2)]);
    await onPostgres.close();
    assert.deepEqual(await sql(url, 'SELECT attempt, message FROM log_entries'), [{ attempt: 2, message: 'in postgres' }]);
    for (const databaseUrl of [undefined, '', '  ']) {
      const onSqlite = await openLogStore({ databaseUrl, sqliteFile: join(dir, 'logs.sqlite') });
      assert.ok(onSqlite instanceof SqliteLogStore, JSON.stringify(databaseUrl));
      await onSqlite.close();
    }
  });

  it('refuses a malformed URL before connecting, and a refused login, never showing the password', async () => {
    await assert.rejects(openLogStore({ databaseUrl: 'mysql://batchd:hunter2secret@db.example:3306/batchd', sqliteFile: join(dir, 'x.sqlite') }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /DATABASE_URL mysql:\/\/batchd:\*\*\*\*@db\.example:3306\/batchd is not a PostgreSQL URL/);
      assert.doesNotMatch(e.message, /hunter2/);
      return true;
    });
    const url = new URL(await freshDatabase());
    url.password = 'wrong-hunter2secret';
    await assert.rejects(openLogStore({ databaseUrl: url.toString(), sqliteFile: join(dir, 'x.sqlite') }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /cannot open the log store at DATABASE_URL postgresql:\/\/postgres:\*\*\*\*@127\.0\.0\.1:\d+\/logs_\d+: password authentication failed/);
      assert.doesNotMatch(e.message, /hunter2/);
      return true;
    });
  });
});

logStoreContract('PostgresLogStore', backend);
logApiContract('PostgresLogStore', backend);
