/**
 * Accounts, API keys and sharing, end to end on a real dev server through real HTTP, with a keys file
 * of two accounts × two users (raw and hashed keys mixed):
 *
 * - every /v1 route with account B's key on account A's paths → 403 and nothing of A in the body;
 *   lists (filters, page tokens) and batchDelete cannot reach another account;
 * - within an account everyone reads every job, but update, cancel and delete of a private job are
 *   its creator's; `shared: true` opens them;
 * - `:batchDelete` checks every name first and deletes none when one is bad;
 * - PATCH rules (mutable fields, masks, echoed fields, DELETING, live and ended jobs, annotations);
 * - the keys file reloads on SIGHUP and when it changes, keeps the previous keys when broken, refuses
 *   to start when broken, and no key, raw or hashed, ever reaches a log line or a response.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { batchJobRoutes } from '../../src/api/batch-job-routes';
import { type BatchJobService } from '../../src/api/batch-job-service';
import { KeysFileError } from '../../src/api/keys-file';
import { logFollowRoutes } from '../../src/api/log-follow-routes';
import { nodePoolRoutes } from '../../src/api/node-pool-routes';
import { type NodePoolService } from '../../src/api/node-pool-service';
import { type Route } from '../../src/api/routes';
import { loadConfig } from '../../src/config';
import { ALL_ROLES, type RunningService, startService } from '../../src/service';
import { type LogStore } from '../../src/store/log-store';
import { Api, type ApiResponse, type BatchJobBody, TEST_KEY, testEnv, waitFor, waitForState } from '../support/harness';

const ACME = '/v1/accounts/acme';
const BETA = '/v1/accounts/beta';

interface ErrorBody {
  code: number;
  message: string;
  details?: Array<{ fieldViolations?: Array<{ field: string; description: string }> }>;
}
interface JobPage {
  batchJobs: BatchJobBody[];
  nextPageToken: string;
  totalSize: number;
}
interface PoolPage {
  nodePools: Array<{ name: string }>;
  nextPageToken: string;
  totalSize: number;
}

const newKey = (who: string) => `${who}-${randomBytes(12).toString('base64url')}`;
const sha = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

/** The users of the keys file: raw and hashed keys mixed across both accounts. */
const USERS = {
  ann: { key: newKey('ann'), account: 'acme', email: 'ann@acme.dev', hashed: false },
  bob: { key: newKey('bob'), account: 'acme', email: 'bob@acme.dev', hashed: true },
  cat: { key: newKey('cat'), account: 'beta', email: 'cat@beta.dev', hashed: true },
  dan: { key: newKey('dan'), account: 'beta', email: 'dan@beta.dev', hashed: false },
  eve: { key: newKey('eve'), account: 'acme', email: 'eve@acme.dev', hashed: false },
  fay: { key: newKey('fay'), account: 'beta', email: 'fay@beta.dev', hashed: true },
};
type User = keyof typeof USERS;

function entry(user: User): Record<string, string> {
  const u = USERS[user];
  return u.hashed ? { keySha256: sha(u.key), account: u.account, email: u.email } : { key: u.key, account: u.account, email: u.email };
}

/** A keys file holding these users, padded with spaces to `length` bytes when given. */
function keysFile(users: User[], form: 'wrapped' | 'array', length?: number): string {
  const entries = users.map(entry);
  const text = JSON.stringify(form === 'wrapped' ? { keys: entries } : entries, null, 1);
  if (length === undefined) return text;
  assert.ok(text.length <= length, `keys file of ${text.length} bytes does not fit ${length}`);
  return text.padEnd(length, ' ');
}

const FILE_SIZE = 2048;

function fieldsOf(r: ApiResponse<ErrorBody>): string[] {
  return (r.body.details ?? []).flatMap((d) => d.fieldViolations ?? []).map((v) => v.field);
}

/** What account A holds that account B must never see. */
const SECRETS = ['acme-secret-display', 'acme-confidential-value', 'ann@acme.dev', 'acme pool secret', 'acme-log-line'];

function assertNoAcmeData(r: ApiResponse<unknown>, what: string): void {
  const text = JSON.stringify(r.body);
  for (const s of SECRETS) assert.ok(!text.includes(s), `${what}: the body holds "${s}" of account acme: ${text.slice(0, 300)}`);
}

