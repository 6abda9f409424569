/**
 * JobWorkflowState: a batch job's workflow rules without Temporal — which stop, grant, refusal,
 * preemption and dependency end counts; what visibility must be told at each transition; the
 * version bookkeeping of reports and PATCHes (with the exact codes and messages API clients see);
 * the query's view and the UI's summary. A property test drives random message sequences against a
 * small reference model of the stop and answer rules.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type BatchJob, type BatchJobState } from '../../src/domain/batch-job-model';
import { IllegalTransition, isCancellable } from '../../src/domain/batch-job-lifecycle';
import { ApiError } from '../../src/domain/errors';
import { JobWorkflowState, requesterOf } from '../../src/domain/job-workflow-state';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:00:01.000Z';

function created(): BatchJob {
  return {
    name: 'accounts/acme/batchJobs/j',
    nodePoolId: 'gpu',
    numRanks: 3,
    envVars: {},
    shellExecutor: { command: 'true' },
    annotations: {},
    shared: false,
    createTime: T0,
    updateTime: T0,
    createdBy: 'ann@acme.dev',
    state: 'CREATING',
    status: 'accepted',
  };
}

type Grant = { hosts: string[] };

/** A job the API admitted: its record (version 1) written, visible as QUEUED from its start. */
function admitted(): JobWorkflowState<Grant> {
  const s = new JobWorkflowState<Grant>({ job: created(), reported: 1 });
  s.indexedAs('QUEUED');
  return s;
}

function running(): JobWorkflowState<Grant> {
  const s = admitted();
  s.transition({ type: 'validated', status: 'queued' }, T1);
  s.transition({ type: 'granted', status: 'starting' }, T1);
  s.transition({ type: 'started', status: 'running' }, T1);
  return s;
}

function refusal(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof ApiError, `expected an ApiError, got ${String(err)}`);
    return { code: err.code, message: err.message };
  }
  assert.fail('expected a refusal');
}

