/**
 * `validateOnly=true` on create, through the API on a real pool workflow (2 × 8 GPUs): a job that
 * would start is answered with the placement the real create then gets; one that would queue with
 * the status it then shows and a start estimated from the running job's startTime + maxRunDuration
 * (unknown behind a job without one); one that could never fit with create's own 400. Every check of
 * create runs (409 for a taken id, dependencies, the account's limit) and nothing is created: no job,
 * no workflow, nothing counted. A pool that does not answer is 503.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import { type BatchJobBody, gatesIn, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const jobName = (id: string) => `accounts/default/batchJobs/${id}`;

interface DryRunBody extends BatchJobBody {
  dryRun: {
    wouldStartNow: boolean;
    placement?: Array<{ host: string; ranks: number }>;
    queuePosition?: number;
    queueLength?: number;
    waitingFor?: string;
    waitsForJobs?: string[];
    dependencies?: Array<{ batchJob: string; condition: string; state?: string; standing: string }>;
    estimatedStartTime: string;
    estimate: string;
  };
}

describe('dry run of a create (validateOnly=true)', () => {
  let t: TestService;
  let heldUntil: (gate: string) => string;
  let open: (gate: string) => void;
  const dryRun = (id: string, body: unknown) => t.api.post<DryRunBody>(`${A}/batchJobs?batchJobId=${id}&validateOnly=true`, body);
  const created = async (id: string) => (await t.api.get(`${A}/batchJobs/${id}`)).status !== 404;
  const workflowExists = async (id: string) =>
    t.service.client.workflow
      .getHandle(jobName(id))
      .describe()
      .then(
        () => true,
        (err: unknown) => {
          if (err instanceof WorkflowNotFoundError) return false;
          throw err;
        },
      );
  const jobsInPool = async () => ((await t.api.get<{ nodePoolStats: { batchJobCount: Record<string, number> } }>(`${A}/nodePools/gpus`)).body.nodePoolStats.batchJobCount);

  /** Nothing of the job exists: no record, no workflow. */
  const assertNothingCreated = async (id: string) => {
    assert.equal(await created(id), false, `${id}: no job`);
    assert.equal(await workflowExists(id), false, `${id}: no workflow`);
  };

  before(async () => {
    // The watchdog would restart the pool this suite terminates; its first round runs before that.
    t = await startTestService({ defaultPools: false, env: { MAX_LIVE_JOBS_PER_ACCOUNT: '3', POOL_WATCHDOG_MS: '3600000' } });
    ({ heldUntil, open } = gatesIn(t.workspaceDir));
    for (const [id, numNodes] of [['gpus', 2], ['lost', 1]] as const) {
      const r = await t.api.post(`${A}/nodePools`, { nodePoolId: id, nodePool: { fakeNodePool: { machineType: 'p4d.24xlarge', numNodes } } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  });
  after(async () => {
    open?.('twelve');
    await t?.stop();
  });

  it('a job that would start: its placement, which the real create then gets; nothing created', async () => {
    const body = { nodePoolId: 'gpus', numRanks: 12, maxRunDuration: '3600s', shellExecutor: { command: heldUntil('twelve') } };
    const dry = await dryRun('twelve', body);
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    assert.equal(dry.body.name, jobName('twelve'));
    assert.equal(dry.body.state, 'CREATING');
    assert.equal(dry.body.numRanks, 12);
    assert.equal(dry.body.maxRunDuration, '3600s');
    assert.equal(dry.body.dryRun.wouldStartNow, true);
    assert.deepEqual(dry.body.dryRun.placement, [
      { host: 'h0', ranks: 8 },
      { host: 'h1', ranks: 4 },
    ]);
    assert.ok(Math.abs(Date.parse(dry.body.dryRun.estimatedStartTime) - Date.now()) < 10_000, dry.body.dryRun.estimatedStartTime);
    await assertNothingCreated('twelve');
    assert.equal((await t.api.get<{ totalSize: number }>(`${A}/batchJobs`)).body.totalSize, 0);
    assert.deepEqual(await jobsInPool(), {}, 'the pool never heard of it');

    // The job as it would be created is the job create answers, but for its times and status.
    const real = await t.api.post<BatchJobBody>(`${A}/batchJobs?batchJobId=twelve`, body);
    assert.equal(real.status, 200, JSON.stringify(real.body));
    const { dryRun: _dry, createTime: _c1, updateTime: _u1, status: _s1, ...wouldBe } = dry.body;
    const { createTime: _c2, updateTime: _u2, status: _s2, ...is } = real.body;
    assert.deepEqual(wouldBe, is);
    await waitForState(t.api, 'default', 'twelve', 'RUNNING');
    const placement = await t.api.get<{ ranks: Array<{ host: string }> }>(`${A}/batchJobs/twelve:getPlacement`);
    const perHost = new Map<string, number>();
    for (const r of placement.body.ranks) perHost.set(r.host, (perHost.get(r.host) ?? 0) + 1);
    assert.deepEqual([...perHost].map(([host, ranks]) => ({ host, ranks })), dry.body.dryRun.placement, 'the pool placed it where the dry run said');
  });

  it('a job that would queue: its place, what it waits for (the status it then shows), and its start from startTime + maxRunDuration', async () => {
    // The dry run reads running jobs' startTime from the read model (as list does), written just after RUNNING.
    const running = await waitFor('the read model to hold twelve RUNNING', async () => {
      const l = await t.api.get<{ batchJobs: BatchJobBody[] }>(`${A}/batchJobs?filter=${encodeURIComponent('state = RUNNING')}`);
      return l.body.batchJobs.find((j) => j.name === jobName('twelve') && j.startTime !== undefined);
    });
    const body = { nodePoolId: 'gpus', numRanks: 8, shellExecutor: { command: 'echo eight' } };
    const dry = await dryRun('eight', body);
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    const waitingFor = 'waiting for 8 GPUs in node pool gpus; first of 1 in the queue; 4 free now, and capacity is reserved for this job as running jobs end';
    assert.deepEqual(
      { ...dry.body.dryRun, estimate: undefined },
      {
        wouldStartNow: false,
        queuePosition: 1,
        queueLength: 1,
        waitingFor,
        waitsForJobs: [jobName('twelve')],
        estimatedStartTime: new Date(Date.parse(String(running.startTime)) + 3600_000).toISOString(),
        estimate: undefined,
      },
    );
    assert.match(dry.body.dryRun.estimate, /^if every job runs to its maxRunDuration: it starts in (59m\d+s|1h),/);
    await assertNothingCreated('eight');
    assert.deepEqual(await jobsInPool(), { RUNNING: 1 });

    assert.equal((await t.api.post(`${A}/batchJobs?batchJobId=eight`, body)).status, 200);
    const queued = await waitForState(t.api, 'default', 'eight', 'QUEUED');
    assert.equal(queued.status, waitingFor, 'the dry run said what the job now says');

    // Behind a head that declares no maxRunDuration, a job that needs the head's GPUs has no estimate.
    const behind = await dryRun('sixteen', { nodePoolId: 'gpus', numRanks: 16, shellExecutor: { command: 'true' } });
    assert.equal(behind.status, 200, JSON.stringify(behind.body));
    assert.equal(behind.body.dryRun.wouldStartNow, false);
    assert.equal(behind.body.dryRun.queuePosition, 2);
    assert.equal(behind.body.dryRun.estimatedStartTime, 'unknown');
    assert.deepEqual(behind.body.dryRun.waitsForJobs, [jobName('eight')]);
    assert.match(behind.body.dryRun.estimate, /held by 1 job that declare no maxRunDuration \(eight\)/);
    await assertNothingCreated('sixteen');
  });

  it('a job that could never fit: the same 400 as create, and nothing created', async () => {
    const body = { nodePoolId: 'gpus', numRanks: 17, shellExecutor: { command: 'true' } };
    const dry = await dryRun('seventeen', body);
    assert.equal(dry.status, 400);
    const real = await t.api.post(`${A}/batchJobs?batchJobId=seventeen`, body);
    assert.equal(real.status, 400);
    assert.deepEqual(dry.body, real.body);
    assert.match(JSON.stringify(dry.body), /can hold at most 16 ranks/);
    await assertNothingCreated('seventeen');
  });

  it('answers 503 UNAVAILABLE when the pool does not answer, and creates nothing', async () => {
    await t.service.client.workflow.getHandle('accounts/default/nodePools/lost').terminate('test: a pool that does not answer');
    const r = await dryRun('orphan', { nodePoolId: 'lost', shellExecutor: { command: 'true' } });
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal((r.body as unknown as { code: number }).code, 14);
    assert.match((r.body as unknown as { message: string }).message, /node pool "lost" did not answer/);
    await assertNothingCreated('orphan');
  });

  it("runs create's other checks with create's answers: a taken id, dependencies, a bad flag, the account's limit", async () => {
    const shell = { command: 'true' };
    const taken = await dryRun('twelve', { nodePoolId: 'gpus', shellExecutor: shell });
    assert.equal(taken.status, 409);
    assert.deepEqual(taken.body, (await t.api.post(`${A}/batchJobs?batchJobId=twelve`, { nodePoolId: 'gpus', shellExecutor: shell })).body);

    const missing = await dryRun('after-missing', { nodePoolId: 'gpus', shellExecutor: shell, dependsOn: [{ batchJob: 'nope', condition: 'COMPLETED' }] });
    assert.equal(missing.status, 400);
    assert.match(JSON.stringify(missing.body), /dependsOn\[0\]\.batchJob/);

    const unknownPool = await dryRun('nowhere', { nodePoolId: 'nowhere', shellExecutor: shell });
    assert.equal(unknownPool.status, 404);

    const waits = await dryRun('after-twelve', { nodePoolId: 'gpus', numRanks: 1, shellExecutor: shell, dependsOn: [{ batchJob: 'twelve', condition: 'COMPLETED' }] });
    assert.equal(waits.status, 200, JSON.stringify(waits.body));
    assert.equal(waits.body.dryRun.wouldStartNow, false);
    assert.deepEqual(waits.body.dryRun.dependencies, [{ batchJob: jobName('twelve'), condition: 'COMPLETED', state: 'RUNNING', standing: 'WAITING' }]);
    assert.equal(waits.body.dryRun.waitingFor, 'dependencies: twelve (now RUNNING) to end COMPLETED');

    const flag = await t.api.post(`${A}/batchJobs?validateOnly=maybe`, { nodePoolId: 'gpus', shellExecutor: shell });
    assert.equal(flag.status, 400);
    assert.match(JSON.stringify(flag.body), /validateOnly/);

    // Two jobs live of three allowed: dry runs count nothing, however many.
    for (let i = 0; i < 3; i++) assert.equal((await dryRun(`many-${i}`, { nodePoolId: 'gpus', shellExecutor: shell })).status, 200);
    assert.equal((await t.api.post(`${A}/batchJobs?batchJobId=third`, { nodePoolId: 'gpus', numRanks: 1, shellExecutor: shell })).status, 200);
    const limited = await dryRun('fourth', { nodePoolId: 'gpus', shellExecutor: shell });
    assert.equal(limited.status, 429);
    assert.match(JSON.stringify(limited.body), /MAX_LIVE_JOBS_PER_ACCOUNT/);
    await assertNothingCreated('fourth');
  });

});