describe('accounts, API keys and sharing', () => {
  let dataDir: string;
  let keysPath: string;
  let service: RunningService;
  let env: Record<string, string>;
  const logLines: string[] = [];
  const api: Record<User | 'admin', Api> = {} as Record<User | 'admin', Api>;

  const reloads = () => logLines.filter((l) => l.includes('"API keys reloaded"')).length;
  const reloadFailures = () => logLines.filter((l) => l.includes('API keys file not reloaded')).length;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'batchd-accounts-'));
    keysPath = join(dataDir, 'keys.json');
    writeFileSync(keysPath, keysFile(['ann', 'bob', 'cat', 'dan'], 'wrapped', FILE_SIZE));
    // A long stop grace, so a job whose ranks ignore SIGTERM stays DELETING for seconds.
    env = await testEnv(dataDir, { DEFAULT_POOLS: 'false', API_KEYS_FILE: keysPath, API_KEYS_RELOAD_MS: '150', RANK_STOP_GRACE_MS: '5000' });
    const logger = pino({ level: 'debug' }, {
      write: (line: string) => {
        logLines.push(line);
        if (process.env.TEST_LOG_LEVEL) process.stderr.write(line);
      },
    });
    service = await startService({ config: loadConfig(env), roles: ALL_ROLES, logger });
    const url = service.url ?? '';
    for (const user of Object.keys(USERS) as User[]) api[user] = new Api(url, USERS[user].key);
    api.admin = new Api(url, TEST_KEY);

    const pool = (who: Api, base: string, id: string, nodes: number, displayName: string) =>
      who.post(`${base}/nodePools`, { nodePoolId: id, nodePool: { displayName, fakeNodePool: { machineType: 'm5.xlarge', numNodes: nodes } } });
    for (const r of [
      await pool(api.ann, ACME, 'cpu', 4, 'acme pool secret'),
      await pool(api.ann, ACME, 'spare', 1, 'acme pool secret too'),
      await pool(api.cat, BETA, 'cpu', 1, 'beta pool'),
    ]) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }

    const job = async (who: Api, base: string, id: string, body: Record<string, unknown>) => {
      const r = await who.post<BatchJobBody>(`${base}/batchJobs?batchJobId=${id}`, body);
      assert.equal(r.status, 200, `${id}: ${JSON.stringify(r.body)}`);
    };
    const sleeper = { nodePoolId: 'cpu', shellExecutor: { command: 'sleep 600' } };
    // Long-running jobs of acme: ann's private one, ann's shared one, one to update.
    await job(api.ann, ACME, 'a-private', {
      ...sleeper,
      displayName: 'acme-secret-display',
      annotations: { 'acme.dev/secret': 'acme-confidential-value' },
      shellExecutor: { command: 'echo acme-log-line; sleep 600' },
    });
    await job(api.ann, ACME, 'a-shared', { ...sleeper, shared: true, displayName: 'shared one' });
    await job(api.ann, ACME, 'a-live', { ...sleeper, displayName: 'live one', annotations: { 'example.com/team': 'ml' } });
    // Quick jobs, queued one at a time on the spare pool.
    const quick = { nodePoolId: 'spare', shellExecutor: { command: 'echo acme-log-line' } };
    await job(api.ann, ACME, 'a-done', { ...quick, displayName: 'done one' });
    await job(api.ann, ACME, 'd-one', quick);
    await job(api.ann, ACME, 'd-two', quick);
    await job(api.bob, ACME, 'b-private', quick);
    await job(api.bob, ACME, 'b-shared', { ...quick, shared: true });
    await job(api.cat, BETA, 'beta-one', { nodePoolId: 'cpu', shellExecutor: { command: 'true' } });
    await job(api.dan, BETA, 'beta-two', { nodePoolId: 'cpu', shellExecutor: { command: 'true' } });

    for (const id of ['a-private', 'a-shared', 'a-live']) await waitForState(api.ann, 'acme', id, 'RUNNING', 90_000);
    for (const id of ['a-done', 'd-one', 'd-two', 'b-private', 'b-shared']) await waitForState(api.ann, 'acme', id, 'COMPLETED', 90_000);
    for (const id of ['beta-one', 'beta-two']) await waitForState(api.cat, 'beta', id, 'COMPLETED', 90_000);
  });

  after(async () => {
    await service?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('authenticates raw and hashed keys of the file as their own user, beside the bootstrap key', async () => {
    for (const user of ['ann', 'bob', 'cat', 'dan'] as const) {
      const u = USERS[user];
      const r = await api[user].get<JobPage>(`/v1/accounts/${u.account}/batchJobs`);
      assert.equal(r.status, 200, `${user}: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await api.admin.get('/v1/accounts/default/batchJobs')).status, 200, 'the bootstrap key stays valid');
    assert.equal((await api.admin.get(`${ACME}/batchJobs`)).status, 403, 'the bootstrap key is of account default only');
    const bobs = await api.bob.get<BatchJobBody>(`${ACME}/batchJobs/b-private`);
    assert.equal(bobs.body.createdBy, 'bob@acme.dev', 'a hashed key is its user: createdBy is the email of the entry');
    // The digest of a hashed key is not a key, nor is a key with a character more or less.
    for (const wrong of [sha(USERS.bob.key), USERS.ann.key.slice(1), `${USERS.ann.key}x`, USERS.bob.key.toUpperCase()]) {
      const r = await api.ann.withKey(wrong).get(`${ACME}/batchJobs`);
      assert.equal(r.status, 401);
      assert.ok(!JSON.stringify(r.body).includes(wrong), 'a presented key is never echoed');
    }
  });

  it('answers 403 to account B on every /v1 route of account A, whatever the id, and shows nothing of A', async () => {
    // The route table itself, so a route added later is probed too.
    const routes: Route[] = [
      ...batchJobRoutes({} as BatchJobService, {} as LogStore, Buffer.alloc(32), 1),
      ...logFollowRoutes({} as BatchJobService, {} as LogStore, { pageMaxBytes: 1, streamsPerAccount: 1, streamIdleMs: 1 }),
      ...nodePoolRoutes({} as NodePoolService, Buffer.alloc(32), { samples: () => [], intervalMs: 30_000 }),
    ].filter((r) => r.path.startsWith('/v1/') && r.path.includes('{account}'));
    const covered = new Set(routes.map((r) => r.operationId));
    for (const op of [
      'Gateway_CreateBatchJob', 'Gateway_ListBatchJobs', 'Gateway_GetBatchJob', 'Gateway_UpdateBatchJob', 'Gateway_DeleteBatchJob',
      'Gateway_CancelBatchJob', 'Gateway_GetBatchJobLogs', 'Gateway_BatchDeleteBatchJobs',
      'Gateway_CreateNodePool', 'Gateway_GetNodePool', 'Gateway_ListNodePools', 'Gateway_UpdateNodePool', 'Gateway_DeleteNodePool',
      'Gateway_GetNodePoolStats', 'Gateway_BatchDeleteNodePools',
      'Batchd_GetBatchJobPlacement', 'Batchd_GetNodePoolUsage', 'Batchd_GetNodePoolUsageHistory',
    ]) {
      assert.ok(covered.has(op), `route ${op} is in the table`);
    }
    const bodies: Record<string, unknown> = {
      Gateway_CreateBatchJob: { nodePoolId: 'cpu', shellExecutor: { command: 'true' } },
      Gateway_UpdateBatchJob: { displayName: 'taken over', shared: true },
      Gateway_CancelBatchJob: {},
      Gateway_BatchDeleteBatchJobs: { names: ['accounts/acme/batchJobs/a-private'] },
      Gateway_CreateNodePool: { nodePoolId: 'intruder', nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes: 1 } } },
      Gateway_UpdateNodePool: { displayName: 'taken over' },
      Gateway_BatchDeleteNodePools: { names: ['accounts/acme/nodePools/cpu'] },
    };
    let probes = 0;
    for (const route of routes) {
      for (const ids of [{ batchJob: 'a-private', nodePool: 'cpu' }, { batchJob: 'no-such-job', nodePool: 'no-such-pool' }]) {
        const path = route.path.replace(/\{(\w+)\}/g, (_m, p: string) => (p === 'account' ? 'acme' : ((ids as Record<string, string>)[p] ?? 'some-id')));
        for (const who of [api.cat, api.dan]) {
          const body = route.method === 'POST' || route.method === 'PATCH' ? (bodies[route.operationId] ?? {}) : undefined;
          const r = await who.call<ErrorBody>(route.method, `${path}${route.method === 'GET' ? '?filter=name%20%3D%20%22*%22' : ''}`, body);
          assert.equal(r.status, 403, `${route.method} ${path}: ${JSON.stringify(r.body)}`);
          assert.equal(r.body.code, 7);
          assert.match(r.body.message, /belongs to account "beta" and cannot access account "acme"/);
          assertNoAcmeData(r, `${route.method} ${path}`);
          probes++;
        }
      }
    }
    assert.ok(probes >= 15 * 4);
    // Nothing of acme moved.
    const job = await api.ann.get<BatchJobBody>(`${ACME}/batchJobs/a-private`);
    assert.equal(job.body.state, 'RUNNING');
    assert.equal(job.body.displayName, 'acme-secret-display');
    assert.notEqual(job.body.shared, true);
    const pools = await api.ann.get<PoolPage>(`${ACME}/nodePools`);
    assert.deepEqual(pools.body.nodePools.map((p) => p.name), ['accounts/acme/nodePools/cpu', 'accounts/acme/nodePools/spare']);
  });

  it("keeps batchDelete of another account's names out, from either account's path", async () => {
    const fromBeta = await api.cat.post<ErrorBody>(`${BETA}/batchJobs:batchDelete`, { names: ['accounts/beta/batchJobs/beta-one', 'accounts/acme/batchJobs/d-one'] });
    assert.equal(fromBeta.status, 403);
    assert.match(fromBeta.body.message, /^names\[1\]: .* belongs to another account; nothing was deleted/);
    assertNoAcmeData(fromBeta, 'batchDelete');
    assert.equal((await api.cat.get(`${BETA}/batchJobs/beta-one`)).status, 200, 'the good name was not deleted');
    assert.equal((await api.ann.get(`${ACME}/batchJobs/d-one`)).status, 200);
    const pools = await api.cat.post<ErrorBody>(`${BETA}/nodePools:batchDelete`, { names: ['accounts/acme/nodePools/spare'] });
    assert.equal(pools.status, 403);
    assert.equal((await api.ann.get(`${ACME}/nodePools/spare`)).status, 200);
  });

  it('lets no list filter reach another account: an unknown field is 400, anything else matches only the caller\'s jobs', async () => {
    const betaTotal = (await api.cat.get<JobPage>(`${BETA}/batchJobs`)).body.totalSize;
    assert.equal(betaTotal, 2);
    const filters: Array<[string, 'all' | 'none' | 'any']> = [
      ['state="RUNNING" OR account="other"', 'any'],
      ['state="RUNNING" OR account="acme"', 'any'],
      ['account = "acme"', 'any'],
      ['name = "*"', 'all'],
      ['name != ""', 'all'],
      ['NOT state = "RUNNING"', 'all'],
      ['(state = "RUNNING") OR (state != "RUNNING")', 'all'],
      ['name = "accounts/acme/batchJobs/a-private"', 'none'],
      ['name = "accounts/acme/*"', 'none'],
      ['createdBy = "ann@acme.dev"', 'none'],
      ['displayName = "acme-secret-display"', 'none'],
      ['displayName = "x\\" OR displayName != \\"y"', 'none'],
      ['displayName = "x\\\\" OR name != "z"', 'all'],
      ["displayName = 'x\\' OR account = \\'acme'", 'none'],
      ['displayName = "\\\\" OR 1 = 1 --', 'any'],
      ['state = "RUNNING" OR name = "accounts/acme/batchJobs/a-private" OR createdBy = "ann@acme.dev"', 'none'],
      ['displayName = "\\"; DROP TABLE batch_jobs; --"', 'none'],
      ['name = "accounts/beta/batchJobs/*" OR name = "accounts/acme/batchJobs/*"', 'all'],
    ];
    for (const [filter, expected] of filters) {
      const r = await api.cat.get<JobPage & ErrorBody>(`${BETA}/batchJobs?filter=${encodeURIComponent(filter)}`);
      assert.ok(r.status === 200 || r.status === 400, `${filter}: ${r.status} ${JSON.stringify(r.body)}`);
      if (r.status === 400) {
        assert.notEqual(expected, 'all', `${filter} should parse`);
        assert.notEqual(expected, 'none', `${filter} should parse`);
        assert.ok(fieldsOf(r).includes('filter'), `${filter}: names the filter`);
        continue;
      }
      assertNoAcmeData(r, filter);
      for (const j of r.body.batchJobs) assert.match(j.name, /^accounts\/beta\//, filter);
      assert.equal(r.body.totalSize, r.body.batchJobs.length, `${filter}: totalSize counts only the caller's jobs`);
      if (expected === 'all') assert.equal(r.body.totalSize, betaTotal, `${filter} matches every job of beta`);
      if (expected === 'none') assert.equal(r.body.totalSize, 0, `${filter} matches nothing of beta`);
    }
    const unknown = await api.cat.get<ErrorBody>(`${BETA}/batchJobs?filter=${encodeURIComponent('state="RUNNING" OR account="other"')}`);
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.message, /account/);
    const pools = await api.cat.get<PoolPage>(`${BETA}/nodePools?filter=${encodeURIComponent('name = "*"')}`);
    assert.deepEqual(pools.body.nodePools.map((p) => p.name), ['accounts/beta/nodePools/cpu']);
  });

  it("refuses a page token of account A to account B (400), and never pages into A's data", async () => {
    const first = await api.ann.get<JobPage>(`${ACME}/batchJobs?pageSize=1`);
    assert.equal(first.status, 200);
    assert.ok(first.body.nextPageToken, 'acme has more than one job');
    const token = encodeURIComponent(first.body.nextPageToken);
    const stolen = await api.cat.get<ErrorBody>(`${BETA}/batchJobs?pageSize=1&pageToken=${token}`);
    assert.equal(stolen.status, 400);
    assert.deepEqual(fieldsOf(stolen), ['pageToken']);
    assertNoAcmeData(stolen, 'page token');
    assert.equal((await api.cat.get(`${ACME}/batchJobs?pageSize=1&pageToken=${token}`)).status, 403);
    const sameAccount = await api.bob.get<JobPage>(`${ACME}/batchJobs?pageSize=1&pageToken=${token}`);
    assert.equal(sameAccount.status, 200, 'a page token is the account\'s, usable by each of its users');

    const poolPage = await api.ann.get<PoolPage>(`${ACME}/nodePools?pageSize=1`);
    assert.ok(poolPage.body.nextPageToken);
    const stolenPools = await api.cat.get<ErrorBody>(`${BETA}/nodePools?pageSize=1&pageToken=${encodeURIComponent(poolPage.body.nextPageToken)}`);
    assert.equal(stolenPools.status, 400);
    assert.deepEqual(fieldsOf(stolenPools), ['pageToken']);
  });

  it('lets every user of an account read every job of it, private or not', async () => {
    for (const who of [api.ann, api.bob]) {
      const get = await who.get<BatchJobBody>(`${ACME}/batchJobs/a-private`);
      assert.equal(get.status, 200);
      assert.equal(get.body.createdBy, 'ann@acme.dev');
      const list = await who.get<JobPage>(`${ACME}/batchJobs?filter=${encodeURIComponent('name = "accounts/acme/batchJobs/a-private"')}`);
      assert.equal(list.body.totalSize, 1);
      const logs = await waitFor('the log line of a-private', async () => {
        const r = await who.get<{ entries: Array<{ message: string }> }>(`${ACME}/batchJobs/a-private:getLogs`);
        return r.body.entries?.some((e) => e.message === 'acme-log-line') ? r : undefined;
      });
      assert.equal(logs.status, 200);
    }
  });

  it("refuses update, cancel and delete of a private job to anyone but its creator (403 naming who may); shared: true opens them", async () => {
    const denied = [
      await api.bob.patch<ErrorBody>(`${ACME}/batchJobs/a-private`, { displayName: 'mine now' }),
      await api.bob.post<ErrorBody>(`${ACME}/batchJobs/a-private:cancel`, {}),
      await api.bob.delete<ErrorBody>(`${ACME}/batchJobs/a-private`),
      await api.ann.patch<ErrorBody>(`${ACME}/batchJobs/b-private`, { shared: true }),
      await api.ann.delete<ErrorBody>(`${ACME}/batchJobs/b-private`),
    ];
    for (const r of denied) {
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.code, 7);
      assert.match(r.body.message, /only (ann|bob)@acme\.dev, who created batch job "(a|b)-private", may update, cancel or delete it: it is not shared/);
    }
    const still = await api.ann.get<BatchJobBody>(`${ACME}/batchJobs/a-private`);
    assert.equal(still.body.state, 'RUNNING');
    assert.equal(still.body.displayName, 'acme-secret-display');
    assert.equal((await api.bob.get(`${ACME}/batchJobs/b-private`)).status, 200);

    // A shared job: any user of the account may update, cancel and delete it.
    const renamed = await api.bob.patch<BatchJobBody>(`${ACME}/batchJobs/a-shared`, { displayName: 'renamed by bob' });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    assert.equal(renamed.body.displayName, 'renamed by bob');
    assert.equal(renamed.body.createdBy, 'ann@acme.dev', 'the creator stays');
    assert.equal((await api.bob.post(`${ACME}/batchJobs/a-shared:cancel`, {})).status, 200);
    const cancelled = await waitForState(api.ann, 'acme', 'a-shared', 'CANCELLED');
    assert.match(cancelled.status, /cancelled by bob@acme\.dev/);
    assert.equal((await api.ann.delete(`${ACME}/batchJobs/b-shared`)).status, 200, "ann deletes bob's shared job");
    assert.equal((await api.ann.get(`${ACME}/batchJobs/b-shared`)).status, 404);

    // Unsharing closes them again; only the creator can do that.
    const unshare = await api.bob.patch<ErrorBody>(`${ACME}/batchJobs/a-shared`, { shared: false });
    assert.equal(unshare.status, 200);
    assert.equal((await api.bob.patch(`${ACME}/batchJobs/a-shared`, { shared: true })).status, 403, 'once private, only its creator may share it again');
    assert.equal((await api.ann.patch(`${ACME}/batchJobs/a-shared`, { shared: true })).status, 200);
  });

  it(':batchDelete checks every name first and deletes none if one is bad, answering with the first bad name\'s error', async () => {
    const del = (who: Api, names: string[]) => who.post<ErrorBody>(`${ACME}/batchJobs:batchDelete`, { names });
    const n = (id: string) => `accounts/acme/batchJobs/${id}`;
    const exists = async (id: string) => (await api.ann.get(`${ACME}/batchJobs/${id}`)).status === 200;
    const cases: Array<[string, Api, string[], number, RegExp]> = [
      ['an unknown name', api.ann, [n('d-one'), n('no-such-job')], 404, /^names\[1\]: batch job "no-such-job" not found; nothing was deleted/],
      ['a name of another account', api.ann, [n('d-one'), 'accounts/beta/batchJobs/beta-one'], 403, /^names\[1\]: .* belongs to another account/],
      ["a private job of another user", api.ann, [n('d-one'), n('b-private')], 403, /^names\[1\]: only bob@acme\.dev/],
      ['an unknown name before a foreign one', api.ann, [n('d-one'), n('no-such-job'), 'accounts/beta/batchJobs/beta-one'], 404, /^names\[1\]/],
      ['a foreign name before an unknown one', api.ann, ['accounts/beta/batchJobs/beta-one', n('no-such-job')], 403, /^names\[0\]/],
      ['a node pool name', api.ann, [n('d-one'), 'accounts/acme/nodePools/spare'], 400, /^names\[1\]/],
      ['a malformed id', api.ann, [n('D_One')], 400, /^names\[0\]/],
      ["bob deleting ann's private job among his own", api.bob, [n('b-private'), n('d-two')], 403, /^names\[1\]: only ann@acme\.dev/],
    ];
    for (const [what, who, names, status, message] of cases) {
      const r = await del(who, names);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.message, message, what);
      for (const id of ['d-one', 'd-two', 'b-private']) assert.ok(await exists(id), `${what}: ${id} was not deleted`);
      assert.equal((await api.cat.get(`${BETA}/batchJobs/beta-one`)).status, 200);
    }
    const empty = await del(api.ann, []);
    assert.equal(empty.status, 400);
    assert.deepEqual(fieldsOf(empty), ['names']);

    // Duplicates are one name; everything good deletes everything.
    const ok = await del(api.ann, [n('d-one'), n('d-two'), n('d-one')]);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body, {});
    assert.equal(await exists('d-one'), false);
    assert.equal(await exists('d-two'), false);
    const list = await api.ann.get<JobPage>(`${ACME}/batchJobs?filter=${encodeURIComponent('name = "accounts/acme/batchJobs/d-*"')}`);
    assert.equal(list.body.totalSize, 0);
    assert.equal((await del(api.ann, [n('d-one')])).status, 404, 'a deleted job is unknown');
  });

  it('updates a live job through its workflow: mutable fields, masks, echoed fields; get and list show it at once; updateTime moves only on change', async () => {
    const path = `${ACME}/batchJobs/a-live`;
    const listed = async () =>
      (await api.ann.get<JobPage>(`${ACME}/batchJobs?filter=${encodeURIComponent('name = "accounts/acme/batchJobs/a-live"')}`)).body.batchJobs[0];
    const before = (await api.ann.get<BatchJobBody>(path)).body;
    assert.equal(before.state, 'RUNNING');

    const r1 = await api.ann.patch<BatchJobBody>(path, { displayName: 'renamed', nodePoolId: 'cpu', numRanks: 1 });
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    assert.equal(r1.body.displayName, 'renamed');
    assert.ok(String(r1.body.updateTime) > String(before.updateTime), 'updateTime moved');
    // No waiting: the update returns once the read model has it.
    assert.equal((await api.ann.get<BatchJobBody>(path)).body.displayName, 'renamed');
    const inList = await listed();
    assert.equal(inList?.displayName, 'renamed');
    assert.equal(inList?.updateTime, r1.body.updateTime);
    const byName = await api.ann.get<JobPage>(`${ACME}/batchJobs?filter=${encodeURIComponent('displayName = "renamed"')}`);
    assert.deepEqual(byName.body.batchJobs.map((j) => j.name), ['accounts/acme/batchJobs/a-live']);

    const same = await api.ann.patch<BatchJobBody>(path, { displayName: 'renamed' });
    assert.equal(same.status, 200);
    assert.equal(same.body.updateTime, r1.body.updateTime, 'nothing changed: updateTime stays');
    assert.equal((await listed())?.updateTime, r1.body.updateTime);

    // Masks: camelCase, snake_case (as update_mask), *, and a masked field absent from the body is cleared.
    const m1 = await api.ann.patch<BatchJobBody>(`${path}?updateMask=displayName`, { displayName: 'masked', shared: true });
    assert.equal(m1.body.displayName, 'masked');
    assert.notEqual(m1.body.shared, true, 'a field outside the mask is not written');
    const m2 = await api.ann.patch<BatchJobBody>(`${path}?update_mask=display_name,annotations`, { annotations: { 'example.com/stage': 'two' } });
    assert.equal(m2.status, 200, JSON.stringify(m2.body));
    assert.equal(m2.body.displayName, undefined, 'masked and absent: cleared');
    assert.deepEqual(m2.body.annotations, { 'example.com/stage': 'two' });
    const m3 = await api.ann.patch<BatchJobBody>(`${path}?updateMask=*`, { shared: true });
    assert.equal(m3.body.shared, true);
    assert.deepEqual(m3.body.annotations ?? {}, {});
    assert.equal((await listed())?.shared, true);

    const bad: Array<[string, string, unknown, string]> = [
      ['numRanks changed', path, { numRanks: 2 }, 'numRanks'],
      ['nodePoolId changed', path, { nodePoolId: 'spare' }, 'nodePoolId'],
      ['an executor changed', path, { shellExecutor: { command: 'true' } }, 'shellExecutor'],
      ['an unknown field', path, { nice: 1 }, 'nice'],
      ['priority changed', path, { priority: 1 }, 'priority'],
      ['a mask naming priority', `${path}?updateMask=priority`, { priority: 1 }, 'updateMask'],
      ['displayName of 64 characters', path, { displayName: 'x'.repeat(64) }, 'displayName'],
      ['shared not a boolean', path, { shared: 'yes' }, 'shared'],
      ['a mask naming an immutable field', `${path}?updateMask=numRanks`, { numRanks: 2 }, 'updateMask'],
      ['a mask naming no field', `${path}?updateMask=colour`, {}, 'updateMask'],
      ['a body that is not an object', path, [], '(body)'],
    ];
    for (const [what, p, body, field] of bad) {
      const r = await api.ann.patch<ErrorBody>(p, body);
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 3, what);
      assert.ok(fieldsOf(r).includes(field), `${what}: expected ${field}, got ${fieldsOf(r).join(', ')}`);
    }
    assert.match((await api.ann.patch<ErrorBody>(path, { numRanks: 2 })).body.message, /numRanks cannot be changed after creation/);
    assert.equal((await api.ann.get<BatchJobBody>(path)).body.numRanks, 1);
    assert.equal((await api.ann.patch(`${ACME}/batchJobs/no-such-job`, { displayName: 'x' })).status, 404);
  });

  it('rejects each bad annotation with 400 naming annotations["<key>"], and changes nothing', async () => {
    const path = `${ACME}/batchJobs/a-live`;
    const before = (await api.ann.get<BatchJobBody>(path)).body;
    const longPrefix = `${'a'.repeat(250)}.com/x`;
    const cases: Array<[string, Record<string, string>, string]> = [
      ['a prefix over 253 characters', { [longPrefix]: 'v' }, `annotations["${longPrefix}"]`],
      ['a name over 63 characters', { [`example.com/${'n'.repeat(64)}`]: 'v' }, `annotations["example.com/${'n'.repeat(64)}"]`],
      ['a name ending in "-"', { 'example.com/bad-': 'v' }, 'annotations["example.com/bad-"]'],
      ['a name with a space', { 'bad name': 'v' }, 'annotations["bad name"]'],
      ['two slashes', { 'a/b/c': 'v' }, 'annotations["a/b/c"]'],
      ['the reserved prefix', { 'fireworks.ai/owner': 'me' }, 'annotations["fireworks.ai/owner"]'],
      ['a subdomain of the reserved prefix', { 'x.FIREWORKS.ai/owner': 'me' }, 'annotations["x.FIREWORKS.ai/owner"]'],
    ];
    for (const [what, annotations, field] of cases) {
      for (const p of [path, `${path}?updateMask=annotations`]) {
        const r = await api.ann.patch<ErrorBody>(p, { annotations });
        assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body).slice(0, 300)}`);
        assert.ok(fieldsOf(r).includes(field), `${what}: expected ${field}, got ${fieldsOf(r).join(', ')}`);
      }
    }
    // The total size is a limit of the whole map, so it names the map (see the reply for why).
    const big = await api.ann.patch<ErrorBody>(path, { annotations: { 'example.com/big': 'v'.repeat(256 * 1024) } });
    assert.equal(big.status, 400);
    assert.deepEqual(fieldsOf(big), ['annotations']);
    assert.match(big.body.message, /262159 bytes; the limit is 262144 \(256 KiB\)/);
    const atLimit = await api.ann.patch<BatchJobBody>(path, { annotations: { k: 'v'.repeat(256 * 1024 - 1) } });
    assert.equal(atLimit.status, 200, 'exactly 256 KiB is allowed');
    const restored = await api.ann.patch<BatchJobBody>(path, { annotations: before.annotations ?? {} });
    assert.deepEqual(restored.body.annotations ?? {}, before.annotations ?? {});
    assert.equal(restored.body.displayName, before.displayName);
  });

  it('updates an ended job in the read model: get and list show it at once; updateTime moves only on change', async () => {
    const path = `${ACME}/batchJobs/a-done`;
    const before = (await api.ann.get<BatchJobBody>(path)).body;
    assert.equal(before.state, 'COMPLETED');
    const r = await api.ann.patch<BatchJobBody>(path, { annotations: { 'example.com/verdict': 'good' }, shared: true, nodePoolId: 'spare' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.state, 'COMPLETED');
    assert.equal(r.body.endTime, before.endTime);
    assert.ok(String(r.body.updateTime) > String(before.updateTime));
    const got = (await api.ann.get<BatchJobBody>(path)).body;
    assert.deepEqual(got.annotations, { 'example.com/verdict': 'good' });
    assert.equal(got.updateTime, r.body.updateTime);
    const listed = await api.ann.get<JobPage>(`${ACME}/batchJobs?filter=${encodeURIComponent('shared = true AND state = "COMPLETED"')}`);
    assert.deepEqual(listed.body.batchJobs.map((j) => [j.name, j.updateTime]), [['accounts/acme/batchJobs/a-done', r.body.updateTime]]);
    const again = await api.bob.patch<BatchJobBody>(path, { annotations: { 'example.com/verdict': 'good' } });
    assert.equal(again.status, 200, 'shared now, so bob may update it');
    assert.equal(again.body.updateTime, r.body.updateTime, 'nothing changed: updateTime stays');
    const cleared = await api.bob.patch<BatchJobBody>(`${path}?updateMask=displayName`, {});
    assert.equal(cleared.body.displayName, undefined);
    assert.equal((await api.ann.get<BatchJobBody>(path)).body.displayName, undefined);
    const refused = await api.ann.patch<ErrorBody>(path, { numRanks: 3 });
    assert.equal(refused.status, 400);
    assert.deepEqual(fieldsOf(refused), ['numRanks']);
  });

  it('refuses to update a DELETING job with FAILED_PRECONDITION (400)', async () => {
    // The ranks ignore SIGTERM, so the job stays DELETING for the stop grace (5 s) before SIGKILL.
    const r = await api.ann.post(`${ACME}/batchJobs?batchJobId=stubborn`, { nodePoolId: 'cpu', shellExecutor: { command: "trap '' TERM; sleep 600" } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitForState(api.ann, 'acme', 'stubborn', 'RUNNING', 60_000);
    assert.equal((await api.ann.delete(`${ACME}/batchJobs/stubborn`)).status, 200);
    await waitForState(api.ann, 'acme', 'stubborn', 'DELETING');
    const patch = await api.ann.patch<ErrorBody>(`${ACME}/batchJobs/stubborn`, { displayName: 'too late' });
    assert.equal(patch.status, 400, JSON.stringify(patch.body));
    assert.equal(patch.body.code, 9, 'FAILED_PRECONDITION');
    assert.match(patch.body.message, /being deleted/);
    await waitFor('stubborn to be gone', async () => ((await api.ann.get(`${ACME}/batchJobs/stubborn`)).status === 404 ? true : undefined), 60_000);
  });

  it('reloads the keys file on SIGHUP: a new key starts working, a removed key stops', async () => {
    // Pin the file's mtime to a whole second, so it can be restored exactly after the rewrite.
    const pinned = Math.floor(Date.now() / 1000) - 60;
    const reloaded = reloads();
    utimesSync(keysPath, pinned, pinned);
    await waitFor('the poll to notice the new mtime', () => Promise.resolve(reloads() > reloaded ? true : undefined));
    const { ino, size } = statSync(keysPath);

    // Eve in, Dan out; same size, same inode, same mtime: only a signal can tell.
    writeFileSync(keysPath, keysFile(['ann', 'bob', 'cat', 'eve'], 'wrapped', FILE_SIZE));
    utimesSync(keysPath, pinned, pinned);
    const now = statSync(keysPath);
    assert.deepEqual([now.ino, now.size, now.mtimeMs], [ino, size, pinned * 1000]);
    const count = reloads();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(reloads(), count, 'the poll saw no change');
    assert.equal((await api.eve.get(`${ACME}/batchJobs`)).status, 401, 'not yet');
    assert.equal((await api.dan.get(`${BETA}/batchJobs`)).status, 200, 'not yet');

    process.kill(process.pid, 'SIGHUP');
    await waitFor('eve to be let in', async () => ((await api.eve.get(`${ACME}/batchJobs`)).status === 200 ? true : undefined), 5000);
    assert.equal((await api.dan.get(`${BETA}/batchJobs`)).status, 401, 'a removed key stops working');
    assert.equal((await api.ann.get(`${ACME}/batchJobs`)).status, 200);
    assert.equal((await api.admin.get('/v1/accounts/default/batchJobs')).status, 200, 'the bootstrap key is not in the file and stays');
    assert.ok(logLines.some((l) => l.includes('"API keys reloaded"') && l.includes('SIGHUP received')));
  });

  it('reloads the keys file when it changes (array form, hashed keys)', async () => {
    writeFileSync(keysPath, keysFile(['ann', 'bob', 'cat', 'fay'], 'array'));
    await waitFor('fay to be let in', async () => ((await api.fay.get(`${BETA}/batchJobs`)).status === 200 ? true : undefined), 5000);
    assert.equal((await api.eve.get(`${ACME}/batchJobs`)).status, 401, 'eve is out');
    const created = await api.fay.post<BatchJobBody>(`${BETA}/batchJobs?batchJobId=by-fay`, { nodePoolId: 'cpu', shellExecutor: { command: 'true' } });
    assert.equal(created.body.createdBy, 'fay@beta.dev');
  });

  it('keeps the previous keys when the file turns bad (on change and on SIGHUP), and logs why without a key', async () => {
    const failures = reloadFailures();
    // Broken JSON with keys in it, then valid JSON with a bad entry.
    writeFileSync(keysPath, `[{"key": "${USERS.eve.key}", "account": "acme", "email": "eve@acme.dev"}, {"key": ${USERS.dan.key}}]`);
    await waitFor('the reload to fail', () => Promise.resolve(reloadFailures() > failures ? true : undefined), 5000);
    assert.equal((await api.fay.get(`${BETA}/batchJobs`)).status, 200, 'the previous keys stay');
    assert.equal((await api.eve.get(`${ACME}/batchJobs`)).status, 401, 'nothing of the bad file is used');
    process.kill(process.pid, 'SIGHUP');
    await waitFor('the SIGHUP reload to fail too', () => Promise.resolve(reloadFailures() > failures + 1 ? true : undefined), 5000);
    writeFileSync(keysPath, JSON.stringify([entry('ann'), { key: USERS.eve.key.slice(0, 12), account: 'acme', email: 'eve@acme.dev' }]));
    await waitFor('the third reload to fail', () => Promise.resolve(reloadFailures() > failures + 2 ? true : undefined), 5000);
    const last = logLines.filter((l) => l.includes('API keys file not reloaded')).at(-1) ?? '';
    assert.match(last, /\[1\]\.key: must be at least 16 characters/);
    assert.equal((await api.fay.get(`${BETA}/batchJobs`)).status, 200, 'still the previous keys');
    assert.equal((await api.ann.patch(`${ACME}/batchJobs/a-live`, { displayName: 'after a bad reload' })).status, 200);

    writeFileSync(keysPath, keysFile(['ann', 'bob', 'cat', 'dan'], 'wrapped'));
    await waitFor('dan to be back', async () => ((await api.dan.get(`${BETA}/batchJobs`)).status === 200 ? true : undefined), 5000);
    assert.equal((await api.fay.get(`${BETA}/batchJobs`)).status, 401);
  });

  it('refuses to start with a keys file that does not load, with a clear message and no key in it', async () => {
    const bad = join(dataDir, 'bad-keys.json');
    writeFileSync(bad, JSON.stringify({ keys: [entry('ann'), { key: 'short-key-12', account: 'acme', email: 'x@acme.dev' }, { keySha256: sha(USERS.bob.key), key: USERS.bob.key, account: 'acme', email: 'bob@acme.dev' }] }));
    const listeners = process.listenerCount('SIGHUP');
    const attempts: Array<[string, RegExp]> = [
      [bad, /API_KEYS_FILE .*bad-keys\.json was not loaded: keys\[1\]\.key: must be at least 16 characters; keys\[2\]: must have exactly one of "key" and "keySha256"/],
      [join(dataDir, 'missing.json'), /missing\.json could not be read \(ENOENT\)/],
    ];
    for (const [file, message] of attempts) {
      // The API role alone, pointed at a Temporal that is not there: only an early keys check fails fast with this error.
      const started = Date.now();
      await assert.rejects(
        startService({ config: loadConfig({ ...env, API_KEYS_FILE: file, TEMPORAL_ADDRESS: '127.0.0.1:1', DATA_DIR: join(dataDir, 'other') }), roles: ['api'], logger: pino({ level: 'silent' }) }),
        (err: unknown) => {
          assert.ok(err instanceof KeysFileError, String(err));
          assert.match(err.message, message);
          for (const k of [USERS.ann.key, USERS.bob.key, sha(USERS.bob.key), sha(USERS.ann.key), 'short-key-12']) assert.ok(!err.message.includes(k), 'no key in the message');
          return true;
        },
      );
      assert.ok(Date.now() - started < 5000, 'it fails before connecting anywhere');
    }
    assert.equal(process.listenerCount('SIGHUP'), listeners, 'a failed start leaves no SIGHUP handler behind');
  });

  it('never writes a key, raw or hashed, to a log line', () => {
    assert.ok(logLines.length > 100, `the service logged (${logLines.length} lines at debug)`);
    assert.ok(reloads() >= 3 && reloadFailures() >= 3, 'reloads, good and bad, were logged');
    const all = logLines.join('');
    const keys = Object.values(USERS).map((u) => u.key);
    for (const key of [...keys, TEST_KEY, readFileSync(join(dataDir, 'api-key'), 'utf8').trim()]) {
      for (const form of [key, sha(key), sha(key).toUpperCase(), createHash('sha256').update(key).digest('base64')]) {
        assert.ok(!all.includes(form), `a key (${key.slice(0, 4)}…) appears in the log`);
      }
    }
  });
});
