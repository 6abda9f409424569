/**
 * The races of retries, time limits and dependencies in the job workflow, with stub activities held at
 * gates (test/support/workflow-testbed.ts): a cancel during a retry's backoff, the queue limit racing a
 * grant, the run limit, and a dependency that ends while its dependent is asking, before or after.
 * Timers are real and short (the testbed has no time skipping, see there).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cancelSignal, deleteSignal, preemptSignal } from '../../workflows/messages';
import { until, WorkflowTestbed } from '../support/workflow-testbed';

describe('retry, limit and dependency races', () => {
  let bed: WorkflowTestbed;
  const job = (name: string) => bed.client.workflow.getHandle(name);
  const fail = (code: number) => ({ outcome: 'failed' as const, rank: 0, exitCode: code, signal: null, message: `rank 0 on host h0 exited with code ${code}` });

  before(async () => {
    bed = await WorkflowTestbed.start();
  });
  after(async () => {
    await bed?.stop();
  });

  it('a retry queues the whole gang again as attempt 2, with BATCH_JOB_ATTEMPT, after its capacity went back', async () => {
    const pool = await bed.startPool('retry-gang', { numNodes: 2 });
    const name = await bed.startJob('retry-gang-job', { pool: 'retry-gang', numRanks: 2, spec: { retryPolicy: { maxAttempts: 2, exitCodes: ['1'], initialBackoff: '0.2s' } } });
    await bed.reported(name, 'RUNNING');
    const [first, second] = bed.agents.runsOf(name);
    assert.ok(first && second);
    first.end(fail(1));
    await until('attempt 2 on both hosts', () => bed.agents.runsOf(name).length === 4);
    const attempt2 = bed.agents.runsOf(name).slice(2);
    for (const r of attempt2) {
      assert.equal(r.input.attempt, 2);
      for (const rank of r.input.ranks) assert.equal(rank.env.BATCH_JOB_ATTEMPT, '2');
    }
    // The other host of attempt 1 was stopped before the gang was queued again.
    assert.ok(second.ended !== undefined, 'attempt 1 ended on every host');
    assert.ok(bed.agents.stops.some((s) => s.jobName === name && s.host === second.host));
    await until('attempt 2 RUNNING', () => bed.world.statesOf(name).join() === 'CREATING,QUEUED,PENDING,RUNNING,QUEUED,PENDING,RUNNING');
    for (const r of attempt2) r.end({ outcome: 'succeeded' });
    const result = await bed.result(name);
    assert.equal(result.job.state, 'COMPLETED');
    assert.equal(result.job.attempt, 2);
    // The last release went with the job's last step; it lands in the pool's history when the pool's task completes.
    await until('both releases at the pool', async () => ((await bed.releasesAt(pool, name)) >= 2 ? true : undefined));
    assert.equal(await bed.releasesAt(pool, name), 2, 'each attempt gave its capacity back once');
    await bed.assertIdle(pool);
  });

  it('cancel during a retry\'s backoff: CANCELLED, nothing asked of the pool again', async () => {
    const pool = await bed.startPool('retry-cancel', { numNodes: 1 });
    const name = await bed.startJob('retry-cancel-job', { pool: 'retry-cancel', spec: { retryPolicy: { maxAttempts: 3, exitCodes: ['1'], initialBackoff: '60s' } } });
    await bed.reported(name, 'RUNNING');
    bed.agents.runsOf(name)[0]?.end(fail(1));
    const queued = await bed.reported(name, 'QUEUED');
    assert.match(queued.status, /^attempt 1 of 3 failed: rank 0 on host h0 exited with code 1; retrying because exit code 1 is in retryPolicy\.exitCodes, as attempt 2 in 1m$/);
    assert.equal(queued.attempt, 2);
    await job(name).signal(cancelSignal, { requestedBy: 'bob@example.com' });
    const result = await bed.result(name);
    assert.equal(result.job.state, 'CANCELLED');
    assert.equal(bed.agents.runsOf(name).length, 1, 'attempt 2 never ran');
    assert.equal((await bed.signalsAt(pool, 'requestCapacity')).filter((r) => (r as { jobName: string }).jobName === name).length, 1, 'asked for capacity once');
    await bed.assertIdle(pool);
  });

  it('maxQueueDuration racing a grant: the job ends FAILED and the capacity granted meanwhile goes back, also when the grant lands in the task that ends it', async () => {
    const pool = await bed.startPool('queue-limit', { numNodes: 1 });
    const holder = await bed.startJob('queue-limit-holder', { pool: 'queue-limit' });
    await bed.reported(holder, 'RUNNING');
    const name = await bed.startJob('queue-limit-job', { pool: 'queue-limit', spec: { maxQueueDuration: '3s' } });
    await bed.reported(name, 'QUEUED');
    // The holder ends and the pool allocates to the job and writes it, but the grant is held until the
    // limit has passed and the job, in the task that ends it, has given the capacity back and is
    // reporting FAILED. The grant lands then: the server refuses that task's completion, and the task
    // runs again with the grant and the limit both (job-queue-limit-wins).
    bed.world.gates.hold(`grant:${name}`);
    bed.world.gates.hold(`report:${name}:FAILED`);
    for (const r of bed.agents.runsOf(holder)) r.end({ outcome: 'succeeded' });
    await bed.world.gates.reached(`grant:${name}`);
    await bed.world.gates.reached(`report:${name}:FAILED`);
    bed.world.gates.open(`grant:${name}`);
    await until('the grant sent', () => bed.world.grantsSent.includes(name));
    bed.world.gates.open(`report:${name}:FAILED`);
    const failed = await bed.reported(name, 'FAILED');
    assert.match(failed.status, /^waited longer than its maxQueueDuration \(3s\) in node pool queue-limit's queue/);
    assert.equal((await bed.result(name)).job.state, 'FAILED');
    assert.equal(bed.agents.runsOf(name).length, 0, 'no rank started');
    await until('the pool holds nothing', async () => Object.keys((await bed.internals(pool)).allocations).length === 0);
    await bed.assertIdle(pool);
  });

  it('maxRunDuration: the ranks are stopped and the attempt fails naming the limit; a retry policy does not retry it', async () => {
    const pool = await bed.startPool('run-limit', { numNodes: 1 });
    const name = await bed.startJob('run-limit-job', { pool: 'run-limit', spec: { maxRunDuration: '1s', retryPolicy: { maxAttempts: 3, exitCodes: ['0-255'], conditions: ['HOST_LOST'] } } });
    await bed.reported(name, 'RUNNING');
    const result = await bed.result(name);
    assert.equal(result.job.state, 'FAILED');
    assert.match(result.job.status, /^attempt 1 of 3: ran longer than its maxRunDuration \(1s\): its ranks were stopped/);
    assert.ok(bed.agents.stops.some((s) => s.jobName === name), 'its host was told to stop');
    assert.equal(bed.agents.runsOf(name).length, 1);
    await bed.assertIdle(pool);
  });

  it('a dependency that ends while its dependent is asking is read from its record; one that ends after is told', async () => {
    await bed.startPool('deps', { numNodes: 2 });
    const early = await bed.startJob('dep-early', { pool: 'deps' });
    const late = await bed.startJob('dep-late', { pool: 'deps' });
    await bed.reported(early, 'RUNNING');
    await bed.reported(late, 'RUNNING');
    // The dependent's ask about dep-early is held; dep-early ends meanwhile and tells nobody.
    bed.world.gates.hold(`watch:${early}`);
    const name = await bed.startJob('dependent', {
      pool: 'deps',
      spec: {
        dependsOn: [
          { batchJob: early, condition: 'COMPLETED' },
          { batchJob: late, condition: 'FAILED' },
        ],
      },
    });
    await bed.world.gates.reached(`watch:${early}`);
    for (const r of bed.agents.runsOf(early)) r.end({ outcome: 'succeeded' });
    assert.equal((await bed.result(early)).job.state, 'COMPLETED');
    bed.world.gates.open(`watch:${early}`);
    const waiting = await bed.reported(name, 'QUEUED');
    assert.match(waiting.status, /^waiting for its dependencies: batch job dep-late to end FAILED \(RUNNING when last seen\)$/);
    // dep-late ends after the ask: it tells the dependent.
    for (const r of bed.agents.runsOf(late)) r.end(fail(2));
    assert.equal((await bed.result(late)).job.state, 'FAILED');
    await bed.reported(name, 'RUNNING');
    for (const r of bed.agents.runsOf(name)) r.end({ outcome: 'succeeded' });
    assert.equal((await bed.result(name)).job.state, 'COMPLETED');
  });

  it('preempt: a job whose policy retries PREEMPTED is stopped, gives its capacity back and runs again; one without it ends FAILED naming who', async () => {
    const pool = await bed.startPool('preempt', { numNodes: 1 });
    const name = await bed.startJob('preempt-retried', { pool: 'preempt', spec: { retryPolicy: { maxAttempts: 2, conditions: ['PREEMPTED'], initialBackoff: '0.2s' } } });
    await bed.reported(name, 'RUNNING');
    await job(name).signal(preemptSignal, { by: bed.jobName('urgent'), reason: 'priority 10 over 0' });
    const queued = await bed.reported(name, 'QUEUED');
    assert.match(queued.status, /^attempt 1 of 2 failed: preempted by batch job urgent \(priority 10 over 0\): its ranks were stopped; retrying because the job was preempted/);
    await until('attempt 2 runs', () => bed.agents.runsOf(name).length === 2);
    assert.ok(bed.agents.runsOf(name)[0]?.ended !== undefined, 'attempt 1 was stopped');
    await bed.reported(name, 'RUNNING');
    for (const r of bed.agents.runsOf(name).slice(1)) r.end({ outcome: 'succeeded' });
    assert.equal((await bed.result(name)).job.state, 'COMPLETED');

    const plain = await bed.startJob('preempt-plain', { pool: 'preempt' });
    await bed.reported(plain, 'RUNNING');
    await job(plain).signal(preemptSignal, { by: bed.jobName('urgent') });
    const result = await bed.result(plain);
    assert.equal(result.job.state, 'FAILED');
    assert.match(result.job.status, /^preempted by batch job urgent: its ranks were stopped; not retried: the job has no retry policy$/);
    await bed.assertIdle(pool);
  });

  it('delete of a job that ran: each host of every attempt removes its folders, then the record goes', async () => {
    const pool = await bed.startPool('purge', { numNodes: 2 });
    const name = await bed.startJob('purge-job', { pool: 'purge', spec: { retryPolicy: { maxAttempts: 2, exitCodes: ['1'], initialBackoff: '0.1s' } } });
    await bed.reported(name, 'RUNNING');
    const first = bed.agents.runsOf(name)[0];
    assert.ok(first);
    first.end(fail(1));
    await until('attempt 2 runs', () => bed.agents.runsOf(name).length === 2);
    await bed.reported(name, 'RUNNING');
    const hosts = [...new Set(bed.agents.runsOf(name).map((r) => r.host))].sort();
    bed.world.gates.hold(`purge:${name}@${hosts[0] ?? 'h0'}`);
    await job(name).signal(deleteSignal, { requestedBy: 'bob@example.com' });
    await bed.world.gates.reached(`purge:${name}@${hosts[0] ?? 'h0'}`);
    const deleting = await until('the record says what it waits for', () => {
      const j = bed.world.job(name);
      return j?.state === 'DELETING' && j.status.includes("removing its ranks' folders") ? j : undefined;
    });
    assert.match(deleting.status, new RegExp(`removing its ranks' folders on ${hosts.join(', ')}$`));
    assert.equal(bed.world.purged.includes(name), false, 'the record stays until the hosts are done');
    bed.world.gates.open(`purge:${name}@${hosts[0] ?? 'h0'}`);
    const result = await bed.result(name);
    assert.equal(result.deleted, true);
    assert.deepEqual(bed.agents.purges.filter((p) => p.jobName === name).map((p) => p.host).sort(), hosts);
    assert.ok(bed.world.purged.includes(name));
    await bed.assertIdle(pool);
  });
});
