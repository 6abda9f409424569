/**
 * The one-machine cluster's operations: `up` (network, PostgreSQL, schemas, Temporal's four services,
 * batchd's roles, the real pool and its agents), `down`, `status`, and `kill` / `start` of one
 * process (what an operator does by hand, and what the kill suite does one piece at a time).
 *
 * Every process runs detached, logs to logs/<name>.log and is recorded (pid and start time) in
 * state.json, so a later command finds it. Nothing is left running by `down`: processes are stopped
 * in reverse start order (SIGTERM, then SIGKILL after a bounded wait), then whatever still carries the
 * cluster's marker or lives in one of its network namespaces is killed.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Connection, Client as TemporalClient } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { grpc, temporal } from '@temporalio/proto';
import { Client as PgClient } from 'pg';
import { ensureSearchAttributes } from '../../src/temporal/search-attributes';
import { workflowThreadsNodeArgs } from '../../src/temporal/workflow-worker';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import {
  ACCOUNT,
  agentArgs,
  BATCHD_DB,
  bridgeAddress,
  bridgeName,
  type ClusterOptions,
  layoutOf,
  MAX_MEMBERSHIP_PORT,
  MAX_PORT_BASE,
  NAMESPACE,
  POOL_ID,
  POOL_INSTANCE_TYPE,
  portsOf,
  POSTGRES_USER,
  type ProcessSpec,
  processesOf,
  type Secrets,
  TEMPORAL_DB,
  TEMPORAL_SERVICES,
  VISIBILITY_DB,
} from './plan';
import { dynamicConfig, temporalConfig } from './temporal-config';

const ROOT = join(__dirname, '..', '..', '..');
const MAIN = join(ROOT, 'dist', 'src', 'main.js');

export interface ClusterState {
  options: ClusterOptions;
  processes: Record<string, { pid: number; startedAt: string }>;
}

type Say = (line: string) => void;

// ---------------------------------------------------------------------------------------------
// State, secrets

export function readState(dir: string): ClusterState | undefined {
  const file = layoutOf({ dir } as ClusterOptions).stateFile;
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
}

function writeState(state: ClusterState): void {
  const file = layoutOf(state.options).stateFile;
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
  renameSync(`${file}.tmp`, file);
}

export function readSecrets(o: ClusterOptions): Secrets {
  const file = layoutOf(o).secretsFile;
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Secrets;
  const secret = () => randomBytes(24).toString('hex');
  const secrets: Secrets = { postgresPassword: secret(), bootstrapApiKey: secret(), agentToken: secret(), pageTokenSecret: secret(), metricsToken: secret() };
  writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

// ---------------------------------------------------------------------------------------------
// Processes

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (killed, not yet reaped by its parent) is not running.
  try {
    return !/^\d+ \([^)]*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const dirs = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of dirs) if (existsSync(join(root, v, 'bin', 'postgres'))) return join(root, v, 'bin');
  throw new Error("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: apt-get install -y postgresql (scripts/install-system-deps.sh)");
}

function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new Error("no 'postgres' OS user (Debian's postgresql package creates it)");
  return { uid: Number(uid), gid: Number(gid) };
}

/** The Temporal server build (scripts/ensure-temporal-server.sh): built once, cached, progress on stderr. */
export function ensureServerBuild(): string {
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'ensure-temporal-server.sh')], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error('no Temporal server build (scripts/ensure-temporal-server.sh failed; its error is above)');
  return r.stdout.trim();
}

