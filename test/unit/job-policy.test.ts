import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type BatchJob, batchJobCreateSchema, type RetryPolicy } from '../../src/domain/batch-job';
import { apply, IllegalTransition } from '../../src/domain/batch-job-lifecycle';
import {
  type AttemptEnd,
  backoffMs,
  dependencyVerdict,
  durationMs,
  durationProblem,
  exitCodeMatches,
  exitCodeRange,
  formatDuration,
  retryDecision,
} from '../../src/domain/job-policy';
import { isPriority, PRIORITY_MAX, PRIORITY_MIN } from '../../src/domain/sharing';

const exit = (exitCode: number | null, outOfMemory = false, signal: string | null = null): AttemptEnd => ({ kind: 'exit', exitCode, signal, outOfMemory, message: 'm' });

describe('durations (protobuf Duration JSON)', () => {
  it('reads seconds with up to nine decimals', () => {
    assert.equal(durationMs('3600s'), 3_600_000);
    assert.equal(durationMs('1.5s'), 1500);
    assert.equal(durationMs('0.001s'), 1);
    assert.equal(durationMs('0.000000001s'), 0);
  });
  it('refuses what is not one, and says why', () => {
    for (const bad of ['', '10', '-1s', '1m', '1.s', 's', '1.0000000001s', ' 1s']) assert.equal(durationMs(bad), undefined, bad);
    assert.match(durationProblem('10m') ?? '', /"3600s"/);
    assert.match(durationProblem('0s') ?? '', /at least/);
    assert.match(durationProblem('31536001s') ?? '', /365 days/);
    assert.equal(durationProblem('31536000s'), undefined);
  });
  it('formats for people', () => {
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(3_600_000), '1h');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(90_061_000), '1d1h1m1s');
  });
});

describe('exit codes', () => {
  it('are single codes or ranges of 0-255', () => {
    assert.deepEqual(exitCodeRange('7'), [7, 7]);
    assert.deepEqual(exitCodeRange('3-9'), [3, 9]);
    assert.match(exitCodeRange('9-3') as string, /empty/);
    assert.match(exitCodeRange('256') as string, /0-255/);
    assert.match(exitCodeRange('a') as string, /range/);
  });
  it('match exactly the codes they name (against a reference)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 20 })), { maxLength: 5 }), fc.integer({ min: 0, max: 255 }), (ranges, code) => {
        const items = ranges.map(([lo, len]) => (len === 0 ? String(lo) : `${lo}-${Math.min(255, lo + len)}`));
        const expected = ranges.some(([lo, len]) => code >= lo && code <= Math.min(255, lo + len));
        assert.equal(exitCodeMatches(items, code), expected);
      }),
    );
  });
});

