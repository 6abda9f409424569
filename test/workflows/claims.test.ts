/**
 * Capacity claimed in the pool's store (src/domain/capacity-claim.ts), with the real job (V3) and pool
 * workflows on a dev server and the store in memory (test/support/workflow-testbed.ts):
 * - On an idle pool a V3 job claims in its first step and gives back in its last: no signal reaches
 *   the pool's workflow or comes from it, and the pool runs no task for the job.
 * - A job that does not fit asks the pool; its request closes the snapshot, so no later claim jumps it.
 * - Claims and returns racing the pool's own steps (continue-as-new, a shrink, cancels): every job runs
 *   once, no two jobs share the slot at once, and the pool ends idle with its snapshot open again.
 * - A job that closed the snapshot to ask and is gone before its request came does not keep the pool
 *   from lending: the pool checks the jobs it waits on.
 * - A lending pool terminated while a claimer runs is recovered from the snapshot with the claim in it.
 * - A delete that arrives while a claimer runs is refused, though the pool's memory has not seen it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeForRequest } from '../../src/domain/capacity-claim';
import { type NodePool } from '../../src/domain/node-pool-model';
import { type PoolRecoverySnapshot } from '../../src/domain/pool-queue';
import { cancelSignal, deleteNodePoolUpdate, getNodePoolInternalsQuery, updateNodePoolUpdate } from '../../workflows/messages';
import { until, WorkflowTestbed } from '../support/workflow-testbed';

describe('capacity claims (job V3 and the pool)', () => {
  let bed: WorkflowTestbed;

  before(async () => {
    bed = await WorkflowTestbed.start();
  });
  after(async () => {
    await bed?.stop();
  });

  const snapshotOf = (pool: string) => bed.world.snapshots.get(pool)?.state as PoolRecoverySnapshot | undefined;
  const openSnapshot = (pool: string) => until(`${pool} open to claims`, () => snapshotOf(pool)?.open === true);
  const poolEvents = async (pool: string) => (await bed.eventsOf(pool)).length;
  /** The pool's history length once it stopped growing (its first tasks and its hosts' joins are done). */
  const settledEvents = async (pool: string) => {
    let last = -1;
    return until(`${pool} settled`, async () => {
      const n = await poolEvents(pool);
      const settled = n === last;
      last = n;
      if (!settled) await new Promise((resolve) => setTimeout(resolve, 300));
      return settled ? n : undefined;
    });
  };
  /** A fake pool of 1-GPU hosts resized to `numNodes` (a shrink drains the last hosts). */
  const resize = (pool: string, numNodes: number) =>
    bed.client.workflow.getHandle(pool).executeUpdate(updateNodePoolUpdate, {
      args: [{ spec: { minNodeCount: 0, maxNodeCount: 3, overprovisionNodeCount: 0, annotations: {}, fakeNodePool: { machineType: 'g5.xlarge', numNodes } } }],
    });

  it('on an idle pool a job claims and gives back in the store: no signal either way, no pool task', async () => {
    const pool = await bed.startPool('claim-idle', { numNodes: 2 });
    await openSnapshot(pool);
    const before = await settledEvents(pool);
    const name = await bed.startJob('claim-idle-1', { pool: 'claim-idle', workflowType: 'batchJobWorkflowV3' });
    bed.agents.behaviour.set(name, { succeed: true });
    const { job } = await bed.result(name);
    assert.equal(job.state, 'COMPLETED');
    assert.equal(bed.agents.runsOf(name).length, 1);
    assert.equal(await bed.delivered(name, 'capacityGranted', name), 0, 'the grant came with the claim');
    assert.equal((await bed.signalsAt(pool, 'requestCapacity')).length, 0);
    assert.deepEqual(await bed.signalsAt(pool, 'releaseCapacity'), [], 'given back in the store');
    assert.deepEqual(bed.world.storeReturns.get(pool), [name]);
    assert.equal(await poolEvents(pool), before, 'the pool ran nothing for the job');
    const stored = snapshotOf(pool);
    assert.deepEqual(Object.keys(stored?.scheduler.allocations ?? {}), []);
    assert.deepEqual(stored?.claimed, [name, name], 'claimed, then given back');
    await bed.assertIdle(pool);
  });

  it('a job that does not fit asks the pool; its request closes the snapshot, and it runs before a later job that would have fit', async () => {
    const pool = await bed.startPool('claim-wait', { numNodes: 2 });
    await openSnapshot(pool);
    const holder = await bed.startJob('claim-wait-holder', { pool: 'claim-wait', workflowType: 'batchJobWorkflowV3' });
    await until('holder runs', () => bed.agents.runsOf(holder).length === 1);
    const big = await bed.startJob('claim-wait-big', { pool: 'claim-wait', numRanks: 2, workflowType: 'batchJobWorkflowV3' });
    bed.agents.behaviour.set(big, { succeed: true });
    await bed.reported(big, 'QUEUED');
    await until('the pool closed its snapshot', () => snapshotOf(pool)?.open === undefined);
    const small = await bed.startJob('claim-wait-small', { pool: 'claim-wait', workflowType: 'batchJobWorkflowV3' });
    bed.agents.behaviour.set(small, { succeed: true });
    await bed.reported(small, 'QUEUED');
    assert.equal(bed.agents.runsOf(small).length, 0, 'the free host waits for the queue head');
    assert.equal((await bed.signalsAt(pool, 'requestCapacity')).length, 2);

    await bed.client.workflow.getHandle(holder).signal(cancelSignal, {});
    for (const n of [big, small]) assert.equal((await bed.result(n)).job.state, 'COMPLETED', n);
    const started = bed.agents.runs.map((r) => r.jobName).filter((n) => n === big || n === small);
    assert.deepEqual([...new Set(started)], [big, small], 'in queue order');
    await bed.assertIdle(pool);
    await openSnapshot(pool);
  });

  it('claims and returns racing the pool (continue-as-new, cancels, a shrink and a growth): each job runs once, never two on a slot', async () => {
    const pool = await bed.startPool('claim-race', { numNodes: 3, queueWindow: 4, continueAsNewEvents: 100 });
    await openSnapshot(pool);
    const names: string[] = [];
    const overlaps: string[] = [];
    /** Each host has one GPU: the job whose ranks run there. */
    const onHost = new Map<string, string>();
    for (let i = 0; i < 24; i++) {
      const name = await bed.startJob(`claim-race-${String(i).padStart(2, '0')}`, { pool: 'claim-race', numRanks: 1 + (i % 3 === 0 ? 1 : 0), workflowType: 'batchJobWorkflowV3' });
      names.push(name);
      if (i % 5 === 2) await bed.client.workflow.getHandle(name).signal(cancelSignal, {});
      if (i === 8) await resize(pool, 2);
      if (i === 16) await resize(pool, 3);
    }
    // Jobs run until the test ends them, one at a time, so that claims, returns and requests interleave.
    const ended = new Set<string>();
    for (let round = 0; round < 200 && ended.size < names.length; round++) {
      const running = bed.agents.runs.filter((r) => r.ended === undefined);
      for (const run of running) {
        const other = onHost.get(run.host);
        if (other !== undefined && other !== run.jobName) overlaps.push(`${run.host}: ${other} and ${run.jobName}`);
        onHost.set(run.host, run.jobName);
      }
      const next = running[0];
      if (next) {
        next.end({ outcome: 'succeeded' });
        onHost.delete(next.host);
      }
      for (const n of names) {
        if (ended.has(n)) continue;
        const state = bed.world.job(n)?.state;
        if (state === 'COMPLETED' || state === 'CANCELLED' || state === 'FAILED') ended.add(n);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const n of names) {
      const { job } = await bed.result(n);
      assert.ok(job.state === 'COMPLETED' || job.state === 'CANCELLED', `${n}: ${job.state} (${job.status})`);
      // One host per rank (1-GPU hosts): a job that ran once has one run per rank; a cancelled one ran once or never.
      const runs = bed.agents.runsOf(n).length;
      if (job.state === 'COMPLETED') assert.equal(runs, job.numRanks, `${n} ran once`);
      else assert.ok(runs === 0 || runs === job.numRanks, `${n} ran once or never: ${runs} run(s)`);
    }
    assert.deepEqual(overlaps, []);
    // Both ways were taken: jobs claimed (the pool's steps were refused and followed), and jobs waited for grants.
    assert.ok((bed.world.lostSteps.get(pool) ?? 0) > 0, 'the pool followed claims');
    const granted = names.filter((n) => bed.world.grantsSent.includes(n));
    assert.ok(granted.length > 0 && granted.length < names.length, `${granted.length} of ${names.length} were granted by the pool`);
    await bed.assertIdle(pool);
    await openSnapshot(pool);
  });

  it('a job that closed the snapshot to ask and was terminated before its request came: the pool finds its workflow closed and lends again', async () => {
    const pool = await bed.startPool('claim-ghost', { numNodes: 1, reconcileMs: 500 });
    await openSnapshot(pool);
    // As a job's step does before it signals its request (capacity-claim.ts closeForRequest); its workflow is then gone without asking.
    const ghost = bed.jobName('claim-ghost-asker');
    await bed.world.amendPoolSnapshot(pool, (state) => ({ answer: undefined, write: closeForRequest(state as PoolRecoverySnapshot, ghost) }));
    // The next job finds the snapshot closed and asks the pool, whose step follows the store and learns of the asker.
    const next = await bed.startJob('claim-ghost-next', { pool: 'claim-ghost', workflowType: 'batchJobWorkflowV3' });
    bed.agents.behaviour.set(next, { succeed: true });
    assert.equal((await bed.result(next)).job.state, 'COMPLETED');
    assert.equal(await bed.delivered(next, 'capacityGranted', next), 1, 'granted by the pool');
    await openSnapshot(pool);
    assert.ok(bed.world.closedJobsAsked.some((names) => names.includes(ghost)), 'the asker was checked');
    assert.equal(snapshotOf(pool)?.asking, undefined);
  });

  it('a lending pool terminated while a claimer runs: recovered from its store, the claimer keeps its slot and gives it back there, and the pool lends again', async () => {
    const poolId = 'claim-rec';
    const options = { numNodes: 2 };
    const pool = await bed.startPool(poolId, options);
    await openSnapshot(pool);
    const a = await bed.startJob('claim-rec-a', { pool: poolId, workflowType: 'batchJobWorkflowV3' });
    await until('a runs', () => bed.agents.runsOf(a).length === 1);
    await bed.client.workflow.getHandle(pool).terminate('test: the pool workflow dies');
    const record = bed.world.records.get(pool);
    assert.ok(record);
    await bed.startPoolWorkflow(bed.poolInput(poolId, record.resource as unknown as NodePool, options, { reason: 'its workflow was terminated', version: record.version }));
    const internals = await until('the recovered pool holds the claim', async () => {
      const i = await bed.internals(pool);
      return Object.keys(i.allocations).length === 1 ? i : undefined;
    });
    assert.deepEqual(Object.keys(internals.allocations), [a], "the claim was in the snapshot: the recovered pool knows it, with no signal from a");
    await openSnapshot(pool);
    const b = await bed.startJob('claim-rec-b', { pool: poolId, workflowType: 'batchJobWorkflowV3' });
    await until('b runs', () => bed.agents.runsOf(b).length === 1);
    assert.notEqual(bed.agents.runsOf(b)[0]?.host, bed.agents.runsOf(a)[0]?.host, 'b took the other host');
    for (const n of [a, b]) for (const r of bed.agents.runsOf(n)) r.end({ outcome: 'succeeded' });
    for (const n of [a, b]) assert.equal((await bed.result(n)).job.state, 'COMPLETED', n);
    assert.deepEqual(await bed.signalsAt(pool, 'releaseCapacity'), [], 'both gave back in the store');
    await bed.assertIdle(pool);
    await openSnapshot(pool);
  });

  it('a pool under a quota lends within it: a job past its account\'s quota asks the pool and waits there; the pool lends again once it ran', async () => {
    const poolId = 'claim-quota';
    bed.world.sharing.set(bed.poolName(poolId), { quotas: { default: 1 } });
    const pool = await bed.startPool(poolId, { numNodes: 2 });
    await until(`${pool} open under its quota`, () => snapshotOf(pool)?.open === true && snapshotOf(pool)?.quotas?.default === 1);
    const first = await bed.startJob('claim-quota-1', { pool: poolId, workflowType: 'batchJobWorkflowV3' });
    await until('the first runs', () => bed.agents.runsOf(first).length === 1);
    assert.equal(await bed.delivered(first, 'capacityGranted', first), 0, 'claimed in the store');
    const second = await bed.startJob('claim-quota-2', { pool: poolId, workflowType: 'batchJobWorkflowV3' });
    bed.agents.behaviour.set(second, { succeed: true });
    await bed.reported(second, 'QUEUED');
    await until('the pool has the second queued', async () => (await bed.internals(pool)).queueSummary?.length === 1);
    assert.equal(bed.agents.runsOf(second).length, 0, 'a host is free, but the account is at its quota');
    assert.equal(snapshotOf(pool)?.open, undefined, 'closed while it waits');
    for (const r of bed.agents.runsOf(first)) r.end({ outcome: 'succeeded' });
    for (const n of [first, second]) assert.equal((await bed.result(n)).job.state, 'COMPLETED', n);
    assert.equal(await bed.delivered(second, 'capacityGranted', second), 1, 'granted by the pool');
    await bed.assertIdle(pool);
    await openSnapshot(pool);
  });

  it("the pool's queries answer what is written: a grant whose step is not written yet is no one's slot, and still first in the queue", async () => {
    const pool = await bed.startPool('claim-read', { numNodes: 1 });
    await openSnapshot(pool);
    bed.world.gates.hold(`sync:${pool}`);
    // A V2 job asks the pool (closing the snapshot): the pool's pass grants it, and its step waits at the gate.
    const name = await bed.startJob('claim-read-1', { pool: 'claim-read' });
    bed.agents.behaviour.set(name, { succeed: true });
    try {
      await bed.world.gates.reached(`sync:${pool}`);
      const before = await bed.internals(pool);
      assert.deepEqual(Object.keys(before.allocations), [], 'granted in memory, not written: not shown');
      assert.deepEqual(before.hosts.flatMap((h) => h.used), [null]);
      assert.deepEqual(
        before.queue.map((q) => [q.jobName, q.position]),
        [[name, 1]],
        'still at the head of the queue, where it is written',
      );
    } finally {
      bed.world.gates.open(`sync:${pool}`);
    }
    assert.equal((await bed.result(name)).job.state, 'COMPLETED');
    await bed.assertIdle(pool);
  });

  it('a delete while a claimer runs is refused, though the pool has not taken the claim yet', async () => {
    const pool = await bed.startPool('claim-delete', { numNodes: 1 });
    await openSnapshot(pool);
    const name = await bed.startJob('claim-delete-1', { pool: 'claim-delete', workflowType: 'batchJobWorkflowV3' });
    await until('the claimer runs', () => bed.agents.runsOf(name).length === 1);
    const own = await bed.client.workflow.getHandle(pool).query(getNodePoolInternalsQuery);
    assert.deepEqual(Object.keys(own.allocations), [], "the pool's memory has not seen the claim");
    await assert.rejects(bed.client.workflow.getHandle(pool).executeUpdate(deleteNodePoolUpdate, { args: [{}] }), (err: Error) => /still has 1 live batch job/.test(String(err.cause)));
    await bed.client.workflow.getHandle(name).signal(cancelSignal, {});
    assert.equal((await bed.result(name)).job.state, 'CANCELLED');
    await bed.client.workflow.getHandle(pool).executeUpdate(deleteNodePoolUpdate, { args: [{}] });
    await until('the pool is removed', () => bed.world.removed.includes(pool));
  });
});
