import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteReadModel } from '../../src/store/sqlite-read-model';
import { job, readModelContract } from '../support/read-model-contract';

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
