/**
 * List over the read model: default order create_time desc, stable paging across 120 jobs while new
 * jobs arrive, filters, orderBy, totalSize, page-token rules. The jobs queue behind one long job on a
 * one-host pool, so the suite is cheap while every job is real.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type BatchJobBody, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';

interface Page {
  batchJobs: BatchJobBody[];
  nextPageToken: string;
  totalSize: number;
}

describe('listing batch jobs', () => {
  let t: TestService;
  const created: Array<{ name: string; createTime: string }> = [];

  before(async () => {
    t = await startTestService({ defaultPools: false });
    const pool = await t.api.post(`${A}/nodePools`, { nodePoolId: 'one', nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes: 1 } } });
    assert.equal(pool.status, 200, JSON.stringify(pool.body));
    const head = await t.api.post<BatchJobBody>(`${A}/batchJobs?batchJobId=job-000`, { nodePoolId: 'one', shellExecutor: { command: 'sleep 600' } });
    created.push({ name: head.body.name, createTime: String(head.body.createTime) });
    await waitForState(t.api, 'default', 'job-000', 'RUNNING');
    // Eight clients at a time, as a busy API would see them.
    for (let start = 1; start < 120; start += 8) {
      const batch = [];
      for (let i = start; i < Math.min(start + 8, 120); i++) {
        const id = `job-${String(i).padStart(3, '0')}`;
        batch.push(
          t.api.post<BatchJobBody>(`${A}/batchJobs?batchJobId=${id}`, {
            displayName: i % 2 === 0 ? `even ${i}` : `odd ${i}`,
            nodePoolId: 'one',
            numRanks: 1,
            shellExecutor: { command: 'true' },
          }),
        );
      }
      for (const r of await Promise.all(batch)) {
        assert.equal(r.status, 200, JSON.stringify(r.body));
        created.push({ name: r.body.name, createTime: String(r.body.createTime) });
      }
    }
  });
  after(async () => {
    await t?.stop();
  });

  const expectedDefaultOrder = () =>
    [...created].sort((a, b) => (a.createTime === b.createTime ? a.name.localeCompare(b.name) : b.createTime.localeCompare(a.createTime))).map((c) => c.name);

  it('pages through 120 jobs newest first, 50 at a time, with no job skipped or repeated while jobs are created', async () => {
    const expected = expectedDefaultOrder();
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const r = await t.api.get<Page>(`${A}/batchJobs?pageSize=50${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      seen.push(...r.body.batchJobs.map((j) => j.name));
      token = r.body.nextPageToken;
      pages++;
      if (pages === 1) {
        assert.equal(r.body.totalSize, 120);
        // A job created between pages is newer than the cursor: it must not appear on later pages.
        const extra = await t.api.post(`${A}/batchJobs?batchJobId=late-arrival`, { nodePoolId: 'one', shellExecutor: { command: 'true' } });
        assert.equal(extra.status, 200);
      }
    } while (token);
    assert.equal(pages, 3);
    assert.deepEqual(seen, expected);
    await t.api.post(`${A}/batchJobs/late-arrival:cancel`, {});
  });

  it('filters by state and counts every match in totalSize', async () => {
    const q = encodeURIComponent('state = QUEUED');
    // Jobs reach QUEUED as their workflows validate them; the 119 behind job-000 all get there.
    const r = await waitFor('all 119 waiting jobs to be QUEUED', async () => {
      const page = await t.api.get<Page>(`${A}/batchJobs?filter=${q}&pageSize=10`);
      return page.body.totalSize === 119 ? page : undefined;
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.batchJobs.length, 10);
    assert.ok(r.body.batchJobs.every((j) => j.state === 'QUEUED'));
    const running = await t.api.get<Page>(`${A}/batchJobs?filter=${encodeURIComponent('state = "RUNNING" AND nodePoolId = "one"')}`);
    assert.deepEqual(running.body.batchJobs.map((j) => j.name), ['accounts/default/batchJobs/job-000']);
    const wildcard = await t.api.get<Page>(`${A}/batchJobs?filter=${encodeURIComponent('displayName = "even 1*"')}&pageSize=200`);
    assert.deepEqual(
      wildcard.body.batchJobs.map((j) => j.displayName).sort(),
      ['even 10', 'even 100', 'even 102', 'even 104', 'even 106', 'even 108', 'even 110', 'even 112', 'even 114', 'even 116', 'even 118', 'even 12', 'even 14', 'even 16', 'even 18'],
    );
  });

  it('orders by other fields, ascending or descending, with either spelling', async () => {
    const asc = await t.api.get<Page>(`${A}/batchJobs?orderBy=create_time&pageSize=3`);
    assert.deepEqual(asc.body.batchJobs.map((j) => j.name), expectedDefaultOrder().reverse().slice(0, 3));
    const byName = await t.api.get<Page>(`${A}/batchJobs?orderBy=${encodeURIComponent('name desc')}&pageSize=2`);
    assert.deepEqual(byName.body.batchJobs.map((j) => j.name), ['accounts/default/batchJobs/late-arrival', 'accounts/default/batchJobs/job-119']);
  });

  it('applies readMask to every item', async () => {
    const r = await t.api.get<Page>(`${A}/batchJobs?pageSize=2&readMask=${encodeURIComponent('name,state')}`);
    for (const j of r.body.batchJobs) assert.deepEqual(Object.keys(j).sort(), ['name', 'state']);
  });

  it('refuses bad list parameters with 400 naming the parameter', async () => {
    const cases: Array<[string, RegExp]> = [
      ['pageSize=-1', /pageSize/],
      ['pageSize=abc', /pageSize/],
      [`filter=${encodeURIComponent('state = SLEEPING')}`, /filter/],
      [`filter=${encodeURIComponent('colour = "red"')}`, /unknown field/],
      [`filter=${encodeURIComponent('(state = QUEUED')}`, /filter/],
      [`orderBy=${encodeURIComponent('colour desc')}`, /orderBy/],
      ['pageToken=forged', /pageToken/],
    ];
    for (const [query, pattern] of cases) {
      const r = await t.api.get<{ code: number; message: string }>(`${A}/batchJobs?${query}`);
      assert.equal(r.status, 400, query);
      assert.match(r.body.message, pattern, query);
    }
    const first = await t.api.get<Page>(`${A}/batchJobs?pageSize=5`);
    const reused = await t.api.get<{ message: string }>(`${A}/batchJobs?pageSize=5&orderBy=name&pageToken=${encodeURIComponent(first.body.nextPageToken)}`);
    assert.equal(reused.status, 400, 'a token is only good for the query that produced it');
    assert.match(reused.body.message, /different query/);
    const coerced = await t.api.get<Page>(`${A}/batchJobs?pageSize=500`);
    assert.equal(coerced.body.batchJobs.length, 121, 'pageSize above 200 is coerced to 200, which holds all 121');
  });
});
