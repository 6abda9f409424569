/**
 * The read model contract on a real PostgreSQL (test/support/postgres.ts starts one from Debian's
 * postgresql package; without it every case here fails, saying what to install), then what only
 * PostgreSQL has: column types and collation, concurrent schema creation, the schema version guard,
 * U+0000, cursor types, and openReadModel's choice of backend and its URL errors.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Client } from 'pg';
import { ApiError } from '../../src/domain/errors';
import { openReadModel } from '../../src/store/open-read-model';
import { POSTGRES_SCHEMA_VERSION, PostgresReadModel } from '../../src/store/postgres-read-model';
import { type BatchJobRecord } from '../../src/store/read-model';
import { columnNames, TABLES } from '../../src/store/read-model-tables';
import { SqliteReadModel } from '../../src/store/sqlite-read-model';
import { INSTALL_HINT, sharedPostgres, sql, startPostgres } from '../support/postgres';
import { filterOf, idOf, job, MIGRATED_INSERTS, MIGRATED_QUEUE, orderOf, readModelContract, SCHEMA_2_ROW_SQL } from '../support/read-model-contract';

const pg = sharedPostgres('read_model');
const freshDatabase = () => pg.freshDatabase();

describe('PostgresReadModel: the database', () => {
  it('creates every table with its typed, byte-ordered columns, its indexes and the schema version', async () => {
    const url = await freshDatabase();
    const store = await PostgresReadModel.connect(url);
    await store.close();
    const tables = await sql<{ table_name: string }>(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name");
    assert.deepEqual(
      tables.map((t) => t.table_name),
      ['batch_jobs', 'environments', 'node_pools', 'pool_queue', 'pool_queue_totals', 'pool_state', 'read_model_schema', 'snapshots'],
    );
    for (const spec of Object.values(TABLES)) {
      const cols = await sql<{ column_name: string; data_type: string; collation_name: string | null; is_nullable: string }>(
        url,
        'SELECT column_name, data_type, collation_name, is_nullable FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position',
        [spec.table],
      );
      assert.deepEqual(cols.map((c) => c.column_name), columnNames(spec), spec.table);
      const byName = new Map(cols.map((c) => [c.column_name, c]));
      const expect = (column: string, type: string, nullable: boolean): void => {
        const c = byName.get(column)!;
        assert.equal(c.data_type, type, `${spec.table}.${column} type`);
        assert.equal(c.is_nullable, nullable ? 'YES' : 'NO', `${spec.table}.${column} nullability`);
        if (type === 'text') assert.equal(c.collation_name, 'C', `${spec.table}.${column} must order bytes, as SQLite does`);
      };
      expect('name', 'text', false);
      expect('account', 'text', false);
      expect('version', 'bigint', false);
      expect('body', 'json', false);
      for (const c of spec.columns) expect(c.column, { text: 'text', timestamp: 'text', int: 'bigint', bool: 'boolean' }[c.type], c.optional === true);
      const indexes = await sql<{ indexdef: string }>(url, 'SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1', [spec.table]);
      assert.equal(indexes.length, spec.indexes.length + 1, `${spec.table}: primary key and ${spec.indexes.length} secondary index(es)`);
    }
    assert.deepEqual(await sql(url, 'SELECT version FROM read_model_schema'), [{ version: POSTGRES_SCHEMA_VERSION }]);
  });

  it('creates the schema once when processes start at the same time, and keeps data across reconnects', async () => {
    const url = await freshDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresReadModel.connect(url)));
    assert.equal(await stores[0]!.put('batchJobs', 'a', job('a', 'j1'), 1), true);
    assert.equal((await stores[3]!.get('batchJobs', 'accounts/a/batchJobs/j1'))?.version, 1);
    await Promise.all(stores.map((s) => s.close()));
    const again = await PostgresReadModel.connect(url);
    assert.equal((await again.get('batchJobs', 'accounts/a/batchJobs/j1'))?.version, 1);
    await again.close();
    await again.close(); // closing twice is harmless
  });

  it('refuses a database written by a newer schema version', async () => {
    const url = await freshDatabase();
    await (await PostgresReadModel.connect(url)).close();
    await sql(url, 'UPDATE read_model_schema SET version = $1', [POSTGRES_SCHEMA_VERSION + 1]);
    await assert.rejects(PostgresReadModel.connect(url), new RegExp(`schema version ${POSTGRES_SCHEMA_VERSION + 1}, newer than this build's ${POSTGRES_SCHEMA_VERSION}`));
  });

  it('adds pool_queue.avoid_hosts, priority, terms and pool_state.step to a database of schema 2, keeping its queued rows in order and its snapshot', async () => {
    const url = await freshDatabase();
    await (await PostgresReadModel.connect(url)).close();
    // Schema 2 was schema 5 without the four columns (and the index on priority).
    await sql(url, 'DROP INDEX pool_queue_by_pool_order');
    for (const column of ['avoid_hosts', 'priority', 'terms']) await sql(url, `ALTER TABLE pool_queue DROP COLUMN ${column}`);
    await sql(url, 'ALTER TABLE pool_state DROP COLUMN step');
    await sql(url, `INSERT INTO pool_state (pool, version, state) VALUES ('p', 7, '{"hosts":[]}')`);
    await sql(url, 'UPDATE read_model_schema SET version = 2');
    await sql(url, SCHEMA_2_ROW_SQL);
    const store = await PostgresReadModel.connect(url);
    try {
      await store.syncPool({ pool: 'p', inserts: MIGRATED_INSERTS, removes: [] });
      assert.deepEqual((await store.loadPool('p', 10)).rows, MIGRATED_QUEUE);
      assert.deepEqual((await store.loadPool('p', 0)).snapshot, { version: 7, state: { hosts: [] }, step: 0 }, 'a snapshot from before step numbers is step 0');
      assert.equal((await store.syncPool({ pool: 'p', inserts: [], removes: [], snapshot: { version: 8, state: {} }, expectStep: 0 })).step, 1);
    } finally {
      await store.close();
    }
    assert.deepEqual(await sql(url, 'SELECT version FROM read_model_schema'), [{ version: 5 }]);
    const columns = await sql<{ column_name: string; data_type: string; is_nullable: string }>(
      url,
      "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'pool_queue' AND column_name IN ('avoid_hosts', 'priority', 'terms') ORDER BY column_name",
    );
    assert.deepEqual(columns, [
      { column_name: 'avoid_hosts', data_type: 'json', is_nullable: 'YES' },
      { column_name: 'priority', data_type: 'integer', is_nullable: 'NO' },
      { column_name: 'terms', data_type: 'json', is_nullable: 'YES' },
    ]);
  });

  it('lets one of two checked steps that follow the same snapshot write, at the same time, with or without a stored row', async () => {
    const url = await freshDatabase();
    const a = await PostgresReadModel.connect(url);
    const b = await PostgresReadModel.connect(url);
    try {
      // A lost task's step still running while its retry steps (two processes, two connections).
      for (const expectStep of [0, 1]) {
        const step = (who: string) => ({ pool: 'p', inserts: [], removes: [], snapshot: { version: 1, state: { who } }, expectStep });
        const results = await Promise.all([a.syncPool(step('a')), b.syncPool(step('b'))]);
        const written = results.filter((r) => r.lost === undefined);
        assert.equal(written.length, 1, `expectStep ${expectStep}: exactly one writes`);
        assert.equal(written[0]!.step, expectStep + 1);
        const refused = results.find((r) => r.lost !== undefined)!;
        assert.deepEqual(refused.lost, (await a.loadPool('p', 0)).snapshot, 'the other answers what the first wrote');
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('outlives its connection dying inside a transaction (a database restart): the call fails, the process stays up, the next call works', async () => {
    const url = await freshDatabase();
    const store = await PostgresReadModel.connect(url);
    const holder = new Client({ connectionString: url, application_name: 'row-holder' });
    await holder.connect();
    try {
      await store.syncPool({ pool: 'p', inserts: [], removes: [], snapshot: { version: 1, state: {} }, expectStep: 0 });
      // Another connection holds the snapshot's row lock, so the store's next step waits inside its transaction.
      await holder.query('BEGIN');
      await holder.query('SELECT step FROM pool_state WHERE pool = $1 FOR UPDATE', ['p']);
      const step = assert.rejects(store.syncPool({ pool: 'p', inserts: [], removes: [], snapshot: { version: 2, state: {} }, expectStep: 1 }), /terminat/);
      const waiting = "FROM pg_stat_activity WHERE application_name = 'batchd' AND wait_event_type = 'Lock'";
      for (let i = 0; i < 100 && (await sql(url, `SELECT pid ${waiting}`)).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      // Its backend ends as in a restart: an error for the running query, then the socket closes. The
      // checked-out connection's 'error' event, with no listener, would end this process here.
      assert.equal((await sql(url, `SELECT pg_terminate_backend(pid) ${waiting}`)).length, 1, 'the waiting step was found and ended');
      await step;
      await holder.query('ROLLBACK');
      const next = await store.syncPool({ pool: 'p', inserts: [], removes: [], snapshot: { version: 2, state: {} }, expectStep: 1 });
      assert.equal(next.step, 2, 'the next step runs on a new connection and writes');
    } finally {
      await holder.end();
      await store.close();
    }
  });

  it('keeps timestamps fixed-width UTC text even against writes that bypass the model', async () => {
    const url = await freshDatabase();
    const store = await PostgresReadModel.connect(url);
    await store.close();
    await assert.rejects(
      sql(url, "INSERT INTO snapshots (name, account, version, body, state, create_time, update_time) VALUES ('accounts/a/snapshots/s', 'a', 1, '{}', 'READY', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00.000Z')"),
      /create_time_check/,
    );
  });

  it('stores and matches a text value with U+0000, which PostgreSQL text cannot hold, and keeps the body exact', async () => {
    const url = await freshDatabase();
    const store = await PostgresReadModel.connect(url);
    try {
      const j = job('a', 'nul', { displayName: 'a\u0000b' });
      assert.equal(await store.put('batchJobs', 'a', j, 1), true);
      await store.put('batchJobs', 'a', job('a', 'plain', { displayName: 'ab' }), 1);
      assert.deepEqual(await store.get('batchJobs', j.name), { resource: j, version: 1 });
      const page = await store.list<BatchJobRecord>('batchJobs', { account: 'a', filter: filterOf('displayName = "a\u0000b"'), orderBy: orderOf(undefined), pageSize: 10 });
      assert.deepEqual(page.items.map(idOf), ['nul']);
      assert.equal(page.items[0]!.displayName, 'a\u0000b');
    } finally {
      await store.close();
    }
  });

  it('rejects a cursor whose values do not have the order columns types, as a bad page token', async () => {
    const url = await freshDatabase();
    const store = await PostgresReadModel.connect(url);
    try {
      await store.put('batchJobs', 'a', job('a', 'j1', { numRanks: 3 }), 1);
      const orderBy = orderOf('numRanks desc');
      const first = await store.list('batchJobs', { account: 'a', orderBy, pageSize: 1 });
      assert.equal(first.nextAfter, undefined);
      assert.deepEqual((await store.list('batchJobs', { account: 'a', orderBy, pageSize: 1, after: [4, 'accounts/a/batchJobs/j0'] })).items.map(idOf), ['j1']);
      for (const after of [['4', 'accounts/a/batchJobs/j0'], [1.5, 'x'], [3, 7]]) {
        await assert.rejects(store.list('batchJobs', { account: 'a', orderBy, pageSize: 1, after }), (e: unknown) => e instanceof ApiError && /pageToken/.test(e.message));
      }
    } finally {
      await store.close();
    }
  });
});

describe('openReadModel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'batchd-open-read-model-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('opens PostgreSQL when a database URL is set, and the SQLite file when it is unset or empty', async () => {
    const url = await freshDatabase();
    const onPostgres = await openReadModel({ databaseUrl: url, sqliteFile: join(dir, 'unused.db') });
    assert.ok(onPostgres instanceof PostgresReadModel);
    await onPostgres.put('nodePools', 'a', { name: 'accounts/a/nodePools/p', createTime: job('a', 'x').createTime, updateTime: job('a', 'x').updateTime }, 1);
    assert.equal(await onPostgres.count('nodePools', 'a'), 1);
    await onPostgres.close();
    assert.equal((await sql(url, 'SELECT name FROM node_pools')).length, 1);
    for (const databaseUrl of [undefined, '', '  ']) {
      const onSqlite = await openReadModel({ databaseUrl, sqliteFile: join(dir, 'read-model.db') });
      assert.ok(onSqlite instanceof SqliteReadModel, JSON.stringify(databaseUrl));
      await onSqlite.close();
    }
  });

  it('refuses a malformed URL before connecting, never showing the password', async () => {
    const cases: [string, RegExp][] = [
      ['mysql://batchd:hunter2secret@db.example:3306/batchd', /DATABASE_URL mysql:\/\/batchd:\*\*\*\*@db\.example:3306\/batchd is not a PostgreSQL URL: the scheme is "mysql"/],
      ['postgresql://batchd:hunter2secret@:5432/batchd', /DATABASE_URL \(value not shown\) is not a PostgreSQL URL: it does not parse as a URL/],
      ['postgresql:///batchd?password=hunter2secret', /DATABASE_URL postgresql:\/\/\/batchd\?password=\*\*\*\* is not a PostgreSQL URL: it names no host/],
      ['host=db.example password=hunter2secret', /DATABASE_URL \(value not shown\) is not a PostgreSQL URL/],
    ];
    for (const [databaseUrl, message] of cases) {
      await assert.rejects(openReadModel({ databaseUrl, sqliteFile: join(dir, 'x.db') }), (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.match(e.message, message);
        assert.doesNotMatch(e.message, /hunter2/);
        return true;
      });
    }
  });

  it('reports a server that refuses the login with the URL masked', async () => {
    const url = new URL(await freshDatabase());
    url.password = 'wrong-hunter2secret';
    await assert.rejects(openReadModel({ databaseUrl: url.toString(), sqliteFile: join(dir, 'x.db') }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /cannot open the read model at DATABASE_URL postgresql:\/\/postgres:\*\*\*\*@127\.0\.0\.1:\d+\/read_model_\d+: password authentication failed/);
      assert.doesNotMatch(e.message, /hunter2/);
      return true;
    });
  });
});

describe('startPostgres', () => {
  it('fails, saying what to install, when the PostgreSQL binaries are missing', async () => {
    const saved = process.env.POSTGRES_BIN_DIR;
    delete process.env.POSTGRES_BIN_DIR;
    try {
      await assert.rejects(startPostgres({ searchRoot: '/nonexistent/postgresql' }), (e: unknown) => e instanceof Error && e.message === INSTALL_HINT);
    } finally {
      if (saved !== undefined) process.env.POSTGRES_BIN_DIR = saved;
    }
    assert.match(INSTALL_HINT, /apt-get install -y postgresql/);
  });
});

// Registered last: its cleanup stops the server the suites above share.
readModelContract(
  'PostgresReadModel',
  async () => PostgresReadModel.connect(await freshDatabase()),
  async () => {
    await pg.stop();
  },
  {
    async storedColumn(table, column) {
      return (await sql<{ v: unknown }>(pg.current, `SELECT ${column} AS v FROM ${table} ORDER BY ${column}`)).map((r) => r.v);
    },
  },
);
