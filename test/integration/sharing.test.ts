/**
 * Sharing a pool through the API, on real processes: a job of higher priority preempts a preemptible
 * one (stopped, requeued, completed later) and never one that is not preemptible; a job whose
 * declared run time ends before the head of the queue could start is backfilled into the head's
 * reserved slots, and jobs that would delay the head, or declare no run time, wait behind it. Then a
 * pool the operator's sharing file opens to other accounts: a quota that holds an account back while
 * capacity is free, its status giving the numbers; fair share splitting freed capacity between two
 * accounts instead of first come first served; and an account the pool is not shared with refused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Api, type BatchJobBody, processesMatching, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';

describe('sharing a pool: priorities, preemption, backfill', () => {
  let t: TestService;
  const markers: string[] = [];

  before(async () => {
    t = await startTestService();
    for (const id of ['prio', 'fill']) {
      // One host of 4 GPUs each.
      const r = await t.api.post(`${A}/nodePools`, { nodePoolId: id, nodePool: { fakeNodePool: { machineType: 'g5.12xlarge', numNodes: 1 } } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  });
  after(async () => {
    for (const marker of markers) for (const pid of processesMatching(marker)) process.kill(pid, 'SIGKILL');
    await t?.stop();
  });

  const marker = (n: number) => {
    const m = `sleep ${300 + n}.${Date.now() % 100000}`;
    markers.push(m);
    return m;
  };
  const create = async (id: string, body: Record<string, unknown>) => {
    const r = await t.api.post<BatchJobBody>(`${A}/batchJobs?batchJobId=${id}`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const get = async (id: string) => (await t.api.get<BatchJobBody>(`${A}/batchJobs/${id}`)).body;
  const cancel = async (id: string) => assert.equal((await t.api.post(`${A}/batchJobs/${id}:cancel`, {})).status, 200);

  it('a job of higher priority preempts a preemptible one, which is requeued and completes after it; a job that is not preemptible keeps running', async () => {
    const sleeper = marker(1);
    const victim = await create('victim', {
      nodePoolId: 'prio',
      numRanks: 4,
      retryPolicy: { maxAttempts: 3, conditions: ['PREEMPTED'], initialBackoff: '0.2s' },
      shellExecutor: { command: `if [ "$BATCH_JOB_ATTEMPT" = 1 ]; then ${sleeper}; fi; echo "attempt $BATCH_JOB_ATTEMPT done"` },
    });
    assert.equal(victim.priority, undefined, 'priority 0 is the default, omitted');
    await waitForState(t.api, 'default', 'victim', 'RUNNING', 60_000);
    const urgent = await create('urgent', { nodePoolId: 'prio', numRanks: 4, priority: 10, shellExecutor: { command: 'echo urgent' } });
    assert.equal(urgent.priority, 10);

    const preempted = await waitFor(
      'the victim preempted',
      async () => {
        const v = await get('victim');
        return /preempted by batch job urgent/.test(v.status) ? v : undefined;
      },
      60_000,
    );
    assert.match(preempted.status, /^attempt 1 of 3 failed: preempted by batch job urgent \(priority 10 over its 0, on node pool prio\): its ranks were stopped; retrying because/);
    const done = await waitForState(t.api, 'default', 'urgent', 'COMPLETED', 60_000);
    assert.match(done.status, /all 4 ranks exited with code 0/);
    const requeued = await waitForState(t.api, 'default', 'victim', 'COMPLETED', 60_000);
    assert.equal(requeued.attempt, 2);
    assert.ok(Date.parse(String(requeued.startTime)) >= Date.parse(String(done.startTime)), 'the victim ran again after the job that preempted it started');
    assert.deepEqual(processesMatching(sleeper), [], 'the first attempt\'s ranks were stopped');

    // A job without a policy that retries PREEMPTED is never preempted: the urgent job waits, saying why.
    const steady = marker(2);
    await create('steady', { nodePoolId: 'prio', numRanks: 4, shellExecutor: { command: steady } });
    await waitForState(t.api, 'default', 'steady', 'RUNNING', 60_000);
    await create('urgent-2', { nodePoolId: 'prio', numRanks: 4, priority: 10, shellExecutor: { command: 'echo urgent again' } });
    const waiting = await waitForState(t.api, 'default', 'urgent-2', 'QUEUED', 30_000);
    assert.match(waiting.status, /waiting for 4 GPUs in node pool prio at priority 10; first of 1 in the queue; no GPU free now/);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal((await get('steady')).state, 'RUNNING', 'not preemptible: still running');
    await cancel('steady');
    await waitForState(t.api, 'default', 'urgent-2', 'COMPLETED', 60_000);
  });

  it('backfills a job that ends before the head could start into its reserved slots, and holds back one that would delay it', async () => {
    // Half the host, for at most 120 s: the head (the whole host) can start by then at the latest.
    const holder = marker(3);
    await create('holder', { nodePoolId: 'fill', numRanks: 2, maxRunDuration: '120s', shellExecutor: { command: holder } });
    await waitForState(t.api, 'default', 'holder', 'RUNNING', 60_000);
    await create('head', { nodePoolId: 'fill', numRanks: 4, shellExecutor: { command: 'echo head' } });
    await waitForState(t.api, 'default', 'head', 'QUEUED', 30_000);
    await create('too-long', { nodePoolId: 'fill', numRanks: 2, maxRunDuration: '600s', shellExecutor: { command: 'echo too long' } });
    await create('undeclared', { nodePoolId: 'fill', numRanks: 2, shellExecutor: { command: 'echo undeclared' } });
    await create('short', { nodePoolId: 'fill', numRanks: 2, maxRunDuration: '20s', shellExecutor: { command: 'echo short' } });

    const short = await waitForState(t.api, 'default', 'short', 'COMPLETED', 60_000);
    assert.match(short.status, /all 2 ranks exited with code 0/);
    for (const id of ['head', 'too-long', 'undeclared']) assert.equal((await get(id)).state, 'QUEUED', `${id} still waits`);

    await cancel('holder');
    const head = await waitForState(t.api, 'default', 'head', 'COMPLETED', 60_000);
    const tooLong = await waitForState(t.api, 'default', 'too-long', 'COMPLETED', 60_000);
    const undeclared = await waitForState(t.api, 'default', 'undeclared', 'COMPLETED', 60_000);
    for (const later of [tooLong, undeclared]) assert.ok(Date.parse(String(later.startTime)) >= Date.parse(String(head.startTime)), `${later.name} started after the head`);
  });
});

describe('a pool shared between accounts: quotas and fair share', () => {
  let t: TestService;
  const markers: string[] = [];
  const users = { acme: '', beta: '', gamma: '', delta: '' };
  const api: Record<keyof typeof users, Api> = {} as Record<keyof typeof users, Api>;
  const BIG = 'accounts/acme/nodePools/big';
  const FAIR = 'accounts/acme/nodePools/fair';
  let dir = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'batchd-sharing-'));
    const keys = (Object.keys(users) as Array<keyof typeof users>).map((account) => {
      users[account] = `${account}-${randomBytes(12).toString('hex')}`;
      return { key: users[account], account, email: `ann@${account}.dev` };
    });
    writeFileSync(join(dir, 'keys.json'), JSON.stringify(keys));
    writeFileSync(
      join(dir, 'sharing.json'),
      JSON.stringify({
        pools: {
          [BIG]: { accounts: { beta: { quota: 2 }, gamma: {} } },
          [FAIR]: { accounts: { acme: { weight: 1 }, beta: { weight: 1 } }, fairShareHalfLife: '3600s' },
        },
      }),
    );
    t = await startTestService({ dataDir: dir, defaultPools: false, env: { API_KEYS_FILE: join(dir, 'keys.json'), SHARING_FILE: join(dir, 'sharing.json') } });
    for (const account of Object.keys(users) as Array<keyof typeof users>) api[account] = new Api(t.url, users[account]);
    // Two hosts of 4 GPUs (8 in all), and one host of 4.
    for (const [id, numNodes] of [['big', 2], ['fair', 1]] as const) {
      const r = await api.acme.post('/v1/accounts/acme/nodePools', { nodePoolId: id, nodePool: { fakeNodePool: { machineType: 'g5.12xlarge', numNodes } } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  });
  after(async () => {
    for (const marker of markers) for (const pid of processesMatching(marker)) process.kill(pid, 'SIGKILL');
    await t?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const sleeper = (n: number) => {
    const m = `sleep ${400 + n}.${Date.now() % 100000}`;
    markers.push(m);
    return m;
  };
  const create = async (account: keyof typeof users, id: string, body: Record<string, unknown>) => {
    const r = await api[account].post<BatchJobBody>(`/v1/accounts/${account}/batchJobs?batchJobId=${id}`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const state = (account: keyof typeof users, id: string, states: string | string[]) => waitForState(api[account], account, id, states, 60_000);
  /** QUEUED in the read model: the job's request has reached its pool (a job writes that record just after sending it). */
  const requested = (account: keyof typeof users, id: string) =>
    waitFor(`${id} QUEUED in the read model`, async () => {
      const page = await api[account].get<{ batchJobs?: Array<{ name: string }> }>(`/v1/accounts/${account}/batchJobs?filter=${encodeURIComponent('state="QUEUED"')}`);
      return page.body.batchJobs?.some((j) => j.name.endsWith(`/batchJobs/${id}`)) ? true : undefined;
    }, 60_000);
  /** The jobs whose requestCapacity signal reached the pool's workflow (its current run). */
  const requestsAt = async (pool: string): Promise<string[]> => {
    const events = (await t.service.client.workflow.getHandle(pool).fetchHistory()).events ?? [];
    return events.flatMap((e) => {
      const a = e.workflowExecutionSignaledEventAttributes;
      const data = a?.signalName === 'requestCapacity' ? a.input?.payloads?.[0]?.data : undefined;
      return data ? [(JSON.parse(Buffer.from(data).toString('utf8')) as { jobName: string }).jobName] : [];
    });
  };
  const cancel = async (account: keyof typeof users, id: string) => assert.equal((await api[account].post(`/v1/accounts/${account}/batchJobs/${id}:cancel`, {})).status, 200);

  it('holds an account to its quota while capacity is free, saying so with the numbers; other accounts use the free capacity; an account not listed is refused', async () => {
    await create('acme', 'holder', { nodePoolId: 'big', numRanks: 4, shellExecutor: { command: sleeper(1) } });
    await state('acme', 'holder', 'RUNNING');
    const b1 = await create('beta', 'b1', { nodePoolId: BIG, numRanks: 2, shellExecutor: { command: sleeper(2) } });
    assert.equal(b1.nodePoolId, BIG);
    await state('beta', 'b1', 'RUNNING');
    await create('beta', 'b2', { nodePoolId: BIG, numRanks: 1, shellExecutor: { command: 'echo b2' } });
    const waiting = await state('beta', 'b2', 'QUEUED');
    assert.match(
      waiting.status,
      /^waiting for 1 GPU in node pool accounts\/acme\/nodePools\/big; account beta holds 2 GPUs of its quota of 2 on this pool, and this job would take it past that: it waits until the account's jobs free 1 GPU$/,
    );
    // 2 GPUs are free, and gamma (no quota) takes them past beta's waiting job.
    await create('gamma', 'g1', { nodePoolId: BIG, numRanks: 2, shellExecutor: { command: 'echo g1' } });
    await state('gamma', 'g1', 'COMPLETED');
    assert.equal((await api.beta.get<BatchJobBody>('/v1/accounts/beta/batchJobs/b2')).body.state, 'QUEUED');
    // The pool lends under its quotas: b1, within beta's, claimed the idle pool's slots in its store;
    // b2, past it, asked the pool's workflow, and so did g1, which came while b2 waited.
    const asked = await requestsAt(BIG);
    assert.ok(!asked.includes('accounts/beta/batchJobs/b1'), `b1 claimed in the store: asked ${asked.join(', ')}`);
    for (const job of ['accounts/beta/batchJobs/b2', 'accounts/gamma/batchJobs/g1']) assert.ok(asked.includes(job), `${job} asked the pool: asked ${asked.join(', ')}`);

    const refused = await api.delta.post<{ message: string }>('/v1/accounts/delta/batchJobs?batchJobId=d1', { nodePoolId: BIG, shellExecutor: { command: 'true' } });
    assert.equal(refused.status, 404);
    assert.match(refused.body.message, /node pool "accounts\/acme\/nodePools\/big" is not shared with account "delta"/);
    const unknown = await api.delta.post<{ message: string }>('/v1/accounts/delta/batchJobs?batchJobId=d2', { nodePoolId: 'accounts/acme/nodePools/nope', shellExecutor: { command: 'true' } });
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.message, /is not shared with account "delta"/, 'the same answer whether or not the pool exists');

    await cancel('beta', 'b1');
    await state('beta', 'b2', 'COMPLETED');
    await cancel('acme', 'holder');
  });

  it('splits freed capacity by fair share between two accounts, not by arrival, and says so in the status of those that wait', async () => {
    await create('acme', 'hog', { nodePoolId: 'fair', numRanks: 4, shellExecutor: { command: sleeper(3) } });
    await state('acme', 'hog', 'RUNNING');
    // Arrival order: acme's three, then beta's three. Queue order is arrival at the pool, so each
    // job's request has reached the pool before the next is created.
    for (const i of [1, 2, 3]) {
      await create('acme', `fa${i}`, { nodePoolId: 'fair', shellExecutor: { command: sleeper(10 + i) } });
      await requested('acme', `fa${i}`);
    }
    for (const i of [1, 2, 3]) {
      await create('beta', `fb${i}`, { nodePoolId: FAIR, shellExecutor: { command: sleeper(20 + i) } });
      await requested('beta', `fb${i}`);
    }
    const behind = await api.acme.get<BatchJobBody>('/v1/accounts/acme/batchJobs/fa3');
    assert.match(behind.body.status, /; fair share: account acme holds 4 GPUs, its fair part is 2 \(weight 1 of 2\), and accounts furthest below their part go first$/);

    await cancel('acme', 'hog');
    // Four GPUs free at once: shares alternate from beta (nothing held, nothing used), so two each.
    await waitFor('four jobs running', async () => {
      const running = [];
      for (const [account, ids] of [['acme', ['fa1', 'fa2', 'fa3']], ['beta', ['fb1', 'fb2', 'fb3']]] as const) {
        for (const id of ids) if ((await api[account].get<BatchJobBody>(`/v1/accounts/${account}/batchJobs/${id}`)).body.state === 'RUNNING') running.push(id);
      }
      return running.length === 4 ? running : undefined;
    }, 60_000).then((running) => assert.deepEqual(running.sort(), ['fa1', 'fa2', 'fb1', 'fb2']));
    assert.equal((await api.acme.get<BatchJobBody>('/v1/accounts/acme/batchJobs/fa3')).body.state, 'QUEUED');
    assert.equal((await api.beta.get<BatchJobBody>('/v1/accounts/beta/batchJobs/fb3')).body.state, 'QUEUED');
    for (const id of ['fa1', 'fa2', 'fa3']) await cancel('acme', id);
    for (const id of ['fb1', 'fb2', 'fb3']) await cancel('beta', id);
  });
});
