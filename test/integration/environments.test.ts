/**
 * Environments and snapshots end to end on a real Temporal dev server, through real HTTP: the resource
 * and its states, imageRef fixed at creation, snapshots CREATING → READY (or FAILED without an image),
 * jobs that use an environment (image exposed to ranks; every admission rule), deletes refused while a
 * live job uses the environment or snapshot, :connect/:disconnect 501, and :batchDelete all-or-nothing.
 *
 * A second user of the account (bob) acts through the service layer with his own principal: the API
 * has one key per test service, and the rules under test live below HTTP (service and workflow).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Principal } from '../../src/api/auth';
import { EnvironmentService } from '../../src/api/environment-service';
import { batchJobCreateSchema } from '../../src/domain/batch-job';
import { ApiError } from '../../src/domain/errors';
import { parseOrThrow } from '../../src/domain/validation';
import { type BatchJobInput, cancelSignal, getEnvironmentQuery, useEnvironmentUpdate } from '../../workflows/messages';
import { type BatchJobBody, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const ADMIN = 'admin@localhost';
const bob: Principal = { account: 'default', email: 'bob@localhost', keyId: 'bob' };

interface Env {
  name: string;
  displayName?: string;
  createTime: string;
  updateTime: string;
  createdBy: string;
  state: string;
  status: { code: string; message: string };
  baseImageRef?: string;
  imageRef?: string;
  snapshotImageRef?: string;
  shared: boolean;
  annotations: Record<string, string>;
  connection?: unknown;
}

interface Snap {
  name: string;
  environmentId: string;
  createTime: string;
  updateTime: string;
  state: string;
  status: { code: string; message: string };
  imageRef?: string;
}

interface ErrorBody {
  code: number;
  message: string;
  details: Array<{ fieldViolations?: Array<{ field: string }> }>;
}

const idOf = (name: string) => name.split('/').pop() ?? name;

describe('environments and snapshots', () => {
  let t: TestService;
  let bobs: EnvironmentService;

  before(async () => {
    t = await startTestService();
    bobs = new EnvironmentService({ client: t.service.client, store: t.service.store, taskQueue: t.service.config.TASK_QUEUE, logger: t.service.logger });
  });
  after(async () => {
    await t?.stop();
  });

  const createEnv = (id: string, environment: Record<string, unknown> = {}) => t.api.post<Env>(`${A}/environments`, { environment, environmentId: id });
  const snapshot = async (environmentId: string): Promise<Snap> => {
    const r = await t.api.post<Snap>(`${A}/snapshots`, { environmentId });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const gone = (path: string) => waitFor(`${path} to be gone`, async () => ((await t.api.get(path)).status === 404 ? true : undefined));
  const job = (id: string, body: Record<string, unknown>) =>
    t.api.post<BatchJobBody & ErrorBody>(`${A}/batchJobs?batchJobId=${id}`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'true' }, ...body });
  /** A job that runs until cancelled. */
  const longJob = (id: string, body: Record<string, unknown>) =>
    job(id, { shellExecutor: { command: `echo "image=$BATCH_JOB_IMAGE_REF"; sleep 600.${Date.now() % 1000}` }, ...body });
  const expectError = (r: { status: number; body: ErrorBody }, status: number, code: number, message: RegExp) => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal(r.body.code, code, JSON.stringify(r.body));
    assert.match(r.body.message, message);
  };

  it('creates an environment DISCONNECTED with the published fields; get, list (name order), update and delete it', async () => {
    const created = await createEnv('train', { displayName: 'Training', baseImageRef: 'ghcr.io/org/train:1', annotations: { team: 'ml' } });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const env = created.body;
    assert.equal(env.name, 'accounts/default/environments/train');
    assert.equal(env.displayName, 'Training');
    assert.equal(env.createdBy, ADMIN);
    assert.equal(env.state, 'DISCONNECTED');
    assert.equal(env.status.code, 'OK');
    assert.match(env.status.message, /interactive sessions are not supported/);
    assert.equal(env.baseImageRef, 'ghcr.io/org/train:1');
    assert.equal(env.imageRef, 'ghcr.io/org/train:1', 'imageRef is the baseImageRef at creation');
    assert.equal(env.snapshotImageRef, undefined, 'no snapshot yet');
    assert.equal(env.shared, false);
    assert.deepEqual(env.annotations, { team: 'ml' });
    assert.equal(env.connection, undefined);
    assert.ok(env.createTime && env.updateTime);

    const got = await t.api.get<Env>(`${A}/environments/train`);
    assert.equal(got.status, 200);
    assert.equal(got.body.state, 'DISCONNECTED');
    assert.equal(got.body.imageRef, 'ghcr.io/org/train:1');
    const masked = await t.api.get<Record<string, unknown>>(`${A}/environments/train?readMask=name,imageRef`);
    assert.deepEqual(masked.body, { name: env.name, imageRef: 'ghcr.io/org/train:1' });

    assert.equal((await createEnv('train', {})).status, 409, 'the same environmentId twice');
    expectError(await t.api.post(`${A}/environments`, { environment: { connection: { nodePoolId: 'default-cpu' } }, environmentId: 'conn' }), 400, 3, /connection/);
    expectError(await t.api.post(`${A}/environments`, { environment: {}, environmentId: 'Bad_Id' }), 400, 3, /environmentId/);

    assert.equal((await createEnv('zeta')).status, 200);
    assert.equal((await createEnv('alpha')).status, 200);
    const list = await t.api.get<{ environments: Env[]; totalSize: number; nextPageToken: string }>(`${A}/environments`);
    assert.equal(list.status, 200, JSON.stringify(list.body));
    const names = list.body.environments.map((e) => idOf(e.name));
    assert.deepEqual(names, [...names].sort(), 'default order is name');
    for (const id of ['alpha', 'train', 'zeta']) assert.ok(names.includes(id), `${id} is listed`);
    assert.equal(list.body.totalSize, names.length);
    const paged = await t.api.get<{ environments: Env[]; nextPageToken: string }>(`${A}/environments?pageSize=1`);
    assert.equal(paged.body.environments.length, 1);
    assert.ok(paged.body.nextPageToken, 'a next page');

    // PATCH: baseImageRef may change, imageRef never does.
    const patched = await t.api.patch<Env>(`${A}/environments/train?updateMask=baseImageRef,displayName`, { baseImageRef: 'ghcr.io/org/train:2' });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.baseImageRef, 'ghcr.io/org/train:2');
    assert.equal(patched.body.imageRef, 'ghcr.io/org/train:1', 'imageRef is fixed at creation');
    assert.equal(patched.body.displayName, undefined, 'a masked field absent from the body is cleared');
    assert.ok(patched.body.updateTime > env.updateTime, 'updateTime moves on a change');
    const same = await t.api.patch<Env>(`${A}/environments/train`, { baseImageRef: 'ghcr.io/org/train:2' });
    assert.equal(same.body.updateTime, patched.body.updateTime, 'no change, no new updateTime');
    expectError(await t.api.patch(`${A}/environments/train?updateMask=imageRef`, { imageRef: 'x:1' }), 400, 3, /imageRef/);
    const ignored = await t.api.patch<Env>(`${A}/environments/train`, { imageRef: 'other:9', shared: true });
    assert.equal(ignored.status, 200);
    assert.equal(ignored.body.imageRef, 'ghcr.io/org/train:1', 'an output-only imageRef in the body is ignored');
    assert.equal(ignored.body.shared, true);
    const reread = await t.api.get<Env>(`${A}/environments/train`);
    assert.equal(reread.body.baseImageRef, 'ghcr.io/org/train:2');
    assert.equal(reread.body.imageRef, 'ghcr.io/org/train:1');
    const listed = await t.api.get<{ environments: Env[] }>(`${A}/environments?filter=${encodeURIComponent('name = "accounts/default/environments/train"')}`);
    assert.equal(listed.body.environments[0]?.baseImageRef, 'ghcr.io/org/train:2', 'the read model has the update when PATCH returns');
    expectError(await t.api.patch(`${A}/environments/nope`, { shared: true }), 404, 5, /nope/);

    const del = await t.api.delete(`${A}/environments/zeta`);
    assert.equal(del.status, 200);
    assert.deepEqual(del.body, {});
    await gone(`${A}/environments/zeta`);
    const after = await t.api.get<{ environments: Env[] }>(`${A}/environments`);
    assert.ok(!after.body.environments.some((e) => e.name.endsWith('/zeta')), 'absent from list');
    assert.equal((await t.api.delete(`${A}/environments/zeta`)).status, 404);
    assert.equal((await createEnv('zeta')).status, 200, 'the id is free again once deleted');
  });

  it('snapshots: create answers READY recording the environment image (FAILED without one); list in create_time order, get, delete', async () => {
    const env = (await createEnv('snappy', { baseImageRef: 'ghcr.io/org/snappy:3' })).body;
    const first = await snapshot('snappy');
    assert.match(first.name, /^accounts\/default\/snapshots\/[a-z][a-z0-9]{11}$/);
    assert.equal(first.environmentId, 'snappy');
    assert.equal(first.state, 'READY');
    assert.equal(first.imageRef, 'ghcr.io/org/snappy:3');
    assert.match(first.status.message, /no container runtime/);
    const second = await snapshot('snappy');
    assert.notEqual(second.name, first.name);

    const withSnap = await t.api.get<Env>(`${A}/environments/snappy`);
    assert.equal(withSnap.body.snapshotImageRef, 'ghcr.io/org/snappy:3', 'snapshotImageRef: the latest READY snapshot');
    assert.ok(withSnap.body.updateTime > env.updateTime);

    const got = await t.api.get<Snap>(`${A}/snapshots/${idOf(first.name)}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, first);

    const list = await t.api.get<{ snapshots: Snap[]; totalSize: number }>(`${A}/snapshots`);
    assert.equal(list.status, 200);
    const mine = list.body.snapshots.filter((s) => s.environmentId === 'snappy').map((s) => s.name);
    assert.deepEqual(mine, [first.name, second.name], 'default order is create_time');
    const desc = await t.api.get<{ snapshots: Snap[] }>(`${A}/snapshots?orderBy=${encodeURIComponent('create_time desc')}`);
    assert.deepEqual(desc.body.snapshots.filter((s) => s.environmentId === 'snappy').map((s) => s.name), [second.name, first.name]);

    expectError(await t.api.post(`${A}/snapshots`, {}), 400, 3, /environmentId/);
    expectError(await t.api.post(`${A}/snapshots`, { environmentId: 'no-such-env' }), 404, 5, /no-such-env/);

    // Without an image there is nothing to record: the snapshot is FAILED and says why.
    await createEnv('bare');
    const failed = await snapshot('bare');
    assert.equal(failed.state, 'FAILED');
    assert.equal(failed.status.code, 'FAILED_PRECONDITION');
    assert.match(failed.status.message, /without baseImageRef/);
    assert.equal(failed.imageRef, undefined);
    assert.equal((await t.api.get<Env>(`${A}/environments/bare`)).body.snapshotImageRef, undefined, 'a FAILED snapshot is no snapshotImageRef');

    assert.equal((await t.api.delete(`${A}/snapshots/${idOf(first.name)}`)).status, 200);
    assert.equal((await t.api.get(`${A}/snapshots/${idOf(first.name)}`)).status, 404);
    assert.equal((await t.api.get<Env>(`${A}/environments/snappy`)).body.snapshotImageRef, 'ghcr.io/org/snappy:3', 'the second is still READY');
    assert.equal((await t.api.delete(`${A}/snapshots/${idOf(second.name)}`)).status, 200);
    assert.equal((await t.api.get<Env>(`${A}/environments/snappy`)).body.snapshotImageRef, undefined, 'no READY snapshot left');
    assert.equal((await t.api.delete(`${A}/snapshots/${idOf(second.name)}`)).status, 404);

    // Deleting an environment takes its snapshots with it.
    const third = await snapshot('snappy');
    assert.equal((await t.api.delete(`${A}/environments/snappy`)).status, 200);
    await gone(`${A}/environments/snappy`);
    assert.equal((await t.api.get(`${A}/snapshots/${idOf(third.name)}`)).status, 404);
  });

  it('runs a job with environmentId: the rank sees BATCH_JOB_IMAGE_REF, the status says the local runtime runs on the host', async () => {
    await createEnv('runner', { baseImageRef: 'ghcr.io/org/runner:7' });
    const snap = await snapshot('runner');
    const r = await job('with-env', {
      environmentId: 'runner',
      snapshotId: idOf(snap.name),
      shellExecutor: { command: 'echo "image=$BATCH_JOB_IMAGE_REF"; sleep 1' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitForState(t.api, 'default', 'with-env', 'COMPLETED');
    const logs = await t.api.get<{ entries: Array<{ message: string }> }>(`${A}/batchJobs/with-env:getLogs?startFromHead=true`);
    assert.deepEqual(logs.body.entries.map((e) => e.message), ['image=ghcr.io/org/runner:7']);

    // A job that stays RUNNING shows what its status says about the image.
    const long = await longJob('env-status', { environmentId: 'runner' });
    assert.equal(long.status, 200, JSON.stringify(long.body));
    const live = await waitForState(t.api, 'default', 'env-status', 'RUNNING');
    assert.match(live.status, /local runtime runs ranks directly on the host \(image ghcr\.io\/org\/runner:7 is exposed as BATCH_JOB_IMAGE_REF, not pulled\)/);
    assert.equal((await t.api.post(`${A}/batchJobs/env-status:cancel`, {})).status, 200);
    await waitForState(t.api, 'default', 'env-status', 'CANCELLED');
  });

  it('admits a job only with a usable environment and a READY snapshot of it', async () => {
    await createEnv('mine', { baseImageRef: 'ghcr.io/org/mine:1' });
    const mySnap = await snapshot('mine');
    await createEnv('other', { baseImageRef: 'ghcr.io/org/other:1' });
    const otherSnap = await snapshot('other');
    await createEnv('imageless');
    const failedSnap = await snapshot('imageless');
    assert.equal(failedSnap.state, 'FAILED');
    await bobs.create(bob, { environment: { baseImageRef: 'ghcr.io/bob/private:1' }, environmentId: 'bob-private' });
    await bobs.create(bob, { environment: { baseImageRef: 'ghcr.io/bob/shared:1', shared: true }, environmentId: 'bob-shared' });
    const before = (await t.api.get<{ totalSize: number }>(`${A}/batchJobs`)).body.totalSize;

    const unknown = await job('adm-unknown', { environmentId: 'no-such-env' });
    expectError(unknown, 404, 5, /environmentId: environment "no-such-env" not found/);
    const foreign = await job('adm-foreign', { environmentId: 'bob-private' });
    expectError(foreign, 403, 7, /environment "bob-private" belongs to bob@localhost and is not shared/);
    const crossed = await job('adm-crossed', { environmentId: 'mine', snapshotId: idOf(otherSnap.name) });
    expectError(crossed, 404, 5, new RegExp(`snapshotId: snapshot "${idOf(otherSnap.name)}" not found in environment "mine"`));
    const noSnap = await job('adm-nosnap', { environmentId: 'mine', snapshotId: 'nosuchsnap' });
    expectError(noSnap, 404, 5, /snapshotId: snapshot "nosuchsnap" not found/);
    const notReady = await job('adm-notready', { environmentId: 'imageless', snapshotId: idOf(failedSnap.name) });
    expectError(notReady, 400, 9, new RegExp(`snapshotId: snapshot "${idOf(failedSnap.name)}" is FAILED, not READY`));
    const both = await job('adm-both', { environmentId: 'mine', imageRef: 'ubuntu:24.04' });
    assert.equal(both.status, 400);
    assert.equal(both.body.code, 3);
    assert.ok(both.body.details.flatMap((d) => d.fieldViolations ?? []).some((v) => v.field === 'imageRef'), JSON.stringify(both.body));
    assert.equal((await t.api.get<{ totalSize: number }>(`${A}/batchJobs`)).body.totalSize, before, 'no refused job was created');

    // Allowed: a shared environment of another user; one's own environment with its READY snapshot.
    const shared = await job('adm-shared', { environmentId: 'bob-shared', shellExecutor: { command: 'echo "$BATCH_JOB_IMAGE_REF"' } });
    assert.equal(shared.status, 200, JSON.stringify(shared.body));
    await waitForState(t.api, 'default', 'adm-shared', 'COMPLETED');
    const sharedLogs = await t.api.get<{ entries: Array<{ message: string }> }>(`${A}/batchJobs/adm-shared:getLogs`);
    assert.deepEqual(sharedLogs.body.entries.map((e) => e.message), ['ghcr.io/bob/shared:1']);
    const own = await job('adm-own', { environmentId: 'mine', snapshotId: idOf(mySnap.name) });
    assert.equal(own.status, 200, JSON.stringify(own.body));
    await waitForState(t.api, 'default', 'adm-own', 'COMPLETED');

    // Sharing is also a rule for changing the environment.
    await assert.rejects(bobs.update(bob, 'mine', { shared: true }, undefined), (e: unknown) => e instanceof ApiError && e.code === 'PERMISSION_DENIED');
    await assert.rejects(bobs.delete(bob, 'mine'), (e: unknown) => e instanceof ApiError && e.code === 'PERMISSION_DENIED');
    expectError(await t.api.patch(`${A}/environments/bob-private`, { displayName: 'x' }), 403, 7, /bob@localhost/);
    expectError(await t.api.delete(`${A}/environments/bob-private`), 403, 7, /bob@localhost/);
    expectError(await t.api.post(`${A}/snapshots`, { environmentId: 'bob-private' }), 403, 7, /bob@localhost/);
    const renamed = await t.api.patch<Env>(`${A}/environments/bob-shared`, { displayName: 'used by all' });
    assert.equal(renamed.status, 200, 'a shared environment is open to every user of the account');
    assert.equal(renamed.body.createdBy, 'bob@localhost');

    // A job started as a workflow (as a parent workflow would) skips the API: its validation applies the same rules.
    const spec = parseOrThrow(batchJobCreateSchema, { nodePoolId: 'default-cpu', environmentId: 'bob-private', shellExecutor: { command: 'true' } });
    const name = 'accounts/default/batchJobs/adm-child';
    const input: BatchJobInput = { name, account: 'default', jobId: 'adm-child', spec, createdBy: ADMIN, createTime: new Date().toISOString() };
    await t.service.client.workflow.start('batchJobWorkflowV2', { workflowId: name, taskQueue: t.service.config.TASK_QUEUE, args: [input] });
    const child = await waitForState(t.api, 'default', 'adm-child', 'FAILED');
    assert.match(child.status, /environment "bob-private" belongs to bob@localhost and is not shared/);
  });

  it('refuses to delete an environment or snapshot a live job uses (naming the job), and allows it once the job has ended', async () => {
    await createEnv('busy', { baseImageRef: 'ghcr.io/org/busy:1' });
    const snap = await snapshot('busy');
    const snapId = idOf(snap.name);
    await createEnv('idle');
    assert.equal((await longJob('user', { environmentId: 'busy', snapshotId: snapId })).status, 200);
    await waitForState(t.api, 'default', 'user', 'RUNNING');

    expectError(await t.api.delete(`${A}/environments/busy`), 400, 9, /environment "busy" is used by live batch job\(s\) "user"/);
    expectError(await t.api.delete(`${A}/snapshots/${snapId}`), 400, 9, new RegExp(`snapshot "${snapId}" is used by live batch job\\(s\\) "user"`));
    expectError(
      await t.api.post(`${A}/environments:batchDelete`, { names: ['accounts/default/environments/idle', 'accounts/default/environments/busy'] }),
      400,
      9,
      /environment "busy" is used by live batch job\(s\) "user"; nothing was deleted/,
    );
    assert.equal((await t.api.get<Env>(`${A}/environments/idle`)).status, 200, 'batchDelete deleted none');
    const still = await t.api.get<Env>(`${A}/environments/busy`);
    assert.equal(still.body.state, 'DISCONNECTED', 'a refused delete changes nothing');
    assert.equal((await t.api.get<Snap>(`${A}/snapshots/${snapId}`)).body.state, 'READY');
    // Other snapshots of the environment are not held by the job.
    const spare = await snapshot('busy');
    assert.equal((await t.api.delete(`${A}/snapshots/${idOf(spare.name)}`)).status, 200);

    assert.equal((await t.api.post(`${A}/batchJobs/user:cancel`, {})).status, 200);
    await waitForState(t.api, 'default', 'user', 'CANCELLED');
    assert.equal((await t.api.delete(`${A}/snapshots/${snapId}`)).status, 200, 'the job has ended: its snapshot can go');
    assert.equal((await t.api.delete(`${A}/environments/busy`)).status, 200, 'and so can its environment');
    await gone(`${A}/environments/busy`);

    // A deleted job no longer holds its environment either.
    await createEnv('held', { baseImageRef: 'ghcr.io/org/held:1' });
    assert.equal((await longJob('holder', { environmentId: 'held' })).status, 200);
    await waitForState(t.api, 'default', 'holder', 'RUNNING');
    expectError(await t.api.delete(`${A}/environments/held`), 400, 9, /"holder"/);
    assert.equal((await t.api.delete(`${A}/batchJobs/holder`)).status, 200);
    await gone(`${A}/batchJobs/holder`);
    await waitFor('the environment to be deletable', async () => ((await t.api.delete(`${A}/environments/held`)).status === 200 ? true : undefined), 10_000);
    await gone(`${A}/environments/held`);
  });

  it('the environment workflow itself enforces the admission rules, and forgets jobs that have ended', async () => {
    await createEnv('guarded', { baseImageRef: 'ghcr.io/org/guarded:1' });
    await createEnv('elsewhere', { baseImageRef: 'ghcr.io/org/elsewhere:1' });
    const foreignSnap = await snapshot('elsewhere');
    const handle = t.service.client.workflow.getHandle('accounts/default/environments/guarded');
    const use = (req: { jobName: string; createdBy: string; snapshotId?: string }) => handle.executeUpdate(useEnvironmentUpdate, { args: [req] });
    const refusedWith = (type: string, message: RegExp) => (e: unknown) => {
      const cause = (e as { cause?: { type?: string; message?: string } }).cause;
      return cause?.type === type && message.test(cause.message ?? '');
    };
    await assert.rejects(use({ jobName: 'accounts/default/batchJobs/x1', createdBy: 'eve@localhost' }), refusedWith('ApiError:PERMISSION_DENIED', /not shared/));
    await assert.rejects(
      use({ jobName: 'accounts/default/batchJobs/x2', createdBy: ADMIN, snapshotId: idOf(foreignSnap.name) }),
      refusedWith('ApiError:NOT_FOUND', /not found in environment "guarded"/),
    );
    assert.deepEqual((await handle.query(getEnvironmentQuery)).jobs, [], 'a refused use registers nothing');

    // A job whose record is not (yet) in the read model still holds the environment while its workflow runs.
    assert.equal((await longJob('unrecorded', { environmentId: 'guarded' })).status, 200);
    await waitForState(t.api, 'default', 'unrecorded', 'RUNNING');
    const unrecorded = 'accounts/default/batchJobs/unrecorded';
    assert.ok(await t.service.store.remove('batchJobs', unrecorded));
    expectError(await t.api.delete(`${A}/environments/guarded`), 400, 9, /"unrecorded"/);
    const jobHandle = t.service.client.workflow.getHandle(unrecorded);
    await jobHandle.signal(cancelSignal, { requestedBy: ADMIN });
    await jobHandle.result();

    // A job that was admitted but no longer exists (no record, no running workflow) does not hold the environment.
    assert.deepEqual(await use({ jobName: 'accounts/default/batchJobs/ghost', createdBy: ADMIN }), { imageRef: 'ghcr.io/org/guarded:1' });
    assert.ok((await handle.query(getEnvironmentQuery)).jobs.includes('accounts/default/batchJobs/ghost'));
    assert.equal((await t.api.delete(`${A}/environments/guarded`)).status, 200);
    await gone(`${A}/environments/guarded`);
  });

  it('keeps the environment, its snapshots and its admitted jobs across continue-as-new', async () => {
    const small = new EnvironmentService({
      client: t.service.client,
      store: t.service.store,
      taskQueue: t.service.config.TASK_QUEUE,
      logger: t.service.logger,
      continueAsNewEvents: 40,
    });
    const admin: Principal = { account: 'default', email: ADMIN, keyId: 'admin' };
    await small.create(admin, { environment: { baseImageRef: 'ghcr.io/org/long:1' }, environmentId: 'long-lived' });
    const snap = await small.createSnapshot(admin, { environmentId: 'long-lived' });
    const handle = t.service.client.workflow.getHandle('accounts/default/environments/long-lived');
    await handle.executeUpdate(useEnvironmentUpdate, { args: [{ jobName: 'accounts/default/batchJobs/kept', createdBy: ADMIN, snapshotId: idOf(snap.name) }] });
    const firstRun = (await handle.describe()).runId;
    for (let i = 0; i < 15; i++) await small.update(admin, 'long-lived', { displayName: `v${i}` }, undefined);
    await waitFor('a new run', async () => ((await handle.describe()).runId !== firstRun ? true : undefined));
    const view = await handle.query(getEnvironmentQuery);
    assert.equal(view.environment.displayName, 'v14');
    assert.equal(view.environment.imageRef, 'ghcr.io/org/long:1');
    assert.equal(view.environment.snapshotImageRef, 'ghcr.io/org/long:1');
    assert.deepEqual(view.snapshots.map((s) => s.name), [snap.name]);
    assert.deepEqual(view.jobs, ['accounts/default/batchJobs/kept']);
    const patched = await t.api.patch<Env>(`${A}/environments/long-lived`, { displayName: 'after' });
    assert.equal(patched.body.displayName, 'after', 'the new run takes updates');
    assert.equal((await t.api.get<Env>(`${A}/environments/long-lived`)).body.displayName, 'after');
  });

  it('answers :connect and :disconnect with 501 UNIMPLEMENTED in the contract shape', async () => {
    await createEnv('sessionless');
    for (const verb of ['connect', 'disconnect']) {
      const body = verb === 'connect' ? { connection: { nodePoolId: 'default-gpu' } } : {};
      const r = await t.api.post<ErrorBody>(`${A}/environments/sessionless:${verb}`, body);
      expectError(r, 501, 12, /interactive sessions are not supported by this service/);
      assert.ok(Array.isArray(r.body.details));
    }
    assert.equal((await t.api.get<Env>(`${A}/environments/sessionless`)).body.state, 'DISCONNECTED');
    assert.equal((await t.api.withKey(undefined).post(`${A}/environments/sessionless:connect`, {})).status, 401, 'still authenticated');
  });

  it(':batchDelete checks every name first: one bad name fails the call and deletes none', async () => {
    await createEnv('bd-one');
    await createEnv('bd-two');
    const names = ['accounts/default/environments/bd-one', 'accounts/default/environments/bd-two'];
    expectError(await t.api.post(`${A}/environments:batchDelete`, { names: [...names, 'accounts/default/environments/bd-missing'] }), 404, 5, /bd-missing/);
    expectError(await t.api.post(`${A}/environments:batchDelete`, { names: [...names, 'accounts/other/environments/x'] }), 403, 7, /another account/);
    expectError(await t.api.post(`${A}/environments:batchDelete`, { names: [...names, 'accounts/default/nodePools/default-cpu'] }), 400, 3, /names\[2\]/);
    await bobs.create(bob, { environment: {}, environmentId: 'bd-bob' });
    expectError(await t.api.post(`${A}/environments:batchDelete`, { names: [...names, 'accounts/default/environments/bd-bob'] }), 403, 7, /bob@localhost/);
    for (const id of ['bd-one', 'bd-two', 'bd-bob']) assert.equal((await t.api.get(`${A}/environments/${id}`)).status, 200, `${id} was not deleted`);

    const ok = await t.api.post(`${A}/environments:batchDelete`, { names });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body, {});
    for (const id of ['bd-one', 'bd-two']) await gone(`${A}/environments/${id}`);
  });
});
