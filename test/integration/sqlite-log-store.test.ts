/**
 * The log store on SQLite: the contract (test/support/log-store-contract.ts) on a file per case, with a
 * second instance on the same file as another process; then what only the file has: WAL, and the
 * migration of a file written before attempts (its lines become attempt 1) and the refusal of a file
 * of a newer build.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SQLITE_LOG_SCHEMA_VERSION, SqliteLogStore } from '../../src/store/sqlite-log-store';
import { SqliteReadModel } from '../../src/store/sqlite-read-model';
import { line, logApiContract, logStoreContract, type LogStoreBackend } from '../support/log-store-contract';

const dir = mkdtempSync(join(tmpdir(), 'batchd-sqlite-logs-'));
let placeNo = 0;
let placeDir = '';

const backend: LogStoreBackend = {
  open() {
    placeDir = join(dir, `place-${placeNo++}`);
    mkdirSync(placeDir, { recursive: true });
    const file = join(placeDir, 'logs.sqlite');
    return Promise.resolve({ store: new SqliteLogStore(file), replica: () => Promise.resolve(new SqliteLogStore(file)) });
  },
  readModel() {
    return Promise.resolve(new SqliteReadModel(join(placeDir, 'batchd.sqlite')));
  },
  cleanup() {
    return Promise.resolve();
  },
};

/** The schema of the log file before attempts, as that build created it. */
const VERSION_0 = `
  CREATE TABLE IF NOT EXISTS log_entries (
    job TEXT NOT NULL, rank INTEGER NOT NULL, seq INTEGER NOT NULL,
    time TEXT NOT NULL, stream TEXT NOT NULL, message TEXT NOT NULL,
    PRIMARY KEY (job, rank, seq)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS log_entries_by_time ON log_entries (job, time, rank, seq);
`;

after(() => rmSync(dir, { recursive: true, force: true }));

describe('SqliteLogStore: the file', () => {
  it('opens in WAL mode with the schema version of this build', async () => {
    const file = join(dir, 'fresh.sqlite');
    const store = new SqliteLogStore(file);
    await store.close();
    const raw = new Database(file, { readonly: true });
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(raw.pragma('user_version', { simple: true }), SQLITE_LOG_SCHEMA_VERSION);
    raw.close();
  });

  it('moves the lines of a file written before attempts into the new table as attempt 1, once', async () => {
    const file = join(dir, 'version-0.sqlite');
    const raw = new Database(file);
    raw.exec(VERSION_0);
    const insert = raw.prepare('INSERT INTO log_entries (job, rank, seq, time, stream, message) VALUES (?, ?, ?, ?, ?, ?)');
    for (const e of [line(0, 0, 0, 'old 0'), line(0, 1, 1, 'old 1'), line(1, 0, 2, 'old rank 1')]) insert.run(e.job, e.rank, e.seq, e.time, e.stream, e.message);
    raw.close();

    const store = new SqliteLogStore(file);
    // Attempt 2 starts again from seq 0, which the old key would have refused as already stored.
    await store.append([line(0, 0, 10, 'new attempt', 2)]);
    const got = await store.query({ job: line(0, 0, 0).job, fromHead: true, pageSize: 10 });
    assert.deepEqual(got.entries.map((e) => [e.attempt, e.rank, e.seq, e.message]), [
      [1, 0, 0, 'old 0'],
      [1, 0, 1, 'old 1'],
      [1, 1, 0, 'old rank 1'],
      [2, 0, 0, 'new attempt'],
    ]);
    await store.close();

    const check = new Database(file, { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), SQLITE_LOG_SCHEMA_VERSION);
    assert.deepEqual(
      (check.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name),
      ['log_entries', 'log_entries_by_time'],
      'the old table is gone',
    );
    assert.deepEqual(
      (check.prepare("SELECT name FROM pragma_index_info('log_entries_by_time') ORDER BY seqno").all() as { name: string }[]).map((r) => r.name),
      ['job', 'time', 'attempt', 'rank', 'seq'],
    );
    check.close();
    // Opening again changes nothing.
    const again = new SqliteLogStore(file);
    assert.equal((await again.query({ job: line(0, 0, 0).job, fromHead: true, pageSize: 10 })).entries.length, 4);
    await again.close();
  });

  it('refuses a file written by a newer build', () => {
    const file = join(dir, 'newer.sqlite');
    const raw = new Database(file);
    raw.pragma(`user_version = ${SQLITE_LOG_SCHEMA_VERSION + 1}`);
    raw.close();
    assert.throws(() => new SqliteLogStore(file), new RegExp(`schema version ${SQLITE_LOG_SCHEMA_VERSION + 1}, newer than this build's ${SQLITE_LOG_SCHEMA_VERSION}`));
  });
});

logStoreContract('SqliteLogStore', backend);
logApiContract('SqliteLogStore', backend);
