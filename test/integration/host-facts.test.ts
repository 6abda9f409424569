/**
 * What hosts report when they join their pool, through a real pool workflow and the API: a job whose
 * pool has no ready host able to run its executor is refused at create (400 FAILED_PRECONDITION
 * naming what is missing, nothing created), and a pool whose hosts run ranks without isolation says
 * so in its status. The hosts here join as an agent would (the joinHost update) with chosen reports.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getHostFactsQuery, joinHostUpdate } from '../../workflows/messages';
import { startTestService, type TestService, waitFor } from '../support/harness';

const A = '/v1/accounts/default';
const POOL = 'accounts/default/nodePools/remote';

describe('host facts: executors and isolation', () => {
  let t: TestService;
  const join = (host: string, facts: Record<string, unknown>) =>
    t.service.client.workflow.getHandle(POOL).executeUpdate(joinHostUpdate, { args: [{ host, slots: 1, address: '127.0.0.1', ...facts }] });

  before(async () => {
    t = await startTestService({ defaultPools: false });
    const r = await t.api.post(`${A}/nodePools`, { nodePoolId: 'remote', nodePool: { maxNodeCount: 3, eksNodePool: { instanceType: 'm5.xlarge' } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
  after(async () => {
    await t?.stop();
  });

  it('refuses at create a job no ready host can run, naming what is missing, and creates nothing', async () => {
    await join('h1', { executors: ['shell', 'python'], python: 'Python 3.11.2', isolation: 'isolated' });
    await waitFor('the host is known', async () => ((await t.service.client.workflow.getHandle(POOL).query(getHostFactsQuery)).length === 1 ? true : undefined));
    const nb = await t.api.post<{ code: number; message: string }>(`${A}/batchJobs?batchJobId=nb`, { nodePoolId: 'remote', notebookExecutor: { notebookFilename: 'a.ipynb' } });
    assert.equal(nb.status, 400, JSON.stringify(nb.body));
    assert.match(nb.body.message, /no ready host of node pool remote can run notebook jobs: jupyter-nbconvert .* is not installed on h1/);
    assert.equal((await t.api.get(`${A}/batchJobs/nb`)).status, 404, 'nothing created');
    // Python is there; shell needs no report at all.
    const py = await t.api.post(`${A}/batchJobs?batchJobId=py`, { nodePoolId: 'remote', pythonExecutor: { targetType: 'MODULE', target: 'json.tool' } });
    assert.equal(py.status, 200, JSON.stringify(py.body));
    // A second host that can run notebooks makes the pool able to.
    await join('h2', { executors: ['shell', 'python', 'notebook'], isolation: 'isolated' });
    await waitFor('two hosts', async () => ((await t.service.client.workflow.getHandle(POOL).query(getHostFactsQuery)).length === 2 ? true : undefined));
    const nb2 = await t.api.post(`${A}/batchJobs?batchJobId=nb2`, { nodePoolId: 'remote', notebookExecutor: { notebookFilename: 'a.ipynb' } });
    assert.equal(nb2.status, 200, JSON.stringify(nb2.body));
  });

  it('says in the pool status which hosts run ranks without isolation', async () => {
    const pool = async () => (await t.api.get<{ status: { code: string; message: string } }>(`${A}/nodePools/remote`)).body.status;
    assert.equal((await pool()).message, '');
    await join('h3', { executors: ['shell'], isolation: 'none' });
    const status = await waitFor('the status says so', async () => {
      const s = await pool();
      return s.message ? s : undefined;
    });
    assert.equal(status.code, 'OK');
    assert.match(status.message, /ranks on h3 are not isolated: their agents do not run as root/);
  });
});