describe('retry decisions', () => {
  const policy: RetryPolicy = { maxAttempts: 3, exitCodes: ['1', '10-12'], conditions: ['HOST_LOST', 'OUT_OF_MEMORY'], initialBackoff: '2s', maxBackoff: '5s' };

  it('retry only what the policy names', () => {
    assert.equal(retryDecision(policy, 1, exit(1)).retry, true);
    assert.equal(retryDecision(policy, 1, exit(11)).retry, true);
    assert.equal(retryDecision(policy, 1, exit(2)).retry, false);
    assert.equal(retryDecision(policy, 1, exit(null, false, 'SIGKILL')).retry, false);
    assert.equal(retryDecision(policy, 1, exit(137, true)).retry, true);
    assert.equal(retryDecision(policy, 1, { kind: 'host-lost', host: 'h', message: 'm' }).retry, true);
    assert.equal(retryDecision(policy, 1, { kind: 'preempted', message: 'm' }).retry, false);
    assert.equal(retryDecision({ ...policy, conditions: ['PREEMPTED'] }, 1, { kind: 'preempted', message: 'm' }).retry, true);
    assert.equal(retryDecision(policy, 1, { kind: 'run-time-limit', message: 'm' }).retry, false);
    assert.equal(retryDecision(policy, 1, { kind: 'error', message: 'm' }).retry, false);
  });

  it('say why not', () => {
    assert.deepEqual(retryDecision(policy, 1, exit(2)), { retry: false, why: 'exit code 2 is not in retryPolicy.exitCodes' });
    assert.deepEqual(retryDecision({ maxAttempts: 3 }, 1, exit(137, true)), { retry: false, why: 'OUT_OF_MEMORY is not in retryPolicy.conditions' });
    assert.deepEqual(retryDecision(undefined, 1, exit(1)), { retry: false, why: 'the job has no retry policy' });
  });

  it('stop at maxAttempts, counting the first', () => {
    assert.equal(retryDecision(policy, 2, exit(1)).retry, true);
    const last = retryDecision(policy, 3, exit(1));
    assert.equal(last.retry, false);
    assert.match(last.why, /last of 3 attempts/);
    assert.equal(retryDecision({ ...policy, maxAttempts: 1 }, 1, exit(1)).retry, false);
  });

  it('back off from initialBackoff, doubling, up to maxBackoff', () => {
    assert.deepEqual([2, 3, 4, 5].map((n) => backoffMs(policy, n)), [2000, 4000, 5000, 5000]);
    assert.deepEqual([2, 3, 4, 5, 6, 7].map((n) => backoffMs({ maxAttempts: 10 }, n)), [10_000, 20_000, 40_000, 80_000, 160_000, 300_000]);
    const d = retryDecision(policy, 2, exit(1));
    assert.equal(d.retry && d.delayMs, 4000);
  });

  it('never retry past maxAttempts, and always wait within the bounds (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 1000 }), (max, attempt, initial, maxB) => {
        const p: RetryPolicy = { maxAttempts: max, exitCodes: ['0-255'], initialBackoff: `${initial}s`, maxBackoff: `${maxB}s` };
        const d = retryDecision(p, attempt, exit(1));
        assert.equal(d.retry, attempt < max);
        if (d.retry) {
          assert.ok(d.delayMs <= maxB * 1000);
          assert.ok(d.delayMs >= Math.min(initial, maxB) * 1000);
        }
      }),
    );
  });
});

describe('dependency verdicts', () => {
  it('follow the condition and the dependency\'s end', () => {
    const table: Array<[Parameters<typeof dependencyVerdict>[0], BatchJob['state'] | undefined, string]> = [
      ['COMPLETED', 'RUNNING', 'waiting'],
      ['COMPLETED', 'QUEUED', 'waiting'],
      ['COMPLETED', 'CANCELLING', 'waiting'],
      ['COMPLETED', 'COMPLETED', 'met'],
      ['COMPLETED', 'FAILED', 'impossible'],
      ['COMPLETED', 'CANCELLED', 'impossible'],
      ['COMPLETED', undefined, 'impossible'],
      ['COMPLETED', 'DELETING', 'impossible'],
      ['FAILED', 'FAILED', 'met'],
      ['FAILED', 'COMPLETED', 'impossible'],
      ['FAILED', 'CANCELLED', 'impossible'],
      ['ENDED', 'COMPLETED', 'met'],
      ['ENDED', 'FAILED', 'met'],
      ['ENDED', 'CANCELLED', 'met'],
      ['ENDED', undefined, 'met'],
      ['ENDED', 'RUNNING', 'waiting'],
    ];
    for (const [condition, state, verdict] of table) assert.equal(dependencyVerdict(condition, state), verdict, `${condition} / ${state}`);
  });
});

