/**
 * The rules of reading logs by attempt: the `attempt` and `ranks` query parameters (400 naming the
 * parameter for a bad value), page-token cursors of today and of before attempts, and how an agent
 * keys a job's attempts (attempt 1 keeps the plain job name).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ApiError } from '../../src/domain/errors';
import { attemptOf, logCursorOf, MAX_LOG_ATTEMPT, parseLogAttempt, parseLogRanks, runKey } from '../../src/domain/log-query';

function rejects(parse: () => unknown, field: string, pattern: RegExp): void {
  assert.throws(parse, (err: unknown) => {
    assert.ok(err instanceof ApiError);
    assert.equal(err.httpStatus, 400);
    assert.equal(err.code, 'INVALID_ARGUMENT');
    const violation = err.details[0]?.fieldViolations?.[0];
    assert.equal(violation?.field, field);
    assert.match(violation.description, pattern);
    return true;
  });
}

describe('the attempt query parameter', () => {
  it('is absent when not given or empty', () => {
    assert.equal(parseLogAttempt(undefined), undefined);
    assert.equal(parseLogAttempt(''), undefined);
  });

  it('takes attempt numbers from 1 up to the column’s limit', () => {
    assert.equal(parseLogAttempt('1'), 1);
    assert.equal(parseLogAttempt('2'), 2);
    assert.equal(parseLogAttempt('0010'), 10);
    assert.equal(parseLogAttempt(String(MAX_LOG_ATTEMPT)), MAX_LOG_ATTEMPT);
  });

  it('refuses anything else with 400 INVALID_ARGUMENT naming attempt', () => {
    for (const bad of ['0', '-1', '1.5', 'two', ' 2', '2 ', '1e3', '+2', String(MAX_LOG_ATTEMPT + 1), '99999999999']) {
      rejects(() => parseLogAttempt(bad), 'attempt', /must be an attempt number .*, got "/);
    }
    rejects(() => parseLogAttempt(['1', '2']), 'attempt', /at most once/);
    rejects(() => parseLogAttempt('9'.repeat(100)), 'attempt', /…"$/);
  });

  it('accepts exactly the decimal numbers 1..MAX_LOG_ATTEMPT', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (text) => {
        const valid = /^\d+$/.test(text) && text.length <= 10 && Number(text) >= 1 && Number(text) <= MAX_LOG_ATTEMPT;
        if (text === '') return;
        if (valid) assert.equal(parseLogAttempt(text), Number(text));
        else assert.throws(() => parseLogAttempt(text), ApiError);
      }),
    );
  });
});

describe('the ranks query parameter', () => {
  it('takes one or repeated rank numbers, and names ranks for a bad one', () => {
    assert.equal(parseLogRanks(undefined), undefined);
    assert.deepEqual(parseLogRanks('3'), [3]);
    assert.deepEqual(parseLogRanks(['0', '2']), [0, 2]);
    rejects(() => parseLogRanks(['0', 'x']), 'ranks', /"x" is not a rank number/);
    rejects(() => parseLogRanks('-1'), 'ranks', /"-1" is not a rank number/);
  });
});

describe('log page cursors', () => {
  it('reads today’s (time, attempt, rank, seq)', () => {
    assert.deepEqual(logCursorOf(['2026-01-01T00:00:00.000Z', 2, 3, 4]), ['2026-01-01T00:00:00.000Z', 2, 3, 4]);
  });

  it('reads a token’s (time, rank, seq) from before attempts as attempt 1', () => {
    assert.deepEqual(logCursorOf(['2026-01-01T00:00:00.000Z', 3, 4]), ['2026-01-01T00:00:00.000Z', 1, 3, 4]);
  });

  it('refuses any other shape', () => {
    for (const bad of [undefined, 'x', [], ['t'], ['t', 1], [1, 2, 3], ['t', '1', 2], ['t', 1.5, 2, 3], ['t', 1, 2, 3, 4], { 0: 't' }]) {
      assert.equal(logCursorOf(bad), undefined, JSON.stringify(bad));
    }
  });
});

describe('an agent’s key of a job’s attempt', () => {
  const JOB = 'accounts/a/batchJobs/j';

  it('is the job’s name for attempt 1 (given or absent), as before retries', () => {
    assert.equal(runKey(JOB, undefined), JOB);
    assert.equal(runKey(JOB, 1), JOB);
    assert.equal(attemptOf(undefined), 1);
  });

  it('differs for every later attempt and every other job', () => {
    const keys = new Set<string>();
    for (const job of [JOB, 'accounts/a/batchJobs/j2', 'accounts/b/batchJobs/j']) for (let a = 1; a <= 10; a++) keys.add(runKey(job, a));
    assert.equal(keys.size, 30);
    assert.equal(runKey(JOB, 2), `${JOB}@attempt-2`);
  });
});
