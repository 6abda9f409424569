import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BatchJob } from '../../src/domain/batch-job';
import { apply, canTransition, IllegalTransition, isCancellable } from '../../src/domain/batch-job-lifecycle';

const T0 = '2026-01-01T00:00:00Z';
const T1 = '2026-01-01T00:00:05Z';

function job(state: BatchJob['state']): BatchJob {
  return {
    name: 'accounts/a/batchJobs/j',
    nodePoolId: 'p',
    numRanks: 1,
    envVars: {},
    annotations: {},
    shared: false,
    shellExecutor: { command: 'true' },
    createTime: T0,
    updateTime: T0,
    createdBy: 'u@a',
    state,
    status: 'x',
  };
}

describe('batch job lifecycle', () => {
  it('walks the happy path and sets the contract timestamps', () => {
    let j = job('CREATING');
    j = apply(j, { type: 'validated', status: 'queued' }, T0);
    assert.equal(j.state, 'QUEUED');
    j = apply(j, { type: 'granted', status: 'starting' }, T0);
    assert.equal(j.state, 'PENDING');
    assert.equal(j.startTime, undefined);
    j = apply(j, { type: 'started', status: 'running' }, T1);
    assert.equal(j.state, 'RUNNING');
    assert.equal(j.startTime, T1);
    j = apply(j, { type: 'succeeded', status: 'done' }, '2026-01-01T00:01:00Z');
    assert.equal(j.state, 'COMPLETED');
    assert.equal(j.endTime, '2026-01-01T00:01:00Z');
    assert.equal(j.updateTime, '2026-01-01T00:01:00Z');
    assert.equal(j.status, 'done');
  });

  it('refuses transitions the contract does not draw', () => {
    assert.throws(() => apply(job('COMPLETED'), { type: 'cancel-requested', status: 'x' }, T1), IllegalTransition);
    assert.throws(() => apply(job('QUEUED'), { type: 'started', status: 'x' }, T1), IllegalTransition);
    assert.throws(() => apply(job('DELETING'), { type: 'delete-requested', status: 'x' }, T1), IllegalTransition);
    assert.throws(() => apply(job('FAILED'), { type: 'status', status: 'x' }, T1), IllegalTransition);
  });

  it('lets delete in from every state but DELETING', () => {
    for (const s of ['CREATING', 'QUEUED', 'PENDING', 'RUNNING', 'CANCELLING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const) {
      assert.ok(canTransition(s, 'DELETING'), s);
    }
    assert.equal(canTransition('DELETING', 'DELETING'), false);
  });

  it('accepts cancel only from CREATING, QUEUED, PENDING and RUNNING', () => {
    assert.deepEqual(
      (['CREATING', 'QUEUED', 'PENDING', 'RUNNING', 'CANCELLING', 'COMPLETED', 'FAILED', 'CANCELLED', 'DELETING'] as const).filter(isCancellable),
      ['CREATING', 'QUEUED', 'PENDING', 'RUNNING'],
    );
  });

  it('sets endTime on every terminal state and never mutates its input', () => {
    const before = job('CANCELLING');
    const after = apply(before, { type: 'cancelled', status: 'cancelled by u@a' }, T1);
    assert.equal(after.endTime, T1);
    assert.equal(before.state, 'CANCELLING');
    assert.equal(before.endTime, undefined);
  });
});
