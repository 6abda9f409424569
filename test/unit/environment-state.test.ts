/**
 * EnvironmentState: an environment's rules without Temporal — the admission and change checks (with
 * the exact codes and messages API clients see), snapshot creation and deletion, snapshotImageRef
 * following the latest READY snapshot, the delete decision, pruning, what the reporter writes next,
 * and the carried state across continue-as-new (the unversioned shape every run so far has written).
 * A property test drives random sequences against a small reference model.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DISCONNECTED_MESSAGE, type Environment } from '../../src/domain/environment-model';
import { ENVIRONMENT_PRUNE_MIN, type EnvironmentCarriedState, EnvironmentState, listNames } from '../../src/domain/environment-state';
import { ApiError } from '../../src/domain/errors';
import { okStatus } from '../../src/domain/node-pool-model';
import { type Snapshot } from '../../src/domain/snapshot-model';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:00:01.000Z';
const T2 = '2026-01-01T00:00:02.000Z';
const ANN = 'ann@example.com';
const BOB = 'bob@example.com';
const NAME = 'accounts/acme/environments/env';
const job = (n: number | string) => `accounts/acme/batchJobs/j${n}`;
const snapName = (id: string) => `accounts/acme/snapshots/${id}`;

function environment(over: Partial<Environment> = {}): Environment {
  return {
    name: NAME,
    shared: false,
    annotations: {},
    baseImageRef: 'img:1',
    imageRef: 'img:1',
    createTime: T0,
    updateTime: T0,
    createdBy: ANN,
    state: 'DISCONNECTED',
    status: okStatus(DISCONNECTED_MESSAGE),
    ...over,
  };
}

function fresh(over: Partial<Environment> = {}): EnvironmentState {
  return new EnvironmentState({ account: 'acme', environmentId: 'env', environment: environment(over) });
}

/** The refusal `run` throws: its code and message (what the workflow turns into `ApiError:<CODE>`). */
function refusal(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof ApiError, `expected an ApiError, got ${String(err)}`);
    assert.deepEqual(err.details, [], 'the workflow passes code and message only');
    return { code: err.code, message: err.message };
  }
  assert.fail('expected a refusal');
}

/** Reports everything pending, as the reporter loop does; returns what it wrote, in order. */
function reportAll(s: EnvironmentState): string[] {
  const written: string[] = [];
  while (s.hasUnreported) {
    const next = s.takeReport();
    if (next.environment) written.push(`env@${next.version}`);
    for (const n of next.snapshots) if (s.snapshotNamed(n)) written.push(`${n.split('/').pop()}@${next.version}`);
    s.reportedThrough(next.version);
  }
  return written;
}

function snapshotNow(s: EnvironmentState, id: string, time = T1): Snapshot {
  return s.finishSnapshot(s.beginSnapshot(id, time), time);
}

