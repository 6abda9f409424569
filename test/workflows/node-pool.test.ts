/**
 * The node pool workflow's races, in seconds: the real pool and job workflows (the built bundle) on a
 * Temporal dev server, the pool store and the agents stubbed in memory (test/support/workflow-testbed.ts).
 * No time skipping: the SDK's time-skipping server is a download that is unavailable here; the pool
 * continues as new every 100 events (its minimum) instead of waiting for a long history.
 *
 * - Continue-as-new while grants and releases are in flight: nothing is lost, every job runs once,
 *   and jobs start in the order the pool admitted them; the same when steps are run again after they
 *   wrote and sent (the store refuses them, and the pool follows what they wrote).
 * - A pool whose workflow is terminated and started again with `recover` (as the watchdog does,
 *   NodePoolService.recoverPool) resumes from its store: allocations, queue order, a request it had
 *   received but never written, and a grant it sends again that its holder ignores.
 * - A host declared lost whose agent still polls comes back by the pool's probe, but only once the
 *   agent no longer runs ranks of the job that lost it; meanwhile the pool's status names it.
 * - A step that follows one a lost task wrote (a later snapshot in the store): the lost grant stands on
 *   its slot, the job the retry would have placed there waits for it, and the run replays.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import { fakeHostAddress, hostTaskQueue } from '../../src/domain/hosts';
import { type NodePool } from '../../src/domain/node-pool-model';
import { PoolQueue } from '../../src/domain/pool-queue';
import { addHost } from '../../src/domain/scheduler';
import { cancelSignal, capacityGrantedSignal, getNodePoolQuery } from '../../workflows/messages';
import { until, WorkflowTestbed } from '../support/workflow-testbed';

describe('node pool workflow races', () => {
  let bed: WorkflowTestbed;

  before(async () => {
    bed = await WorkflowTestbed.start();
  });
  after(async () => {
    await bed?.stop();
  });

  /** How many runs the pool's workflow id has had (continue-as-new starts a new one). */
  async function runsOf(pool: string): Promise<number> {
    let n = 0;
    for await (const _ of bed.client.workflow.list({ query: `WorkflowId = "${pool}"` })) n++;
    return n;
  }

  /**
   * One slot, 30 jobs, a window of 4, continue-as-new every 100 events, some jobs cancelled while they
   * wait or as they are granted. With `lostAnswerEvery`, every so many sync steps write and send and
   * then fail (their worker's answer lost), so the local activity runs the step again: the store
   * refuses it as following an older snapshot, and the pool follows the step it wrote (followLostStep).
   */
  async function continueAsNewRace(poolId: string, lostAnswerEvery?: number): Promise<void> {
    const pool = await bed.startPool(poolId, { numNodes: 1, queueWindow: 4, continueAsNewEvents: 100 });
    if (lostAnswerEvery !== undefined) bed.world.failSyncEvery.set(pool, lostAnswerEvery);
    const ids = Array.from({ length: 30 }, (_, i) => `${poolId}-${String(i).padStart(2, '0')}`);
    const names = ids.map((id) => bed.jobName(id));
    const cancelled = new Set(names.filter((_, i) => i % 7 === 3));
    for (const n of names) bed.agents.behaviour.set(n, { succeed: true });
    for (const id of ids) await bed.startJob(id, { pool: poolId });
    // Some cancels race the queue: each lands while its job waits, or as it is granted.
    for (const n of cancelled) await bed.client.workflow.getHandle(n).signal(cancelSignal, {});

    const results = new Map<string, string>();
    for (const n of names) results.set(n, (await bed.result(n)).job.state);
    for (const n of names) {
      const state = results.get(n);
      if (cancelled.has(n)) assert.ok(state === 'CANCELLED' || state === 'COMPLETED', `${n}: ${state}`);
      else assert.equal(state, 'COMPLETED', n);
      assert.equal(bed.agents.runsOf(n).length, state === 'COMPLETED' ? 1 : 0, `${n} ran ${state === 'COMPLETED' ? 'once' : 'never'}`);
    }
    const admitted = (bed.world.inserted.get(pool) ?? []).map((r) => r.jobName);
    assert.equal(new Set(admitted).size, admitted.length, 'no request was written twice');
    // A cancel that reaches the pool in the same task as its request withdraws it before it is written.
    const unwritten = names.filter((n) => !admitted.includes(n));
    assert.deepEqual(unwritten.filter((n) => results.get(n) !== 'CANCELLED'), [], 'every job that was not cancelled was written to the queue');
    const started = bed.agents.runs.filter((r) => names.includes(r.jobName)).map((r) => r.jobName);
    assert.deepEqual(
      started,
      admitted.filter((n) => started.includes(n)),
      'one slot: jobs started in the order the pool admitted them',
    );
    assert.ok((await runsOf(pool)) >= 3, 'the pool continued as new more than once');
    if (lostAnswerEvery !== undefined) assert.ok((bed.world.lostToPoolSteps.get(pool) ?? 0) > 0, 'a step was run again and refused');
    await bed.assertIdle(pool);
    assert.deepEqual(bed.world.queue(pool), [], 'the stored queue is empty');
  }

  it('continue-as-new with grants and releases in flight: nothing lost, each job runs once, in admission order', async () => {
    await continueAsNewRace('can');
  });

  it('the same with every third step run again after it wrote and sent (its answer lost): each job still runs once, in admission order', async () => {
    await continueAsNewRace('cal', 3);
  });

  it('a lost host whose agent still polls is probed back to ready, not while it runs ranks of the job that lost it', async () => {
    const pool = await bed.startPool('probe', { numNodes: 2 });
    const lostJob = bed.jobName('probe-lost');
    // h0's agent picks the ranks up and then goes silent (no heartbeat), but keeps polling.
    bed.agents.behaviour.set(`${lostJob}@h0`, { announce: false, heartbeat: false });
    await bed.startJob('probe-lost', { pool: 'probe', numRanks: 2 });
    const failed = await bed.result(lostJob);
    assert.match(failed.job.status, /host h0 was lost/);

    // The agent answers the probe while the lost job's ranks still run there: h0 stays unreachable.
    await until('h0 probed twice', () => bed.agents.probes.filter((h) => h === 'h0').length >= 2, 30_000);
    const during = await bed.internals(pool);
    assert.equal(during.hosts.find((h) => h.host === 'h0')?.status, 'unreachable');
    const { pool: view } = await bed.client.workflow.getHandle(pool).query(getNodePoolQuery);
    assert.match(view.status.message, /host h0 is unreachable/);
    assert.equal(view.nodePoolStats.unreachableNodeCount, 1);
    assert.equal(view.nodePoolStats.nodeCount, 1);

    // Those ranks end (a real agent stops them at its next heartbeat): the next answer takes h0 back.
    for (const r of bed.agents.runsOf(lostJob)) if (r.host === 'h0') r.end({ outcome: 'stopped' });
    await until('h0 ready again', async () => (await bed.internals(pool)).hosts.find((h) => h.host === 'h0')?.status === 'ready', 30_000);
    const { pool: after } = await bed.client.workflow.getHandle(pool).query(getNodePoolQuery);
    assert.equal(after.status.message, '');
    assert.equal(after.nodePoolStats.unreachableNodeCount, undefined);
    assert.equal(after.nodePoolStats.nodeCount, 2);

    // Its capacity is usable: a job needing both hosts runs.
    const next = bed.jobName('probe-next');
    bed.agents.behaviour.set(next, { succeed: true });
    await bed.startJob('probe-next', { pool: 'probe', numRanks: 2 });
    assert.equal((await bed.result(next)).job.state, 'COMPLETED');
    assert.deepEqual(bed.agents.runsOf(next).map((r) => r.host).sort(), ['h0', 'h1']);
  });

  it('a preemption racing its victim\'s own end: the victim ends COMPLETED, not requeued; the preempting job gets the capacity; nothing stays reserved', async () => {
    const pool = await bed.startPool('prace', { numNodes: 1 });
    const victim = await bed.startJob('prace-victim', { pool: 'prace', spec: { retryPolicy: { maxAttempts: 2, conditions: ['PREEMPTED'], initialBackoff: '0.2s' } } });
    await bed.reported(victim, 'RUNNING');
    bed.world.gates.hold(`preempt:${victim}`);
    const urgent = bed.jobName('prace-urgent');
    bed.agents.behaviour.set(urgent, { succeed: true });
    await bed.startJob('prace-urgent', { pool: 'prace', spec: { priority: 10 } });
    // The pass chose the victim and wrote it; before the stop reaches it, its ranks finish.
    await bed.world.gates.reached(`preempt:${victim}`);
    assert.deepEqual((await bed.internals(pool)).reservation?.requestId, urgent, 'the capacity is reserved for the job of higher priority');
    for (const r of bed.agents.runsOf(victim)) r.end({ outcome: 'succeeded' });
    const ended = await bed.result(victim);
    bed.world.gates.open(`preempt:${victim}`);
    assert.equal(ended.job.state, 'COMPLETED');
    assert.doesNotMatch(ended.job.status, /preempted/);
    assert.equal(bed.agents.runsOf(victim).length, 1, 'it ran once');
    assert.equal((await bed.result(urgent)).job.state, 'COMPLETED');
    await bed.assertIdle(pool);
    assert.equal((await bed.internals(pool)).reservation, null);
  });

  it('recovers a terminated pool from its store: allocations, queue order, an unwritten request, a re-sent grant ignored', async () => {
    const poolId = 'rec';
    const options = { numNodes: 1, queueWindow: 2 };
    const pool = await bed.startPool(poolId, options);
    const holder = await bed.startJob('rec-holder', { pool: poolId });
    await bed.reported(holder, 'RUNNING');
    const placement = (await bed.jobView(holder)).placement;
    const queued: string[] = [];
    for (let i = 0; i < 5; i++) {
      const name = await bed.startJob(`rec-q${i}`, { pool: poolId });
      bed.agents.behaviour.set(name, { succeed: true });
      await bed.reported(name, 'QUEUED');
      queued.push(name);
    }
    await until('five rows stored', () => bed.world.queue(pool).length === 5);
    // The last request reaches the pool, whose write of it never completes: the pool is terminated meanwhile.
    bed.world.gates.hold(`sync:${pool}`);
    const unwritten = await bed.startJob('rec-q5', { pool: poolId });
    bed.agents.behaviour.set(unwritten, { succeed: true });
    await bed.world.gates.reached(`sync:${pool}`);
    await bed.reported(unwritten, 'QUEUED');
    await bed.client.workflow.getHandle(pool).terminate('test: the pool workflow dies');
    bed.world.gates.open(`sync:${pool}`, new Error('the write was lost with the worker'));
    assert.equal(bed.world.queue(pool).length, 5, 'the sixth request is in no store');

    const record = bed.world.records.get(pool);
    assert.ok(record);
    await bed.startPoolWorkflow(bed.poolInput(poolId, record.resource as unknown as NodePool, options, { reason: 'its workflow was terminated', version: record.version }));

    const internals = await until('the recovered pool has its queue', async () => {
      const i = await bed.internals(pool);
      return i.queueSummary?.length === 6 ? i : undefined;
    });
    assert.deepEqual(Object.keys(internals.allocations), [holder], 'the holder keeps its slot');
    assert.deepEqual(
      internals.queue.map((q) => q.jobName),
      queued.slice(0, 2),
      'the window is the head of the stored queue',
    );
    await until('the grant sent again reached the holder', async () => (await bed.signalsAt(holder, 'capacityGranted')).length === 2);
    const view = await bed.jobView(holder);
    assert.equal(view.job.state, 'RUNNING', 'the holder ignored the second grant');
    assert.deepEqual(view.placement, placement);
    assert.equal(bed.agents.runsOf(holder).length, 1, 'its ranks were not started again');

    for (const r of bed.agents.runsOf(holder)) r.end({ outcome: 'succeeded' });
    for (const n of [holder, ...queued, unwritten]) assert.equal((await bed.result(n)).job.state, 'COMPLETED', n);
    assert.deepEqual(
      bed.agents.runs.filter((r) => r.jobName.includes('/rec-')).map((r) => r.jobName),
      [holder, ...queued, unwritten],
      'every job ran once, in arrival order, the unwritten request last',
    );
    await bed.assertIdle(pool);
    assert.deepEqual(bed.world.queue(pool), []);
  });

  it('a step that follows one a lost task wrote: the lost grant stands, the job the retry chose instead waits for it', async () => {
    const poolId = 'lost';
    const pool = await bed.startPool(poolId, { numNodes: 1 });
    const holder = await bed.startJob('lost-holder', { pool: poolId });
    await bed.reported(holder, 'RUNNING');
    const a = bed.jobName('lost-a');
    const urgent = bed.jobName('lost-urgent');
    const b = bed.jobName('lost-b');
    for (const n of [a, urgent, b]) bed.agents.behaviour.set(n, { succeed: false });
    await bed.startJob('lost-a', { pool: poolId });
    await bed.reported(a, 'QUEUED');
    // A step in flight (b's request) while the holder ends and a job of higher priority asks.
    bed.world.gates.hold(`sync:${pool}`);
    await bed.startJob('lost-b', { pool: poolId });
    await bed.world.gates.reached(`sync:${pool}`);
    for (const r of bed.agents.runsOf(holder)) r.end({ outcome: 'succeeded' });
    await bed.startJob('lost-urgent', { pool: poolId, spec: { priority: 10 } });
    await until('the holder\'s release and the urgent request wait in the pool\'s history', async () => {
      const released = (await bed.signalsAt(pool, 'releaseCapacity')).some((p) => (p as { jobName?: string }).jobName === holder);
      const asked = (await bed.signalsAt(pool, 'requestCapacity')).some((p) => (p as { jobName?: string }).jobName === urgent);
      return released && asked;
    });
    // b's step is written; the next one (the holder's end and the urgent request, in one task) is held.
    bed.world.gates.open(`sync:${pool}`);
    bed.world.gates.hold(`sync:${pool}`);
    await bed.world.gates.reached(`sync:${pool}`);
    assert.deepEqual(bed.world.grantsSent.filter((n) => n === urgent), [], 'held before its grant went out');

    // Meanwhile, a task the server never kept (it saw the holder's end, not the urgent request) wrote
    // its step: `a` on the holder's slot, its row gone; and its grant went out. (Steps refused before:
    // the first requests closed the pool's open snapshot, capacity-claim.ts.)
    const refusedBefore = bed.world.lostToPoolSteps.get(pool) ?? 0;
    const stored = bed.world.snapshots.get(pool);
    assert.ok(stored);
    const lost = structuredClone(stored);
    const state = lost.state as ReturnType<PoolQueue['recoverySnapshot']>;
    const slot = state.scheduler.allocations[holder];
    assert.ok(slot, 'the stored snapshot places the holder');
    state.scheduler.allocations = { [a]: { ...slot, id: a } };
    for (const h of state.scheduler.hosts) h.used = h.used.map((u) => (u === holder ? a : u));
    state.jobs = { [a]: { workflowId: a, ranks: 1, state: 'PENDING' } };
    bed.world.snapshots.set(pool, { ...lost, step: stored.step + 1 });
    bed.world.queues.get(pool)?.delete(a);
    const grantToA = {
      pool,
      gpu: true,
      masterPort: slot.masterPort,
      hosts: slot.hosts.map((h) => ({ host: h.host, address: state.hosts[h.host]?.address ?? '', taskQueue: state.hosts[h.host]?.taskQueue ?? '', slots: h.slots })),
    };
    await bed.client.workflow.getHandle(a).signal(capacityGrantedSignal, grantToA);
    await bed.reported(a, 'RUNNING');
    bed.world.gates.open(`sync:${pool}`);

    // The held step is refused; the pool takes `a`'s grant as given and sends it again; urgent waits for it.
    await until('the pool followed the lost step', async () => {
      const i = await bed.internals(pool);
      return bed.world.lostToPoolSteps.get(pool) === refusedBefore + 1 && Object.keys(i.allocations).join() === a && i.reservation?.requestId === urgent ? i : undefined;
    });
    await until('the grant sent again reached a', async () => (await bed.signalsAt(a, 'capacityGranted')).length === 2);
    assert.equal(bed.agents.runsOf(urgent).length, 0, 'urgent did not start on a\'s slot');
    assert.equal((await bed.jobView(urgent)).job.state, 'QUEUED');
    assert.equal(bed.agents.runsOf(a).length, 1, 'a ran once, ignoring the second grant');

    for (const n of [a, urgent, b]) {
      await until(`${n} runs`, () => bed.agents.runsOf(n).length === 1);
      for (const r of bed.agents.runsOf(n)) r.end({ outcome: 'succeeded' });
      assert.equal((await bed.result(n)).job.state, 'COMPLETED', n);
    }
    assert.deepEqual(
      bed.agents.runs.filter((r) => r.jobName.includes('/lost-')).map((r) => r.jobName),
      [holder, a, urgent, b],
      'one job at a time on the one slot: the lost grant first, then priority',
    );
    await bed.assertIdle(pool);
    assert.deepEqual(bed.world.queue(pool), []);
    // The refused step's marker holds the lost snapshot: the run replays through the same path.
    const history = await bed.client.workflow.getHandle(pool).fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: { codePath: join(__dirname, '..', '..', 'workflow-bundle.js') } }, history, pool);
  });

  it('a continued run handles the signals its last run received after the count it carried, and not the ones before', async () => {
    const poolId = 'missed';
    const pool = await bed.startPool(poolId, { numNodes: 1 });
    await bed.client.workflow.getHandle(pool).terminate('test: replaced by a run no worker serves');
    // The last run: its signals land in its history, and no handler ever runs (nothing polls its queue).
    const input = bed.poolInput(poolId, bed.world.pools.get(pool) as NodePool, { numNodes: 1 });
    const last = await bed.client.workflow.start('nodePoolWorkflow', { workflowId: pool, taskQueue: 'no-worker', args: [input], workflowIdReusePolicy: 'ALLOW_DUPLICATE' });
    const jobs: string[] = [];
    for (const id of ['missed-a', 'missed-b', 'missed-c']) {
      const name = await bed.startJob(id, { pool: poolId });
      bed.agents.behaviour.set(name, { succeed: true });
      jobs.push(name);
      await until(`${id}'s request in the last run's history`, async () => (await bed.signalsAt(pool, 'requestCapacity', last.firstExecutionRunId)).length === jobs.length);
    }
    await last.terminate('test: the last run closes');

    // It continues with an empty queue, having handled (it says) the first of those three signals.
    const carried = PoolQueue.fresh(100);
    addHost(carried.scheduler, 'h0', 1);
    carried.hosts.h0 = { address: fakeHostAddress(pool, 0), taskQueue: hostTaskQueue(pool, 'h0') };
    carried.version = 1;
    await bed.startPoolWorkflow({ ...input, pool: { ...input.pool, state: 'READY' }, carried: carried.carried(), lastRun: { runId: last.firstExecutionRunId, signalsHandled: 1 } });

    const [first, ...rest] = jobs as [string, ...string[]];
    for (const n of rest) assert.equal((await bed.result(n)).job.state, 'COMPLETED', n);
    assert.deepEqual(
      (bed.world.inserted.get(pool) ?? []).map((r) => r.jobName),
      rest,
      'the two requests after the count were queued, in their order; the counted one was not',
    );
    assert.equal(bed.agents.runsOf(first).length, 0);
    assert.equal(bed.world.job(first)?.state, 'QUEUED');
    await bed.client.workflow.getHandle(first).signal(cancelSignal, {});
    assert.equal((await bed.result(first)).job.state, 'CANCELLED');
    await bed.assertIdle(pool);
  });
});
