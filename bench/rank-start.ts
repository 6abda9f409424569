/**
 * `node dist/bench/rank-start.js [starts] [--service]`: what a rank start costs. Two parts, each with the
 * baseline in the same run:
 *
 * 1. Isolation. Starts a shell rank that runs `true`, N times without isolation and N times isolated
 *    (uid, cgroup, mount namespace; needs root) through batchd-rank-launch, then N times isolated
 *    through the shell launcher it replaces (`isolated-sh`: unshare, sh, mount, setpriv), and prints the median and p90 of spawn → exit and of
 *    the whole life spawn → exit → leftovers reaped (which for an isolated rank includes reading and
 *    removing its cgroup), each through the rank spawner (src/agent/rank-spawner.ts) and through a
 *    spawn from this process, as ranks were started before the spawner.
 * 2. Event-loop blocking in a big process. Allocates ~400 MiB of live objects (the service's size),
 *    then starts N ranks through each way, alternately, and prints how long each start blocked this
 *    process's event loop: the synchronous part of the start (for a direct spawn, the fork of this
 *    process) and the event-loop delay seen meanwhile (perf_hooks.monitorEventLoopDelay, 1 ms
 *    resolution: max and p99 over all starts). Also: what forking the spawner once cost, and its
 *    memory.
 *
 * 3. With `--service`: part 2 again in this process running the embedded service (control worker,
 *    fake-host agents and API; its Temporal dev server is a process of its own), with no ballast.
 *
 * Runs in a scratch DATA_DIR; without `--service`, nothing of the service is started.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { type AgentIsolation, RankIsolation } from '../src/agent/isolation';
import { RankProcess } from '../src/agent/rank-process';
import { type RankStarter } from '../src/agent/rank-spawner';
import { startBenchEnv } from './lib/env';
import { quantile, sleep } from './lib/stats';

/** The rank start as it was before the spawner: a spawn from the agent's own process. */
const direct: RankStarter = {
  spawn(req, h) {
    const child = spawn(req.file, req.args, { cwd: req.cwd, env: req.env, detached: req.detached, stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid;
    if (pid !== undefined) process.nextTick(() => h.spawned(pid));
    for (const s of ['stdout', 'stderr'] as const) {
      child[s].setEncoding('utf8');
      child[s].on('data', (d: string) => h.data(s, d));
      child[s].on('end', () => h.end(s));
    }
    child.once('error', (err) => h.error(err.message));
    child.once('exit', (code, signal) => h.exit(code, signal));
  },
};

interface Bench {
  dataDir: string;
  iso: RankIsolation;
  agent: AgentIsolation;
}

/** `launcher`: null for the shell launcher; absent, the compiled one. */
function open(isolated: boolean, launcher?: null): Bench {
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-bench-start-'));
  mkdirSync(join(dataDir, 'workspace'));
  const iso = RankIsolation.create({
    dataDir,
    workspaceDir: join(dataDir, 'workspace'),
    setting: isolated ? 'required' : 'off',
    uidRange: { base: 200_000, count: 16 },
    memoryLimit: undefined,
    pidsMax: 4096,
    endpoints: [],
    ...(launcher === null ? { launcher } : {}),
    logger: pino({ level: 'silent' }),
  });
  return { dataDir, iso, agent: iso.forAgent('bench', 1) };
}

async function close(b: Bench): Promise<void> {
  await b.agent.cgroups?.close();
  await b.iso.close();
  rmSync(b.dataDir, { recursive: true, force: true });
}

let n = 0;

/** One rank running `true`: ms spent in the start call (wall clock and CPU), to its exit, to its leftovers reaped. */
async function once(b: Bench, starter: RankStarter) {
  const id = n++;
  const workDir = join(b.dataDir, 'work', 'bench', `job-${id}`, 'rank-0');
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const rank = new RankProcess(
    {
      rank: 0,
      env: { RANK: '0' },
      executor: { kind: 'shell', shell: { command: 'true' } },
      workDir,
      workspaceDir: join(b.dataDir, 'workspace'),
      agentKey: 'bench',
      launch: (command, env) => b.agent.launch({ account: 'bench', jobId: `job-${id}`, rank: 0, workDir }, command, env),
      spawner: starter,
    },
    () => undefined,
  );
  const tCall = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpu0);
  const exit = await rank.exited;
  const t1 = process.hrtime.bigint();
  await rank.reapLeftovers();
  const t2 = process.hrtime.bigint();
  if (exit.code !== 0) throw new Error(`rank exited with ${exit.code ?? exit.signal}: ${rank.lastOutput}`);
  return { call: Number(tCall - t0) / 1e6, callCpu: (cpu.user + cpu.system) / 1000, exit: Number(t1 - t0) / 1e6, whole: Number(t2 - t0) / 1e6 };
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const ms = (xs: number[]) => `median ${quantile(sorted(xs), 0.5).toFixed(1)} ms, p90 ${quantile(sorted(xs), 0.9).toFixed(1)} ms`;

/** Part 1: spawn → exit and spawn → reaped, through the spawner and directly, alternately. */
async function series(label: string, starts: number, isolated: boolean, launcher?: null): Promise<void> {
  const b = open(isolated, launcher);
  try {
    await once(b, b.iso.spawner); // warm-up, and the spawner's fork
    await once(b, direct);
    const r = { spawner: { exits: [] as number[], wholes: [] as number[] }, direct: { exits: [] as number[], wholes: [] as number[] } };
    for (let i = 0; i < starts; i++) {
      for (const way of i % 2 ? (['direct', 'spawner'] as const) : (['spawner', 'direct'] as const)) {
        const x = await once(b, way === 'spawner' ? b.iso.spawner : direct);
        r[way].exits.push(x.exit);
        r[way].wholes.push(x.whole);
      }
    }
    for (const way of ['direct', 'spawner'] as const) {
      process.stdout.write(`${label.padEnd(11)} ${way.padEnd(8)} spawn→exit: ${ms(r[way].exits)}; spawn→reaped: ${ms(r[way].wholes)}  (${starts} starts, mode ${b.iso.mode})\n`);
    }
  } finally {
    await close(b);
  }
}

function statusKb(pid: number, field: string): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
}

function pssKb(pid: number): number {
  try {
    return Number(/Pss:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

type Way = 'direct' | 'spawner' | 'idle';
const lifes: number[] = [];

/** A full collection now (V8's gc(), reached without --expose-gc on the command line). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Part 2: how long each start blocks the event loop of a process with ~400 MiB of live objects. */
async function blocking(label: string, starts: number, isolated: boolean, what: string): Promise<void> {
  const b = open(isolated);
  try {
    const t0 = process.hrtime.bigint();
    await once(b, b.iso.spawner); // forks the spawner: once per process
    const firstStart = Number(process.hrtime.bigint() - t0) / 1e6;
    await once(b, direct);
    const h: Record<Way, IntervalHistogram> = { direct: monitorEventLoopDelay({ resolution: 1 }), spawner: monitorEventLoopDelay({ resolution: 1 }), idle: monitorEventLoopDelay({ resolution: 1 }) };
    const calls: Record<Way, number[]> = { direct: [], spawner: [], idle: [] };
    const cpus: Record<Way, number[]> = { direct: [], spawner: [], idle: [] };
    const orders: Way[][] = [
      ['spawner', 'direct', 'idle'],
      ['direct', 'idle', 'spawner'],
      ['idle', 'spawner', 'direct'],
    ];
    collectGarbage(); // the ballast's major collection, before and not during the measurement
    for (let i = 0; i < starts; i++) {
      for (const way of orders[i % 3]!) {
        h[way].enable();
        if (way === 'idle') {
          // The noise floor: the same wait with no start (the machine's other load, this process's GC).
          await new Promise((r) => setTimeout(r, Math.max(1, Math.round(quantile(sorted(calls.spawner.length ? lifes : [5]), 0.5)))));
        } else {
          const x = await once(b, way === 'spawner' ? b.iso.spawner : direct);
          calls[way].push(x.call);
          cpus[way].push(x.callCpu);
          lifes.push(x.exit);
        }
        h[way].disable();
      }
    }
    const rss = Math.round(statusKb(process.pid, 'VmRSS') / 1024);
    for (const way of ['direct', 'spawner', 'idle'] as const) {
      const d = h[way];
      const call = way === 'idle' ? 'no start' : `start call ${ms(calls[way])}, max ${Math.max(...calls[way]).toFixed(1)} ms, CPU median ${quantile(sorted(cpus[way]), 0.5).toFixed(1)} ms`;
      process.stdout.write(
        `${label.padEnd(11)} ${way.padEnd(8)} blocking per start in a ${rss} MiB process (${what}): ${call}; ` +
          `event-loop delay mean ${(d.mean / 1e6).toFixed(1)} ms, p99 ${(d.percentile(99) / 1e6).toFixed(1)} ms, max ${(d.max / 1e6).toFixed(1)} ms  (${starts} ${way === 'idle' ? 'waits' : 'starts'}, mode ${b.iso.mode})\n`,
      );
    }
    const pid = b.iso.spawner.pid;
    if (pid !== undefined) {
      process.stdout.write(
        `${label.padEnd(11)} spawner  forked once: first start ${firstStart.toFixed(1)} ms (fork + its start); its memory: RSS ${Math.round(statusKb(pid, 'VmRSS') / 1024)} MiB, ` +
          `peak ${Math.round(statusKb(pid, 'VmHWM') / 1024)} MiB, PSS ${Math.round(pssKb(pid) / 1024)} MiB\n`,
      );
    }
  } finally {
    await close(b);
  }
}

/** ~`mib` MiB of small live objects in the old generation, like a long-running service's heap. */
function ballast(mib: number): unknown[] {
  const keep: unknown[] = [];
  const perChunk = 1 << 15;
  while (process.memoryUsage().heapUsed < mib * 2 ** 20) {
    keep.push(Array.from({ length: perChunk }, (_, j) => ({ j, s: `v${j}` })));
  }
  return keep;
}

async function main(): Promise<void> {
  const starts = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 50);
  const root = process.getuid?.() === 0;
  await series('plain', starts, false);
  if (root) {
    await series('isolated', starts, true);
    await series('isolated-sh', starts, true, null);
  } else process.stdout.write('isolated    skipped: needs root\n');
  const heapMiB = 400;
  let keep: unknown[] | undefined = ballast(heapMiB);
  await blocking('plain', starts, false, `${heapMiB} MiB of live objects`);
  if (root) await blocking('isolated', starts, true, `${heapMiB} MiB of live objects`);
  if (keep.length === 0) throw new Error('no ballast');
  keep = undefined;
  collectGarbage();
  if (process.argv.includes('--service')) {
    // Part 3: this process is the embedded service (control worker, fake-host agents, API; the
    // Temporal dev server is a process of its own): the fork of the real thing.
    const env = await startBenchEnv({ roles: ['worker', 'agents', 'api'], defaultPools: true });
    try {
      await sleep(3000);
      await blocking('service', starts, root, 'the embedded service');
    } finally {
      await env.stop();
    }
  }
}

void main();
