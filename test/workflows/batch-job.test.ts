/**
 * The batch job workflow's races, in seconds: the real job and pool workflows (the built bundle) on a
 * Temporal dev server, with stub activities held at gates so each race happens in one chosen order
 * (test/support/workflow-testbed.ts). No time skipping: the SDK's time-skipping server is a download
 * that is unavailable here, so the job's timeouts are short by input (FAST_JOB_SETTINGS) instead.
 *
 * How a gate forces a race: while a workflow's task runs a local activity (validate, report, syncPool)
 * the task stays open, and a signal or update that arrives meanwhile is seen in the next task, right
 * after the activity; while it waits on an ordinary activity (runRanks, stopRanks) it is seen at once.
 * Local activities run at least once: a task whose completion the server refuses (a signal arrived as
 * the workflow completed) runs its local activities again, so tests check final states and idempotent
 * effects (a purge, a release), not how often a stub was called.
 *
 * Each test uses a pool of its own, so one test's capacity never waits on another's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkflowUpdateFailedError, WorkflowUpdateStage } from '@temporalio/client';
import { type BatchJob } from '../../src/domain/batch-job-model';
import { cancelSignal, deleteSignal, updateBatchJobUpdate } from '../../workflows/messages';
import { until, WorkflowTestbed } from '../support/workflow-testbed';

describe('batch job workflow races', () => {
  let bed: WorkflowTestbed;
  const job = (name: string) => bed.client.workflow.getHandle(name);

  before(async () => {
    bed = await WorkflowTestbed.start();
  });
  after(async () => {
    await bed?.stop();
  });

  /** A 1-slot pool with a running holder, so that the next job queues behind it. */
  async function heldPool(poolId: string): Promise<{ pool: string; holder: string }> {
    const pool = await bed.startPool(poolId, { numNodes: 1 });
    const holder = await bed.startJob(`${poolId}-holder`, { pool: poolId });
    await bed.reported(holder, 'RUNNING');
    return { pool, holder };
  }

  async function endHolder(holder: string): Promise<void> {
    for (const r of bed.agents.runsOf(holder)) r.end({ outcome: 'succeeded' });
    assert.equal((await bed.result(holder)).job.state, 'COMPLETED');
  }

  /** The job's capacity went back exactly once, and its pool is left holding nothing. */
  async function releasedOnce(pool: string, name: string): Promise<void> {
    // A signal that arrives while the pool's task runs lands in its history when that task completes.
    await until(`a releaseCapacity of ${name} at ${pool}`, async () => (await bed.releasesAt(pool, name)) > 0);
    await bed.assertIdle(pool);
    assert.equal(await bed.releasesAt(pool, name), 1, 'the capacity went back once (a releaseCapacity, or a return in the store)');
    assert.deepEqual(bed.world.queue(pool), [], 'nothing left in the stored queue');
  }

  it('delete during validation: deleted and purged; what it asked of the pool is given back', async () => {
    const { pool, holder } = await heldPool('del-validate');
    const name = bed.jobName('del-validate-job');
    bed.world.gates.hold(`validate:${name}`);
    await bed.startJob('del-validate-job', { pool: 'del-validate' });
    await bed.world.gates.reached(`validate:${name}`);
    await job(name).signal(deleteSignal, { requestedBy: 'bob@example.com' });
    bed.world.gates.open(`validate:${name}`);

    const result = await bed.result(name);
    assert.equal(result.deleted, true);
    assert.equal(result.job.state, 'DELETING');
    assert.match(result.job.status, /being deleted by bob@example\.com/);
    assert.ok(bed.world.purged.includes(name), 'purged');
    assert.equal(bed.world.records.has(name), false, 'no record is left');
    assert.equal(bed.agents.runsOf(name).length, 0, 'no rank ever started');
    await endHolder(holder);
    // The delete is seen right after validation, which has queued the job by then: it withdraws once.
    await releasedOnce(pool, name);
  });

  it('delete during a validation that fails: the job ends deleted', async () => {
    await bed.startPool('del-invalid', { numNodes: 1 });
    const name = bed.jobName('del-invalid-job');
    bed.world.validation.set(name, { ok: false, message: 'environmentId: environment "gone" not found', code: 'NOT_FOUND' });
    bed.world.gates.hold(`validate:${name}`);
    await bed.startJob('del-invalid-job', { pool: 'del-invalid' });
    await bed.world.gates.reached(`validate:${name}`);
    await job(name).signal(deleteSignal, {});
    bed.world.gates.open(`validate:${name}`);

    const result = await bed.result(name);
    assert.equal(result.deleted, true);
    assert.ok(bed.world.purged.includes(name));
    assert.equal(bed.world.records.has(name), false, 'no FAILED record outlives the delete');
  });

  it('cancel while QUEUED: CANCELLED before it started, its request withdrawn once', async () => {
    const { pool, holder } = await heldPool('cancel-queued');
    const name = await bed.startJob('cancel-queued-job', { pool: 'cancel-queued' });
    await bed.reported(name, 'QUEUED');
    await job(name).signal(cancelSignal, { requestedBy: 'bob@example.com' });
    const result = await bed.result(name);
    assert.equal(result.job.state, 'CANCELLED');
    assert.match(result.job.status, /cancelled by bob@example\.com before it started/);
    assert.equal(bed.agents.runsOf(name).length, 0);
    await endHolder(holder);
    await releasedOnce(pool, name);
  });

  it('cancel while PENDING (ranks handed out, not yet started): CANCELLED once its host confirms the stop', async () => {
    const pool = await bed.startPool('cancel-pending', { numNodes: 1 });
    const name = bed.jobName('cancel-pending-job');
    bed.agents.behaviour.set(name, { announce: false });
    await bed.startJob('cancel-pending-job', { pool: 'cancel-pending' });
    await bed.reported(name, 'PENDING');
    await until('runRanks picked up', () => bed.agents.runsOf(name).length === 1);
    await job(name).signal(cancelSignal, {});
    const result = await bed.result(name);
    assert.equal(result.job.state, 'CANCELLED', result.job.status);
    assert.ok(bed.agents.stops.some((s) => s.jobName === name && s.host === 'h0'), 'its host was told to stop');
    assert.ok(!bed.world.statesOf(name).includes('RUNNING'), `never RUNNING: ${bed.world.statesOf(name).join(' → ')}`);
    await releasedOnce(pool, name);
  });

  it('cancel while RUNNING: ranks stopped, CANCELLED, capacity released once', async () => {
    const pool = await bed.startPool('cancel-running', { numNodes: 2 });
    const name = await bed.startJob('cancel-running-job', { pool: 'cancel-running', numRanks: 2 });
    await bed.reported(name, 'RUNNING');
    await job(name).signal(cancelSignal, {});
    const result = await bed.result(name);
    assert.equal(result.job.state, 'CANCELLED', result.job.status);
    const runs = bed.agents.runsOf(name);
    assert.equal(runs.length, 2);
    for (const r of runs) assert.ok(r.ended === 'cancelled' || (r.ended !== undefined && r.ended.outcome === 'stopped'), `${r.host} stopped`);
    await releasedOnce(pool, name);
  });

  it('cancel while the grant is in flight (job closed before it lands): the undeliverable grant gives the capacity back', async () => {
    const { pool, holder } = await heldPool('grant-closed');
    const name = await bed.startJob('grant-closed-job', { pool: 'grant-closed' });
    await bed.reported(name, 'QUEUED');
    // The holder ends; the pool allocates to the job and stops at the write before its grant goes out.
    bed.world.gates.hold(`sync:${pool}`);
    for (const r of bed.agents.runsOf(holder)) r.end({ outcome: 'succeeded' });
    await bed.world.gates.reached(`sync:${pool}`);
    await job(name).signal(cancelSignal, {});
    const result = await bed.result(name);
    assert.equal(result.job.state, 'CANCELLED');
    bed.world.gates.open(`sync:${pool}`);

    await releasedOnce(pool, name);
    assert.equal(bed.agents.runsOf(name).length, 0, 'no rank ever started');
    // The slot is free for the next job.
    const next = await bed.startJob('grant-closed-next', { pool: 'grant-closed' });
    await bed.reported(next, 'RUNNING');
    await job(next).signal(cancelSignal, {});
    await bed.result(next);
  });

  // Grants leave from the pool's syncPool step (an activity). A signal to a job whose task is held open
  // on a local activity is accepted by the server but lands in its history only when that task
  // completes, so the tests wait for the step to have sent it (world.grantsSent), not for the history.
  it('cancel while the grant is in flight (job still open when it lands): the grant is ignored, capacity released once', async () => {
    const { pool, holder } = await heldPool('grant-open');
    const name = await bed.startJob('grant-open-job', { pool: 'grant-open' });
    await bed.reported(name, 'QUEUED');
    // The pool allocates to the job and writes the step; the grant itself is held before it is sent.
    bed.world.gates.hold(`grant:${name}`);
    bed.world.gates.hold(`report:${name}:CANCELLED`);
    for (const r of bed.agents.runsOf(holder)) r.end({ outcome: 'succeeded' });
    await bed.world.gates.reached(`grant:${name}`);
    await job(name).signal(cancelSignal, {});
    // The job has released and holds its last report; now the grant goes out and reaches it.
    await bed.world.gates.reached(`report:${name}:CANCELLED`);
    bed.world.gates.open(`grant:${name}`);
    await until('the grant sent to the open job', () => bed.world.grantsSent.includes(name));
    bed.world.gates.open(`report:${name}:CANCELLED`);
    await until('the grant landed', async () => (await bed.delivered(pool, 'capacityGranted', name)) === 1);

    const result = await bed.result(name);
    assert.equal(result.job.state, 'CANCELLED');
    assert.ok(!bed.world.statesOf(name).includes('PENDING'), 'the late grant never moved it on');
    assert.equal(bed.agents.runsOf(name).length, 0);
    // The job's last task is refused once (the grant arrived as it completed) and its local activities
    // run again, so the release may reach the pool twice: it is idempotent, and the slot is free once.
    await until(`a releaseCapacity of ${name} at ${pool}`, async () => (await bed.releasesAt(pool, name)) > 0);
    await bed.assertIdle(pool);
    assert.deepEqual(bed.world.queue(pool), [], 'nothing left in the stored queue');
    const next = await bed.startJob('grant-open-next', { pool: 'grant-open' });
    await bed.reported(next, 'RUNNING');
    await job(next).signal(cancelSignal, {});
    await bed.result(next);
  });

  for (const first of ['grant', 'cancel'] as const) {
    it(`a grant and a cancel in the same workflow task (${first} first): CANCELLED, never started, released once`, async () => {
      const { pool, holder } = await heldPool(`same-task-${first}`);
      const name = await bed.startJob(`same-task-${first}-job`, { pool: `same-task-${first}` });
      await bed.reported(name, 'QUEUED');
      // A PATCH keeps the job's task open on its report while both signals arrive.
      bed.world.gates.hold(`report:${name}:QUEUED`);
      // Not awaited as ACCEPTED: the acceptance leaves with the task, which the held report keeps open.
      const update = job(name).executeUpdate(updateBatchJobUpdate, { args: [{ displayName: 'renamed' }] });
      await bed.world.gates.reached(`report:${name}:QUEUED`);
      const grant = async () => {
        for (const r of bed.agents.runsOf(holder)) r.end({ outcome: 'succeeded' });
        await until('the grant sent', () => bed.world.grantsSent.includes(name));
      };
      if (first === 'grant') {
        await grant();
        await job(name).signal(cancelSignal, {});
      } else {
        await job(name).signal(cancelSignal, {});
        await grant();
      }
      bed.world.gates.open(`report:${name}:QUEUED`);

      assert.equal((await update).displayName, 'renamed', 'the PATCH is answered');
      assert.ok(await bed.inOneTask(name, ['capacityGranted', 'cancel']), 'the grant and the cancel reached one workflow task');
      const result = await bed.result(name);
      assert.equal(result.job.state, 'CANCELLED', result.job.status);
      assert.equal(result.job.displayName, 'renamed');
      assert.ok(!bed.world.statesOf(name).includes('PENDING'));
      assert.equal(bed.agents.runsOf(name).length, 0, 'no rank started');
      await releasedOnce(pool, name);
    });
  }

  it('host lost during start: a host that never heartbeats fails the job naming it; the pool marks it unreachable', async () => {
    const pool = await bed.startPool('host-lost', { numNodes: 2 });
    const name = bed.jobName('host-lost-job');
    bed.agents.behaviour.set(`${name}@h0`, { announce: false, heartbeat: false });
    // The pool probes a lost host; its answer is held so that the host reads unreachable below.
    bed.world.gates.hold('probe:h0');
    try {
      await bed.startJob('host-lost-job', { pool: 'host-lost', numRanks: 2 });
      const result = await bed.result(name);
      assert.equal(result.job.state, 'FAILED');
      assert.match(result.job.status, /host h0 was lost: its agent sent no heartbeat for 1\.5s/);
      assert.ok(
        bed.agents.stops.some((s) => s.jobName === name && s.host === 'h1'),
        'the healthy host is told to stop',
      );
      assert.ok(!bed.agents.stops.some((s) => s.jobName === name && s.host === 'h0'), 'the lost host is not waited on');
      // The job's last step sent hostLost and its release; a signal that reaches the pool while the
      // pool's task runs lands in its history when that task completes. At least once: a refused last
      // task runs the job's local activities again, and both receivers are idempotent.
      const lost = await until('hostLost at the pool', async () => {
        const got = await bed.signalsAt(pool, 'hostLost');
        return got.length > 0 ? got : undefined;
      });
      for (const l of lost) assert.deepEqual(l, { host: 'h0', reason: result.job.status });
      await until('a releaseCapacity at the pool', async () => ((await bed.releasesAt(pool, name)) >= 1 ? true : undefined));
      const internals = await until('the allocation freed', async () => {
        const i = await bed.internals(pool);
        return Object.keys(i.allocations).length === 0 ? i : undefined;
      });
      assert.equal(internals.hosts.find((h) => h.host === 'h0')?.status, 'unreachable');
      assert.equal(internals.hosts.find((h) => h.host === 'h1')?.status, 'ready');
    } finally {
      // Held, the probe would keep the worker from shutting down after a failure.
      bed.world.gates.open('probe:h0');
    }
  });

  it('update during cancel: a PATCH while the ranks are being stopped is answered, kept, and nothing deadlocks', async () => {
    const pool = await bed.startPool('patch-cancel', { numNodes: 1 });
    const name = await bed.startJob('patch-cancel-job', { pool: 'patch-cancel' });
    await bed.reported(name, 'RUNNING');
    bed.world.gates.hold(`stop:${name}@h0`);
    await job(name).signal(cancelSignal, {});
    await bed.world.gates.reached(`stop:${name}@h0`);
    const patched = await job(name).executeUpdate(updateBatchJobUpdate, { args: [{ displayName: 'while-cancelling' }] });
    assert.equal(patched.state, 'CANCELLING');
    assert.equal(patched.displayName, 'while-cancelling');
    assert.equal(bed.world.job(name)?.displayName, 'while-cancelling', 'answered once the read model has it');
    bed.world.gates.open(`stop:${name}@h0`);

    const result = await bed.result(name);
    assert.equal(result.job.state, 'CANCELLED');
    assert.equal(result.job.displayName, 'while-cancelling', 'the patch is kept through the end');
    assert.equal(bed.world.job(name)?.state, 'CANCELLED');
    await releasedOnce(pool, name);
  });

  it('update as the cancelled job reports its end: answered, and the final record has it', async () => {
    const pool = await bed.startPool('patch-end', { numNodes: 1 });
    const name = await bed.startJob('patch-end-job', { pool: 'patch-end' });
    await bed.reported(name, 'RUNNING');
    bed.world.gates.hold(`report:${name}:CANCELLED`);
    await job(name).signal(cancelSignal, {});
    await bed.world.gates.reached(`report:${name}:CANCELLED`);
    const update = await job(name).startUpdate(updateBatchJobUpdate, { args: [{ displayName: 'at-the-end' }], waitForStage: WorkflowUpdateStage.ACCEPTED });
    bed.world.gates.open(`report:${name}:CANCELLED`);

    const patched: BatchJob = await update.result();
    assert.equal(patched.state, 'CANCELLED');
    assert.equal(patched.displayName, 'at-the-end');
    const result = await bed.result(name);
    assert.equal(result.job.displayName, 'at-the-end');
    assert.equal(bed.world.job(name)?.displayName, 'at-the-end', 'the read model has the patch');
    await releasedOnce(pool, name);
  });

  it('update during delete: refused as FAILED_PRECONDITION, and the delete completes', async () => {
    await bed.startPool('patch-delete', { numNodes: 1 });
    const name = await bed.startJob('patch-delete-job', { pool: 'patch-delete' });
    await bed.reported(name, 'RUNNING');
    bed.world.gates.hold(`stop:${name}@h0`);
    await job(name).signal(deleteSignal, {});
    await bed.world.gates.reached(`stop:${name}@h0`);
    await assert.rejects(job(name).executeUpdate(updateBatchJobUpdate, { args: [{ displayName: 'too-late' }] }), (err: unknown) => {
      assert.ok(err instanceof WorkflowUpdateFailedError);
      assert.match(String((err.cause as { type?: string } | undefined)?.type), /ApiError:FAILED_PRECONDITION/);
      return true;
    });
    bed.world.gates.open(`stop:${name}@h0`);
    assert.equal((await bed.result(name)).deleted, true);
  });

  /** Each patch marker, and what each search-attribute upsert wrote, in a job's history. */
  async function markersAndUpserts(name: string): Promise<{ patches: number; upserts: string[] }> {
    const history = await job(name).fetchHistory();
    let patches = 0;
    const upserts: string[] = [];
    for (const e of history.events ?? []) {
      if (e.markerRecordedEventAttributes?.markerName === 'core_patch') patches++;
      const fields = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields;
      if (fields) {
        for (const [key, payload] of Object.entries(fields)) {
          upserts.push(key === 'BatchJobState' && payload.data ? `BatchJobState=${JSON.parse(Buffer.from(payload.data).toString('utf8'))}` : key);
        }
      }
    }
    return { patches, upserts };
  }

  it('a V2 job writes no patch marker, and visibility\'s state only as it changes there: started QUEUED, then RUNNING, the end', async () => {
    await bed.startPool('v2-cost', { numNodes: 1 });
    const name = await bed.startJob('v2-cost-job', { pool: 'v2-cost' });
    await bed.reported(name, 'RUNNING');
    for (const r of bed.agents.runsOf(name)) r.end({ outcome: 'succeeded' });
    assert.equal((await bed.result(name)).job.state, 'COMPLETED');
    assert.deepEqual(await markersAndUpserts(name), { patches: 0, upserts: ['BatchJobState=RUNNING', 'BatchJobState=COMPLETED'] });
    // A job started as the API started them before (CREATING) still says QUEUED as it queues.
    const before = bed.jobName('v2-cost-created');
    bed.agents.behaviour.set(before, { succeed: true });
    await bed.startJob('v2-cost-created', { pool: 'v2-cost', startVisibleAs: 'CREATING' });
    assert.equal((await bed.result(before)).job.state, 'COMPLETED');
    assert.deepEqual((await markersAndUpserts(before)).upserts, ['BatchJobState=QUEUED', 'BatchJobState=RUNNING', 'BatchJobState=COMPLETED']);
  });

  it('the frozen V1 type still runs its jobs on this worker: one to COMPLETED, one cancelled while QUEUED', async () => {
    const { pool, holder } = await heldPool('v1-still');
    const queued = await bed.startJob('v1-still-queued', { pool: 'v1-still', workflowType: 'batchJobWorkflow' });
    await bed.reported(queued, 'QUEUED');
    await job(queued).signal(cancelSignal, { requestedBy: 'bob@example.com' });
    assert.equal((await bed.result(queued)).job.state, 'CANCELLED');
    await endHolder(holder);
    await releasedOnce(pool, queued);

    const done = await bed.startJob('v1-still-done', { pool: 'v1-still', workflowType: 'batchJobWorkflow' });
    await bed.reported(done, 'RUNNING');
    for (const r of bed.agents.runsOf(done)) r.end({ outcome: 'succeeded' });
    assert.equal((await bed.result(done)).job.state, 'COMPLETED');
    const v1 = await markersAndUpserts(done);
    assert.ok(v1.patches >= 2, `V1 still records its patches (${v1.patches})`);
    assert.ok(v1.upserts.includes('BatchJobState=PENDING'), 'V1 still writes PENDING to visibility');
    await bed.assertIdle(pool);
  });
});