describe('the create schema for the extensions', () => {
  const base = { nodePoolId: 'p', shellExecutor: { command: 'true' } };
  it('normalizes a retry policy', () => {
    const spec = batchJobCreateSchema.parse({ ...base, retryPolicy: { maxAttempts: 3, exitCodes: [1, '3-5'], conditions: ['HOST_LOST', 'HOST_LOST'] }, maxRunDuration: '60s', maxQueueDuration: '' });
    assert.deepEqual(spec.retryPolicy, { maxAttempts: 3, exitCodes: ['1', '3-5'], conditions: ['HOST_LOST'] });
    assert.equal(spec.maxRunDuration, '60s');
    assert.equal(spec.maxQueueDuration, undefined);
  });
  it('names the field of every bad value', () => {
    const bad = batchJobCreateSchema.safeParse({
      ...base,
      retryPolicy: { maxAttempts: 11, exitCodes: ['300'], conditions: ['NOPE'], initialBackoff: '1m' },
      maxRunDuration: '1h',
      dependsOn: [{ batchJob: 'a/b', condition: 'DONE' }],
    });
    assert.equal(bad.success, false);
    const paths = bad.error.issues.map((i) => i.path.join('.')).sort();
    assert.deepEqual(paths, [
      'dependsOn.0.batchJob',
      'dependsOn.0.condition',
      'maxRunDuration',
      'retryPolicy.conditions.0',
      'retryPolicy.exitCodes.0',
      'retryPolicy.initialBackoff',
      'retryPolicy.maxAttempts',
    ]);
  });
  it('takes priority as an integer from PRIORITY_MIN to PRIORITY_MAX, and 0 (the proto3 default) as absent', () => {
    for (const priority of [1, -1, PRIORITY_MIN, PRIORITY_MAX, 17]) assert.equal(batchJobCreateSchema.parse({ ...base, priority }).priority, priority, String(priority));
    for (const priority of [0, -0, null, undefined]) {
      const spec = batchJobCreateSchema.parse({ ...base, priority });
      assert.ok(!('priority' in spec), `${String(priority)} is stored as absent`);
    }
    assert.deepEqual(batchJobCreateSchema.parse({ ...base, priority: 0 }), batchJobCreateSchema.parse(base));
  });
  it('refuses any other priority with one message naming the field and the range', () => {
    const bad: Array<[unknown, string]> = [
      [1.5, '1.5'],
      [PRIORITY_MAX + 1, '1001'],
      [PRIORITY_MIN - 1, '-1001'],
      [2 ** 53, String(2 ** 53)],
      ['5', 'a string'],
      [true, 'true'],
      [[3], 'an array'],
      [{ value: 3 }, 'an object'],
    ];
    for (const [priority, sent] of bad) {
      const result = batchJobCreateSchema.safeParse({ ...base, priority });
      assert.equal(result.success, false, JSON.stringify(priority));
      assert.deepEqual(
        result.error.issues.map((i) => [i.path.join('.'), i.message]),
        [['priority', `priority must be an integer from -1000 to 1000 (higher runs first; default 0), not ${sent}`]],
        JSON.stringify(priority),
      );
    }
  });
  it('accepts exactly the priorities isPriority does', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: -3000, max: 3000 }), fc.double(), fc.constantFrom(PRIORITY_MIN, PRIORITY_MAX, PRIORITY_MIN - 1, PRIORITY_MAX + 1)), (priority) => {
        assert.equal(batchJobCreateSchema.safeParse({ ...base, priority }).success, isPriority(priority));
      }),
    );
  });
  it('refuses unknown fields of a policy', () => {
    assert.equal(batchJobCreateSchema.safeParse({ ...base, retryPolicy: { maxAttempts: 2, attempts: 3 } }).success, false);
    assert.equal(batchJobCreateSchema.safeParse({ ...base, retryPolicy: {} }).success, false);
  });
});