/** How a process of the cluster is started: the command, its arguments, environment and user. */
function commandOf(o: ClusterOptions, p: ProcessSpec, serverDir: string): { file: string; args: string[]; env: NodeJS.ProcessEnv; user?: { uid: number; gid: number } } {
  const layout = layoutOf(o);
  const base: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    LANG: 'C.UTF-8',
    // Marks every process of this cluster (and what they start), for down's final sweep.
    BATCHD_CLUSTER: layout.dir,
  };
  const ports = portsOf(o);
  switch (p.kind) {
    case 'postgres':
      return {
        file: join(postgresBinDir(), 'postgres'),
        args: ['-D', layout.postgresData, '-k', layout.postgresRun, '-p', String(ports.postgres), '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300'],
        env: base,
        user: postgresUser(),
      };
    case 'temporal':
      return {
        file: join(serverDir, 'temporal-server'),
        args: ['--root', join(layout.dir, 'temporal'), '--config', 'config', '--env', p.service as string, '--allow-no-auth', 'start', '--service', p.service as string],
        env: base,
      };
    case 'api':
    case 'worker':
      return { file: process.execPath, args: ['--enable-source-maps', ...workflowThreadsNodeArgs(), MAIN, p.roles as string], env: { ...base, ...p.env } };
    case 'agent':
      return {
        file: 'ip',
        args: ['netns', 'exec', p.host?.netns as string, process.execPath, '--enable-source-maps', MAIN, 'agent', ...agentArgs(o, p)],
        env: { ...base, ...p.env },
      };
  }
}

/** Starts one process detached (it outlives this command), appending to its log, and records it. */
export function startProcess(state: ClusterState, name: string, serverDir: string): number {
  const o = state.options;
  const p = processesOf(o, readSecrets(o)).find((x) => x.name === name);
  if (!p) throw new Error(`no process "${name}" in this cluster`);
  const existing = state.processes[name]?.pid;
  if (alive(existing)) throw new Error(`${name} is already running (pid ${existing})`);
  const layout = layoutOf(o);
  const cmd = commandOf(o, p, serverDir);
  if (p.env?.DATA_DIR) mkdirSync(p.env.DATA_DIR, { recursive: true });
  const log = openSync(join(layout.logs, `${name}.log`), 'a');
  try {
    // An agent's working folder is its ranks' workspace (relative python and notebook targets resolve there).
    const cwd = p.kind === 'agent' ? layout.workspace : layout.dir;
    const child = spawn(cmd.file, cmd.args, { detached: true, stdio: ['ignore', log, log], env: cmd.env, cwd, ...(cmd.user ?? {}) });
    if (child.pid === undefined) throw new Error(`${name} did not start`);
    child.unref();
    state.processes[name] = { pid: child.pid, startedAt: new Date().toISOString() };
    writeState(state);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** Sends a signal to one process (SIGKILL by default, as the kill suite does); returns its pid. */
export function signalProcess(state: ClusterState, name: string, signal: NodeJS.Signals = 'SIGKILL'): number {
  const pid = state.processes[name]?.pid;
  if (!alive(pid)) throw new Error(`${name} is not running`);
  process.kill(pid as number, signal);
  return pid as number;
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await sleep(100);
  }
  return !alive(pid);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, say?: Say): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let nextNote = Date.now() + 10_000;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${last ? `: ${last}` : ''}`);
    if (say && Date.now() > nextNote) {
      say(`  still waiting for ${what}${last ? ` (${last.split('\n')[0]})` : ''}`);
      nextNote = Date.now() + 10_000;
    }
    await sleep(300);
  }
}

// ---------------------------------------------------------------------------------------------
// Network: one bridge, a namespace per host joined to it by a veth pair

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function quietly(f: () => void): void {
  try {
    f();
  } catch {
    // already there, or already gone
  }
}

function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', name], { stdio: 'ignore' }).status === 0;
}

function netnsExists(name: string): boolean {
  return spawnSync('ip', ['netns', 'exec', name, 'true'], { stdio: 'ignore' }).status === 0;
}

export function setUpNetwork(o: ClusterOptions): void {
  const bridge = bridgeName(o);
  if (!linkExists(bridge)) {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${bridgeAddress(o)}/24`, 'dev', bridge);
  }
  ip('link', 'set', bridge, 'up');
  for (const p of processesOf(o, readSecrets(o))) {
    const h = p.host;
    if (!h) continue;
    if (!netnsExists(h.netns)) ip('netns', 'add', h.netns);
    if (!linkExists(h.vethHere)) {
      ip('link', 'add', h.vethHere, 'type', 'veth', 'peer', 'name', h.vethThere);
      ip('link', 'set', h.vethThere, 'netns', h.netns);
      ip('netns', 'exec', h.netns, 'ip', 'addr', 'add', `${h.address}/24`, 'dev', h.vethThere);
    }
    ip('link', 'set', h.vethHere, 'master', bridge);
    ip('link', 'set', h.vethHere, 'up');
    ip('netns', 'exec', h.netns, 'ip', 'link', 'set', h.vethThere, 'up');
    ip('netns', 'exec', h.netns, 'ip', 'link', 'set', 'lo', 'up');
  }
}

