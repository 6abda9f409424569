/**
 * The environment workflow's races, in seconds: the real workflow (the built bundle) on a Temporal
 * dev server, with the control activities stubbed and held at gates (test/support/workflow-testbed.ts).
 * No time skipping: the SDK's time-skipping server is a download that is unavailable here.
 *
 * The race that matters: a job's admission (`useEnvironment`) and `deleteEnvironment` must never both
 * succeed, or a live job runs with an environment that is gone. Both take the workflow's lock, so the
 * tests line them up behind a third holder of the lock (a PATCH waiting for its report to land) and
 * then let them go in the order each test names.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type WorkflowHandle, WorkflowUpdateFailedError, WorkflowUpdateStage } from '@temporalio/client';
import {
  deleteEnvironmentUpdate,
  type EnvironmentUseGrant,
  getEnvironmentQuery,
  updateEnvironmentUpdate,
  useEnvironmentUpdate,
} from '../../workflows/messages';
import { until, WorkflowTestbed } from '../support/workflow-testbed';

type Outcome<T> = { ok: true; value: T } | { ok: false; type: string; message: string };

async function outcome<T>(p: Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await p };
  } catch (err) {
    if (!(err instanceof WorkflowUpdateFailedError)) throw err;
    const cause = err.cause as { type?: string; message?: string } | undefined;
    return { ok: false, type: cause?.type ?? '', message: cause?.message ?? '' };
  }
}

describe('environment workflow races', () => {
  let bed: WorkflowTestbed;

  before(async () => {
    bed = await WorkflowTestbed.start();
  });
  after(async () => {
    await bed?.stop();
  });

  /**
   * Holds the environment's lock (a PATCH waiting on its report), queues `first` then `second` behind
   * it (each accepted, so each waits for the lock in that order), then lets the PATCH finish.
   */
  async function lineUp<A, B>(env: WorkflowHandle, name: string, first: () => Promise<A>, second: () => Promise<B>): Promise<[A, B]> {
    await until('the environment reported', () => bed.world.records.get(name));
    bed.world.gates.hold(`report:${name}:DISCONNECTED`);
    const patch = env.executeUpdate(updateEnvironmentUpdate, { args: [{ spec: { shared: false, annotations: { held: 'yes' }, baseImageRef: 'img:1' } }] });
    await bed.world.gates.reached(`report:${name}:DISCONNECTED`);
    // Each is accepted (its handler waits for the lock) before the next is sent: that fixes their order.
    const a = await first();
    const b = await second();
    bed.world.gates.open(`report:${name}:DISCONNECTED`);
    await patch;
    return [a, b];
  }

  it('delete first in line, an admission right behind it: the admission is refused, never both', async () => {
    const name = await bed.startEnvironment('race-delete-first', 'img:1');
    const env = bed.client.workflow.getHandle(name);
    const job = bed.jobName('uses-env-1');
    bed.world.live.add(job);
    const [del, use] = await lineUp(
      env,
      name,
      () => env.startUpdate(deleteEnvironmentUpdate, { args: [{}], waitForStage: WorkflowUpdateStage.ACCEPTED }),
      () => env.startUpdate(useEnvironmentUpdate, { args: [{ jobName: job, createdBy: 'ann@example.com' }], waitForStage: WorkflowUpdateStage.ACCEPTED }),
    );
    const deleted = await outcome(del.result());
    const admitted = await outcome<EnvironmentUseGrant>(use.result());
    assert.ok(!(deleted.ok && admitted.ok), 'an environment was deleted while a job it admitted lives');
    assert.ok(deleted.ok, 'the delete, first in line, goes through');
    assert.equal(admitted.ok ? '' : admitted.type, 'ApiError:NOT_FOUND');
    assert.match(admitted.ok ? '' : admitted.message, /is being deleted/);
    await bed.client.workflow.getHandle(name).result();
    assert.ok(bed.world.removed.includes(name));
  });

  it('an admission first in line, a delete right behind it: the delete is refused naming the job', async () => {
    const name = await bed.startEnvironment('race-use-first', 'img:1');
    const env = bed.client.workflow.getHandle(name);
    const job = bed.jobName('uses-env-2');
    bed.world.live.add(job);
    const [use, del] = await lineUp(
      env,
      name,
      () => env.startUpdate(useEnvironmentUpdate, { args: [{ jobName: job, createdBy: 'ann@example.com' }], waitForStage: WorkflowUpdateStage.ACCEPTED }),
      () => env.startUpdate(deleteEnvironmentUpdate, { args: [{}], waitForStage: WorkflowUpdateStage.ACCEPTED }),
    );
    const admitted = await outcome<EnvironmentUseGrant>(use.result());
    const deleted = await outcome(del.result());
    assert.deepEqual(admitted, { ok: true, value: { imageRef: 'img:1' } });
    assert.equal(deleted.ok ? '' : deleted.type, 'ApiError:FAILED_PRECONDITION');
    assert.match(deleted.ok ? '' : deleted.message, /used by live batch job\(s\) "uses-env-2"/);
    const view = await env.query(getEnvironmentQuery);
    assert.equal(view.environment.state, 'DISCONNECTED');
    assert.deepEqual(view.jobs, [job]);
  });

  it('an admission while the delete checks which jobs live: refused, and the delete goes through', async () => {
    const name = await bed.startEnvironment('race-during-check', 'img:1');
    const env = bed.client.workflow.getHandle(name);
    // A job admitted earlier that has ended since: the delete asks about it, and holds there.
    await env.executeUpdate(useEnvironmentUpdate, { args: [{ jobName: bed.jobName('ended-env-3'), createdBy: 'ann@example.com' }] });
    bed.world.gates.hold('liveJobs');
    const del = env.executeUpdate(deleteEnvironmentUpdate, { args: [{}] });
    await bed.world.gates.reached('liveJobs');
    // Accepted (so it passed its validator before the delete decided) while the check is held.
    const use = await env.startUpdate(useEnvironmentUpdate, {
      args: [{ jobName: bed.jobName('uses-env-3'), createdBy: 'ann@example.com' }],
      waitForStage: WorkflowUpdateStage.ACCEPTED,
    });
    bed.world.gates.open('liveJobs');
    assert.equal((await del).state, 'DELETING');
    const admitted = await outcome(use.result());
    assert.equal(admitted.ok ? '' : admitted.type, 'ApiError:NOT_FOUND');
    await env.result();
  });
});
