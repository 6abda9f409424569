/**
 * Batch jobs end to end on a real Temporal dev server, through real HTTP: create → COMPLETED, a retried
 * job's logs by attempt, rank failure → FAILED naming rank and code, cancel → CANCELLED with no process left, delete → 404,
 * bad bodies → 400 creating nothing, keys → 401/403, duplicate ids → 409.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type BatchJobBody, processesMatching, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';

describe('batch jobs end to end', () => {
  let t: TestService;
  before(async () => {
    t = await startTestService();
  });
  after(async () => {
    await t?.stop();
  });

  it('runs a shell job on the CPU pool to COMPLETED; each rank sees its variables; logs hold every line', async () => {
    const created = await t.api.post<BatchJobBody>(`${A}/batchJobs?batchJobId=hello`, {
      displayName: 'hello',
      nodePoolId: 'default-cpu',
      numRanks: 2,
      envVars: { GREETING: 'hi' },
      shellExecutor: { command: 'echo "$GREETING rank=$RANK world=$WORLD_SIZE node=$NODE_RANK nnodes=$NNODES local=$LOCAL_RANK/$LOCAL_WORLD_SIZE cuda=${CUDA_VISIBLE_DEVICES:-none}"' },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(created.body.name, 'accounts/default/batchJobs/hello');
    assert.equal(created.body.createdBy, 'admin@localhost');
    // The create answers the job as the API admitted it: validated, its workflow about to queue it.
    assert.equal(created.body.state, 'CREATING');
    assert.equal(created.body.status, 'accepted; waiting for its workflow to queue it in node pool default-cpu');

    const done = await waitForState(t.api, 'default', 'hello', 'COMPLETED');
    assert.match(done.status, /all 2 ranks exited with code 0/);
    assert.ok(done.startTime && done.endTime && done.createTime, 'times are set');
    assert.ok((done.startTime as string) <= (done.endTime as string));

    const logs = await t.api.get<{ entries: Array<{ rank: number; message: string }> }>(`${A}/batchJobs/hello:getLogs?startFromHead=true`);
    assert.equal(logs.status, 200);
    const lines = logs.body.entries.map((e) => `${e.rank}:${e.message}`).sort();
    // A CPU pool: one rank per host, so each rank is node 0..1 of 2, local 0 of 1, and sees no GPU.
    assert.deepEqual(lines, ['0:hi rank=0 world=2 node=0 nnodes=2 local=0/1 cuda=none', '1:hi rank=1 world=2 node=1 nnodes=2 local=0/1 cuda=none']);
  });

  it('retries a failed attempt; every log line says its attempt, and :getLogs?attempt= reads one attempt', async () => {
    const created = await t.api.post<BatchJobBody>(`${A}/batchJobs?batchJobId=retried-logs`, {
      nodePoolId: 'default-cpu',
      numRanks: 1,
      retryPolicy: { maxAttempts: 2, exitCodes: ['3'], initialBackoff: '0.2s' },
      shellExecutor: { command: 'echo "attempt $BATCH_JOB_ATTEMPT"; [ "$BATCH_JOB_ATTEMPT" = 2 ] || exit 3' },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    await waitForState(t.api, 'default', 'retried-logs', 'COMPLETED', 60_000);
    type Entries = { entries: Array<{ attempt: number; message: string }> };
    const read = async (query: string) => (await t.api.get<Entries>(`${A}/batchJobs/retried-logs:getLogs?startFromHead=true${query}`)).body.entries.map((e) => [e.attempt, e.message]);
    assert.deepEqual(await read(''), [[1, 'attempt 1'], [2, 'attempt 2']]);
    assert.deepEqual(await read('&attempt=2'), [[2, 'attempt 2']]);
    assert.deepEqual(await read('&attempt=1'), [[1, 'attempt 1']]);
  });

  it('fails the job when a rank exits 3, naming the rank, the host and the code; the other rank is stopped', async () => {
    const marker = `41.${Date.now() % 100000}`;
    const r = await t.api.post(`${A}/batchJobs?batchJobId=exit-three`, {
      nodePoolId: 'default-cpu',
      numRanks: 2,
      shellExecutor: { command: `if [ "$RANK" = 1 ]; then echo failing >&2; exit 3; else sleep ${marker}; fi` },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const failed = await waitForState(t.api, 'default', 'exit-three', 'FAILED');
    assert.match(failed.status, /rank 1 on host h\d exited with code 3/);
    assert.match(failed.status, /last output: failing/);
    assert.ok(failed.endTime);
    assert.deepEqual(processesMatching(`sleep ${marker}`), [], 'rank 0 was stopped when rank 1 failed');
  });

  it('cancels a running job: CANCELLING, then CANCELLED once no process of it is left, background children included', async () => {
    const marker = `300.${randomUUID().replace(/\D/g, '').slice(0, 8)}`;
    await t.api.post(`${A}/batchJobs?batchJobId=sleeper`, {
      nodePoolId: 'default-gpu',
      numRanks: 3,
      shellExecutor: { command: `sleep ${marker} & sleep ${marker} & wait` },
    });
    await waitForState(t.api, 'default', 'sleeper', 'RUNNING');
    // 3 ranks × (bash + 2 sleeps): bash's own command line carries the marker too.
    await waitFor('the ranks to run', () => (processesMatching(`sleep ${marker}`).length === 9 ? true : undefined));

    const cancel = await t.api.post(`${A}/batchJobs/sleeper:cancel`, {});
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    assert.deepEqual(cancel.body, {});
    const again = await t.api.post(`${A}/batchJobs/sleeper:cancel`, {});
    assert.ok(again.status === 200 || again.status === 400, 'a second cancel is a no-op while CANCELLING, or FAILED_PRECONDITION once CANCELLED');

    const cancelled = await waitForState(t.api, 'default', 'sleeper', 'CANCELLED');
    assert.match(cancelled.status, /cancelled by admin@localhost/);
    assert.deepEqual(processesMatching(`sleep ${marker}`), [], 'no rank process survives CANCELLED');

    const late = await t.api.post<{ code: number; message: string }>(`${A}/batchJobs/sleeper:cancel`, {});
    assert.equal(late.status, 400);
    assert.equal(late.body.code, 9, 'FAILED_PRECONDITION');
    assert.match(late.body.message, /CANCELLED/);

    const pool = await t.api.get<{ nodePoolStats: { batchJobCount: Record<string, number> } }>(`${A}/nodePools/default-gpu`);
    assert.deepEqual(pool.body.nodePoolStats.batchJobCount, {}, 'the cancelled job holds no capacity');
  });

  it('cancels a QUEUED job without it ever holding capacity', async () => {
    await t.api.post(`${A}/batchJobs?batchJobId=blocker`, { nodePoolId: 'default-gpu', numRanks: 16, shellExecutor: { command: 'sleep 30' } });
    await waitForState(t.api, 'default', 'blocker', 'RUNNING');
    await t.api.post(`${A}/batchJobs?batchJobId=waiter`, { nodePoolId: 'default-gpu', numRanks: 1, shellExecutor: { command: 'true' } });
    const queued = await waitForState(t.api, 'default', 'waiter', 'QUEUED');
    assert.match(queued.status, /waiting for 1 GPU in node pool default-gpu; first of 1 in the queue/);
    assert.equal((await t.api.post(`${A}/batchJobs/waiter:cancel`, {})).status, 200);
    const cancelled = await waitForState(t.api, 'default', 'waiter', 'CANCELLED');
    assert.match(cancelled.status, /before it started/);
    assert.equal(cancelled.startTime, undefined);
    await t.api.delete(`${A}/batchJobs/blocker`);
    await waitFor('the blocker to be gone', async () => ((await t.api.get(`${A}/batchJobs/blocker`)).status === 404 ? true : undefined));
  });

  it('deletes a running job: DELETING while it stops, then 404 and absent from list; deleting an ended job is immediate', async () => {
    const marker = `302.${Date.now() % 100000}`;
    await t.api.post(`${A}/batchJobs?batchJobId=doomed`, { nodePoolId: 'default-cpu', shellExecutor: { command: `sleep ${marker}` } });
    await waitForState(t.api, 'default', 'doomed', 'RUNNING');
    const del = await t.api.delete(`${A}/batchJobs/doomed`);
    assert.equal(del.status, 200);
    assert.deepEqual(del.body, {});
    await waitFor('doomed to be gone', async () => ((await t.api.get(`${A}/batchJobs/doomed`)).status === 404 ? true : undefined));
    assert.deepEqual(processesMatching(`sleep ${marker}`), []);
    const list = await t.api.get<{ batchJobs: BatchJobBody[] }>(`${A}/batchJobs?filter=${encodeURIComponent('name = "accounts/default/batchJobs/doomed"')}`);
    assert.equal(list.body.batchJobs.length, 0);
    const logs = await t.api.get(`${A}/batchJobs/doomed:getLogs`);
    assert.equal(logs.status, 404, 'logs go with the job');

    assert.equal((await t.api.delete(`${A}/batchJobs/hello`)).status, 200);
    assert.equal((await t.api.get(`${A}/batchJobs/hello`)).status, 404);
    assert.equal((await t.api.delete(`${A}/batchJobs/hello`)).status, 404, 'a second delete finds nothing');
  });

  it('refuses a second job with the same batchJobId (409) and leaves the first untouched', async () => {
    const first = await t.api.post<BatchJobBody>(`${A}/batchJobs?batchJobId=twice`, { displayName: 'first', nodePoolId: 'default-cpu', shellExecutor: { command: 'true' } });
    assert.equal(first.status, 200);
    const second = await t.api.post<{ code: number; message: string }>(`${A}/batchJobs?batchJobId=twice`, {
      displayName: 'second',
      nodePoolId: 'default-cpu',
      shellExecutor: { command: 'false' },
    });
    assert.equal(second.status, 409);
    assert.equal(second.body.code, 6);
    const job = await waitForState(t.api, 'default', 'twice', 'COMPLETED');
    assert.equal(job.displayName, 'first');
  });

  it('answers 400 with the field path for bad bodies, and creates nothing', async () => {
    const before = (await t.api.get<{ totalSize: number }>(`${A}/batchJobs`)).body.totalSize;
    const cases: Array<[string, unknown, RegExp | string, string?]> = [
      ['missing nodePoolId', { shellExecutor: { command: 'true' } }, 'nodePoolId'],
      ['no executor', { nodePoolId: 'default-cpu' }, 'shellExecutor'],
      ['two executors', { nodePoolId: 'default-cpu', shellExecutor: { command: 'true' }, notebookExecutor: { notebookFilename: 'a.ipynb' } }, /Executor/],
      ['numRanks 0', { nodePoolId: 'default-cpu', numRanks: 0, shellExecutor: { command: 'true' } }, 'numRanks'],
      ['numRanks negative', { nodePoolId: 'default-cpu', numRanks: -2, shellExecutor: { command: 'true' } }, 'numRanks'],
      ['numRanks fractional', { nodePoolId: 'default-cpu', numRanks: 1.5, shellExecutor: { command: 'true' } }, 'numRanks'],
      ['numRanks larger than the pool', { nodePoolId: 'default-cpu', numRanks: 5, shellExecutor: { command: 'true' } }, 'numRanks'],
      ['17 ranks on 2 × 8 GPUs', { nodePoolId: 'default-gpu', numRanks: 17, shellExecutor: { command: 'true' } }, 'numRanks'],
      ['python target type unspecified', { nodePoolId: 'default-cpu', pythonExecutor: { targetType: 'TARGET_TYPE_UNSPECIFIED', target: 'x' } }, 'pythonExecutor.targetType'],
      ['empty shell command', { nodePoolId: 'default-cpu', shellExecutor: { command: '' } }, 'shellExecutor.command'],
      ['unknown field', { nodePoolId: 'default-cpu', shellExecutor: { command: 'true' }, nice: 3 }, 'nice'],
      ['priority out of range', { nodePoolId: 'default-cpu', shellExecutor: { command: 'true' }, priority: 1001 }, 'priority'],
      ['unknown nested field', { nodePoolId: 'default-cpu', shellExecutor: { command: 'true', shell: 'zsh' } }, 'shellExecutor.shell'],
      ['displayName of 64 characters', { nodePoolId: 'default-cpu', displayName: 'x'.repeat(64), shellExecutor: { command: 'true' } }, 'displayName'],
      ['imageRef with environmentId', { nodePoolId: 'default-cpu', imageRef: 'ubuntu:24.04', environmentId: 'env', shellExecutor: { command: 'true' } }, 'imageRef'],
      ['snapshotId without environmentId', { nodePoolId: 'default-cpu', snapshotId: 'snap', shellExecutor: { command: 'true' } }, 'snapshotId'],
      ['reserved annotation prefix', { nodePoolId: 'default-cpu', annotations: { 'fireworks.ai/x': 'y' }, shellExecutor: { command: 'true' } }, 'annotations["fireworks.ai/x"]'],
      ['bad role ARN', { nodePoolId: 'default-cpu', role: 'admin', shellExecutor: { command: 'true' } }, 'role'],
      ['envVars overriding RANK', { nodePoolId: 'default-cpu', envVars: { RANK: '7' }, shellExecutor: { command: 'true' } }, 'envVars["RANK"]'],
      ['body is an array', [], '(body)'],
      ['malformed nodePoolId', { nodePoolId: 'Default_CPU', shellExecutor: { command: 'true' } }, 'nodePoolId'],
    ];
    for (const [what, body, field] of cases) {
      const r = await t.api.post<{ code: number; message: string; details: Array<{ fieldViolations?: Array<{ field: string }> }> }>(`${A}/batchJobs`, body);
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 3, what);
      const fields = r.body.details.flatMap((d) => d.fieldViolations ?? []).map((v) => v.field);
      if (typeof field === 'string') assert.ok(fields.includes(field), `${what}: expected field ${field}, got ${fields.join(', ')}`);
      else assert.ok(fields.some((f) => field.test(f)), `${what}: expected a field like ${String(field)}, got ${fields.join(', ')}`);
    }
    const badId = await t.api.post<{ code: number }>(`${A}/batchJobs?batchJobId=Bad_Id`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'true' } });
    assert.equal(badId.status, 400);
    const malformed = await t.api.call<{ code: number; message: string }>('POST', `${A}/batchJobs`, '{"nodePoolId": ');
    assert.equal(malformed.status, 400);
    assert.match(malformed.body.message, /malformed JSON/);
    const wrongType = await t.api.call<{ code: number; message: string }>('POST', `${A}/batchJobs`, 'nodePoolId=x', { 'content-type': 'text/plain' });
    assert.equal(wrongType.status, 400);
    assert.match(wrongType.body.message, /Content-Type must be application\/json/);
    const huge = await t.api.post<{ message: string }>(`${A}/batchJobs`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'x'.repeat(2 * 1024 * 1024) } });
    assert.equal(huge.status, 400);
    assert.match(huge.body.message, /larger than the limit/);
    const noPool = await t.api.post<{ code: number; message: string }>(`${A}/batchJobs`, { nodePoolId: 'no-such-pool', shellExecutor: { command: 'true' } });
    assert.equal(noPool.status, 404);
    assert.match(noPool.body.message, /node pool "no-such-pool" not found/);

    const afterCount = (await t.api.get<{ totalSize: number }>(`${A}/batchJobs`)).body.totalSize;
    assert.equal(afterCount, before, 'no job was created by a bad request');
  });

  it('answers 401 without a key or with an unknown one, 403 for another account, 404 for unknown paths; never a stack trace', async () => {
    const none = await t.api.withKey(undefined).get<{ code: number; message: string }>(`${A}/batchJobs`);
    assert.equal(none.status, 401);
    assert.equal(none.body.code, 16);
    const wrong = await t.api.withKey('not-a-key').get<{ code: number; message: string }>(`${A}/batchJobs`);
    assert.equal(wrong.status, 401);
    assert.ok(!JSON.stringify(wrong.body).includes('not-a-key'), 'the presented key is never echoed');
    const other = await t.api.get<{ code: number }>('/v1/accounts/other/batchJobs');
    assert.equal(other.status, 403);
    assert.equal(other.body.code, 7);
    const unknown = await t.api.get<{ code: number; message: string }>(`${A}/widgets`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 5);
    const method = await t.api.call<{ code: number }>('PUT', `${A}/batchJobs`, {});
    assert.equal(method.status, 405);
    for (const r of [none, wrong, other, unknown]) assert.ok(!/at .*\.js:\d+/.test(JSON.stringify(r.body)), 'no stack trace');
  });
});