function tearDownNetwork(o: ClusterOptions): void {
  for (let i = 1; i <= o.hosts; i++) {
    quietly(() => ip('netns', 'del', `bdcl${o.net}h${i}`));
    quietly(() => ip('link', 'del', `bdcl${o.net}v${i}a`));
  }
  quietly(() => ip('link', 'del', bridgeName(o)));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and the schemas

function postgresInitialized(o: ClusterOptions): boolean {
  return existsSync(join(layoutOf(o).postgresData, 'PG_VERSION'));
}

function initPostgres(o: ClusterOptions, say: Say): void {
  const layout = layoutOf(o);
  const owner = postgresUser();
  mkdirSync(layout.postgresData, { recursive: true });
  mkdirSync(layout.postgresRun, { recursive: true });
  for (const d of [join(layout.dir, 'postgres'), layout.postgresData, layout.postgresRun]) {
    chownSync(d, owner.uid, owner.gid);
    chmodSync(d, 0o700);
  }
  say('  initdb (PostgreSQL from Debian)');
  const r = spawnSync(join(postgresBinDir(), 'initdb'), ['-D', layout.postgresData, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C'], {
    ...owner,
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    throw new Error(`initdb failed (the postgres user must be able to reach ${layout.dir}: put the cluster under a folder it can traverse, such as /tmp or /var/lib):\n${r.stderr}`);
  }
}

/** A superuser session over the Unix socket (local connections trust the OS user postgres). */
async function asSuperuser<T>(o: ClusterOptions, f: (c: PgClient) => Promise<T>): Promise<T> {
  const c = new PgClient({ host: layoutOf(o).postgresRun, port: portsOf(o).postgres, user: 'postgres', database: 'postgres' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

async function postgresHealth(o: ClusterOptions, secrets: Secrets): Promise<string | undefined> {
  const c = new PgClient({ host: '127.0.0.1', port: portsOf(o).postgres, user: POSTGRES_USER, password: secrets.postgresPassword, database: BATCHD_DB, connectionTimeoutMillis: 2000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function ensureRoleAndDatabase(o: ClusterOptions, secrets: Secrets): Promise<void> {
  await asSuperuser(o, async (c) => {
    const role = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [POSTGRES_USER]);
    const password = secrets.postgresPassword.replace(/'/g, "''");
    if (role.rowCount === 0) await c.query(`CREATE ROLE ${POSTGRES_USER} LOGIN CREATEDB PASSWORD '${password}'`);
    const db = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [BATCHD_DB]);
    if (db.rowCount === 0) await c.query(`CREATE DATABASE ${BATCHD_DB} OWNER ${POSTGRES_USER}`);
  });
}

function sqlTool(o: ClusterOptions, secrets: Secrets, serverDir: string, db: string, args: string[]): void {
  const r = spawnSync(
    join(serverDir, 'temporal-sql-tool'),
    ['--plugin', 'postgres12', '--ep', '127.0.0.1', '-p', String(portsOf(o).postgres), '-u', POSTGRES_USER, '--pw', secrets.postgresPassword, '--db', db, ...args],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`temporal-sql-tool ${args[0]} on ${db} failed:\n${r.stdout}${r.stderr}`);
}

/** Creates Temporal's two databases when missing, sets up the base schema once, then upgrades to the build's newest. */
async function ensureTemporalSchemas(o: ClusterOptions, secrets: Secrets, serverDir: string, say: Say): Promise<void> {
  for (const [db, dir] of [
    [TEMPORAL_DB, 'temporal'],
    [VISIBILITY_DB, 'visibility'],
  ] as const) {
    const exists = await asSuperuser(o, async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [db])).rowCount === 1);
    if (!exists) {
      say(`  temporal-sql-tool create-database ${db}`);
      sqlTool(o, secrets, serverDir, db, ['create-database']);
    }
    const inDb = new PgClient({ host: layoutOf(o).postgresRun, port: portsOf(o).postgres, user: 'postgres', database: db });
    inDb.on('error', () => undefined);
    await inDb.connect();
    let versioned: boolean;
    try {
      versioned = (await inDb.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'schema_version'")).rowCount === 1;
    } finally {
      await inDb.end();
    }
    if (!versioned) {
      say(`  temporal-sql-tool setup-schema -v 0.0 on ${db}`);
      sqlTool(o, secrets, serverDir, db, ['setup-schema', '-v', '0.0']);
    }
    say(`  temporal-sql-tool update-schema on ${db}`);
    sqlTool(o, secrets, serverDir, db, ['update-schema', '-d', join(serverDir, 'schema', 'postgresql', 'v12', dir, 'versioned')]);
  }
}

// ---------------------------------------------------------------------------------------------
// Temporal

const GRPC_SERVICE: Record<string, string> = {
  frontend: 'temporal.api.workflowservice.v1.WorkflowService',
  history: 'temporal.api.workflowservice.v1.HistoryService',
  matching: 'temporal.api.workflowservice.v1.MatchingService',
};

/** The gRPC health answer of one Temporal service; undefined when SERVING. */
async function temporalServiceHealth(o: ClusterOptions, service: string): Promise<string | undefined> {
  if (service === 'worker') {
    // The worker service serves no gRPC (it only joins the membership ring); its metrics listener says it is up.
    try {
      const r = await fetch(`http://127.0.0.1:${portsOf(o).metrics.worker}/metrics`, { signal: AbortSignal.timeout(3000) });
      return r.ok ? undefined : `metrics ${r.status}`;
    } catch (err) {
      return (err as Error).message;
    }
  }
  const port = portsOf(o)[service as 'frontend'];
  const connection = Connection.lazy({ address: `${bridgeAddress(o)}:${port}` });
  try {
    const r = await connection.withDeadline(Date.now() + 2000, () => connection.healthService.check({ service: GRPC_SERVICE[service] ?? '' }));
    return r.status === grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING ? undefined : `health: ${String(r.status)}`;
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  } finally {
    await connection.close();
  }
}

async function temporalClient(o: ClusterOptions): Promise<TemporalClient> {
  const connection = await Connection.connect({ address: `${bridgeAddress(o)}:${portsOf(o).frontend}`, connectTimeout: 5000 });
  return new TemporalClient({ connection, namespace: NAMESPACE });
}

/** The namespace, batchd's search attributes, and a start that uses them all (the frontend caches them for a while). */
async function ensureNamespace(o: ClusterOptions, say: Say): Promise<void> {
  const client = await temporalClient(o);
  try {
    const ws = client.workflowService;
    const exists = await ws.describeNamespace({ namespace: NAMESPACE }).then(
      () => true,
      () => false,
    );
    if (!exists) {
      say(`  registering namespace ${NAMESPACE} (retention 7 days)`);
      await ws.registerNamespace({ namespace: NAMESPACE, workflowExecutionRetentionPeriod: msToTs('7 days') });
    }
    await until('the namespace to be usable', 60_000, async () => {
      await ws.describeNamespace({ namespace: NAMESPACE });
      return true;
    });
    const added = await until('search attributes to register', 60_000, () => ensureSearchAttributes(client, NAMESPACE));
    if (added.length > 0) say(`  registered search attributes: ${added.join(', ')}`);
    const values: Record<string, unknown[]> = {};
    for (const sa of ALL_SEARCH_ATTRIBUTES) values[sa.name] = sa.type === 'INT' ? [1] : ['cluster-probe'];
    await until(
      'the frontend to accept the search attributes',
      120_000,
      async () => {
        const id = `cluster-search-attribute-probe-${Date.now()}`;
        const handle = await client.workflow.start('clusterProbe', { taskQueue: 'cluster-probe', workflowId: id, searchAttributes: values as never });
        await handle.terminate('probe');
        return true;
      },
      say,
    );
  } finally {
    await client.connection.close();
  }
}

// ---------------------------------------------------------------------------------------------
// batchd

async function apiHealth(url: string): Promise<string | undefined> {
  try {
    const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(3000) });
    if (r.ok) return undefined;
    return `/healthz ${r.status}: ${(await r.text()).slice(0, 200)}`;
  } catch (err) {
    return (err as Error).message;
  }
}

/** A control worker is healthy when both its task queues list it (pid@hostname) among recent pollers. */
async function workerHealth(client: TemporalClient, pid: number): Promise<string | undefined> {
  for (const taskQueue of ['batchd-control', 'batchd-pools']) {
    for (const taskQueueType of [temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY]) {
      const r = await client.workflowService.describeTaskQueue({ namespace: NAMESPACE, taskQueue: { name: taskQueue }, taskQueueType });
      const mine = (r.pollers ?? []).find((p) => p.identity?.startsWith(`${pid}@`));
      if (!mine) return `not polling ${taskQueue}`;
      if (Date.now() - Number(mine.lastAccessTime?.seconds ?? 0) * 1000 > 60_000) return `no poll of ${taskQueue} in the last minute`;
    }
  }
  return undefined;
}

export interface PoolHosts {
  hosts: Array<{ host: string; status: string; slots: number; slotsInUse: number; slotJobs: Array<string | null> }>;
  rankCapacity: number;
  ranksInUse: number;
}

export async function poolUsage(o: ClusterOptions, apiUrl?: string): Promise<PoolHosts> {
  const secrets = readSecrets(o);
  const url = apiUrl ?? `http://${bridgeAddress(o)}:${portsOf(o).api[0]}`;
  const r = await fetch(`${url}/v1/accounts/${ACCOUNT}/nodePools/${POOL_ID}:getUsage`, {
    headers: { authorization: `Bearer ${secrets.bootstrapApiKey}` },
    signal: AbortSignal.timeout(5000),
  });
  if (!r.ok) throw new Error(`:getUsage ${r.status}: ${(await r.text()).slice(0, 200)}`);
  return (await r.json()) as PoolHosts;
}

async function ensurePool(o: ClusterOptions, apiUrl: string, say: Say): Promise<void> {
  const secrets = readSecrets(o);
  const headers = { authorization: `Bearer ${secrets.bootstrapApiKey}`, 'content-type': 'application/json' };
  const got = await fetch(`${apiUrl}/v1/accounts/${ACCOUNT}/nodePools/${POOL_ID}`, { headers });
  if (got.status === 200) return;
  say(`  creating node pool ${POOL_ID} (${o.hosts} × ${POOL_INSTANCE_TYPE}, real hosts)`);
  const r = await fetch(`${apiUrl}/v1/accounts/${ACCOUNT}/nodePools`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ nodePoolId: POOL_ID, nodePool: { maxNodeCount: o.hosts, eksNodePool: { instanceType: POOL_INSTANCE_TYPE } } }),
  });
  if (!r.ok) throw new Error(`creating the node pool failed: ${r.status} ${await r.text()}`);
}

// ---------------------------------------------------------------------------------------------
// Health of every process

export interface ProcessStatus {
  name: string;
  pid?: number;
  running: boolean;
  /** Where it serves (address:port), or what it dials. */
  endpoint: string;
  /** undefined: healthy. */
  problem?: string;
}

export async function statusOf(state: ClusterState): Promise<ProcessStatus[]> {
  const o = state.options;
  const secrets = readSecrets(o);
  const here = bridgeAddress(o);
  const ports = portsOf(o);
  let client: TemporalClient | undefined;
  let usage: PoolHosts | undefined;
  let usageProblem = '';
  const out: ProcessStatus[] = [];
  try {
    client = await temporalClient(o).catch(() => undefined);
    for (const url of ports.api.map((p) => `http://${here}:${p}`)) {
      try {
        usage = await poolUsage(o, url);
        break;
      } catch (err) {
        usageProblem = (err as Error).message;
      }
    }
    for (const p of processesOf(o, secrets)) {
      const pid = state.processes[p.name]?.pid;
      const running = alive(pid);
      const endpoint =
        p.kind === 'postgres'
          ? `127.0.0.1:${p.port}`
          : p.kind === 'agent'
            ? `${p.host?.address} (netns ${p.host?.netns}) → ${p.env?.BATCHD_API_URL}`
            : p.kind === 'worker'
              ? `→ ${p.env?.TEMPORAL_ADDRESS}`
              : p.service === 'worker'
                ? `${here}:${ports.membership.worker} (membership)`
                : `${here}:${p.port}`;
      let problem: string | undefined;
      if (!running) problem = 'not running';
      else if (p.kind === 'postgres') problem = await postgresHealth(o, secrets);
      else if (p.kind === 'temporal') problem = await temporalServiceHealth(o, p.service as string);
      else if (p.kind === 'api') problem = await apiHealth(`http://${here}:${p.port}`);
      else if (p.kind === 'worker') problem = client ? await workerHealth(client, pid as number).catch((e: Error) => e.message) : 'Temporal does not answer';
      else if (p.kind === 'agent') {
        const h = usage?.hosts.find((x) => x.host === p.host?.id);
        problem = !usage ? `pool usage unknown (${usageProblem})` : !h ? 'not joined to the pool' : h.status !== 'ready' ? `host ${h.status}` : undefined;
      }
      out.push({ name: p.name, pid, running, endpoint, ...(problem ? { problem } : {}) });
    }
  } finally {
    await client?.connection.close();
  }
  return out;
}

export function formatStatus(rows: ProcessStatus[]): string {
  const w = (s: string, n: number) => s.padEnd(n);
  const lines = [`${w('PROCESS', 20)}${w('PID', 9)}${w('ENDPOINT', 64)}HEALTH`];
  for (const r of rows) lines.push(`${w(r.name, 20)}${w(r.running ? String(r.pid) : '-', 9)}${w(r.endpoint, 64)}${r.problem ? `DOWN: ${r.problem}` : 'ok'}`);
  return lines.join('\n');
}

/** The end of a process's log, for an error that says why it stopped. */
export function logTail(o: ClusterOptions, name: string, chars = 2000): string {
  try {
    const text = readFileSync(join(layoutOf(o).logs, `${name}.log`), 'utf8');
    return text.slice(-chars);
  } catch {
    return '(no log)';
  }
}

/** Waits until one process answers healthy (bounded); fails at once, with its log's end, if it exits. */
export async function waitHealthy(state: ClusterState, name: string, timeoutMs: number, say?: Say): Promise<void> {
  let exited = false;
  await until(
    `${name} to be healthy`,
    timeoutMs,
    async () => {
      const row = (await statusOf(state)).find((r) => r.name === name);
      if (!row) throw new Error(`no process ${name}`);
      if (!row.running) {
        exited = true;
        return true;
      }
      if (row.problem) throw new Error(row.problem);
      return true;
    },
    say,
  );
  if (exited) throw new Error(`${name} exited; the end of ${join(layoutOf(state.options).logs, `${name}.log`)}:\n${logTail(state.options, name)}`);
}

/** Starts PostgreSQL, retrying while a killed predecessor's backends still hold its shared memory. */
async function startPostgres(state: ClusterState, serverDir: string, say: Say): Promise<void> {
  const o = state.options;
  for (let attempt = 1; ; attempt++) {
    startProcess(state, 'postgres', serverDir);
    const ok = await until('PostgreSQL to accept connections', 30_000, async () => {
      if (!alive(state.processes.postgres?.pid)) return false;
      const c = new PgClient({ host: layoutOf(o).postgresRun, port: portsOf(o).postgres, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        await c.query('SELECT 1');
        return true;
      } finally {
        await c.end().catch(() => undefined);
      }
    });
    if (ok) break;
    if (attempt >= 5) throw new Error(`PostgreSQL did not start; see ${join(layoutOf(o).logs, 'postgres.log')}`);
    say('  PostgreSQL exited at start (its previous processes may still be ending); retrying');
    await sleep(2000);
  }
}

/** Starts (or restarts) one process by name and waits until it is healthy. */
export async function startOne(state: ClusterState, name: string, say: Say = () => undefined, timeoutMs = 120_000): Promise<void> {
  const serverDir = ensureServerBuild();
  if (name === 'postgres') await startPostgres(state, serverDir, say);
  else startProcess(state, name, serverDir);
  await waitHealthy(state, name, timeoutMs, say);
}

// ---------------------------------------------------------------------------------------------
// up, down

export async function up(o: ClusterOptions, say: Say): Promise<ClusterState> {
  if (process.getuid?.() !== 0) throw new Error('the cluster needs root: its hosts run in network namespaces, and PostgreSQL runs as the postgres user');
  if (!existsSync(MAIN) || !existsSync(join(ROOT, 'dist', 'workflow-bundle.js'))) throw new Error('batchd is not built: run npm run build first');
  if (o.portBase > MAX_PORT_BASE) throw new Error(`port base ${o.portBase} is above ${MAX_PORT_BASE}: Temporal stores membership ports in PostgreSQL as a smallint (at most ${MAX_MEMBERSHIP_PORT})`);
  const layout = layoutOf(o);
  const previous = readState(o.dir);
  if (previous && Object.values(previous.processes).some((p) => alive(p.pid))) {
    throw new Error(`a cluster is already running in ${layout.dir} (npm run cluster -- status --dir ${layout.dir}; down stops it)`);
  }
  for (const d of [layout.dir, layout.logs, layout.batchd, layout.temporalConfig]) mkdirSync(d, { recursive: true });
  // Ranks run as other users (rank isolation) and write their lock files here.
  mkdirSync(join(layout.workspace, 'locks'), { recursive: true });
  chmodSync(layout.workspace, 0o755);
  chmodSync(join(layout.workspace, 'locks'), 0o1777);
  chmodSync(layout.dir, 0o755);
  const secrets = readSecrets(o);
  const state: ClusterState = { options: o, processes: {} };
  writeState(state);

  say('Temporal server build');
  const serverDir = ensureServerBuild();
  say(`  ${serverDir} (${readFileSync(join(serverDir, 'VERSION'), 'utf8').trim()})`);

  say(`network: bridge ${bridgeName(o)} ${bridgeAddress(o)}/24, ${o.hosts} host namespace(s)`);
  setUpNetwork(o);

  say('PostgreSQL');
  if (!postgresInitialized(o)) initPostgres(o, say);
  await startPostgres(state, serverDir, say);
  await ensureRoleAndDatabase(o, secrets);

  say('Temporal schemas (persistence and PostgreSQL visibility)');
  await ensureTemporalSchemas(o, secrets, serverDir, say);

  say('Temporal server: history, matching, frontend, worker (one process each)');
  const dynamicFile = join(layout.temporalConfig, 'dynamicconfig.yaml');
  writeFileSync(dynamicFile, dynamicConfig());
  for (const service of TEMPORAL_SERVICES) {
    writeFileSync(join(layout.temporalConfig, `${service}.yaml`), temporalConfig(o, secrets, service, dynamicFile), { mode: 0o600 });
  }
  // On a fresh database each service initialises the cluster's metadata at start, and services that
  // start together race to insert it ("failed to initialize current cluster metadata"): history goes
  // first, alone, until the row is there.
  startProcess(state, 'temporal-history', serverDir);
  await until(
    "history to record the cluster's metadata",
    120_000,
    async () => {
      if (!alive(state.processes['temporal-history']?.pid)) return false;
      const c = new PgClient({ host: layout.postgresRun, port: portsOf(o).postgres, user: 'postgres', database: TEMPORAL_DB });
      c.on('error', () => undefined);
      await c.connect();
      try {
        return (await c.query('SELECT 1 FROM cluster_metadata_info LIMIT 1')).rowCount === 1 ? true : undefined;
      } finally {
        await c.end();
      }
    },
    say,
  );
  await waitHealthy(state, 'temporal-history', 120_000, say);
  for (const service of TEMPORAL_SERVICES.filter((x) => x !== 'history')) startProcess(state, `temporal-${service}`, serverDir);
  for (const service of TEMPORAL_SERVICES) await waitHealthy(state, `temporal-${service}`, 120_000, say);
  await ensureNamespace(o, say);

  say('batchd: control workers, API replicas');
  const specs = processesOf(o, secrets);
  for (const p of specs.filter((s) => s.kind === 'worker' || s.kind === 'api')) startProcess(state, p.name, serverDir);
  for (const p of specs.filter((s) => s.kind === 'worker' || s.kind === 'api')) await waitHealthy(state, p.name, 120_000, say);
  const api = `http://${bridgeAddress(o)}:${portsOf(o).api[0]}`;
  await ensurePool(o, api, say);

  say('host agents, each in its own network namespace');
  for (const p of specs.filter((s) => s.kind === 'agent')) startProcess(state, p.name, serverDir);
  for (const p of specs.filter((s) => s.kind === 'agent')) {
    // An agent exits when its pool refuses or fails its join (after a full restart the pool's workflow
    // may still be resuming); like any supervisor, start it again, a bounded number of times.
    for (let attempt = 1; ; attempt++) {
      try {
        await waitHealthy(state, p.name, 120_000, say);
        break;
      } catch (err) {
        if (attempt >= 3 || alive(state.processes[p.name]?.pid)) throw err;
        say(`  ${p.name} exited (${(err as Error).message.split('\n').slice(-2).join(' ').trim().slice(0, 200)}); starting it again`);
        await sleep(3000);
        startProcess(state, p.name, serverDir);
      }
    }
  }
  return state;
}

/** Processes that carry the cluster's marker in their environment, or live in one of its namespaces. */
export function leftovers(o: ClusterOptions): number[] {
  const marker = `BATCHD_CLUSTER=${layoutOf(o).dir}\0`;
  const found = new Set<number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').includes(marker) && alive(Number(entry))) found.add(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  for (let i = 1; i <= o.hosts; i++) {
    const r = spawnSync('ip', ['netns', 'pids', `bdcl${o.net}h${i}`], { encoding: 'utf8' });
    for (const pid of (r.stdout ?? '').split('\n').filter((l) => /^\d+$/.test(l))) if (alive(Number(pid))) found.add(Number(pid));
  }
  return [...found];
}

export async function down(dir: string, say: Say, options: { purge?: boolean } = {}): Promise<void> {
  const state = readState(dir);
  if (!state) {
    say(`no cluster in ${dir}`);
    return;
  }
  const o = state.options;
  const names = processesOf(o, readSecrets(o)).map((p) => p.name).reverse();
  for (const name of names) {
    const pid = state.processes[name]?.pid;
    if (!alive(pid)) continue;
    say(`stopping ${name} (pid ${pid})`);
    process.kill(pid as number, 'SIGTERM');
    if (!(await waitGone(pid as number, 20_000))) {
      say(`  ${name} did not stop in 20 s: SIGKILL`);
      process.kill(pid as number, 'SIGKILL');
      await waitGone(pid as number, 5000);
    }
  }
  // Ranks orphaned by an agent killed earlier, PostgreSQL backends: nothing of the cluster stays.
  for (let round = 0; round < 3; round++) {
    const rest = leftovers(o);
    if (rest.length === 0) break;
    say(`killing ${rest.length} leftover process(es): ${rest.join(' ')}`);
    for (const pid of rest) quietly(() => process.kill(pid, 'SIGKILL'));
    await sleep(500);
  }
  tearDownNetwork(o);
  state.processes = {};
  writeState(state);
  // `down` stops; it forgets only when asked.
  if (options.purge) {
    say(`removing ${layoutOf(o).dir}`);
    rmSync(layoutOf(o).dir, { recursive: true, force: true });
  }
}
