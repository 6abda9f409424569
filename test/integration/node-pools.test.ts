/**
 * The node-pool API on real pool workflows: validation, get/list with live stats, growth that queued
 * jobs use at once, shrinking that drains hosts and never kills a running rank (or is refused when a
 * live job would no longer fit), delete guarded by live jobs, batchDelete all-or-nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gatesIn, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
/** Rank commands that run until the test opens their gate (set up with the suite's service). */
let heldUntil: (gate: string) => string;
let open: (gate: string) => void;

interface PoolBody {
  name: string;
  state: string;
  displayName?: string;
  fakeNodePool?: { machineType: string; numNodes: number };
  maxNodeCount: number;
  nodePoolStats: { nodeCount: number; ranksPerNode: number; batchJobCount: Record<string, number> };
}

describe('node pools', () => {
  let t: TestService;
  before(async () => {
    t = await startTestService({ defaultPools: false });
    ({ heldUntil, open } = gatesIn(t.workspaceDir));
  });
  after(async () => {
    await t?.stop();
  });

  const fake = (id: string, machineType: string, numNodes: number, extra: Record<string, unknown> = {}) =>
    t.api.post<PoolBody>(`${A}/nodePools`, { nodePoolId: id, nodePool: { fakeNodePool: { machineType, numNodes }, ...extra } });

  /**
   * A fake pool needs no provisioning: its workflow's first task makes it READY. The create answers
   * the workflow's view when it answers within the query deadline, else the stored CREATING record;
   * on a loaded machine that first task can come later, so a CREATING answer must turn READY by itself.
   */
  async function ready(created: { status: number; body: PoolBody }): Promise<PoolBody> {
    assert.equal(created.status, 200, JSON.stringify(created.body));
    if (created.body.state === 'READY') return created.body;
    assert.equal(created.body.state, 'CREATING');
    return waitFor(`${created.body.name} READY`, async () => {
      const r = await t.api.get<PoolBody>(`/v1/${created.body.name}`);
      return r.body.state === 'READY' ? r.body : undefined;
    });
  }

  it('creates fake pools that are READY without provisioning, with stats from the machine-type catalogue', async () => {
    const cpu = await ready(await fake('cpus', 'c5.4xlarge', 3, { displayName: 'three CPUs', annotations: { 'team.example.com/owner': 'ml' } }));
    assert.equal(cpu.maxNodeCount, 3, 'a fake pool’s maxNodeCount defaults to its numNodes');
    assert.deepEqual(cpu.nodePoolStats, { nodeCount: 3, ranksPerNode: 1, environmentCount: 0, environmentRanks: 0, batchJobCount: {}, batchJobRanks: {} });
    const gpu = await ready(await fake('a10s', 'g5.12xlarge', 2));
    assert.equal(gpu.nodePoolStats.ranksPerNode, 4);
    const stats = await t.api.get(`${A}/nodePools/a10s:getStats`);
    assert.deepEqual(stats.body, { nodeCount: 2, ranksPerNode: 4, environmentCount: 0, environmentRanks: 0, batchJobCount: {}, batchJobRanks: {} });
    const list = await t.api.get<{ nodePools: PoolBody[]; totalSize: number }>(`${A}/nodePools`);
    assert.deepEqual(list.body.nodePools.map((p) => p.name), ['accounts/default/nodePools/a10s', 'accounts/default/nodePools/cpus'], 'ordered by name');
    assert.equal(list.body.totalSize, 2);
  });

  it('refuses bad pools with 400 naming the field, and a second pool of the same id with 409', async () => {
    const cases: Array<[unknown, string, RegExp]> = [
      [{ nodePoolId: 'x', nodePool: { fakeNodePool: { machineType: 'z9.huge', numNodes: 1 } } }, 'nodePool.fakeNodePool.machineType', /p4d\.24xlarge/],
      [{ nodePoolId: 'x', nodePool: {} }, 'nodePool', /fakeNodePool|eksNodePool/],
      [{ nodePoolId: 'x', nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes: 1 }, eksNodePool: { instanceType: 'm5.xlarge' } } }, 'nodePool.eksNodePool', /cannot be combined with fakeNodePool/],
      [{ nodePoolId: 'x', nodePool: { minNodeCount: 3, maxNodeCount: 2, eksNodePool: { instanceType: 'm5.xlarge' } } }, 'nodePool.minNodeCount', /maxNodeCount/],
      [{ nodePoolId: 'Bad_Id', nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes: 1 } } }, 'nodePoolId', /a-z/],
      [{ nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes: 1 } } }, 'nodePoolId', /required/],
    ];
    for (const [body, field, message] of cases) {
      const r = await t.api.post<{ code: number; message: string; details: Array<{ fieldViolations?: Array<{ field: string }> }> }>(`${A}/nodePools`, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      const fields = r.body.details.flatMap((d) => d.fieldViolations ?? []).map((v) => v.field);
      assert.ok(fields.some((f) => f.startsWith(field)), `${JSON.stringify(body)}: got ${fields.join(', ')}`);
      assert.match(r.body.message, message);
    }
    const again = await fake('cpus', 'm5.xlarge', 1);
    assert.equal(again.status, 409);
  });

  it('grows a pool, and a job waiting for the new capacity starts at once', async () => {
    await t.api.post(`${A}/batchJobs?batchJobId=needs-two`, { nodePoolId: 'a10s', numRanks: 8, shellExecutor: { command: heldUntil('needs-two') } });
    await waitForState(t.api, 'default', 'needs-two', 'RUNNING');
    await t.api.post(`${A}/batchJobs?batchJobId=waits-for-growth`, { nodePoolId: 'a10s', numRanks: 4, shellExecutor: { command: 'echo grown' } });
    await waitForState(t.api, 'default', 'waits-for-growth', 'QUEUED');
    const grown = await t.api.patch<PoolBody>(`${A}/nodePools/a10s`, { fakeNodePool: { numNodes: 3 } });
    assert.equal(grown.status, 200, JSON.stringify(grown.body));
    assert.equal(grown.body.fakeNodePool?.numNodes, 3);
    assert.equal(grown.body.maxNodeCount, 3);
    await waitForState(t.api, 'default', 'waits-for-growth', 'COMPLETED');
    assert.equal((await t.api.get<PoolBody>(`${A}/nodePools/a10s`)).body.nodePoolStats.nodeCount, 3);
  });

  it('refuses to shrink below a live job, and drains hosts on a shrink without killing their ranks', async () => {
    const refused = await t.api.patch<{ code: number; message: string }>(`${A}/nodePools/a10s?updateMask=fakeNodePool.numNodes`, { fakeNodePool: { numNodes: 1 } });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.code, 9);
    assert.match(refused.body.message, /a live job needs 8/);

    // needs-two runs on h0 and h1; shrinking to two hosts drains h2 at once (idle)...
    const shrunk = await t.api.patch<PoolBody>(`${A}/nodePools/a10s`, { fakeNodePool: { numNodes: 2 }, maxNodeCount: 2 });
    assert.equal(shrunk.status, 200, JSON.stringify(shrunk.body));
    await waitFor('h2 to leave', async () => ((await t.api.get<PoolBody>(`${A}/nodePools/a10s`)).body.nodePoolStats.nodeCount === 2 ? true : undefined));
    // ...and the running job is untouched.
    assert.equal((await t.api.get<{ state: string }>(`${A}/batchJobs/needs-two`)).body.state, 'RUNNING');
    open('needs-two');
    await waitForState(t.api, 'default', 'needs-two', 'COMPLETED');
  });

  it('refuses to change the machine type, and applies displayName/annotations with or without a mask', async () => {
    const type = await t.api.patch<{ message: string }>(`${A}/nodePools/cpus`, { fakeNodePool: { machineType: 'm5.4xlarge' } });
    assert.equal(type.status, 400);
    assert.match(type.body.message, /cannot be changed after creation/);
    const renamed = await t.api.patch<PoolBody>(`${A}/nodePools/cpus?updateMask=displayName`, { displayName: 'renamed', annotations: { ignored: 'x' } });
    assert.equal(renamed.status, 200);
    assert.equal(renamed.body.displayName, 'renamed');
    assert.equal((await t.api.get<PoolBody>(`${A}/nodePools/cpus`)).body.displayName, 'renamed');
  });

  it('refuses to delete a pool with live jobs; deletes it once they end; batchDelete deletes all or none', async () => {
    await t.api.post(`${A}/batchJobs?batchJobId=keeps-pool`, { nodePoolId: 'cpus', shellExecutor: { command: heldUntil('keeps-pool') } });
    await waitForState(t.api, 'default', 'keeps-pool', 'RUNNING');
    const refused = await t.api.delete<{ code: number; message: string }>(`${A}/nodePools/cpus`);
    assert.equal(refused.status, 400);
    assert.equal(refused.body.code, 9);
    assert.match(refused.body.message, /still has 1 live batch job/);
    const batch = await t.api.post<{ code: number }>(`${A}/nodePools:batchDelete`, { names: ['accounts/default/nodePools/a10s', 'accounts/default/nodePools/cpus'] });
    assert.equal(batch.status, 400, 'one pool with a live job fails the whole batch');
    assert.equal((await t.api.get(`${A}/nodePools/a10s`)).status, 200, 'and nothing was deleted');
    const unknown = await t.api.post(`${A}/nodePools:batchDelete`, { names: ['accounts/default/nodePools/a10s', 'accounts/default/nodePools/nope'] });
    assert.equal(unknown.status, 404);
    assert.equal((await t.api.get(`${A}/nodePools/a10s`)).status, 200);

    open('keeps-pool');
    await waitForState(t.api, 'default', 'keeps-pool', 'COMPLETED');
    const ok = await t.api.post(`${A}/nodePools:batchDelete`, { names: ['accounts/default/nodePools/a10s', 'accounts/default/nodePools/cpus'] });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    await waitFor('both pools gone', async () => ((await t.api.get<{ totalSize: number }>(`${A}/nodePools`)).body.totalSize === 0 ? true : undefined));
    const job = await t.api.post<{ code: number; message: string }>(`${A}/batchJobs`, { nodePoolId: 'cpus', shellExecutor: { command: 'true' } });
    assert.equal(job.status, 404, 'a deleted pool takes no jobs');
  });
});
