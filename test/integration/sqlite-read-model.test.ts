import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteReadModel } from '../../src/store/sqlite-read-model';
import { job, MIGRATED_INSERTS, MIGRATED_QUEUE, readModelContract, SCHEMA_2_ROW_SQL } from '../support/read-model-contract';

const dir = mkdtempSync(join(tmpdir(), 'batchd-read-model-'));
let fileNo = 0;
let dbPath = '';

/** A fresh file per case. */
function open(): Promise<SqliteReadModel> {
  dbPath = join(dir, `read-model-${fileNo++}.db`);
  return Promise.resolve(new SqliteReadModel(dbPath));
}

describe('SqliteReadModel: the file', () => {
  let store: SqliteReadModel;
  let path: string;
  before(async () => {
    store = await open();
    path = dbPath;
  });
  after(() => store.close());

  it('opens in WAL mode, creates every table, and keeps data across reopen', async () => {
    await store.put('batchJobs', 'a', job('a', 'j1'), 1);
    const other = new Database(path, { readonly: true });
    assert.equal(other.pragma('journal_mode', { simple: true }), 'wal');
    const tables = (other.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
    assert.deepEqual(tables, ['batch_jobs', 'environments', 'node_pools', 'pool_queue', 'pool_queue_totals', 'pool_state', 'snapshots']);
    other.close();
    await store.close();
    assert.ok(existsSync(path));
    store = new SqliteReadModel(path);
    assert.equal((await store.get('batchJobs', 'accounts/a/batchJobs/j1'))?.version, 1);
  });
});

describe('SqliteReadModel: schema migration', () => {
  it('adds pool_queue.avoid_hosts, priority, terms and pool_state.step to a file of schema 2, keeping its queued rows in order and its snapshot, and refuses a newer file', async () => {
    const path = join(dir, 'schema-2.db');
    await new SqliteReadModel(path).close();
    // Schema 2 was schema 5 without the four columns (and the index on priority).
    const raw = new Database(path);
    raw.exec('DROP INDEX pool_queue_by_pool_order');
    for (const column of ['avoid_hosts', 'priority', 'terms']) raw.exec(`ALTER TABLE pool_queue DROP COLUMN ${column}`);
    raw.exec('ALTER TABLE pool_state DROP COLUMN step');
    raw.prepare(`INSERT INTO pool_state (pool, version, state) VALUES ('p', 7, '{"hosts":[]}')`).run();
    raw.pragma('user_version = 2');
    raw.prepare(SCHEMA_2_ROW_SQL).run();
    raw.close();

    const store = new SqliteReadModel(path);
    try {
      await store.syncPool({ pool: 'p', inserts: MIGRATED_INSERTS, removes: [] });
      assert.deepEqual((await store.loadPool('p', 10)).rows, MIGRATED_QUEUE);
      assert.deepEqual((await store.loadPool('p', 0)).snapshot, { version: 7, state: { hosts: [] }, step: 0 }, 'a snapshot from before step numbers is step 0');
      assert.equal((await store.syncPool({ pool: 'p', inserts: [], removes: [], snapshot: { version: 8, state: {} }, expectStep: 0 })).step, 1);
    } finally {
      await store.close();
    }
    const after = new Database(path);
    assert.equal(after.pragma('user_version', { simple: true }), 5);
    after.pragma('user_version = 6');
    after.close();
    assert.throws(() => new SqliteReadModel(path), /schema version 6, newer than this build's 5/);
  });
});

// After the suite above: its cleanup removes the folder.
readModelContract('SqliteReadModel', open, () => rmSync(dir, { recursive: true, force: true }), {
  storedColumn(table, column) {
    const raw = new Database(dbPath, { readonly: true });
    try {
      return Promise.resolve((raw.prepare(`SELECT ${column} AS v FROM ${table} ORDER BY ${column}`).all() as { v: unknown }[]).map((r) => r.v));
    } finally {
      raw.close();
    }
  },
});