describe('JobWorkflowState', () => {
  it('tells visibility only what it does not already say, never PENDING', () => {
    const s = admitted();
    assert.equal(s.transition({ type: 'validated', status: 'queued' }, T1), undefined, 'started QUEUED');
    assert.equal(s.transition({ type: 'granted', status: 'starting' }, T1), undefined, 'PENDING is not indexed');
    assert.equal(s.transition({ type: 'started', status: 'running' }, T1), 'RUNNING');
    assert.equal(s.transition({ type: 'status', status: 'still running' }, T1), undefined);
    assert.equal(s.transition({ type: 'succeeded', status: 'done' }, T1), 'COMPLETED');
    assert.equal(s.version, 6);
    assert.equal(s.job.startTime, T1);

    // A child job started without batchd's attributes: its own upsert said CREATING.
    const child = new JobWorkflowState<Grant>({ job: created(), reported: 0 });
    child.indexedAs('CREATING');
    assert.equal(child.transition({ type: 'validated', status: 'queued' }, T1), 'QUEUED');
  });

  it('refuses a transition the lifecycle does not allow, and changes nothing', () => {
    const s = admitted();
    assert.throws(() => s.transition({ type: 'started', status: 'x' }, T1), IllegalTransition);
    assert.equal(s.version, 1);
    assert.equal(s.state, 'CREATING');
  });

  it('counts reports by version: unreported after a change until the reporter writes that version; an older write lowers nothing', () => {
    const s = admitted();
    assert.equal(s.unreported, false, 'the API wrote version 1');
    s.transition({ type: 'validated', status: 'queued' }, T1);
    s.transition({ type: 'status', status: 'queued again' }, T1);
    assert.equal(s.unreported, true);
    s.reportedThrough(3);
    assert.equal(s.unreported, false);
    s.reportedThrough(2);
    assert.equal(s.reported, 3);
    assert.equal(new JobWorkflowState<Grant>({ job: created(), reported: 0 }).unreported, true, 'a child job reports its CREATING record');
  });

  it('keeps the first stop: a delete outranks a cancel, a second cancel or delete changes nothing, a cancel after the end is ignored', () => {
    const s = admitted();
    assert.equal(s.askCancel('ann'), 'taken');
    assert.equal(s.askCancel('bob'), 'already-stopping');
    assert.equal(s.askDelete('bob'), 'taken');
    assert.equal(s.askDelete('cid'), 'already-stopping');
    assert.deepEqual([s.cancelBy, s.deleteBy, s.stopWanted], ['ann', 'bob', true]);
    assert.equal(s.askCancel('dan'), 'already-stopping', 'nothing is cancelled once deleted');

    const ended = running();
    ended.transition({ type: 'succeeded', status: 'done' }, T1);
    assert.equal(ended.askCancel('ann'), 'not-cancellable');
    assert.equal(ended.stopWanted, false);
    assert.equal(ended.askDelete('ann'), 'taken', 'an ended job can still be deleted');
  });

  it('names who asked, or an operator when the payload does not', () => {
    assert.equal(requesterOf({ requestedBy: 'ann@acme.dev' }), 'ann@acme.dev');
    for (const r of [undefined, {}, { requestedBy: '' }, { requestedBy: 7 }]) assert.equal(requesterOf(r), 'an operator');
  });

  it('keeps an attempt\'s first grant and first refusal; a new attempt forgets them, and its preemption', () => {
    const s = running();
    s.granted({ hosts: ['a'] });
    s.granted({ hosts: ['b'] });
    s.refused('no');
    s.refused('never');
    assert.deepEqual([s.grant, s.refusal], [{ hosts: ['a'] }, 'no']);
    assert.equal(s.preempt('accounts/acme/batchJobs/vip', 'priority'), true);
    s.nextAttempt(2);
    assert.deepEqual([s.grant, s.refusal, s.preemption, s.job.attempt], [undefined, undefined, undefined, 2]);
    s.granted({ hosts: ['c'] });
    assert.deepEqual(s.dropGrant(), { hosts: ['c'] });
    assert.equal(s.grant, undefined);
  });

  it('is preempted only while it holds capacity (PENDING or RUNNING), by the first request that names who', () => {
    const queued = admitted();
    queued.transition({ type: 'validated', status: 'queued' }, T1);
    assert.equal(queued.preempt('x', 'y'), false);
    const s = running();
    assert.equal(s.preempt(42, 'no name'), false);
    assert.equal(s.preempt('accounts/acme/batchJobs/vip', 7), true);
    assert.equal(s.preempt('accounts/acme/batchJobs/other', 'later'), false);
    assert.deepEqual(s.preemption, { by: 'accounts/acme/batchJobs/vip' });
  });

  it('refuses a PATCH of a job being deleted or a bad patch with the API\'s codes; applies a good one at the next version', () => {
    const s = running();
    assert.deepEqual(refusal(() => s.checkPatch({ displayName: 5 })).code, 'INVALID_ARGUMENT');
    s.checkPatch({ displayName: 'new' });
    assert.equal(s.applyPatch({ displayName: 'new' }, T1), s.version);
    assert.equal(s.job.displayName, 'new');
    s.askDelete('ann');
    assert.deepEqual(refusal(() => s.checkPatch({ displayName: 'x' })), { code: 'FAILED_PRECONDITION', message: 'the job is being deleted' });
    const deleting = running();
    deleting.transition({ type: 'delete-requested', status: 'being deleted' }, T1);
    assert.equal(refusal(() => deleting.checkPatch({})).code, 'FAILED_PRECONDITION');
  });

  it('keeps watchers once each, and the first end heard of each dependency (null: deleted)', () => {
    const s = admitted();
    for (const w of ['w1', 'w2', 'w1', '', 3]) s.addWatcher(w);
    assert.deepEqual(s.watchers, ['w1', 'w2']);
    s.dependencyEnded('d1', 'FAILED');
    s.dependencyEnded('d1', 'COMPLETED');
    s.dependencyEnded('d2', undefined);
    s.dependencyEnded(7, 'COMPLETED');
    assert.deepEqual([...s.dependencyEnds], [['d1', 'FAILED'], ['d2', null]]);
  });

  it('answers the query with the placement only while it has one, and summarises ranks by host', () => {
    const s = running();
    assert.deepEqual(Object.keys(s.view()), ['job', 'version']);
    s.placed({ masterAddr: '10.0.0.1', masterPort: 29500, ranks: [{ rank: 0, host: 'h1', slot: 0 }, { rank: 1, host: 'h1', slot: 1 }, { rank: 2, host: 'h2', slot: 0 }] });
    assert.equal(s.view().placement?.masterPort, 29500);
    assert.equal(s.summary(), ['**RUNNING** · running', '', '3 rank(s) on node pool `gpu`, created by ann@acme.dev', '', 'master 10.0.0.1:29500', '', '- h1: ranks 0, 1', '- h2: ranks 2'].join('\n'));
    s.clearPlacement();
    assert.equal(s.view().placement, undefined);
  });

  it('follows a reference model of stops and answers over random message sequences', () => {
    type Op =
      | { k: 'cancel'; by: string }
      | { k: 'delete'; by: string }
      | { k: 'grant'; id: number }
      | { k: 'refuse'; reason: string }
      | { k: 'preempt'; by: string }
      | { k: 'advance' }
      | { k: 'retry' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant('cancel' as const), by: fc.constantFrom('a', 'b') }),
      fc.record({ k: fc.constant('delete' as const), by: fc.constantFrom('c', 'd') }),
      fc.record({ k: fc.constant('grant' as const), id: fc.nat(5) }),
      fc.record({ k: fc.constant('refuse' as const), reason: fc.constantFrom('r1', 'r2') }),
      fc.record({ k: fc.constant('preempt' as const), by: fc.constantFrom('p1', 'p2') }),
      fc.constant({ k: 'advance' as const }),
      fc.constant({ k: 'retry' as const }),
    );
    // The happy path's states in order; `advance` moves one step along it.
    const path: Array<[BatchJobState, Parameters<JobWorkflowState<Grant>['transition']>[0]['type']]> = [
      ['QUEUED', 'validated'],
      ['PENDING', 'granted'],
      ['RUNNING', 'started'],
      ['COMPLETED', 'succeeded'],
    ];
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const s = new JobWorkflowState<Grant>({ job: created(), reported: 1 });
        const ref: { state: BatchJobState; cancel?: string; del?: string; grant?: number; refusal?: string; preempt?: string; attempt: number; step: number } = { state: 'CREATING', attempt: 1, step: 0 };
        for (const o of ops) {
          switch (o.k) {
            case 'cancel':
              if (ref.cancel === undefined && ref.del === undefined && isCancellable(ref.state)) ref.cancel = o.by;
              s.askCancel(o.by);
              break;
            case 'delete':
              ref.del ??= o.by;
              s.askDelete(o.by);
              break;
            case 'grant':
              ref.grant ??= o.id;
              s.granted({ hosts: [String(o.id)] });
              break;
            case 'refuse':
              ref.refusal ??= o.reason;
              s.refused(o.reason);
              break;
            case 'preempt':
              if (ref.preempt === undefined && (ref.state === 'PENDING' || ref.state === 'RUNNING')) ref.preempt = o.by;
              s.preempt(o.by, undefined);
              break;
            case 'advance': {
              const next = path[ref.step];
              if (!next) break;
              s.transition({ type: next[1], status: next[0] }, T1);
              ref.state = next[0];
              ref.step++;
              break;
            }
            case 'retry':
              if (ref.state !== 'PENDING' && ref.state !== 'RUNNING') break;
              ref.attempt++;
              s.nextAttempt(ref.attempt);
              s.transition({ type: 'requeued', status: 'again' }, T1);
              Object.assign(ref, { state: 'QUEUED', step: 1, grant: undefined, refusal: undefined, preempt: undefined });
              break;
          }
          assert.equal(s.state, ref.state);
          assert.equal(s.cancelBy, ref.cancel);
          assert.equal(s.deleteBy, ref.del);
          assert.equal(s.stopWanted, ref.cancel !== undefined || ref.del !== undefined);
          assert.equal(s.grant?.hosts[0], ref.grant === undefined ? undefined : String(ref.grant));
          assert.equal(s.refusal, ref.refusal);
          assert.equal(s.preemption?.by, ref.preempt);
        }
      }),
      { numRuns: 300 },
    );
  });
});
