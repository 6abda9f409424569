/**
 * The gang scheduler through the API on a real node-pool workflow: 2 × 8-GPU hosts; a 12-rank job packs
 * 8 + 4 with distinct GPUs per host; an 8-rank job waits with a reason and runs when the first ends; a
 * 17-rank job is refused; a job behind the head cannot take the head's reserved GPUs; a cancelled
 * queued job never holds capacity; stats agree at every step; killing the control worker while jobs
 * wait loses none and keeps the order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readPoolInternals } from '../../src/api/pool-internals';
import { type BatchJobBody, gatesIn, killAndWait, spawnRole, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';

interface Stats {
  nodeCount: number;
  ranksPerNode: number;
  batchJobCount: Record<string, number>;
  batchJobRanks: Record<string, number>;
}

/** Rank commands that run until the test opens their gate (set up with each suite's service). */
let heldUntil: (gate: string, echo?: string) => string;
let open: (gate: string) => void;

describe('gang scheduling on 2 × 8 GPUs', () => {
  let t: TestService;
  const stats = async () => (await t.api.get<Stats>(`${A}/nodePools/gpus:getStats`)).body;
  // As the API answers them: with the claims and returns in the pool's store.
  const internals = () => readPoolInternals(t.service.client, t.service.store, 'accounts/default/nodePools/gpus', 5000);

  before(async () => {
    t = await startTestService({ defaultPools: false });
    ({ heldUntil, open } = gatesIn(t.workspaceDir));
    const r = await t.api.post(`${A}/nodePools`, { nodePoolId: 'gpus', nodePool: { fakeNodePool: { machineType: 'p4d.24xlarge', numNodes: 2 } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
  after(async () => {
    await t?.stop();
  });

  it('packs, queues with reasons, refuses what can never fit, protects the head, and keeps stats right', async () => {
    assert.deepEqual(await stats(), { nodeCount: 2, ranksPerNode: 8, environmentCount: 0, environmentRanks: 0, batchJobCount: {}, batchJobRanks: {} });

    await t.api.post(`${A}/batchJobs?batchJobId=twelve`, {
      nodePoolId: 'gpus',
      numRanks: 12,
      shellExecutor: { command: heldUntil('twelve', 'echo "node=$NODE_RANK local=$LOCAL_RANK/$LOCAL_WORLD_SIZE gpu=$CUDA_VISIBLE_DEVICES"; ') },
    });
    const running = await waitForState(t.api, 'default', 'twelve', 'RUNNING');
    assert.match(running.status, /running 12 ranks on 2 hosts: h0 \(8\), h1 \(4\)/);
    const seen = await waitFor('12 log lines', async () => {
      const l = await t.api.get<{ entries: Array<{ message: string }> }>(`${A}/batchJobs/twelve:getLogs`);
      return l.body.entries.length === 12 ? l.body.entries.map((e) => e.message).sort() : undefined;
    });
    const expected = [
      ...Array.from({ length: 8 }, (_, i) => `node=0 local=${i}/8 gpu=${i}`),
      ...Array.from({ length: 4 }, (_, i) => `node=1 local=${i}/4 gpu=${i}`),
    ].sort();
    assert.deepEqual(seen, expected, 'each host gives each of its ranks its own GPU');
    const held = await internals();
    assert.deepEqual(held.hosts.map((h) => h.used.filter((u) => u !== null).length), [8, 4]);
    assert.deepEqual(await stats().then((s) => [s.batchJobCount, s.batchJobRanks]), [{ RUNNING: 1 }, { RUNNING: 12 }]);

    await t.api.post(`${A}/batchJobs?batchJobId=eight`, { nodePoolId: 'gpus', numRanks: 8, shellExecutor: { command: 'echo eight ran' } });
    const queued = await waitForState(t.api, 'default', 'eight', 'QUEUED');
    assert.equal(queued.status, 'waiting for 8 GPUs in node pool gpus; first of 1 in the queue; 4 free now, and capacity is reserved for this job as running jobs end');

    const refused = await t.api.post<{ code: number; message: string }>(`${A}/batchJobs?batchJobId=seventeen`, { nodePoolId: 'gpus', numRanks: 17, shellExecutor: { command: 'true' } });
    assert.equal(refused.status, 400);
    assert.match(refused.body.message, /can hold at most 16 ranks/);
    assert.equal((await t.api.get(`${A}/batchJobs/seventeen`)).status, 404);

    // Two GPUs are free on h1, but the head (eight) has reserved h1: a small job behind it must wait.
    await t.api.post(`${A}/batchJobs?batchJobId=small`, { nodePoolId: 'gpus', numRanks: 2, shellExecutor: { command: 'true' } });
    const behind = await waitForState(t.api, 'default', 'small', 'QUEUED');
    assert.match(behind.status, /position 2 of 2 in the queue; 0 of 4 free GPUs usable \(the rest is reserved for the job at the head of the queue\)/);
    assert.deepEqual((await internals()).reservation, { requestId: 'accounts/default/batchJobs/eight', counts: { h1: 8 } });
    assert.deepEqual(await stats().then((s) => [s.batchJobCount, s.batchJobRanks]), [{ RUNNING: 1, QUEUED: 2 }, { RUNNING: 12, QUEUED: 10 }]);

    await t.api.post(`${A}/batchJobs/small:cancel`, {});
    const cancelled = await waitForState(t.api, 'default', 'small', 'CANCELLED');
    assert.equal(cancelled.startTime, undefined, 'it never ran');
    assert.deepEqual(await stats().then((s) => [s.batchJobCount, s.batchJobRanks]), [{ RUNNING: 1, QUEUED: 1 }, { RUNNING: 12, QUEUED: 8 }]);
    assert.ok((await internals()).hosts.every((h) => !h.used.includes('accounts/default/batchJobs/small')), 'the cancelled job never held a GPU');

    open('twelve');
    await waitForState(t.api, 'default', 'twelve', 'COMPLETED');
    const ran = await waitForState(t.api, 'default', 'eight', 'COMPLETED');
    assert.match(ran.status, /all 8 ranks exited with code 0/);
    const final = await waitFor('the pool to be idle', async () => {
      const s = await stats();
      return Object.keys(s.batchJobCount).length === 0 ? s : undefined;
    });
    assert.deepEqual(final.batchJobRanks, {});
    assert.ok((await internals()).hosts.every((h) => h.used.every((u) => u === null)), 'every GPU is free again');
  });
});

describe('the control worker dies while jobs wait', () => {
  let t: TestService;
  let worker: ReturnType<typeof spawnRole> | undefined;
  after(async () => {
    if (worker) await killAndWait(worker, 'SIGTERM');
    await t?.stop();
  });

  it('loses none of the queued jobs and runs them in arrival order', async () => {
    t = await startTestService({ roles: ['temporal', 'agents', 'api'], defaultPools: false });
    ({ heldUntil, open } = gatesIn(t.workspaceDir));
    const env = { ...t.env, TEMPORAL_ADDRESS: t.service.temporalAddress, DEFAULT_POOLS: 'false' };
    worker = spawnRole('worker', env);
    const pool = await t.api.post(`${A}/nodePools`, { nodePoolId: 'solo', nodePool: { fakeNodePool: { machineType: 'g5.12xlarge', numNodes: 1 } } });
    assert.equal(pool.status, 200, JSON.stringify(pool.body));
    await t.api.post(`${A}/batchJobs?batchJobId=holder`, { nodePoolId: 'solo', numRanks: 4, shellExecutor: { command: heldUntil('holder') } });
    await waitForState(t.api, 'default', 'holder', 'RUNNING', 60_000);
    const waiting = ['q-one', 'q-two', 'q-three'];
    for (const id of waiting) {
      await t.api.post(`${A}/batchJobs?batchJobId=${id}`, { nodePoolId: 'solo', numRanks: 4, shellExecutor: { command: 'sleep 0.3' } });
      await waitForState(t.api, 'default', id, 'QUEUED', 60_000);
    }
    await killAndWait(worker, 'SIGKILL');
    worker = spawnRole('worker', env);
    open('holder');
    const done: BatchJobBody[] = [];
    for (const id of waiting) done.push(await waitForState(t.api, 'default', id, 'COMPLETED', 90_000));
    const starts = done.map((j) => String(j.startTime));
    assert.deepEqual([...starts].sort(), starts, `started in arrival order: ${starts.join(', ')}`);
    for (let i = 1; i < done.length; i++) assert.ok(String(done[i - 1]!.endTime) <= starts[i]!, 'each waited for the one before (the pool holds one at a time)');
  });
});
