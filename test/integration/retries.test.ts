/**
 * Retries, time limits and dependencies through the API, on real processes: an exit code that retries
 * and one that does not; a host lost, then the job retried on another host with BATCH_JOB_ATTEMPT=2;
 * maxRunDuration and maxQueueDuration; a dependency chain that runs in order and dependents of a job
 * that fails; the 400s of dependencies that cannot be.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { type BatchJobBody, killAndWait, processesMatching, spawnAgent, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';

interface LogPage {
  entries: Array<{ rank: number; message: string }>;
}

describe('retries, time limits and dependencies', () => {
  let t: TestService;
  const agents = new Map<string, ChildProcess>();
  const leftovers: string[] = [];

  before(async () => {
    t = await startTestService();
  });
  after(async () => {
    for (const child of agents.values()) await killAndWait(child, 'SIGKILL');
    for (const marker of leftovers) for (const pid of processesMatching(marker)) process.kill(pid, 'SIGKILL');
    await t?.stop();
  });

  const create = async (id: string, body: Record<string, unknown>) => {
    const r = await t.api.post<BatchJobBody>(`${A}/batchJobs?batchJobId=${id}`, { nodePoolId: 'default-cpu', ...body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const logs = async (id: string) =>
    (await t.api.get<LogPage>(`${A}/batchJobs/${id}:getLogs?startFromHead=true&pageSize=100`)).body.entries.map((e) => e.message).sort();

  it('retries an exit code its policy names, with BATCH_JOB_ATTEMPT, and says which attempt it is on', async () => {
    const created = await create('retry-exit', {
      retryPolicy: { maxAttempts: 3, exitCodes: ['3', '10-20'], initialBackoff: '0.2s' },
      shellExecutor: { command: 'echo "attempt $BATCH_JOB_ATTEMPT"; [ "$BATCH_JOB_ATTEMPT" -ge 2 ] || exit 3' },
    });
    assert.deepEqual(created.retryPolicy, { maxAttempts: 3, exitCodes: ['3', '10-20'], initialBackoff: '0.2s' });
    const done = await waitForState(t.api, 'default', 'retry-exit', ['COMPLETED', 'FAILED'], 60_000);
    assert.equal(done.state, 'COMPLETED', done.status);
    assert.equal(done.attempt, 2);
    assert.match(done.status, /^attempt 2 of 3: all 1 rank exited with code 0/);
    await waitFor('both attempts\' logs', async () => ((await logs('retry-exit')).length === 2 ? true : undefined));
    assert.deepEqual(await logs('retry-exit'), ['attempt 1', 'attempt 2']);
    const second = (await t.api.get<{ entries: Array<{ message: string; attempt: number }> }>(`${A}/batchJobs/retry-exit:getLogs?attempt=2`)).body.entries;
    assert.deepEqual(second.map((e) => [e.attempt, e.message]), [[2, 'attempt 2']]);
  });

  it('does not retry an exit code its policy does not name, nor past maxAttempts, and says why', async () => {
    await create('no-retry', { retryPolicy: { maxAttempts: 3, exitCodes: ['3'], initialBackoff: '0.2s' }, shellExecutor: { command: 'exit 4' } });
    await create('exhausted', { retryPolicy: { maxAttempts: 2, exitCodes: ['3'], initialBackoff: '0.2s' }, shellExecutor: { command: 'exit 3' } });
    const noRetry = await waitForState(t.api, 'default', 'no-retry', 'FAILED', 60_000);
    assert.equal(noRetry.attempt, 1);
    assert.match(noRetry.status, /^attempt 1 of 3: rank 0 on host \S+ exited with code 4; not retried: exit code 4 is not in retryPolicy.exitCodes$/);
    const exhausted = await waitForState(t.api, 'default', 'exhausted', 'FAILED', 60_000);
    assert.equal(exhausted.attempt, 2);
    assert.match(exhausted.status, /exited with code 3; not retried: exit code 3 is in retryPolicy.exitCodes, but that was the last of 2 attempts/);
  });

  it('stops the ranks of an attempt that runs past maxRunDuration and fails naming the limit', async () => {
    const marker = `sleep 301.${Date.now() % 100000}`;
    leftovers.push(marker);
    await create('run-limit', { maxRunDuration: '1.5s', shellExecutor: { command: marker } });
    await waitFor('the rank to run', () => (processesMatching(marker).length === 1 ? true : undefined), 60_000);
    const failed = await waitForState(t.api, 'default', 'run-limit', 'FAILED', 60_000);
    assert.match(failed.status, /^ran longer than its maxRunDuration \(1\.5s\): its ranks were stopped/);
    assert.deepEqual(processesMatching(marker), []);
  });

  it('fails a job that waits in the queue past maxQueueDuration, and one that waits for a dependency past it', async () => {
    const pool = (await t.api.get<{ nodePoolStats: { nodeCount: number } }>(`${A}/nodePools/default-cpu`)).body;
    const hosts = pool.nodePoolStats.nodeCount;
    const marker = `sleep 302.${Date.now() % 100000}`;
    leftovers.push(marker);
    await create('holder', { numRanks: hosts, shellExecutor: { command: marker } });
    await waitForState(t.api, 'default', 'holder', 'RUNNING', 60_000);
    await create('impatient', { maxQueueDuration: '1s', shellExecutor: { command: 'true' } });
    await create('impatient-dep', { maxQueueDuration: '1s', dependsOn: [{ batchJob: 'holder', condition: 'COMPLETED' }], shellExecutor: { command: 'true' } });
    const queued = await waitForState(t.api, 'default', 'impatient', 'FAILED', 60_000);
    assert.match(queued.status, /^waited longer than its maxQueueDuration \(1s\) in node pool default-cpu's queue; it ended without running$/);
    const dep = await waitForState(t.api, 'default', 'impatient-dep', 'FAILED', 60_000);
    assert.match(dep.status, /^waited longer than its maxQueueDuration \(1s\) for its dependencies/);
    assert.equal(queued.startTime, undefined);
    await t.api.post(`${A}/batchJobs/holder:cancel`, {});
    await waitForState(t.api, 'default', 'holder', 'CANCELLED', 60_000);
    // The withdrawn request holds nothing: a job that needs every host runs next.
    await create('after-impatient', { numRanks: hosts, shellExecutor: { command: 'true' } });
    await waitForState(t.api, 'default', 'after-impatient', 'COMPLETED', 60_000);
  });

  it('runs a dependency chain in order, the waiting job naming what it waits for', async () => {
    await create('dep-a', { shellExecutor: { command: 'sleep 1.5; echo a' } });
    await create('dep-b', { dependsOn: [{ batchJob: 'dep-a', condition: 'COMPLETED' }], shellExecutor: { command: 'echo b' } });
    await create('dep-c', { dependsOn: [{ batchJob: 'accounts/default/batchJobs/dep-b', condition: 'COMPLETED' }], shellExecutor: { command: 'echo c' } });
    const waiting = await waitForState(t.api, 'default', 'dep-c', 'QUEUED', 30_000);
    assert.match(waiting.status, /^waiting for its dependencies: batch job dep-b to end COMPLETED/);
    assert.deepEqual(waiting.dependsOn, [{ batchJob: 'accounts/default/batchJobs/dep-b', condition: 'COMPLETED' }]);
    const a = await waitForState(t.api, 'default', 'dep-a', 'COMPLETED', 60_000);
    const b = await waitForState(t.api, 'default', 'dep-b', 'COMPLETED', 60_000);
    const c = await waitForState(t.api, 'default', 'dep-c', 'COMPLETED', 60_000);
    assert.ok(String(b.startTime) >= String(a.endTime), `b started ${String(b.startTime)}, a ended ${String(a.endTime)}`);
    assert.ok(String(c.startTime) >= String(b.endTime), `c started ${String(c.startTime)}, b ended ${String(b.endTime)}`);
  });

  it('ends a dependent FAILED when its dependency fails, and runs those that wanted the failure or any end', async () => {
    await create('dep-x', { shellExecutor: { command: 'sleep 1; exit 1' } });
    await create('needs-ok', { dependsOn: [{ batchJob: 'dep-x', condition: 'COMPLETED' }], shellExecutor: { command: 'true' } });
    await create('needs-fail', { dependsOn: [{ batchJob: 'dep-x', condition: 'FAILED' }], shellExecutor: { command: 'true' } });
    const failed = await waitForState(t.api, 'default', 'needs-ok', 'FAILED', 60_000);
    assert.match(failed.status, /^dependency dep-x ended FAILED, and this job needed it to end COMPLETED; it never ran$/);
    assert.equal(failed.startTime, undefined);
    await waitForState(t.api, 'default', 'needs-fail', 'COMPLETED', 60_000);
    // Created after the dependency ended: read from its record instead of told.
    await create('late-any', { dependsOn: [{ batchJob: 'dep-x', condition: 'ENDED' }], shellExecutor: { command: 'true' } });
    await create('late-ok', { dependsOn: [{ batchJob: 'dep-x', condition: 'COMPLETED' }], shellExecutor: { command: 'true' } });
    await waitForState(t.api, 'default', 'late-any', 'COMPLETED', 60_000);
    await waitForState(t.api, 'default', 'late-ok', 'FAILED', 60_000);
  });

  it('refuses a dependency on a job that does not exist, on itself, or in another account, creating nothing', async () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['missing', [{ batchJob: 'no-such-job', condition: 'COMPLETED' }], /not found in account "default"/],
      ['self', [{ batchJob: 'self', condition: 'ENDED' }], /cannot depend on itself/],
      ['elsewhere', [{ batchJob: 'accounts/other/batchJobs/x', condition: 'ENDED' }], /own account/],
      ['twice', [{ batchJob: 'dep-a', condition: 'ENDED' }, { batchJob: 'accounts/default/batchJobs/dep-a', condition: 'COMPLETED' }], /named twice/],
    ];
    for (const [id, dependsOn, message] of cases) {
      const r = await t.api.post(
        `${A}/batchJobs?batchJobId=${id}`,
        { nodePoolId: 'default-cpu', dependsOn, shellExecutor: { command: 'true' } },
      );
      assert.equal(r.status, 400, `${id}: ${JSON.stringify(r.body)}`);
      const body = r.body as unknown as { message: string; details: Array<{ fieldViolations?: Array<{ field: string }> }> };
      assert.match(body.message, message);
      assert.match(body.details[0]?.fieldViolations?.[0]?.field ?? '', /^dependsOn\[\d\]\.batchJob$/);
      assert.equal((await t.api.get(`${A}/batchJobs/${id}`)).status, 404, `${id} was not created`);
    }
  });

  it('retries a job whose host was lost on another host, as attempt 2', async () => {
    const POOL = 'accounts/default/nodePools/remote';
    const pool = await t.api.post(`${A}/nodePools`, { nodePoolId: 'remote', nodePool: { maxNodeCount: 2, eksNodePool: { instanceType: 'm5.xlarge' } } });
    assert.equal(pool.status, 200, JSON.stringify(pool.body));
    for (const host of ['r1', 'r2']) agents.set(host, spawnAgent(t, POOL, host));
    await waitFor(
      'two hosts to join',
      async () => ((await t.api.get<{ nodePoolStats: { nodeCount: number } }>(`${A}/nodePools/remote`)).body.nodePoolStats.nodeCount === 2 ? true : undefined),
      60_000,
    );
    const marker = `sleep 303.${Date.now() % 100000}`;
    leftovers.push(marker);
    await t.api.post(`${A}/batchJobs?batchJobId=survivor`, {
      nodePoolId: 'remote',
      retryPolicy: { maxAttempts: 2, conditions: ['HOST_LOST'], initialBackoff: '0.5s' },
      shellExecutor: { command: `if [ "$BATCH_JOB_ATTEMPT" = 1 ]; then ${marker}; else sleep 2; echo "attempt $BATCH_JOB_ATTEMPT"; fi` },
    });
    await waitForState(t.api, 'default', 'survivor', 'RUNNING', 60_000);
    const first = (await t.api.get<{ ranks: Array<{ host: string }> }>(`${A}/batchJobs/survivor:getPlacement`)).body.ranks[0]?.host;
    assert.ok(first === 'r1' || first === 'r2', String(first));
    await killAndWait(agents.get(first)!, 'SIGKILL');
    const second = await waitFor(
      'attempt 2 to run',
      async () => {
        const job = (await t.api.get<BatchJobBody>(`${A}/batchJobs/survivor`)).body;
        if (job.state !== 'RUNNING' || job.attempt !== 2) return undefined;
        return (await t.api.get<{ ranks: Array<{ host: string }> }>(`${A}/batchJobs/survivor:getPlacement`)).body.ranks[0]?.host;
      },
      60_000,
    );
    assert.notEqual(second, first, 'attempt 2 runs on the host that was not lost');
    const done = await waitForState(t.api, 'default', 'survivor', 'COMPLETED', 60_000);
    assert.match(done.status, /^attempt 2 of 2: all 1 rank exited with code 0/);
    await waitFor('attempt 2\'s log', async () => ((await logs('survivor')).includes('attempt 2') ? true : undefined));
  });
});
