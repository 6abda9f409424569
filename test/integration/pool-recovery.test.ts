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
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getNodePoolInternalsQuery, type NodePoolInternals } from '../../workflows/messages';
import { type BatchJobBody, gatesIn, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const POOL = 'accounts/default/nodePools/one';
let heldUntil: (gate: string) => string;
let open: (gate: string) => void;

describe('a pool that cannot die', () => {
  let t: TestService;
  const poolHandle = () => t.service.client.workflow.getHandle(POOL);
  const internals = () => poolHandle().query<NodePoolInternals>(getNodePoolInternalsQuery);
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
});
