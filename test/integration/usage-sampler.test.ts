/**
 * The pool usage sampler reads the pool store, not the pool's workflow: a real SQLite store holding a
 * pool's snapshot (as its steps write it) and queue, and a Temporal client that must not be asked. A
 * pool with no snapshot yet is asked.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Client } from '@temporalio/client';
import pino from 'pino';
import { UsageSampler } from '../../src/api/usage-sampler';
import { PoolQueue } from '../../src/domain/pool-queue';
import { addHost, setHostStatus } from '../../src/domain/scheduler';
import { SqliteReadModel } from '../../src/store/sqlite-read-model';

const STORED = 'accounts/a/nodePools/stored';
const FRESH = 'accounts/a/nodePools/fresh';

describe('pool usage sampler', () => {
  let dir: string;
  let store: SqliteReadModel;
  let queried: string[];
  const client = {
    withDeadline: (_deadline: number, fn: () => Promise<unknown>) => fn(),
    workflow: {
      getHandle: (id: string) => ({
        query: () => {
          queried.push(id);
          return Promise.resolve({ hosts: [{ host: 'h0', status: 'ready', slots: 8, used: new Array(8).fill(null) }], queue: [], queueSummary: { length: 0 }, reservation: null, allocations: {} });
        },
      }),
    },
  } as unknown as Client;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'batchd-sampler-'));
    store = new SqliteReadModel(join(dir, 'batchd.sqlite'));
    const now = '2026-01-01T00:00:00.000Z';
    for (const name of [STORED, FRESH]) await store.putIfAbsent('nodePools', 'a', { name, createTime: now, updateTime: now }, 1);
    // The stored pool: two hosts of 4 (one unreachable), a 3-rank job holding slots, 2 jobs queued.
    const q = PoolQueue.fresh(10);
    addHost(q.scheduler, 'h0', 4);
    addHost(q.scheduler, 'h1', 4);
    setHostStatus(q.scheduler, 'h1', 'unreachable');
    q.request({ jobName: 'accounts/a/batchJobs/big', workflowId: 'big', ranks: 3 }, now);
    q.pass();
    q.request({ jobName: 'accounts/a/batchJobs/w1', workflowId: 'w1', ranks: 2 }, now);
    q.request({ jobName: 'accounts/a/batchJobs/w2', workflowId: 'w2', ranks: 2 }, now);
    q.touchCapacity();
    while (q.needsSync()) {
      const step = q.takeSync();
      q.applySync(step, await store.syncPool({ pool: STORED, ...step }));
    }
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('samples a pool from its stored snapshot and queue length, asking its workflow nothing', async () => {
    queried = [];
    const sampler = new UsageSampler({ client, store, logger: pino({ level: 'silent' }), intervalMs: 1000 });
    await sampler.sampleOnce();
    assert.deepEqual(
      sampler.samples(STORED).map(({ ranksInUse, rankCapacity, queueLength }) => ({ ranksInUse, rankCapacity, queueLength })),
      [{ ranksInUse: 3, rankCapacity: 4, queueLength: 2 }],
    );
    assert.deepEqual(queried, [FRESH], 'only the pool with no snapshot was asked');
    assert.equal(sampler.samples(FRESH)[0]?.rankCapacity, 8);
  });
});
