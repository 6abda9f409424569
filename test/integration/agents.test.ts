/**
 * Host agents as separate processes joining a pool, the way real hosts do: ranks spread over them, logs
 * shipped to the API; an agent killed with SIGKILL fails its job naming the host within the heartbeat
 * timeout and frees the capacity; a restarted agent kills what its previous life left running before
 * it takes work again.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { killAndWait, processesMatching, spawnAgent, spawnRole, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const POOL = 'accounts/default/nodePools/remote';

interface PoolBody {
  nodePoolStats: { nodeCount: number; batchJobCount: Record<string, number> };
}

describe('host agents in their own processes', () => {
  let t: TestService;
  const agents = new Map<string, ChildProcess>();
  const agentDirs = new Map<string, string>();

  const startAgent = (host: string) => {
    const dir = agentDirs.get(host) ?? mkdtempSync(join(tmpdir(), `batchd-agent-${host}-`));
    agentDirs.set(host, dir);
    const child = spawnAgent(t, POOL, host, dir);
    agents.set(host, child);
    return child;
  };
  const nodeCount = async () => (await t.api.get<PoolBody>(`${A}/nodePools/remote`)).body.nodePoolStats.nodeCount;

  before(async () => {
    t = await startTestService({ defaultPools: false });
    const pool = await t.api.post(`${A}/nodePools`, { nodePoolId: 'remote', nodePool: { maxNodeCount: 2, eksNodePool: { instanceType: 'm5.xlarge' } } });
    assert.equal(pool.status, 200, JSON.stringify(pool.body));
    startAgent('r1');
    startAgent('r2');
    await waitFor('two hosts to join', async () => ((await nodeCount()) === 2 ? true : undefined), 60_000);
  });
  const badDir = mkdtempSync(join(tmpdir(), 'batchd-agent-bad-'));
  after(async () => {
    for (const child of agents.values()) await killAndWait(child, 'SIGKILL');
    await t?.stop();
    for (const dir of [...agentDirs.values(), badDir]) rmSync(dir, { recursive: true, force: true });
  });

  it('runs a job across both agents and stores the logs they ship', async () => {
    await t.api.post(`${A}/batchJobs?batchJobId=spread`, { nodePoolId: 'remote', numRanks: 2, shellExecutor: { command: 'echo "rank $RANK of $WORLD_SIZE, node $NODE_RANK"' } });
    await waitForState(t.api, 'default', 'spread', 'COMPLETED', 60_000);
    const logs = await waitFor('the shipped logs', async () => {
      const r = await t.api.get<{ entries: Array<{ message: string }> }>(`${A}/batchJobs/spread:getLogs`);
      return r.body.entries.length === 2 ? r.body.entries.map((e) => e.message).sort() : undefined;
    });
    assert.deepEqual(logs, ['rank 0 of 2, node 0', 'rank 1 of 2, node 1']);
  });

  it('fails the job naming the host when its agent is killed, frees the capacity, and a restarted agent kills the leftovers', async () => {
    const marker = `305.${Date.now() % 100000}`;
    await t.api.post(`${A}/batchJobs?batchJobId=orphaned`, { nodePoolId: 'remote', numRanks: 2, shellExecutor: { command: `sleep ${marker}` } });
    await waitForState(t.api, 'default', 'orphaned', 'RUNNING', 60_000);
    await waitFor('both ranks', () => (processesMatching(`sleep ${marker}`).length === 2 ? true : undefined));

    const killedAt = Date.now();
    await killAndWait(agents.get('r2')!, 'SIGKILL');
    const failed = await waitForState(t.api, 'default', 'orphaned', 'FAILED', 60_000);
    const detectedAfterMs = Date.now() - killedAt;
    assert.match(failed.status, /host r2 was lost: its agent sent no heartbeat for 4s/);
    // Bound, not a benchmark: the heartbeat timeout (4 s here) plus scheduling margin.
    assert.ok(detectedAfterMs < 4000 + 10_000, `detected after ${detectedAfterMs} ms`);

    const pool = (await t.api.get<PoolBody>(`${A}/nodePools/remote`)).body;
    assert.deepEqual(pool.nodePoolStats.batchJobCount, {}, 'the job holds no capacity');
    assert.equal(pool.nodePoolStats.nodeCount, 1, 'the lost host takes no work until its agent is back');
    // r1's rank was stopped by the job; r2's rank outlived its agent (nothing on that host can stop it).
    assert.equal(processesMatching(`sleep ${marker}`).length, 1);

    startAgent('r2');
    await waitFor('r2 to rejoin', async () => ((await nodeCount()) === 2 ? true : undefined), 60_000);
    assert.deepEqual(processesMatching(`sleep ${marker}`), [], 'the restarted agent killed what its previous life left running');

    await t.api.post(`${A}/batchJobs?batchJobId=after-rejoin`, { nodePoolId: 'remote', numRanks: 2, shellExecutor: { command: 'true' } });
    await waitForState(t.api, 'default', 'after-rejoin', 'COMPLETED', 60_000);
  });

  it('refuses an agent whose slots do not match the pool’s machine type', async () => {
    const child = spawnRole(
      'agent',
      { DATA_DIR: badDir, TEMPORAL_ADDRESS: t.service.temporalAddress, LOG_LEVEL: 'warn' },
      ['--pool', POOL, '--host', 'wrong', '--gpus', '4'],
    );
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.notEqual(code, 0);
    assert.match(stderr, /offers 4 rank slot\(s\), but hosts of this pool have 1/);
  });
});
