/**
 * A bench environment: a Temporal dev server we start ourselves (so we know its pid for RSS and can
 * open its Prometheus endpoint to count the RPCs that reached it), the real service in this process
 * with the roles a figure asks for, and optionally a bench-only worker for the baseline workflows.
 * Everything listens on loopback only; `stop()` is bounded in time.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { type Client } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import pino from 'pino';
import { loadConfig } from '../../src/config';
import { type Role, type RunningService, startService } from '../../src/service';
import { ensureTemporalCli } from '../../src/temporal/cli';
import { type DevServer, startDevServer } from '../../src/temporal/dev-server';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { RankSpawner } from '../../src/agent/rank-spawner';
import { benchActivities } from './bench-activities';
import { BenchApi, freePort } from './http';
import { type ClosedLoopResult } from './load';
import { sleep } from './stats';
import { workflowThreadsPreloaded, workflowWorkerOptions } from '../../src/temporal/workflow-worker';

export const BENCH_KEY = 'bench-key-0123456789abcdef';
export const BENCH_TASK_QUEUE = 'bench-baseline';
export const ACCOUNT_PATH = '/v1/accounts/default';

export interface BenchEnvOptions {
  /** Service roles in this process (the dev server is always ours). Default: worker, agents, api. */
  roles?: readonly Role[];
  /** Start the bench-only worker for the baseline workflows. */
  benchWorker?: boolean;
  /** Create the two default pools (default: false; figures make their own). */
  defaultPools?: boolean;
  /** Extra service configuration. */
  env?: Record<string, string>;
  /** Use this data folder (kept on stop) instead of a fresh temporary one. */
  dataDir?: string;
}

export interface BenchEnv {
  dataDir: string;
  devServer: DevServer;
  metricsUrl: string;
  service: RunningService;
  client: Client;
  api: BenchApi;
  url: string;
  /** Service configuration as environment variables (to start another instance against the same server). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

let bundle: Promise<string> | undefined;

/** The bench workflows' bundle, built once per process. */
export function benchBundle(): Promise<string> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows/bench-workflows'),
    logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m) => console.error(m) },
  }).then((b) => b.code);
  return bundle;
}

/** Setup and teardown timings on stderr. */
function trace(line: string): void {
  process.stderr.write(`    [env] ${line}\n`);
}

const logger = () => pino({ level: process.env.BENCH_LOG_LEVEL ?? 'error', base: undefined }, pino.destination(2));