describe('EnvironmentState', () => {
  it('a first run leaves CREATING for DISCONNECTED and reports the environment at version 1; a continued run has nothing to report', () => {
    const s = fresh({ state: 'CREATING', status: okStatus('') });
    assert.equal(s.environment.state, 'DISCONNECTED');
    assert.deepEqual(s.environment.status, okStatus(DISCONNECTED_MESSAGE));
    assert.deepEqual([s.version, s.reported, s.hasUnreported], [1, 0, true]);
    assert.deepEqual(reportAll(s), ['env@1']);
    assert.equal(s.allReported, true);

    const carried: EnvironmentCarriedState = { snapshots: [], jobs: {}, version: 7 };
    const c = new EnvironmentState({ account: 'acme', environmentId: 'env', environment: environment(), carried });
    assert.deepEqual([c.version, c.reported, c.hasUnreported], [7, 7, false]);
  });

  it('a run started on a DELETING environment is deleting from the start', () => {
    const s = fresh({ state: 'DELETING' });
    assert.equal(s.deleting, true);
    assert.deepEqual(refusal(() => s.checkUpdate(ANN)), { code: 'FAILED_PRECONDITION', message: 'environment "env" is being deleted' });
  });

  describe('admission (useEnvironment)', () => {
    it('grants the environment image, or the snapshot image, to its creator; records the job with its snapshot', () => {
      const s = fresh();
      assert.deepEqual(s.checkUse({ jobName: job(1), createdBy: ANN }), { imageRef: 'img:1' });
      assert.deepEqual(s.jobNames(), [], 'a check records nothing');
      assert.deepEqual(s.admit({ jobName: job(1), createdBy: ANN }), { imageRef: 'img:1' });
      snapshotNow(s, 's1');
      assert.deepEqual(s.admit({ jobName: job(2), createdBy: ANN, snapshotId: 's1' }), { imageRef: 'img:1' });
      assert.deepEqual(s.carried().jobs, { [job(1)]: {}, [job(2)]: { snapshotId: 's1' } });
      assert.deepEqual(s.view().jobs, [job(1), job(2)]);
      const none = fresh({ imageRef: undefined, baseImageRef: undefined });
      assert.deepEqual(none.admit({ jobName: job(3), createdBy: ANN }), {}, 'no image: an empty grant');
    });

    it('refuses while deleting (NOT_FOUND), and records nothing', () => {
      const s = fresh();
      s.beginDelete([], ANN, T1);
      const r = refusal(() => s.admit({ jobName: job(1), createdBy: ANN }));
      assert.deepEqual(r, { code: 'NOT_FOUND', message: 'environmentId: environment "env" is being deleted' });
      assert.deepEqual(s.jobNames(), []);
    });

    it('refuses another user unless the environment is shared (PERMISSION_DENIED)', () => {
      const s = fresh();
      assert.deepEqual(refusal(() => s.checkUse({ jobName: job(1), createdBy: BOB })), {
        code: 'PERMISSION_DENIED',
        message: `environmentId: environment "env" belongs to ${ANN} and is not shared; only its creator may use it in a job (or share it: shared=true)`,
      });
      const shared = fresh({ shared: true });
      assert.deepEqual(shared.admit({ jobName: job(1), createdBy: BOB }), { imageRef: 'img:1' });
    });

    it('refuses a snapshot that is missing (NOT_FOUND) or not READY (FAILED_PRECONDITION, with its status)', () => {
      const s = fresh();
      assert.deepEqual(refusal(() => s.checkUse({ jobName: job(1), createdBy: ANN, snapshotId: 'nope' })), {
        code: 'NOT_FOUND',
        message: 'snapshotId: snapshot "nope" not found in environment "env"',
      });
      const creating = s.beginSnapshot('s1', T1);
      assert.deepEqual(refusal(() => s.checkUse({ jobName: job(1), createdBy: ANN, snapshotId: 's1' })), {
        code: 'FAILED_PRECONDITION',
        message: 'snapshotId: snapshot "s1" is CREATING, not READY: recording the image of environment "env"',
      });
      s.finishSnapshot(creating, T1);
      assert.deepEqual(s.checkUse({ jobName: job(1), createdBy: ANN, snapshotId: 's1' }), { imageRef: 'img:1' });

      const none = fresh({ imageRef: undefined, baseImageRef: undefined });
      snapshotNow(none, 'x');
      const r = refusal(() => none.checkUse({ jobName: job(1), createdBy: ANN, snapshotId: 'x' }));
      assert.equal(r.code, 'FAILED_PRECONDITION');
      assert.equal(r.message, 'snapshotId: snapshot "x" is FAILED, not READY: environment "env" has no image to record: it was created without baseImageRef, and this service has no container runtime to capture one');
    });
  });

  describe('changes (PATCH)', () => {
    it('moves updateTime and the version only on a real change', () => {
      const s = fresh();
      reportAll(s);
      assert.equal(s.updateSpec({ shared: false, annotations: {}, baseImageRef: 'img:1' }, T1), false);
      assert.deepEqual([s.version, s.environment.updateTime], [1, T0]);
      assert.equal(s.updateSpec({ shared: true, annotations: { a: 'b' }, displayName: 'D' }, T1), true);
      assert.deepEqual([s.version, s.environment.updateTime, s.environment.shared, s.environment.displayName, s.environment.baseImageRef, s.environment.imageRef], [2, T1, true, 'D', undefined, 'img:1']);
      assert.deepEqual(reportAll(s), ['env@2']);
    });

    it('the validator refuses while deleting first, then another user', () => {
      const s = fresh();
      assert.deepEqual(refusal(() => s.checkUpdate(BOB)), {
        code: 'PERMISSION_DENIED',
        message: `environment "env" belongs to ${ANN} and is not shared; only its creator may change or use it`,
      });
      s.checkUpdate(ANN);
      s.checkUpdate(undefined);
      s.beginDelete([], undefined, T1);
      assert.deepEqual(refusal(() => s.checkUpdate(BOB)), { code: 'FAILED_PRECONDITION', message: 'environment "env" is being deleted' });
      assert.deepEqual(refusal(() => s.updateSpec({ shared: true, annotations: {} }, T2)), { code: 'FAILED_PRECONDITION', message: 'environment "env" is being deleted' });
    });
  });

  describe('snapshots', () => {
    it('CREATING, then READY recording the image; snapshotImageRef follows; FAILED without an image', () => {
      const s = fresh();
      reportAll(s);
      const snap = s.beginSnapshot('s1', T1);
      assert.deepEqual(snap, {
        name: snapName('s1'),
        environmentId: 'env',
        createTime: T1,
        updateTime: T1,
        state: 'CREATING',
        status: okStatus('recording the image of environment "env"'),
      });
      assert.deepEqual(reportAll(s), ['s1@2']);
      s.finishSnapshot(snap, T2);
      assert.deepEqual([snap.state, snap.imageRef, snap.updateTime], ['READY', 'img:1', T2]);
      assert.deepEqual(Object.keys(snap), ['name', 'environmentId', 'createTime', 'updateTime', 'state', 'status', 'imageRef'], 'the wire shape keeps its key order');
      assert.deepEqual([s.environment.snapshotImageRef, s.environment.updateTime], ['img:1', T2]);
      assert.deepEqual(reportAll(s), ['env@4', 's1@4'], 'the environment first, then the snapshot, at the version of both changes');

      const none = fresh({ imageRef: undefined, baseImageRef: undefined });
      reportAll(none);
      const failed = snapshotNow(none, 'x', T1);
      assert.deepEqual([failed.state, failed.imageRef, failed.status.code], ['FAILED', undefined, 'FAILED_PRECONDITION']);
      assert.equal('snapshotImageRef' in none.environment, false);
      assert.deepEqual(reportAll(none), ['x@3'], 'snapshotImageRef did not change: the environment is not reported');
    });

    it('snapshotImageRef is the image of the latest READY snapshot, and goes away with the last one', () => {
      const ready = (id: string, imageRef: string): Snapshot => ({ name: snapName(id), environmentId: 'env', createTime: T0, updateTime: T0, state: 'READY', status: okStatus(), imageRef });
      const failed: Snapshot = { name: snapName('f'), environmentId: 'env', createTime: T0, updateTime: T0, state: 'FAILED', status: okStatus() };
      const carried: EnvironmentCarriedState = { snapshots: [ready('a', 'img:a'), ready('b', 'img:b'), failed], jobs: {}, version: 5 };
      const s = new EnvironmentState({ account: 'acme', environmentId: 'env', environment: environment({ snapshotImageRef: 'img:b' }), carried });
      s.refreshSnapshotImageRef(T1);
      assert.deepEqual([s.version, s.environment.updateTime], [5, T0], 'unchanged: no new version, no new updateTime');
      const b = s.beginSnapshotDelete('b', [], ANN, T1);
      s.removeSnapshot(b);
      s.refreshSnapshotImageRef(T2);
      assert.deepEqual([s.environment.snapshotImageRef, s.environment.updateTime], ['img:a', T2]);
      s.removeSnapshot(s.beginSnapshotDelete('a', [], ANN, T2));
      s.refreshSnapshotImageRef(T2);
      assert.equal('snapshotImageRef' in s.environment, false, 'absent, not undefined, on the wire');
      assert.deepEqual(s.snapshots.map((x) => x.name), [snapName('f')]);
    });

    it('create: the validator refuses a bad id, an existing one, another user; deleting first', () => {
      const s = fresh();
      snapshotNow(s, 's1');
      assert.deepEqual(refusal(() => s.checkCreateSnapshot('Bad_Id', BOB)), { code: 'INVALID_ARGUMENT', message: 'snapshot id "Bad_Id" is not a valid id' });
      assert.deepEqual(refusal(() => s.checkCreateSnapshot('s1', BOB)), { code: 'ALREADY_EXISTS', message: 'snapshot "s1" already exists' });
      assert.equal(refusal(() => s.checkCreateSnapshot('s2', BOB)).code, 'PERMISSION_DENIED');
      s.checkCreateSnapshot('s2', ANN);
      assert.deepEqual(refusal(() => s.beginSnapshot('s1', T1)), { code: 'ALREADY_EXISTS', message: 'snapshot "s1" already exists' });
      s.beginDelete([], undefined, T1);
      assert.deepEqual(refusal(() => s.checkCreateSnapshot('Bad_Id', BOB)), { code: 'FAILED_PRECONDITION', message: 'environment "env" is being deleted' });
    });

    it('delete: asks about the jobs that use it only, refused while one lives, then DELETING and gone', () => {
      const s = fresh();
      snapshotNow(s, 's1');
      snapshotNow(s, 's2');
      s.admit({ jobName: job(1), createdBy: ANN, snapshotId: 's1' });
      s.admit({ jobName: job(2), createdBy: ANN, snapshotId: 's1' });
      s.admit({ jobName: job(3), createdBy: ANN, snapshotId: 's2' });
      s.admit({ jobName: job(4), createdBy: ANN });
      reportAll(s);
      assert.deepEqual(refusal(() => s.checkDeleteSnapshot('nope', ANN)), { code: 'NOT_FOUND', message: 'snapshot "nope" not found' });
      assert.equal(refusal(() => s.checkDeleteSnapshot('s1', BOB)).code, 'PERMISSION_DENIED');
      const users = s.snapshotUsers('s1');
      assert.deepEqual(users, [job(1), job(2)]);
      s.forgetEnded(users, [job(2)]);
      assert.deepEqual(s.jobNames(), [job(2), job(3), job(4)], 'the ended user is forgotten');
      const v = s.version;
      assert.deepEqual(refusal(() => s.beginSnapshotDelete('s1', [job(2)], ANN, T1)), {
        code: 'FAILED_PRECONDITION',
        message: 'snapshot "s1" is used by live batch job(s) "j2"; delete it after they end (or cancel them)',
      });
      assert.equal(s.version, v, 'a refusal changes nothing');
      const gone = s.beginSnapshotDelete('s1', [], ANN, T1);
      assert.deepEqual([gone.state, gone.status, gone.updateTime], ['DELETING', okStatus(`being deleted by ${ANN}`), T1]);
      assert.deepEqual(reportAll(s), [`s1@${v + 1}`], 'its DELETING state is reported before it is removed');
      s.removeSnapshot(gone);
      assert.equal(s.snapshot('s1'), undefined);
      assert.deepEqual(refusal(() => s.snapshotUsers('s1')), { code: 'NOT_FOUND', message: 'snapshot "s1" not found' });
    });

    it('a snapshot removed before its turn in a report is not written, and its mark is dropped', () => {
      const s = fresh();
      reportAll(s);
      const snap = s.beginSnapshot('s1', T1);
      s.removeSnapshot(snap);
      const next = s.takeReport();
      assert.deepEqual(next, { version: 2, environment: false, snapshots: [] });
    });
  });

  describe('delete', () => {
    it('is refused while a job lives, naming up to five of them', () => {
      const s = fresh();
      assert.deepEqual(refusal(() => s.beginDelete([job(1)], ANN, T1)), {
        code: 'FAILED_PRECONDITION',
        message: 'environment "env" is used by live batch job(s) "j1"; delete it after they end (or cancel them)',
      });
      assert.equal(s.deleting, false);
      const seven = [1, 2, 3, 4, 5, 6, 7].map(job);
      assert.equal(listNames(seven), '"j1", "j2", "j3", "j4", "j5" and 2 more');
      assert.match(refusal(() => s.beginDelete(seven, ANN, T1)).message, /live batch job\(s\) "j1", "j2", "j3", "j4", "j5" and 2 more;/);
    });

    it('takes the environment and every snapshot to DELETING, one version each; then every use or change is refused', () => {
      const s = fresh();
      snapshotNow(s, 's1');
      snapshotNow(s, 's2');
      reportAll(s);
      const v = s.version;
      s.checkDelete(ANN);
      assert.equal(refusal(() => s.checkDelete(BOB)).code, 'PERMISSION_DENIED');
      s.beginDelete([], ANN, T2);
      assert.equal(s.deleting, true);
      assert.deepEqual([s.environment.state, s.environment.status, s.environment.updateTime], ['DELETING', okStatus(`being deleted by ${ANN}`), T2]);
      for (const x of s.snapshots) assert.deepEqual([x.state, x.status, x.updateTime], ['DELETING', okStatus('environment "env" is being deleted'), T2]);
      assert.equal(s.version, v + 3);
      assert.deepEqual(reportAll(s), [`env@${v + 3}`, `s1@${v + 3}`, `s2@${v + 3}`]);
      s.checkDelete(ANN);
      assert.equal(refusal(() => s.checkCreateSnapshot('s3', ANN)).code, 'FAILED_PRECONDITION');
      assert.equal(refusal(() => s.checkDeleteSnapshot('s1', ANN)).code, 'FAILED_PRECONDITION');
      assert.equal(refusal(() => s.checkUse({ jobName: job(1), createdBy: ANN })).code, 'NOT_FOUND');
      const operator = fresh();
      operator.beginDelete([], undefined, T1);
      assert.deepEqual(operator.environment.status, okStatus('being deleted'));
    });
  });

  describe('pruning', () => {
    it(`asks about the jobs from ${ENVIRONMENT_PRUNE_MIN} on, then again when those left have doubled`, () => {
      const s = fresh();
      for (let i = 0; i < ENVIRONMENT_PRUNE_MIN - 1; i++) s.admit({ jobName: job(i), createdBy: ANN });
      assert.equal(s.needsPrune, false);
      s.admit({ jobName: job('last'), createdBy: ANN });
      assert.equal(s.needsPrune, true);
      const asked = s.jobNames();
      const live = asked.slice(0, 40);
      s.forgetEnded(asked, live);
      s.rearmPrune();
      assert.deepEqual(s.jobNames(), live);
      assert.equal(s.needsPrune, false);
      for (let i = 0; i < 39; i++) s.admit({ jobName: job(`n${i}`), createdBy: ANN });
      assert.equal(s.needsPrune, false, '79 < 2 × 40');
      s.admit({ jobName: job('n39'), createdBy: ANN });
      assert.equal(s.needsPrune, true, '80 = 2 × 40');
    });

    it('a continued run sets its threshold from the jobs it carries', () => {
      const jobs: EnvironmentCarriedState['jobs'] = {};
      for (let i = 0; i < 100; i++) jobs[job(i)] = {};
      const s = new EnvironmentState({ account: 'acme', environmentId: 'env', environment: environment(), carried: { snapshots: [], jobs, version: 3 } });
      assert.equal(s.needsPrune, false, 'not at once: the threshold is 200');
      for (let i = 100; i < 199; i++) s.admit({ jobName: job(i), createdBy: ANN });
      assert.equal(s.needsPrune, false);
      s.admit({ jobName: job(199), createdBy: ANN });
      assert.equal(s.needsPrune, true);
    });
  });

  describe('reporting', () => {
    it('takes the environment first, then each changed snapshot once, in the order they first changed, all at the current version', () => {
      const s = fresh();
      assert.deepEqual(s.takeReport(), { version: 1, environment: true, snapshots: [] });
      s.reportedThrough(1);
      const a = s.beginSnapshot('a', T1);
      const b = s.beginSnapshot('b', T1);
      s.finishSnapshot(b, T1);
      s.finishSnapshot(a, T1);
      assert.deepEqual(s.takeReport(), { version: 6, environment: true, snapshots: [snapName('a'), snapName('b')] });
      assert.equal(s.hasUnreported, true, 'not reported until the reporter says so');
      assert.deepEqual(s.takeReport(), { version: 6, environment: false, snapshots: [] }, 'the marks were taken');
      s.reportedThrough(6);
      assert.deepEqual([s.hasUnreported, s.allReported], [false, true]);
    });

    it('a change made while a report is written is reported next, at its own version', () => {
      const s = fresh();
      const first = s.takeReport();
      s.updateSpec({ shared: true, annotations: {} }, T1);
      s.reportedThrough(first.version);
      assert.equal(s.hasUnreported, true);
      assert.deepEqual(s.takeReport(), { version: 2, environment: true, snapshots: [] });
    });
  });

  describe('carried state', () => {
    it('round-trips through JSON: the same view, everything reported, and the shape older runs wrote', () => {
      const s = fresh({ state: 'CREATING' });
      snapshotNow(s, 's1');
      s.admit({ jobName: job(1), createdBy: ANN, snapshotId: 's1' });
      s.admit({ jobName: job(2), createdBy: ANN });
      reportAll(s);
      const wire = JSON.stringify({ environment: s.environment, carried: s.carried() });
      const parsed = JSON.parse(wire) as { environment: Environment; carried: EnvironmentCarriedState };
      assert.deepEqual(Object.keys(parsed.carried), ['snapshots', 'jobs', 'version'], 'no new field: old code can read it, and it reads what old code wrote');
      const back = new EnvironmentState({ account: 'acme', environmentId: 'env', environment: parsed.environment, carried: parsed.carried });
      assert.deepEqual(back.view(), JSON.parse(JSON.stringify(s.view())));
      assert.deepEqual([back.version, back.reported, back.hasUnreported], [s.version, s.version, false]);
      assert.deepEqual(back.checkUse({ jobName: job(3), createdBy: ANN, snapshotId: 's1' }), { imageRef: 'img:1' });
      assert.equal(refusal(() => back.checkCreateSnapshot('s1', ANN)).code, 'ALREADY_EXISTS');
    });

    it('resumes carried state written by the code before this class (a literal from such a run)', () => {
      // As workflows/environment.ts wrote it before EnvironmentState: { snapshots, jobs, version }.
      const old = JSON.parse(
        '{"snapshots":[{"name":"accounts/acme/snapshots/s3","environmentId":"env","createTime":"2026-01-01T00:00:01.000Z","updateTime":"2026-01-01T00:00:02.000Z","state":"READY","status":{"code":"OK","message":"records image img:1"},"imageRef":"img:1"}],' +
          '"jobs":{"accounts/acme/batchJobs/j12":{},"accounts/acme/batchJobs/j15":{"snapshotId":"s3"}},"version":13}',
      ) as EnvironmentCarriedState;
      const s = new EnvironmentState({ account: 'acme', environmentId: 'env', environment: environment({ snapshotImageRef: 'img:1' }), carried: old });
      assert.deepEqual([s.version, s.reported, s.deleting, s.needsPrune], [13, 13, false, false]);
      assert.deepEqual(s.jobNames(), [job(12), job(15)]);
      assert.deepEqual(s.snapshotUsers('s3'), [job(15)]);
      assert.deepEqual(s.checkUse({ jobName: job(16), createdBy: ANN, snapshotId: 's3' }), { imageRef: 'img:1' });
      assert.deepEqual(JSON.parse(JSON.stringify(s.carried())), old, 'carried on unchanged');
    });

    it('does not share its objects with the input it resumed from', () => {
      const carried: EnvironmentCarriedState = { snapshots: [], jobs: {}, version: 1 };
      const s = new EnvironmentState({ account: 'acme', environmentId: 'env', environment: environment(), carried });
      snapshotNow(s, 's1');
      s.admit({ jobName: job(1), createdBy: ANN });
      assert.deepEqual(carried, { snapshots: [], jobs: {}, version: 1 });
    });
  });

  it('property: admissions, snapshots, deletes and prunes agree with a reference model; versions only grow and every change is reported', () => {
    type Op =
      | { kind: 'use'; job: number; snap?: number; other: boolean }
      | { kind: 'snap'; id: number }
      | { kind: 'delSnap'; id: number }
      | { kind: 'live'; job: number; live: boolean }
      | { kind: 'delete' }
      | { kind: 'prune' }
      | { kind: 'report' }
      | { kind: 'patch'; shared: boolean }
      | { kind: 'carry' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('use' as const), job: fc.integer({ min: 0, max: 30 }), snap: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }), other: fc.boolean() }, { requiredKeys: ['kind', 'job', 'other'] }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('snap' as const), id: fc.integer({ min: 0, max: 4 }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('delSnap' as const), id: fc.integer({ min: 0, max: 4 }) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('live' as const), job: fc.integer({ min: 0, max: 30 }), live: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('prune' as const) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('report' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('patch' as const), shared: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('carry' as const) }) },
    );
    fc.assert(
      fc.property(fc.boolean(), fc.array(op, { maxLength: 80 }), (hasImage, ops) => {
        let s = fresh(hasImage ? {} : { imageRef: undefined, baseImageRef: undefined });
        // The model: which snapshots exist (in creation order) and whether READY, which jobs are
        // remembered (and with which snapshot), which jobs live, whether deleting, whether shared.
        const snaps: Array<{ id: string; ready: boolean }> = [];
        const jobs = new Map<string, string | undefined>();
        const live = new Set<string>();
        let deleting = false;
        let shared = false;
        let lastVersion = s.version;
        const expectRefusal = (code: string, run: () => unknown) => assert.equal(refusal(run).code, code);
        for (const o of ops) {
          if (o.kind === 'use') {
            const req = { jobName: job(o.job), createdBy: o.other ? BOB : ANN, ...(o.snap !== undefined ? { snapshotId: `s${o.snap}` } : {}) };
            const snap = o.snap !== undefined ? snaps.find((x) => x.id === `s${o.snap}`) : undefined;
            if (deleting) expectRefusal('NOT_FOUND', () => s.admit(req));
            else if (o.other && !shared) expectRefusal('PERMISSION_DENIED', () => s.admit(req));
            else if (o.snap !== undefined && !snap) expectRefusal('NOT_FOUND', () => s.admit(req));
            else if (snap && !snap.ready) expectRefusal('FAILED_PRECONDITION', () => s.admit(req));
            else {
              const grant = s.admit(req);
              assert.deepEqual(grant, hasImage ? { imageRef: 'img:1' } : {});
              jobs.set(req.jobName, req.snapshotId);
            }
          } else if (o.kind === 'snap') {
            const id = `s${o.id}`;
            if (deleting) expectRefusal('FAILED_PRECONDITION', () => s.beginSnapshot(id, T1));
            else if (snaps.some((x) => x.id === id)) expectRefusal('ALREADY_EXISTS', () => s.beginSnapshot(id, T1));
            else {
              snapshotNow(s, id);
              snaps.push({ id, ready: hasImage });
            }
          } else if (o.kind === 'delSnap') {
            const id = `s${o.id}`;
            const at = snaps.findIndex((x) => x.id === id);
            if (deleting) expectRefusal('FAILED_PRECONDITION', () => s.snapshotUsers(id));
            else if (at < 0) expectRefusal('NOT_FOUND', () => s.snapshotUsers(id));
            else {
              const users = s.snapshotUsers(id);
              assert.deepEqual(users, [...jobs].filter(([, sid]) => sid === id).map(([n]) => n));
              const stillLive = users.filter((n) => live.has(n));
              s.forgetEnded(users, stillLive);
              for (const n of users) if (!live.has(n)) jobs.delete(n);
              if (stillLive.length > 0) expectRefusal('FAILED_PRECONDITION', () => s.beginSnapshotDelete(id, stillLive, ANN, T2));
              else {
                s.removeSnapshot(s.beginSnapshotDelete(id, stillLive, ANN, T2));
                s.refreshSnapshotImageRef(T2);
                snaps.splice(at, 1);
              }
            }
          } else if (o.kind === 'live') {
            if (o.live) live.add(job(o.job));
            else live.delete(job(o.job));
          } else if (o.kind === 'delete') {
            if (deleting) continue; // the workflow's handler returns at once
            const asked = s.jobNames();
            const stillLive = asked.filter((n) => live.has(n));
            s.forgetEnded(asked, stillLive);
            for (const n of asked) if (!live.has(n)) jobs.delete(n);
            if (stillLive.length > 0) expectRefusal('FAILED_PRECONDITION', () => s.beginDelete(stillLive, ANN, T2));
            else {
              s.beginDelete(stillLive, ANN, T2);
              deleting = true;
            }
          } else if (o.kind === 'prune') {
            const asked = s.jobNames();
            s.forgetEnded(asked, asked.filter((n) => live.has(n)));
            s.rearmPrune();
            for (const n of asked) if (!live.has(n)) jobs.delete(n);
          } else if (o.kind === 'report') {
            reportAll(s);
            assert.equal(s.allReported, true);
          } else if (o.kind === 'patch') {
            if (deleting) expectRefusal('FAILED_PRECONDITION', () => s.updateSpec({ shared: o.shared, annotations: {}, baseImageRef: hasImage ? 'img:1' : undefined }, T1));
            else {
              const changed = s.updateSpec(hasImage ? { shared: o.shared, annotations: {}, baseImageRef: 'img:1' } : { shared: o.shared, annotations: {} }, T1);
              assert.equal(changed, o.shared !== shared);
              shared = o.shared;
            }
          } else {
            // Continue-as-new: only once everything is reported, as the workflow waits for that.
            reportAll(s);
            const wire = JSON.parse(JSON.stringify({ environment: s.environment, carried: s.carried() })) as { environment: Environment; carried: EnvironmentCarriedState };
            const back = new EnvironmentState({ account: 'acme', environmentId: 'env', environment: wire.environment, carried: wire.carried });
            assert.deepEqual(back.view(), JSON.parse(JSON.stringify(s.view())));
            s = back;
          }
          // Invariants after every step.
          assert.ok(s.version >= lastVersion, 'versions only grow');
          lastVersion = s.version;
          assert.ok(s.reported <= s.version);
          assert.equal(s.deleting, deleting);
          assert.deepEqual(s.snapshots.map((x) => x.name), snaps.map((x) => snapName(x.id)), 'snapshots in creation order');
          assert.deepEqual(new Set(s.jobNames()), new Set(jobs.keys()));
          const latestReady = [...snaps].reverse().find((x) => x.ready);
          assert.equal(s.environment.snapshotImageRef, latestReady ? 'img:1' : undefined, 'snapshotImageRef follows the latest READY snapshot');
          if (deleting) {
            assert.equal(s.environment.state, 'DELETING');
            for (const x of s.snapshots) assert.equal(x.state, 'DELETING');
          } else for (const x of s.snapshots) assert.equal(x.state, hasImage ? 'READY' : 'FAILED');
        }
        reportAll(s);
        assert.equal(s.allReported, true, 'everything is reported in the end');
      }),
      { numRuns: 300 },
    );
  });
});
