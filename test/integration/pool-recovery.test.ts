/**
 * A pool that cannot die, through the API on a real Temporal server: a one-GPU fake pool whose window
 * (POOL_QUEUE_WINDOW=4) is far smaller than its queue, and whose history continues as new every 100
 * events, so the queue lives in the pool store and crosses several continue-as-new.
 *
 * - Queued jobs past the window say where they stand, from the store.
 * - The pool's workflow is terminated with jobs queued and one running: the watchdog restarts it from
 *   the store, and every job still runs, in arrival order, exactly once.
 * - A job created while the pool's workflow is closed waits instead of failing, and runs.
 * - A running job terminated by an operator is noticed by its pool (its capacity comes back, the
 *   queue moves on) and is recorded FAILED, saying why; a GET before that writes nothing.
 * - A step that a lost workflow task wrote to the store (written here through the store, as the pool's
 *   step writes it): the pool's next step is refused, the lost grant stands on its host and goes out,
 *   and the job the pool had chosen otherwise waits for it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type PoolQueue } from '../../src/domain/pool-queue';
import { readPoolInternals } from '../../src/api/pool-internals';
import { type BatchJobBody, gatesIn, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const POOL = 'accounts/default/nodePools/one';
let heldUntil: (gate: string) => string;
let open: (gate: string) => void;

describe('a pool that cannot die', () => {
  let t: TestService;
  const poolHandle = () => t.service.client.workflow.getHandle(POOL);
  // As the API answers them: with the claims and returns in the pool's store.
  const internals = () => readPoolInternals(t.service.client, t.service.store, POOL, 5000);
  const create = async (id: string, command: string) => {
    const r = await t.api.post(`${A}/batchJobs?batchJobId=${id}`, { nodePoolId: 'one', shellExecutor: { command } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };
  const runId = async () => (await poolHandle().describe()).runId;

  before(async () => {
    t = await startTestService({
      defaultPools: false,
      env: { POOL_QUEUE_WINDOW: '4', POOL_CONTINUE_AS_NEW_EVENTS: '100', POOL_WATCHDOG_MS: '500', POOL_RECONCILE_MS: '1000' },
    });
    ({ heldUntil, open } = gatesIn(t.workspaceDir));
    const r = await t.api.post(`${A}/nodePools`, { nodePoolId: 'one', nodePool: { fakeNodePool: { machineType: 'g5.xlarge', numNodes: 1 } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
  after(async () => {
    await t?.stop();
  });

  it('keeps its queue in the store, survives termination with jobs queued and running, and runs them all in order', async () => {
    await create('holder', heldUntil('holder'));
    await waitForState(t.api, 'default', 'holder', 'RUNNING');
    const queued = Array.from({ length: 12 }, (_, i) => `q${String(i).padStart(2, '0')}`);
    for (const id of queued) await create(id, 'echo ran $BATCH_JOB_ID');
    await waitFor('12 queued', async () => ((await internals()).queueSummary?.length === 12 ? true : undefined));
    const view = await internals();
    assert.equal(view.queue.length, 4, 'only the window is in the workflow');
    // Its place is where its request reached the pool (jobs created back to back may arrive in either order).
    const deep = await waitForState(t.api, 'default', 'q09', 'QUEUED');
    const place = (await t.service.store.queuePositions(POOL, ['accounts/default/batchJobs/q09'])).positions['accounts/default/batchJobs/q09'];
    assert.ok(place !== undefined && place > 4, `q09 waits past the window of 4 (position ${place})`);
    assert.match(deep.status, new RegExp(`position ${place} of 12 in the queue; the pool schedules from the first 4`));
    const list = await t.api.get<{ batchJobs: BatchJobBody[] }>(`${A}/batchJobs?pageSize=50&filter=${encodeURIComponent('state = "QUEUED"')}`);
    assert.equal(list.body.batchJobs.length, 12);
    assert.ok(list.body.batchJobs.every((j) => /(position \d+|first) of 12 in the queue/.test(j.status)), 'every queued job on a list page says where it stands');

    // An operator terminates the pool's workflow. What it wrote is its queue's order from here on.
    const before = await runId();
    await poolHandle().terminate('test: a pool workflow dies');
    const stored = (await t.service.store.queuedJobs(POOL, 100)).map((n) => n.split('/').pop() ?? '');
    // A job created while it is down waits, and runs once the pool is back.
    await create('late', 'echo ran $BATCH_JOB_ID');
    await waitFor('the watchdog restarts the pool', async () => {
      const d = await poolHandle().describe();
      return d.status.name === 'RUNNING' && d.runId !== before ? true : undefined;
    });
    const back = await waitFor('the recovered pool knows its queue and its running job', async () => {
      const v = await internals();
      return v.queueSummary?.length === 13 && v.allocations['accounts/default/batchJobs/holder'] ? v : undefined;
    });
    // Requests the closed run received but never wrote follow what it wrote, oldest first.
    const unwritten = queued.filter((id) => !stored.includes(id));
    const expected = [...stored, ...unwritten, 'late'];
    assert.deepEqual(back.queue.map((e) => e.jobName.split('/').pop()), expected.slice(0, 4), 'order kept across the restart');
    const pool = await t.api.get<{ state: string; nodePoolStats: { batchJobCount: Record<string, number> } }>(`${A}/nodePools/one`);
    assert.equal(pool.body.state, 'READY');
    assert.deepEqual(pool.body.nodePoolStats.batchJobCount, { QUEUED: 13, RUNNING: 1 });

    open('holder');
    await waitForState(t.api, 'default', 'holder', 'COMPLETED');
    const ended: Array<BatchJobBody & { startTime?: string }> = [];
    for (const id of expected) ended.push(await waitForState(t.api, 'default', id, 'COMPLETED', 60_000));
    const starts = ended.map((j) => j.startTime ?? '');
    assert.deepEqual(starts, [...starts].sort(), 'they started in the queue\'s order');
    for (const id of [...queued, 'late']) {
      const logs = await t.api.get<{ entries: Array<{ message: string }> }>(`${A}/batchJobs/${id}:getLogs`);
      assert.deepEqual(logs.body.entries.map((e) => e.message), [`ran ${id}`], `${id} ran exactly once`);
    }
    const history = await poolHandle().fetchHistory();
    assert.ok((history.events?.length ?? 0) <= 100 + 40, 'the pool continued as new along the way');
    const after = await internals();
    assert.equal(after.queueSummary?.length, 0);
    assert.deepEqual(after.allocations, {});
  });

  it('notices a running job that an operator terminated: capacity back, queue moving, job FAILED saying why', async () => {
    await create('doomed', heldUntil('never'));
    await waitForState(t.api, 'default', 'doomed', 'RUNNING');
    await create('next', 'true');
    await waitForState(t.api, 'default', 'next', 'QUEUED');
    await t.service.client.workflow.getHandle('accounts/default/batchJobs/doomed').terminate('test: an operator terminates a job');
    // A GET shows the end but writes nothing.
    const shown = await t.api.get<BatchJobBody>(`${A}/batchJobs/doomed`);
    assert.equal(shown.body.state, 'FAILED');
    assert.match(shown.body.status, /ended without finishing the job \(its workflow terminated\)/);
    await waitForState(t.api, 'default', 'next', 'COMPLETED', 30_000);
    const stored = await t.service.store.get<BatchJobBody & { name: string; createTime: string; updateTime: string }>('batchJobs', 'accounts/default/batchJobs/doomed');
    assert.equal(stored?.resource.state, 'FAILED', 'the pool recorded the end');
    assert.match(stored?.resource.status ?? '', /its workflow terminated/);
  });

  it('follows a step that a lost workflow task wrote to the store: its grant stands and goes out, the job the pool chose otherwise waits', async () => {
    const TWO = 'accounts/default/nodePools/two';
    const made = await t.api.post(`${A}/nodePools`, { nodePoolId: 'two', nodePool: { fakeNodePool: { machineType: 'g5.xlarge', numNodes: 2 } } });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const two = () => readPoolInternals(t.service.client, t.service.store, TWO, 5000);
    const on = async (id: string, body: Record<string, unknown>) => {
      const r = await t.api.post(`${A}/batchJobs?batchJobId=${id}`, { nodePoolId: 'two', ...body });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    };
    const name = (id: string) => `accounts/default/batchJobs/${id}`;
    // One host runs a holder; a 2-host job of higher priority reserves both; `small` waits behind it.
    await on('two-holder', { shellExecutor: { command: heldUntil('two-holder') } });
    await waitForState(t.api, 'default', 'two-holder', 'RUNNING');
    await on('two-head', { shellExecutor: { command: 'echo ran two-head' }, numRanks: 2, priority: 10 });
    await on('two-small', { shellExecutor: { command: 'echo ran two-small' } });
    const waiting = await waitFor('the head reserves, small waits', async () => {
      const v = await two();
      return v.reservation?.requestId === name('two-head') && v.queue.length === 2 ? v : undefined;
    });
    const busy = waiting.allocations[name('two-holder')]?.hosts[0];
    const free = waiting.hosts.find((h) => h.host !== busy)?.host;
    assert.ok(busy !== undefined && free !== undefined);

    // A task the server never kept (it had not seen the head's request) gave `small` the free host and
    // wrote that step, as the pool's own step would; its worker died before the grant went out.
    const loaded = await t.service.store.loadPool(TWO, 0);
    assert.ok(loaded.snapshot);
    const snapshot = structuredClone(loaded.snapshot.state) as ReturnType<PoolQueue['recoverySnapshot']>;
    const holder = snapshot.scheduler.allocations[name('two-holder')];
    assert.ok(holder);
    snapshot.scheduler.allocations[name('two-small')] = { id: name('two-small'), ranks: 1, hosts: [{ host: free, slots: [0] }], masterPort: holder.masterPort + 1 };
    const host = snapshot.scheduler.hosts.find((h) => h.id === free);
    assert.ok(host);
    host.used[0] = name('two-small');
    snapshot.jobs[name('two-small')] = { workflowId: name('two-small'), ranks: 1, state: 'PENDING' };
    const lost = await t.service.store.syncPool({ pool: TWO, inserts: [], removes: [name('two-small')], snapshot: { version: loaded.snapshot.version, state: snapshot }, expectStep: loaded.snapshot.step });
    assert.equal(lost.step, loaded.snapshot.step + 1);

    // The pool's next step (a new request) follows the older snapshot: refused; the pool takes the lost grant as given and sends it.
    await on('two-late', { shellExecutor: { command: 'echo ran two-late' } });
    const small = await waitForState(t.api, 'default', 'two-small', 'COMPLETED', 30_000);
    assert.equal((await t.api.get<BatchJobBody>(`${A}/batchJobs/two-head`)).body.state, 'QUEUED', 'the head still waits for the holder');
    assert.equal((await t.api.get<BatchJobBody>(`${A}/batchJobs/two-holder`)).body.state, 'RUNNING');
    const pool = await two();
    assert.equal(pool.reservation?.requestId, name('two-head'));
    assert.ok(((await t.service.store.loadPool(TWO, 0)).snapshot?.step ?? 0) > lost.step, 'the pool wrote after the lost step');

    open('two-holder');
    const head = await waitForState(t.api, 'default', 'two-head', 'COMPLETED', 30_000);
    const late = await waitForState(t.api, 'default', 'two-late', 'COMPLETED', 30_000);
    assert.ok((small.startTime ?? '') < (head.startTime ?? ''), 'small ran on the host the lost step gave it, before the head');
    assert.ok((head.startTime ?? '') <= (late.startTime ?? ''), 'then priority');
    const logs = await t.api.get<{ entries: Array<{ message: string }> }>(`${A}/batchJobs/two-small:getLogs`);
    assert.deepEqual(logs.body.entries.map((e) => e.message), ['ran two-small'], 'small ran once');
    await waitFor('the pool is idle', async () => {
      const v = await two();
      return v.queueSummary?.length === 0 && Object.keys(v.allocations).length === 0 ? v : undefined;
    });
  });
});
