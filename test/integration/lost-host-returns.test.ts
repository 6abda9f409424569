/**
 * A host that was declared lost returns to ready as soon as its agent answers again, on real and fake
 * pools alike, and its capacity runs new jobs:
 *
 * - A real host's agent (its own process) is frozen with SIGSTOP while its job runs: the job fails
 *   naming the host, the pool holds the host unreachable (its status names it, :getStats and /metrics
 *   count it), and the lost job's rank outlives the frozen agent. SIGCONT: the same agent, never
 *   restarted, answers the pool's probe; the host is ready again only once that rank is gone, and a
 *   job that needs both hosts runs.
 * - The whole service (dev server included) is killed with SIGKILL while a fake pool's job runs, and
 *   started again on the same DATA_DIR: the job ends FAILED naming a lost host, and every host of the
 *   pool is ready again, its capacity running a job that needs all of them.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Api, freePort, killAndWait, processesMatching, spawnAgent, spawnRole, startTestService, TEST_KEY, testEnv, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';

interface PoolBody {
  status: { code: string; message: string };
  nodePoolStats: { nodeCount: number; unreachableNodeCount?: number; batchJobCount: Record<string, number> };
}

/** The `batchd_hosts` gauge of a pool and status, as /metrics says it. */
async function hostsGauge(url: string, dataDir: string, pool: string, status: string): Promise<number | undefined> {
  const token = readFileSync(join(dataDir, 'metrics-token'), 'utf8').trim();
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`batchd_hosts{pool="${pool}",status="${status}"}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('a lost host of a real pool whose agent answers again', () => {
  const POOL = 'accounts/default/nodePools/remote';
  let t: TestService;
  const agents = new Map<string, ChildProcess>();

  const startAgent = (host: string) => {
    const child = spawnAgent(t, POOL, host);
    agents.set(host, child);
  };
  const pool = async () => (await t.api.get<PoolBody>(`${A}/nodePools/remote`)).body;

  before(async () => {
    t = await startTestService({ defaultPools: false });
    const created = await t.api.post(`${A}/nodePools`, { nodePoolId: 'remote', nodePool: { maxNodeCount: 2, eksNodePool: { instanceType: 'm5.xlarge' } } });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    startAgent('r1');
    startAgent('r2');
    await waitFor('two hosts to join', async () => ((await pool()).nodePoolStats.nodeCount === 2 ? true : undefined), 60_000);
  });
  after(async () => {
    const r2 = agents.get('r2');
    if (r2?.pid !== undefined && r2.exitCode === null) r2.kill('SIGCONT');
    for (const child of agents.values()) await killAndWait(child, 'SIGKILL');
    await t?.stop();
  });

  it('is unreachable while its agent is frozen, then ready again once the lost job’s rank is gone, with its capacity usable', async () => {
    const marker = `307.${Date.now() % 100000}`;
    await t.api.post(`${A}/batchJobs?batchJobId=frozen`, { nodePoolId: 'remote', numRanks: 2, shellExecutor: { command: `sleep ${marker}` } });
    await waitForState(t.api, 'default', 'frozen', 'RUNNING', 60_000);
    await waitFor('both ranks', () => (processesMatching(`sleep ${marker}`).length === 2 ? true : undefined));

    const r2 = agents.get('r2')!;
    r2.kill('SIGSTOP');
    const failed = await waitForState(t.api, 'default', 'frozen', 'FAILED', 60_000);
    assert.match(failed.status, /host r2 was lost: its agent sent no heartbeat for 4s/);

    // The pool holds r2 unreachable, and says so everywhere an operator looks.
    const lost = await waitFor('r2 unreachable', async () => {
      const p = await pool();
      return p.nodePoolStats.unreachableNodeCount === 1 ? p : undefined;
    });
    assert.equal(lost.nodePoolStats.nodeCount, 1);
    assert.match(lost.status.message, /host r2 is unreachable/);
    const stats = await t.api.get<PoolBody['nodePoolStats']>(`${A}/nodePools/remote:getStats`);
    assert.equal(stats.body.unreachableNodeCount, 1);
    assert.equal(await hostsGauge(t.url, t.dataDir, POOL, 'unreachable'), 1);
    assert.equal(await hostsGauge(t.url, t.dataDir, POOL, 'ready'), 1);
    // r1's rank was stopped by the job; r2's still runs under the frozen agent.
    assert.equal(processesMatching(`sleep ${marker}`).length, 1);

    r2.kill('SIGCONT');
    const back = await waitFor('r2 ready again', async () => {
      const p = await pool();
      return p.nodePoolStats.nodeCount === 2 ? p : undefined;
    }, 60_000);
    // Taken back only once its agent no longer ran the lost job's rank: no slot is ever shared.
    assert.deepEqual(processesMatching(`sleep ${marker}`), [], 'the lost job’s rank ended before the host took work again');
    assert.equal(back.nodePoolStats.unreachableNodeCount, undefined);
    assert.equal(back.status.message, '');
    assert.equal(r2.exitCode, null, 'the same agent process: it answered the probe, it did not join again');
    assert.equal(await hostsGauge(t.url, t.dataDir, POOL, 'unreachable'), 0);

    // Silent ranks: a log line shipped after the job ends would make the API query a closed workflow
    // while the service stops (a query retried past the client's close throws).
    await t.api.post(`${A}/batchJobs?batchJobId=after-return`, { nodePoolId: 'remote', numRanks: 2, shellExecutor: { command: 'true' } });
    const done = await waitForState(t.api, 'default', 'after-return', 'COMPLETED', 60_000);
    assert.match(done.status, /all 2 ranks exited with code 0/);
  });
});

describe('lost fake hosts after the whole service is killed and started again', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-lost-fake-'));
  let service: ChildProcess | undefined;
  let env: Record<string, string>;

  /** The whole service in a child process, as `npm start` runs it. */
  const start = async (): Promise<Api> => {
    service = spawnRole('temporal,worker,agents,api', env);
    const api = new Api(`http://127.0.0.1:${env.PORT}`, TEST_KEY);
    await waitFor('the service healthy', async () => ((await fetch(`${api.url}/healthz`).then((r) => r.status, () => 0)) === 200 ? true : undefined), 90_000, 250);
    return api;
  };
  /** SIGKILL of the service and of its dev server: nothing gets to say goodbye. */
  const killAll = async () => {
    if (service) await killAndWait(service, 'SIGKILL');
    for (const pid of processesMatching(dataDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await waitFor('nothing of the service left', () => (processesMatching(dataDir).length === 0 ? true : undefined), 15_000);
  };

  const marker = `311.${Date.now() % 100000}`;
  after(async () => {
    await killAll();
    // Ranks outlive a SIGKILLed service; the restarted agents kill them, unless the test failed first.
    for (const pid of processesMatching(`sleep ${marker}`)) process.kill(pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('ends the running job FAILED naming a lost host, and every host is ready again with its capacity usable', async () => {
    env = await testEnv(dataDir, { DEFAULT_POOLS: 'false' });
    let api = await start();
    const created = await api.post(`${A}/nodePools`, { nodePoolId: 'lossy', nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes: 2 } } });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const nodes = async () => (await api.get<PoolBody>(`${A}/nodePools/lossy`)).body.nodePoolStats;
    await waitFor('two fake hosts', async () => ((await nodes()).nodeCount === 2 ? true : undefined), 60_000);
    await api.post(`${A}/batchJobs?batchJobId=cut-short`, { nodePoolId: 'lossy', numRanks: 2, shellExecutor: { command: `sleep ${marker}` } });
    await waitForState(api, 'default', 'cut-short', 'RUNNING', 60_000);

    await killAll();
    // The same DATA_DIR (Temporal's database, the read model, the pool store), on fresh ports.
    env = { ...env, PORT: String(await freePort()), TEMPORAL_PORT: String(await freePort()), TEMPORAL_UI_PORT: String(await freePort()) };
    api = await start();

    const ended = await waitForState(api, 'default', 'cut-short', 'FAILED', 90_000);
    assert.match(ended.status, /host h\d was lost|host h\d did not pick up/, 'the status names the lost host');
    const stats = await waitFor('every host ready again', async () => {
      const s = await nodes();
      return s.nodeCount === 2 && s.unreachableNodeCount === undefined ? s : undefined;
    }, 60_000);
    assert.deepEqual(stats.batchJobCount, {}, 'the failed job holds nothing');
    await api.post(`${A}/batchJobs?batchJobId=whole-pool`, { nodePoolId: 'lossy', numRanks: 2, shellExecutor: { command: 'true' } });
    await waitForState(api, 'default', 'whole-pool', 'COMPLETED', 60_000);
    assert.deepEqual(processesMatching(`sleep ${marker}`), [], 'the restarted agents killed what their previous lives left running');
  });
});