describe('the lifecycle of a retry', () => {
  const T = '2026-01-01T00:00:00Z';
  const job = (state: BatchJob['state']): BatchJob => ({
    name: 'accounts/a/batchJobs/j', nodePoolId: 'p', numRanks: 1, envVars: {}, annotations: {}, shared: false,
    shellExecutor: { command: 'true' }, createTime: T, updateTime: T, createdBy: 'u', state, status: 's',
  });
  it('goes back to QUEUED from PENDING or RUNNING only by a requeue', () => {
    assert.equal(apply(job('RUNNING'), { type: 'requeued', status: 'r' }, T).state, 'QUEUED');
    assert.equal(apply(job('PENDING'), { type: 'requeued', status: 'r' }, T).state, 'QUEUED');
    assert.throws(() => apply(job('RUNNING'), { type: 'validated', status: 'r' }, T), IllegalTransition);
    assert.throws(() => apply(job('CREATING'), { type: 'requeued', status: 'r' }, T), IllegalTransition);
    assert.throws(() => apply(job('QUEUED'), { type: 'requeued', status: 'r' }, T), IllegalTransition);
    assert.throws(() => apply(job('COMPLETED'), { type: 'requeued', status: 'r' }, T), IllegalTransition);
  });
  it('sets startTime again when the next attempt runs', () => {
    const queued = apply(job('RUNNING'), { type: 'requeued', status: 'r' }, T);
    const pending = apply(queued, { type: 'granted', status: 'g' }, T);
    assert.equal(apply(pending, { type: 'started', status: 's' }, '2026-01-01T00:01:00Z').startTime, '2026-01-01T00:01:00Z');
  });
});

describe('the extensions leave the published batch job alone', () => {
  // gatewayBatchJob's fields as published (../shared/api/upstream-reference.md §3.2).
  const UPSTREAM = [
    'name', 'displayName', 'createTime', 'startTime', 'endTime', 'createdBy', 'nodePoolId', 'environmentId', 'snapshotId', 'numRanks', 'envVars',
    'role', 'pythonExecutor', 'notebookExecutor', 'shellExecutor', 'imageRef', 'annotations', 'state', 'status', 'shared', 'updateTime',
  ];
  const EXTENSIONS = ['retryPolicy', 'maxRunDuration', 'maxQueueDuration', 'dependsOn', 'priority', 'attempt'];

  it('adds only the documented fields, and a job using all of them still reads as upstream\'s resource', async () => {
    const { batchJobWireSchema } = await import('../../src/api/schemas');
    assert.deepEqual(Object.keys(batchJobWireSchema.shape).sort(), [...UPSTREAM, ...EXTENSIONS].sort());
    const job = {
      name: 'accounts/a/batchJobs/j', createTime: '2026-01-01T00:00:00Z', updateTime: '2026-01-01T00:00:00Z', createdBy: 'u@a', state: 'QUEUED', status: 's',
      nodePoolId: 'p', numRanks: 2, envVars: {}, annotations: {}, shared: false, shellExecutor: { command: 'true' },
      retryPolicy: { maxAttempts: 3, exitCodes: ['1', '3-5'], conditions: ['HOST_LOST'] }, maxRunDuration: '60s', maxQueueDuration: '1.5s',
      dependsOn: [{ batchJob: 'accounts/a/batchJobs/i', condition: 'ENDED' }], priority: -7, attempt: 2,
    };
    assert.equal(batchJobWireSchema.safeParse(job).success, true);
    // A client that knows only the published fields, and ignores others, reads the same job.
    const published = batchJobWireSchema.omit({ retryPolicy: true, maxRunDuration: true, maxQueueDuration: true, dependsOn: true, priority: true, attempt: true }).loose();
    assert.deepEqual(Object.keys(published.shape).sort(), [...UPSTREAM].sort());
    const read = published.parse(job) as Record<string, unknown>;
    for (const k of UPSTREAM) assert.deepEqual(read[k], (job as Record<string, unknown>)[k], k);
  });

  it('returns priority as the integer it is, within its range', async () => {
    const { batchJobWireSchema } = await import('../../src/api/schemas');
    const priority = batchJobWireSchema.shape.priority;
    for (const ok of [PRIORITY_MIN, -1, 1, PRIORITY_MAX, undefined]) assert.equal(priority.safeParse(ok).success, true, String(ok));
    for (const bad of [PRIORITY_MIN - 1, PRIORITY_MAX + 1, 0.5, '1']) assert.equal(priority.safeParse(bad).success, false, String(bad));
    assert.match(priority.unwrap().description ?? '', /^batchd extension: higher runs first; a pool's queue orders by priority, then arrival; -1000 to 1000, default 0\. /);
  });
});
