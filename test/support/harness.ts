/**
 * Integration-test harness: a real Temporal dev server and the real service (control worker, fake-host
 * agents, API over HTTP) per suite, each suite with its own data folder, ports and short timeouts set
 * by configuration. Roles can also run as child processes, for tests that kill them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../src/config';
import { ALL_ROLES, type Role, type RunningService, startService } from '../../src/service';
import { ensureTemporalCli } from '../../src/temporal/cli';
import { workflowThreadsNodeArgs } from '../../src/temporal/workflow-worker';
import { freePort } from './ports';
import { checkApiResponse } from './openapi-check';

export { freePort };

export const TEST_KEY = 'test-key-0123456789abcdef';

export interface TestEnvOptions {
  roles?: readonly Role[];
  env?: Record<string, string>;
  dataDir?: string;
  defaultPools?: boolean;
}

export interface TestService {
  service: RunningService;
  url: string;
  key: string;
  dataDir: string;
  /** WORKSPACE_DIR: where tests put the python files and notebooks their jobs run. */
  workspaceDir: string;
  env: Record<string, string>;
  api: Api;
  stop(): Promise<void>;
}

/**
 * Environment for a test service: short timeouts so failures show in seconds, not minutes. The
 * workspace is a folder of its own inside the data folder (DATA_DIR itself is closed to isolated ranks).
 */
export async function testEnv(dataDir: string, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  mkdirSync(join(dataDir, 'workspace'), { recursive: true });
  return {
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    TEMPORAL_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: String(await freePort()),
    TEMPORAL_CLI_PATH: ensureTemporalCli(),
    BOOTSTRAP_API_KEY: TEST_KEY,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    HOST_HEARTBEAT_TIMEOUT_MS: '4000',
    HOST_START_TIMEOUT_MS: '15000',
    RANK_STOP_GRACE_MS: '1000',
    FLEET_SYNC_MS: '300',
    WORKSPACE_DIR: join(dataDir, 'workspace'),
    // Suites poll and probe faster than a client should; the limiter is tested where it is set (hardening.test.ts).
    API_RATE_LIMIT_PER_SECOND: '0',
    ...extra,
  };
}

export async function startTestService(options: TestEnvOptions = {}): Promise<TestService> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'batchd-test-'));
  const env = await testEnv(dataDir, { DEFAULT_POOLS: String(options.defaultPools ?? true), ...(options.env ?? {}) });
  const config = loadConfig(env);
  const service = await startService({ config, roles: options.roles ?? ALL_ROLES, logger: pino({ level: env.LOG_LEVEL ?? 'warn' }) });
  const url = service.url ?? '';
  return {
    service,
    url,
    key: TEST_KEY,
    dataDir,
    workspaceDir: config.workspaceDir,
    env,
    api: new Api(url, TEST_KEY),
    async stop() {
      await service.stop();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
}

/** A small HTTP client for the API under test. */
export class Api {
  constructor(
    readonly url: string,
    readonly key: string | undefined,
  ) {}

  withKey(key: string | undefined): Api {
    return new Api(this.url, key);
  }

  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const init: RequestInit = { method, headers: { ...headers } };
    if (this.key) (init.headers as Record<string, string>).authorization = `Bearer ${this.key}`;
    if (body !== undefined) {
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(`${this.url}${path}`, init);
    const text = await res.text();
    // Every response is checked against the OpenAPI document (off with OPENAPI_VALIDATE=0).
    checkApiResponse({ method, path, status: res.status, contentType: res.headers.get('content-type'), text });
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = { raw: text };
    }
    return { status: res.status, body: parsed as T };
  }

  get<T = Record<string, unknown>>(path: string) {
    return this.call<T>('GET', path);
  }
  post<T = Record<string, unknown>>(path: string, body?: unknown) {
    return this.call<T>('POST', path, body ?? {});
  }
  patch<T = Record<string, unknown>>(path: string, body: unknown) {
    return this.call<T>('PATCH', path, body);
  }
  delete<T = Record<string, unknown>>(path: string) {
    return this.call<T>('DELETE', path);
  }
}

/** Polls `probe` until it returns a value that is not undefined; fails after `timeoutMs` with the last value seen. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface BatchJobBody {
  name: string;
  state: string;
  status: string;
  [field: string]: unknown;
}

/** Waits until the job reaches `state` (or any of several), returning the job. */
export async function waitForState(api: Api, account: string, id: string, states: string | string[], timeoutMs = 30_000): Promise<BatchJobBody> {
  const wanted = Array.isArray(states) ? states : [states];
  let last: BatchJobBody | undefined;
  try {
    return await waitFor(
      `job ${id} to reach ${wanted.join('|')}`,
      async () => {
        const r = await api.get<BatchJobBody>(`/v1/accounts/${account}/batchJobs/${id}`);
        last = r.body;
        return wanted.includes(r.body.state) ? r.body : undefined;
      },
      timeoutMs,
      150,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(last)}`);
  }
}

/**
 * A host agent of `pool` as its own process, joined to the test service as a remote host joins:
 * through Temporal, shipping logs to the API with the service's agent token. `dataDir` is the agent's
 * own DATA_DIR (a fresh one by default, removed when the agent exits); a restarted agent is given its
 * previous one, which the caller removes.
 */
export function spawnAgent(t: TestService, pool: string, host: string, dir?: string): ChildProcess {
  const dataDir = dir ?? mkdtempSync(join(tmpdir(), `batchd-agent-${host}-`));
  const child = spawnRole(
    'agent',
    {
      DATA_DIR: dataDir,
      TEMPORAL_ADDRESS: t.service.temporalAddress,
      BATCHD_API_URL: t.url,
      BATCHD_AGENT_TOKEN: readFileSync(join(t.dataDir, 'agent-token'), 'utf8').trim(),
      RANK_STOP_GRACE_MS: '1000',
      LOG_LEVEL: 'warn',
    },
    ['--pool', pool, '--host', host, '--address', '127.0.0.1'],
  );
  if (dir === undefined) child.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  return child;
}

/** A role of the service as its own process (`node dist/src/main.js <roles>`), for tests that kill it. */
export function spawnRole(roles: string, env: Record<string, string>, args: string[] = []): ChildProcess {
  const main = join(__dirname, '..', '..', 'src', 'main.js');
  const child = spawn(process.execPath, [...workflowThreadsNodeArgs(), main, roles, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = `[${roles}] `;
  const forward = (chunk: Buffer) => {
    if (process.env.TEST_LOG_LEVEL) process.stderr.write(chunk.toString().replace(/^/gm, prefix));
  };
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  return child;
}

export async function killAndWait(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** Processes whose command line contains `marker`, other than this one. */
export function processesMatching(marker: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(marker)) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Gates for rank commands that run until the test opens them: files in the workspace, which ranks can
 * read (not in /tmp: an isolated rank has a /tmp of its own).
 */
export function gatesIn(workspaceDir: string): { heldUntil: (gate: string, echo?: string) => string; open: (gate: string) => void } {
  const dir = join(workspaceDir, 'gates');
  mkdirSync(dir, { recursive: true });
  return {
    heldUntil: (gate, echo = '') => `${echo}until [ -e ${join(dir, gate)} ]; do sleep 0.1; done`,
    open: (gate) => writeFileSync(join(dir, gate), ''),
  };
}
