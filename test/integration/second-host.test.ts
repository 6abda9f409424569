/**
 * A second host, for real: a network namespace joined to this one by a veth pair is another machine
 * as far as the network goes. Its agent reaches Temporal and the API over the veth address, joins the
 * pool, and runs one rank of a job that spans both hosts; rank 1 (there) connects to MASTER_ADDR
 * (here, where rank 0 listens) and the message crosses the link. Needs root and iproute2.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { killAndWait, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const POOL = 'accounts/default/nodePools/spanning';
const suffix = String(process.pid % 10000);
const NS = `bdhost${suffix}`;
const VETH_HERE = `bdv${suffix}a`;
const VETH_THERE = `bdv${suffix}b`;
const SUBNET = 10 + (process.pid % 200);
const HERE = `10.231.${SUBNET}.1`;
const THERE = `10.231.${SUBNET}.2`;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function teardownNetwork(): void {
  try {
    ip('netns', 'del', NS);
  } catch {
    // not there
  }
  try {
    ip('link', 'del', VETH_HERE);
  } catch {
    // went with the namespace
  }
}

/** Two ranks that talk: rank 0 listens on MASTER_ADDR:MASTER_PORT, rank 1 connects and says hello. */
const TALK = String.raw`
import os, socket, time
addr, port, rank = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), int(os.environ["RANK"])
if rank == 0:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    s.settimeout(60)
    c, peer = s.accept()
    print("rank 0 on", addr, "got", repr(c.recv(100).decode()), "from", peer[0], flush=True)
else:
    for attempt in range(300):
        try:
            c = socket.create_connection((addr, port), timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    else:
        raise SystemExit("rank 1 could not reach " + addr)
    c.sendall(("hello from rank 1 on " + os.environ["NODE_RANK"]).encode())
    print("rank 1 sent to", addr, flush=True)
`;

describe('a second host in a network namespace', () => {
  let t: TestService;
  const agents: ChildProcess[] = [];

  before(async () => {
    if (process.getuid?.() !== 0) throw new Error('this test needs root (to create a network namespace); CI runs as root');
    teardownNetwork();
    ip('netns', 'add', NS);
    ip('link', 'add', VETH_HERE, 'type', 'veth', 'peer', 'name', VETH_THERE);
    ip('link', 'set', VETH_THERE, 'netns', NS);
    ip('addr', 'add', `${HERE}/24`, 'dev', VETH_HERE);
    ip('link', 'set', VETH_HERE, 'up');
    ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${THERE}/24`, 'dev', VETH_THERE);
    ip('netns', 'exec', NS, 'ip', 'link', 'set', VETH_THERE, 'up');
    ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');

    // Temporal and the API listen beyond loopback so the other host can reach them.
    t = await startTestService({ defaultPools: false, env: { HOST: '0.0.0.0', TEMPORAL_BIND_IP: '0.0.0.0' } });
    const pool = await t.api.post(`${A}/nodePools`, { nodePoolId: 'spanning', nodePool: { maxNodeCount: 2, eksNodePool: { instanceType: 'm5.xlarge' } } });
    assert.equal(pool.status, 200, JSON.stringify(pool.body));
    const temporalPort = t.service.temporalAddress.split(':')[1];
    const apiPort = new URL(t.url).port;
    const token = readFileSync(join(t.dataDir, 'agent-token'), 'utf8').trim();
    const agentEnv = (dir: string) => ({
      ...process.env,
      DATA_DIR: dir,
      TEMPORAL_ADDRESS: `${HERE}:${temporalPort}`,
      BATCHD_API_URL: `http://${HERE}:${apiPort}`,
      BATCHD_AGENT_TOKEN: token,
      LOG_LEVEL: 'warn',
    });
    const main = join(__dirname, '..', '..', 'src', 'main.js');
    // This machine's host first, so rank 0 (and MASTER_ADDR) is here and rank 1 is across the link.
    agents.push(spawn(process.execPath, [main, 'agent', '--pool', POOL, '--host', 'here', '--address', HERE], { env: agentEnv(mkdtempSync(join(tmpdir(), 'bd-here-'))), stdio: 'ignore' }));
    await waitFor('the first host', async () => ((await t.api.get<{ nodePoolStats: { nodeCount: number } }>(`${A}/nodePools/spanning`)).body.nodePoolStats.nodeCount === 1 ? true : undefined), 60_000);
    agents.push(
      spawn('ip', ['netns', 'exec', NS, process.execPath, main, 'agent', '--pool', POOL, '--host', 'there', '--address', THERE], {
        env: agentEnv(mkdtempSync(join(tmpdir(), 'bd-there-'))),
        stdio: 'ignore',
      }),
    );
    await waitFor('the second host to join over the veth link', async () => ((await t.api.get<{ nodePoolStats: { nodeCount: number } }>(`${A}/nodePools/spanning`)).body.nodePoolStats.nodeCount === 2 ? true : undefined), 60_000);
  });
  after(async () => {
    for (const a of agents) await killAndWait(a, 'SIGTERM');
    await t?.stop();
    teardownNetwork();
  });

  it('runs a job across both hosts whose ranks talk through MASTER_ADDR', async () => {
    const r = await t.api.post(`${A}/batchJobs?batchJobId=across`, {
      nodePoolId: 'spanning',
      numRanks: 2,
      envVars: { TALK_PY: TALK },
      shellExecutor: { command: 'exec python3 -c "$TALK_PY"' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const done = await waitForState(t.api, 'default', 'across', ['COMPLETED', 'FAILED'], 90_000);
    const logs = await waitFor('both ranks’ logs', async () => {
      const l = await t.api.get<{ entries: Array<{ rank: number; message: string }> }>(`${A}/batchJobs/across:getLogs?startFromHead=true`);
      return l.body.entries.length >= 2 ? l.body.entries : undefined;
    });
    assert.equal(done.state, 'COMPLETED', `${done.status}; logs: ${JSON.stringify(logs)}`);
    const byRank = new Map(logs.map((e) => [e.rank, e.message]));
    assert.equal(byRank.get(1), `rank 1 sent to ${HERE}`);
    // The connection came from the namespace's own address: it crossed the veth link.
    assert.equal(byRank.get(0), `rank 0 on ${HERE} got 'hello from rank 1 on 1' from ${THERE}`);
  });
});
