/**
 * Sharing a pool through the API, on real processes: a job of higher priority preempts a preemptible
 * one (stopped, requeued, completed later) and never one that is not preemptible; a job whose
 * declared run time ends before the head of the queue could start is backfilled into the head's
 * reserved slots, and jobs that would delay the head, or declare no run time, wait behind it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type BatchJobBody, processesMatching, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';

describe('sharing a pool: priorities, preemption, backfill', () => {
  let t: TestService;
  const markers: string[] = [];

  before(async () => {
    t = await startTestService();
    for (const id of ['prio', 'fill']) {
      // One host of 4 GPUs each.
      const r = await t.api.post(`${A}/nodePools`, { nodePoolId: id, nodePool: { fakeNodePool: { machineType: 'g5.12xlarge', numNodes: 1 } } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  });
  after(async () => {
    for (const marker of markers) for (const pid of processesMatching(marker)) process.kill(pid, 'SIGKILL');
    await t?.stop();
  });

  const marker = (n: number) => {
    const m = `sleep ${300 + n}.${Date.now() % 100000}`;
    markers.push(m);
    return m;
  };
  const create = async (id: string, body: Record<string, unknown>) => {
    const r = await t.api.post<BatchJobBody>(`${A}/batchJobs?batchJobId=${id}`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const get = async (id: string) => (await t.api.get<BatchJobBody>(`${A}/batchJobs/${id}`)).body;
  const cancel = async (id: string) => assert.equal((await t.api.post(`${A}/batchJobs/${id}:cancel`, {})).status, 200);

  it('a job of higher priority preempts a preemptible one, which is requeued and completes after it; a job that is not preemptible keeps running', async () => {
    const sleeper = marker(1);
    const victim = await create('victim', {
      nodePoolId: 'prio',
      numRanks: 4,
      retryPolicy: { maxAttempts: 3, conditions: ['PREEMPTED'], initialBackoff: '0.2s' },
      shellExecutor: { command: `if [ "$BATCH_JOB_ATTEMPT" = 1 ]; then ${sleeper}; fi; echo "attempt $BATCH_JOB_ATTEMPT done"` },
    });
    assert.equal(victim.priority, undefined, 'priority 0 is the default, omitted');
    await waitForState(t.api, 'default', 'victim', 'RUNNING', 60_000);
    const urgent = await create('urgent', { nodePoolId: 'prio', numRanks: 4, priority: 10, shellExecutor: { command: 'echo urgent' } });
    assert.equal(urgent.priority, 10);

    const preempted = await waitFor(
      'the victim preempted',
      async () => {
        const v = await get('victim');
        return /preempted by batch job urgent/.test(v.status) ? v : undefined;
      },
      60_000,
    );
    assert.match(preempted.status, /^attempt 1 of 3 failed: preempted by batch job urgent \(priority 10 over its 0, on node pool prio\): its ranks were stopped; retrying because/);
    const done = await waitForState(t.api, 'default', 'urgent', 'COMPLETED', 60_000);
    assert.match(done.status, /all 4 ranks exited with code 0/);
    const requeued = await waitForState(t.api, 'default', 'victim', 'COMPLETED', 60_000);
    assert.equal(requeued.attempt, 2);
    assert.ok(Date.parse(String(requeued.startTime)) >= Date.parse(String(done.startTime)), 'the victim ran again after the job that preempted it started');
    assert.deepEqual(processesMatching(sleeper), [], 'the first attempt\'s ranks were stopped');

    // A job without a policy that retries PREEMPTED is never preempted: the urgent job waits, saying why.
    const steady = marker(2);
    await create('steady', { nodePoolId: 'prio', numRanks: 4, shellExecutor: { command: steady } });
    await waitForState(t.api, 'default', 'steady', 'RUNNING', 60_000);
    await create('urgent-2', { nodePoolId: 'prio', numRanks: 4, priority: 10, shellExecutor: { command: 'echo urgent again' } });
    const waiting = await waitForState(t.api, 'default', 'urgent-2', 'QUEUED', 30_000);
    assert.match(waiting.status, /waiting for 4 GPUs in node pool prio at priority 10; first of 1 in the queue; no GPU free now/);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal((await get('steady')).state, 'RUNNING', 'not preemptible: still running');
    await cancel('steady');
    await waitForState(t.api, 'default', 'urgent-2', 'COMPLETED', 60_000);
  });

  it('backfills a job that ends before the head could start into its reserved slots, and holds back one that would delay it', async () => {
    // Half the host, for at most 120 s: the head (the whole host) can start by then at the latest.
    const holder = marker(3);
    await create('holder', { nodePoolId: 'fill', numRanks: 2, maxRunDuration: '120s', shellExecutor: { command: holder } });
    await waitForState(t.api, 'default', 'holder', 'RUNNING', 60_000);
    await create('head', { nodePoolId: 'fill', numRanks: 4, shellExecutor: { command: 'echo head' } });
    await waitForState(t.api, 'default', 'head', 'QUEUED', 30_000);
    await create('too-long', { nodePoolId: 'fill', numRanks: 2, maxRunDuration: '600s', shellExecutor: { command: 'echo too long' } });
    await create('undeclared', { nodePoolId: 'fill', numRanks: 2, shellExecutor: { command: 'echo undeclared' } });
    await create('short', { nodePoolId: 'fill', numRanks: 2, maxRunDuration: '20s', shellExecutor: { command: 'echo short' } });

    const short = await waitForState(t.api, 'default', 'short', 'COMPLETED', 60_000);
    assert.match(short.status, /all 2 ranks exited with code 0/);
    for (const id of ['head', 'too-long', 'undeclared']) assert.equal((await get(id)).state, 'QUEUED', `${id} still waits`);

    await cancel('holder');
    const head = await waitForState(t.api, 'default', 'head', 'COMPLETED', 60_000);
    const tooLong = await waitForState(t.api, 'default', 'too-long', 'COMPLETED', 60_000);
    const undeclared = await waitForState(t.api, 'default', 'undeclared', 'COMPLETED', 60_000);
    for (const later of [tooLong, undeclared]) assert.ok(Date.parse(String(later.startTime)) >= Date.parse(String(head.startTime)), `${later.name} started after the head`);
  });
});
