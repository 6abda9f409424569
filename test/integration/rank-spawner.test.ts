/**
 * The rank spawner (src/agent/rank-spawner.ts) through its real boundary: ranks started by RankProcess
 * through a real spawner process. A rank that prints a lot while the agent's event loop is busy
 * arrives whole, line for line, without growing the spawner (its output waits in the pipe); a rank
 * that cannot start exits 127 with the line that says why; a spawner killed mid-run fails the ranks it
 * was starting or running (never a hang) and the next rank gets a new spawner; a stuck spawner is
 * killed after its start timeout; a rank holds no descriptor of the spawner and gets exactly the
 * environment it got before; and no spawner outlives its isolation's close, its agent process's
 * death, or the service's stop — whose ranks are children of the spawner, not of the service.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { digest, RankIsolation } from '../../src/agent/isolation';
import { AGENT_MARKER, type OutputLine, RankProcess, type RankSpec } from '../../src/agent/rank-process';
import { RankSpawner } from '../../src/agent/rank-spawner';
import { processesMatching, startTestService, waitFor, waitForState } from '../support/harness';

const logger = pino({ level: 'silent' });

/** VmHWM (peak resident memory) of a process, in bytes. */
function peakMemory(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

/**
 * Whether a process runs: not gone, not a zombie. A rank whose spawner died is reparented to init,
 * which may not reap it (a container's init that is no init), so its pid can stay, as a zombie.
 */
function runs(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** What a process's descriptors point to: `socket:[…]`, `pipe:[…]`, files. */
function descriptors(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
}

describe('the rank spawner', () => {
  let dir: string;
  let iso: RankIsolation;
  let n = 0;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'batchd-spawner-'));
    mkdirSync(join(dir, 'workspace'));
    iso = RankIsolation.create({ dataDir: dir, workspaceDir: join(dir, 'workspace'), setting: 'off', uidRange: { base: 200000, count: 4 }, memoryLimit: null, pidsMax: 0, endpoints: [], logger });
  });
  after(async () => {
    await iso.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A shell rank through `spawner` (the isolation's by default); its lines are collected. */
  function rank(command: string, extra: Partial<RankSpec> = {}, onLine?: (l: OutputLine) => void): { process: RankProcess; lines: OutputLine[] } {
    const lines: OutputLine[] = [];
    const i = n++;
    const process = new RankProcess(
      {
        rank: 0,
        env: { RANK: '0', BATCHD_RANK_ID: `spawner-test#${i}` },
        executor: { kind: 'shell', shell: { command } },
        workDir: join(dir, 'work', `job-${i}`, 'rank-0'),
        workspaceDir: join(dir, 'workspace'),
        agentKey: 'spawner-test',
        spawner: iso.spawner,
        ...extra,
      },
      onLine ?? ((l) => lines.push(l)),
    );
    return { process, lines };
  }

  it('relays a rank that prints 20 MB while the agent is busy, line for line, and the spawner stays small', async () => {
    const warm = rank('true');
    await warm.process.exited;
    const spawnerPid = iso.spawner.pid;
    assert.ok(spawnerPid !== undefined);
    const before = peakMemory(spawnerPid);
    let count = 0;
    let bad = 0;
    const long: number[] = [];
    // 1,000,000 lines of 20 bytes (20 MB), then one line of 200 KiB without a newline at its end.
    const big = rank("yes 0123456789abcdefghi | head -n 1000000; head -c 204800 /dev/zero | tr '\\0' x", {}, (l) => {
      if (l.line === '0123456789abcdefghi') count++;
      else if (/^x+$/.test(l.line)) long.push(l.line.length);
      else bad++;
    });
    assert.ok((await big.process.started) !== undefined);
    // The agent's event loop is busy for 1.5 s: nothing reads the spawner's channel meanwhile.
    const until = Date.now() + 1500;
    while (Date.now() < until);
    assert.deepEqual(await big.process.exited, { code: 0, signal: null });
    await waitFor('the last lines', () => (long.reduce((a, b) => a + b, 0) === 204800 ? true : undefined), 10_000);
    assert.equal(bad, 0);
    assert.equal(count, 1_000_000);
    assert.deepEqual(long, [65536, 65536, 65536, 8192], 'lines longer than 64 KiB are split, as before');
    const grew = peakMemory(spawnerPid) - before;
    assert.ok(grew < 12 * 2 ** 20, `the spawner grew by ${(grew / 2 ** 20).toFixed(1)} MiB while relaying 20 MB`);
    assert.equal(iso.spawner.pid, spawnerPid, 'the same spawner served both ranks');
  });

  it('fails a rank that cannot start with 127 and the line that says why, and its stop returns', async () => {
    const r = rank('true', { launch: () => ({ file: '/nonexistent/batchd-no-such-launcher', args: [], env: {} }) });
    assert.equal(await r.process.started, undefined);
    assert.deepEqual(await r.process.exited, { code: 127, signal: null });
    assert.equal(r.process.pid, undefined);
    assert.match(r.process.lastOutput, /^batchd: could not start bash: spawn \/nonexistent\/batchd-no-such-launcher ENOENT$/);
    await r.process.stop(500);
    await r.process.reapLeftovers();
    // The spawner is unharmed: the next rank runs.
    const next = rank('echo fine');
    assert.deepEqual(await next.process.exited, { code: 0, signal: null });
    assert.deepEqual(next.lines, [{ stream: 'stdout', line: 'fine' }]);
  });

  it('gives the rank exactly its environment and no descriptor of the spawner', async () => {
    const r = rank('tr "\\0" "\\n" < /proc/$$/environ; echo ---; for f in /proc/$$/fd/*; do readlink "$f"; done; echo "ppid $PPID"', { env: { RANK: '0', BATCHD_RANK_ID: 'spawner-test#env', USER_VAR: 'a b' } });
    assert.deepEqual(await r.process.exited, { code: 0, signal: null });
    const out = r.lines.map((l) => l.line);
    const sep = out.indexOf('---');
    const env = Object.fromEntries(out.slice(0, sep).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const expected: Record<string, string> = {};
    for (const k of ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'USER', 'LOGNAME', 'SHELL', 'TERM', 'PYENV_ROOT', 'PYENV_VERSION']) {
      if (process.env[k] !== undefined) expected[k] = process.env[k];
    }
    Object.assign(expected, { RANK: '0', BATCHD_RANK_ID: 'spawner-test#env', USER_VAR: 'a b', [AGENT_MARKER]: 'spawner-test' });
    expected.PYTHONPATH = process.env.PYTHONPATH ? `${join(dir, 'workspace')}:${process.env.PYTHONPATH}` : join(dir, 'workspace');
    assert.deepEqual(env, expected);
    const spawnerPid = iso.spawner.pid;
    assert.ok(spawnerPid !== undefined);
    assert.equal(out.at(-1), `ppid ${spawnerPid}`, 'the spawner, not this process, is the rank’s parent');
    const rankFds = out.slice(sep + 1, -1);
    // The rank's own descriptors: stdin /dev/null, its two output pipes; what else it has, this
    // process would pass to any child too (descriptors it inherited without close-on-exec).
    const inherited = descriptors(process.pid);
    const spawnerEnds = descriptors(spawnerPid).filter((l) => /^(socket|pipe):/.test(l) && !inherited.includes(l));
    const shared = rankFds.filter((l) => spawnerEnds.includes(l));
    assert.deepEqual(shared, [], `the rank holds descriptors of the spawner: ${shared.join(', ')}`);
    const ipc = readlinkSync(`/proc/${spawnerPid}/fd/3`);
    assert.match(ipc, /^socket:/, 'fd 3 of the spawner is its channel to the agent');
    assert.ok(!rankFds.includes(ipc));
    assert.equal(rankFds[0], '/dev/null');
  });

  it('fails the ranks of a spawner killed mid-run, the started one killed too, and starts a new spawner for the next rank', async () => {
    const running = rank('echo started; exec sleep 30');
    const pid = await running.process.started;
    assert.ok(pid !== undefined);
    await waitFor('the rank to print', () => (running.lines.length > 0 ? true : undefined), 10_000);
    const first = iso.spawner.pid;
    assert.ok(first !== undefined);
    // A start the spawner cannot answer (stopped), then its death.
    process.kill(first, 'SIGSTOP');
    const pending = rank('echo never');
    await new Promise((r) => setTimeout(r, 200));
    process.kill(first, 'SIGKILL');
    const t0 = Date.now();
    assert.deepEqual(await running.process.exited, { code: null, signal: 'SIGKILL' });
    assert.deepEqual(await pending.process.exited, { code: 127, signal: null });
    assert.ok(Date.now() - t0 < 5000, 'both ranks ended within seconds of the spawner’s death');
    assert.equal(running.process.lastOutput, `batchd: the rank spawner (pid ${first}) was killed by SIGKILL; the rank was killed, its exit status and further output are lost`);
    assert.equal(pending.process.lastOutput, `batchd: could not start bash: the rank spawner (pid ${first}) was killed by SIGKILL`);
    assert.equal(await pending.process.started, undefined);
    await running.process.reapLeftovers();
    assert.equal(runs(pid), false, 'the rank the dead spawner ran is gone');
    const next = rank('echo again');
    assert.deepEqual(await next.process.exited, { code: 0, signal: null });
    assert.deepEqual(next.lines, [{ stream: 'stdout', line: 'again' }]);
    assert.notEqual(iso.spawner.pid, first);
    assert.deepEqual(processesMatching(`rank-spawner-child.js batchd-${digest(dir)}`), [iso.spawner.pid]);
  });

  it('kills a spawner that does not answer a start in time, and the start fails', async () => {
    const spawner = new RankSpawner({ logger, tag: `spawner-test-${process.pid}-stuck`, startTimeoutMs: 1000 });
    try {
      const ok = rank('echo ok', { spawner });
      assert.deepEqual(await ok.process.exited, { code: 0, signal: null });
      const pid = spawner.pid;
      assert.ok(pid !== undefined);
      process.kill(pid, 'SIGSTOP');
      const t0 = Date.now();
      const stuck = rank('echo never', { spawner });
      assert.deepEqual(await stuck.process.exited, { code: 127, signal: null });
      assert.ok(Date.now() - t0 >= 900 && Date.now() - t0 < 5000);
      assert.equal(stuck.process.lastOutput, `batchd: could not start bash: the rank spawner (pid ${pid}) was killed by SIGKILL`);
    } finally {
      await spawner.close();
    }
    assert.deepEqual(processesMatching(`spawner-test-${process.pid}-stuck`), []);
  });

  it('leaves no spawner behind: after close, and when its agent process is killed', async () => {
    const spawner = new RankSpawner({ logger, tag: `spawner-test-${process.pid}-close` });
    const r = rank('echo hi', { spawner });
    await r.process.exited;
    assert.equal(processesMatching(`spawner-test-${process.pid}-close`).length, 1);
    await spawner.close();
    assert.deepEqual(processesMatching(`spawner-test-${process.pid}-close`), []);
    const closed = rank('echo late', { spawner });
    assert.deepEqual(await closed.process.exited, { code: 127, signal: null });
    assert.match(closed.process.lastOutput, /could not start bash: the rank spawner is closed/);

    // An agent's process that dies (SIGKILL) with a rank running: its spawner exits too.
    const tag = `spawner-test-${process.pid}-orphan`;
    const script = `
      const { RankSpawner } = require(${JSON.stringify(join(__dirname, '..', '..', 'src', 'agent', 'rank-spawner.js'))});
      const s = new RankSpawner({ logger: { debug() {}, warn() {}, error() {} }, tag: process.env.TAG });
      s.spawn({ file: 'sleep', args: ['30'], cwd: '/', env: { PATH: process.env.PATH }, detached: true },
        { spawned: (pid) => console.log('rank', pid), data() {}, end() {}, error() {}, exit() {}, lost() {} });`;
    // The tag comes in the environment, so that only the spawner's command line holds it.
    const agent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TAG: tag } });
    const rankPid = await new Promise<number>((resolve) => agent.stdout.on('data', (d: Buffer) => resolve(Number(/rank (\d+)/.exec(d.toString())?.[1]))));
    assert.equal(processesMatching(tag).length, 1);
    agent.kill('SIGKILL');
    await waitFor('the orphaned spawner to exit', () => (processesMatching(tag).length === 0 ? true : undefined), 5000);
    // The rank itself runs on, as it would after its agent's death (the next agent life kills it).
    assert.equal(runs(rankPid), true);
    process.kill(-rankPid, 'SIGKILL');
  });
});

describe('the rank spawner in the service', () => {
  it('starts the ranks of the service’s agents, and is gone once the service stopped', async () => {
    const t = await startTestService();
    const tag = `rank-spawner-child.js batchd-${digest(t.dataDir)}`;
    try {
      const r = await t.api.post('/v1/accounts/default/batchJobs?batchJobId=ppid', { nodePoolId: 'default-cpu', numRanks: 1, shellExecutor: { command: 'echo "parent $PPID"' } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await waitForState(t.api, 'default', 'ppid', 'COMPLETED');
      const spawners = processesMatching(tag);
      assert.equal(spawners.length, 1, 'one spawner for the service’s agents');
      const logs = await t.api.get<{ entries: Array<{ message: string }> }>('/v1/accounts/default/batchJobs/ppid:getLogs?startFromHead=true');
      assert.deepEqual(
        logs.body.entries.map((e) => e.message),
        [`parent ${spawners[0]}`],
      );
      assert.notEqual(spawners[0], process.pid);
    } finally {
      await t.stop();
    }
    assert.deepEqual(processesMatching(tag), [], 'no spawner outlives the service');
  });
});
