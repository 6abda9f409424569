/**
 * `poolOrphans` (activities/pool-recovery.ts) on a real SQLite read model: the jobs of a pool that say
 * they wait but are in no queue and hold nothing, oldest first; with `updatedSince` (a run continued
 * from another), only those whose records changed since then.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { poolOrphans } from '../../activities/pool-recovery';
import { SqliteReadModel } from '../../src/store/sqlite-read-model';
import { at, job } from '../support/read-model-contract';

const POOL = 'accounts/a/nodePools/pool-1';

describe('poolOrphans on the SQLite read model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'batchd-orphans-'));
  let store: SqliteReadModel;

  before(async () => {
    store = new SqliteReadModel(join(dir, 'read-model.db'));
    // written: in the pool's stored queue; holder: holds capacity (known); lost-*: QUEUED and in no queue.
    await store.put('batchJobs', 'a', job('a', 'written', { createTime: at(1), updateTime: at(1) }), 1);
    await store.put('batchJobs', 'a', job('a', 'holder', { createTime: at(2), updateTime: at(2), state: 'RUNNING' }), 1);
    await store.put('batchJobs', 'a', job('a', 'lost-old', { createTime: at(3), updateTime: at(3) }), 1);
    await store.put('batchJobs', 'a', job('a', 'lost-new', { createTime: at(4), updateTime: at(600) }), 1);
    await store.put('batchJobs', 'a', job('a', 'other-pool', { createTime: at(5), updateTime: at(600), nodePoolId: 'pool-2' }), 1);
    await store.put('batchJobs', 'a', job('a', 'ended', { createTime: at(6), updateTime: at(600), state: 'COMPLETED' }), 1);
    await store.syncPool({ pool: POOL, inserts: [{ jobName: 'accounts/a/batchJobs/written', workflowId: 'accounts/a/batchJobs/written', ranks: 1, seq: 1, enqueuedAt: at(1) }], removes: [] });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const names = (r: Awaited<ReturnType<typeof poolOrphans>>) => r.orphans.map((o) => o.jobName.split('/').pop());

  it('finds every waiting job of the pool that is in no queue and holds nothing, oldest first', async () => {
    const found = await poolOrphans(store, { pool: POOL, account: 'a', poolId: 'pool-1', known: ['accounts/a/batchJobs/holder'] });
    assert.deepEqual(names(found), ['lost-old', 'lost-new']);
    assert.deepEqual(found.states, { 'accounts/a/batchJobs/holder': 'RUNNING' });
  });

  it('with updatedSince, only those whose records changed since then', async () => {
    const found = await poolOrphans(store, { pool: POOL, account: 'a', poolId: 'pool-1', known: ['accounts/a/batchJobs/holder'], updatedSince: at(300) });
    assert.deepEqual(names(found), ['lost-new']);
  });
});