export async function startBenchEnv(o: BenchEnvOptions = {}): Promise<BenchEnv> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'batchd-bench-'));
  const t0 = Date.now();
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    const s0 = Date.now();
    for (const s of stops.reverse()) {
      await Promise.race([s().catch((err: unknown) => console.error(`bench: error while stopping: ${String(err)}`)), sleep(60_000)]);
    }
    stops.length = 0;
    trace(`environment stopped in ${((Date.now() - s0) / 1000).toFixed(1)} s`);
  };
  try {
    const metricsPort = await freePort();
    const devServer = await startDevServer({
      cliPath: ensureTemporalCli(),
      dataDir,
      port: await freePort(),
      namespace: 'default',
      searchAttributes: ALL_SEARCH_ATTRIBUTES,
      extraArgs: ['--metrics-port', String(metricsPort), '--http-port', String(await freePort())],
    });
    stops.push(async () => {
      await devServer.stop();
      if (!o.dataDir) rmSync(dataDir, { recursive: true, force: true });
    });
    // Rank processes left by a service stopped mid-job (this process's own children only).
    stops.push(() => Promise.resolve(killStrayChildren(devServer.process.pid)));

    const env: Record<string, string> = {
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      TEMPORAL_ADDRESS: devServer.address,
      BOOTSTRAP_API_KEY: BENCH_KEY,
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'error',
      DEFAULT_POOLS: String(o.defaultPools ?? false),
      WORKSPACE_DIR: dataDir,
      // The bench measures the service, not the per-key rate limit.
      API_RATE_LIMIT_PER_SECOND: '0',
      ...(o.env ?? {}),
    };
    const service = await startService({ config: loadConfig(env), roles: o.roles ?? ['worker', 'agents', 'api'], logger: logger() });
    stops.push(() => service.stop());

    if (o.benchWorker) {
      const bench = await startBenchWorker(devServer.address, 'default');
      stops.push(() => bench.stop());
    }
    const url = service.url ?? '';
    trace(`environment up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return {
      dataDir,
      devServer,
      metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
      service,
      client: service.client,
      api: new BenchApi(url, BENCH_KEY),
      url,
      env,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * A second service instance in this process against the same dev server and data folder (e.g. the API
 * alone on a task queue no worker serves). Stopped by the caller.
 */
export async function startExtraService(e: BenchEnv, roles: readonly Role[], env: Record<string, string>): Promise<{ service: RunningService; api: BenchApi }> {
  const service = await startService({ config: loadConfig({ ...e.env, PORT: String(await freePort()), ...env }), roles, logger: logger() });
  return { service, api: new BenchApi(service.url ?? '', BENCH_KEY) };
}

/** Creates a fake node pool through the API and waits until every one of its hosts has an agent. */
export async function createFakePool(e: BenchEnv, id: string, machineType: string, numNodes: number, timeoutMs = 120_000): Promise<void> {
  const r = await e.api.post(`${ACCOUNT_PATH}/nodePools`, { nodePoolId: id, nodePool: { fakeNodePool: { machineType, numNodes } } });
  if (r.status !== 200) throw new Error(`creating pool ${id}: ${r.status} ${JSON.stringify(r.body)}`);
  await waitHealthy(e, timeoutMs);
}

/** Waits for /healthz to answer 200 (every fake host has its agent). */
export async function waitHealthy(e: BenchEnv, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const r = await e.api.get('/healthz');
    if (r.status === 200) return;
    last = JSON.stringify(r.body);
    await sleep(200);
  }
  throw new Error(`the service was not healthy within ${timeoutMs} ms: ${last}`);
}

/** POSTs a job and returns its resource name; throws on anything but 200. */
/**
 * The bench's own worker (bare workflows and activities, the baselines) on `address`, cached as the
 * control worker caches: every live workflow stays in memory.
 */
export async function startBenchWorker(address: string, namespace: string): Promise<{ stop(): Promise<void> }> {
  const connection = await NativeConnection.connect({ address });
  const spawner = new RankSpawner({ logger: pino({ level: 'silent' }), tag: 'batchd-bench-baseline' });
  const worker = await Worker.create({
    connection,
    namespace,
    taskQueue: BENCH_TASK_QUEUE,
    workflowBundle: { code: await benchBundle() },
    ...workflowWorkerOptions(),
    activities: benchActivities(spawner),
    maxCachedWorkflows: 2000,
    maxConcurrentActivityTaskExecutions: 256,
    shutdownGraceTime: '2 seconds',
  });
  const running = worker.run();
  return {
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running.catch(() => undefined);
      await connection.close();
      await spawner.close();
    },
  };
}

export async function createJob(api: BenchApi, body: Record<string, unknown>, id?: string): Promise<string> {
  const r = await api.post<{ name?: string }>(`${ACCOUNT_PATH}/batchJobs${id ? `?batchJobId=${id}` : ''}`, body);
  if (r.status !== 200 || typeof r.body.name !== 'string') throw new Error(`create: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  return r.body.name;
}

/** A load phase and what it cost per completed operation. */
export interface MeasuredPhase {
  load: ClosedLoopResult;
  /** CPU of this process (API, workers, agents, load generator) and of the dev server. */
  cpuMsPerOp: { service: number; temporal: number };
  /** Frontend RPCs that reached the dev server, polls left out. */
  rpcPerOp: Record<string, number>;
}

export async function measurePhase(e: BenchEnv, run: () => Promise<ClosedLoopResult>): Promise<MeasuredPhase> {
  const rpc0 = await frontendRequests(e.metricsUrl);
  const self0 = selfCpuSeconds();
  const server0 = cpuSeconds(e.devServer.process.pid);
  const load = await run();
  const n = Math.max(1, load.completed);
  const cpuMsPerOp = { service: ((selfCpuSeconds() - self0) * 1000) / n, temporal: ((cpuSeconds(e.devServer.process.pid) - server0) * 1000) / n };
  const rpc = diffCounts(await frontendRequests(e.metricsUrl), rpc0);
  const rpcPerOp = Object.fromEntries(
    Object.entries(rpc)
      .filter(([op]) => !op.startsWith('Poll') && op !== 'GetSystemInfo')
      .map(([op, v]) => [op, Math.round((v / n) * 100) / 100]),
  );
  return { load, cpuMsPerOp, rpcPerOp };
}

// ---- server metrics ---------------------------------------------------------------------------------

/** Frontend RPCs that reached the dev server in namespace default, by operation (Prometheus counters). */
export async function frontendRequests(metricsUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('service_requests{')) continue;
    const labels = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
    if (!labels.includes('service_name="frontend"') || !labels.includes('namespace="default"')) continue;
    const op = /operation="([^"]+)"/.exec(labels)?.[1];
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (op && Number.isFinite(value)) out.set(op, (out.get(op) ?? 0) + value);
  }
  return out;
}

export function diffCounts(after: Map<string, number>, before: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

export function heartbeatsIn(counts: Record<string, number>): number {
  return (counts.RecordActivityTaskHeartbeat ?? 0) + (counts.RecordActivityTaskHeartbeatById ?? 0);
}

// ---- processes ------------------------------------------------------------------------------------

/** VmRSS of a process in MiB (NaN when it is gone). */
export function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** This process's CPU seconds (user + system, all threads). */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Pids of every descendant of `root` (by /proc/<pid>/stat ppid). */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(entry), ppid);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const frontier = [root];
  while (frontier.length > 0) {
    const p = frontier.pop() as number;
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        frontier.push(child);
      }
    }
  }
  return out;
}

/** SIGKILLs this process's descendants other than `keep` (the dev server), by pid: rank processes a stop left behind. */
function killStrayChildren(keep: number | undefined): void {
  for (const pid of descendants(process.pid)) {
    if (pid === keep) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('temporal')) continue;
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Runs the garbage collector when it can be reached (the bench exposes it at start). */
export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

// ---- the machine ----------------------------------------------------------------------------------

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  temporalCli: string;
  kernel: string;
  loadAverage1m: number;
  /** How this process's workflow threads run: without the SDK's stack-trace hook (the preload, as the service runs) or as the SDK ships. */
  workflowThreads: 'preloaded' | 'sdk-default';
}

export function machineInfo(): MachineInfo {
  let temporalCli = 'unknown';
  try {
    temporalCli = execFileSync(ensureTemporalCli(), ['--version'], { encoding: 'utf8' }).trim();
    const path = ensureTemporalCli();
    const tag = /temporal-(v[\d.]+)/.exec(path)?.[1];
    if (tag) temporalCli = `${tag} (${temporalCli})`;
  } catch {
    // keep unknown
  }
  let kernel = 'unknown';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    // keep unknown
  }
  let load = Number.NaN;
  try {
    load = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    // keep NaN
  }
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    temporalCli,
    kernel,
    loadAverage1m: load,
    workflowThreads: workflowThreadsPreloaded() ? 'preloaded' : 'sdk-default',
  };
}
