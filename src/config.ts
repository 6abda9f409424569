/**
 * All configuration, read from the environment once and validated. Every variable is documented in
 * the README's configuration table; an invalid value stops the process at start with a clear message.
 */
import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseByteSize } from './domain/isolation';

const port = z.coerce.number().int().min(1).max(65535);
const ms = z.coerce.number().int().min(1);
/** A limit on how many of something there may be; at least 1 (a limit of 0 would make the feature unusable). */
const count = z.coerce.number().int().min(1);
const flag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const envSchema = z.object({
  DATA_DIR: z.string().min(1).default('./data'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port.default(8080),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),

  TEMPORAL_ADDRESS: z.string().min(1).optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_PORT: port.default(7233),
  /** Address the embedded dev server listens on; 0.0.0.0 lets agents on other hosts reach it. */
  TEMPORAL_BIND_IP: z.string().min(1).default('127.0.0.1'),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_CLI_PATH: z.string().min(1).optional(),
  /** TLS to the server without a client certificate (a publicly trusted server). */
  TEMPORAL_TLS: flag.default(false),
  TEMPORAL_TLS_CERT: z.string().min(1).optional(),
  TEMPORAL_TLS_KEY: z.string().min(1).optional(),
  TEMPORAL_TLS_CA: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  /** How many times in a row `npm start` restarts its dev server that died, before it exits (code 3). */
  TEMPORAL_RESTART_ATTEMPTS: z.coerce.number().int().min(0).max(100).default(5),
  /** The longest one Temporal call made for an API request may take (an update: at least 30 s); past it the request answers 503. */
  TEMPORAL_CALL_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(5000),
  /** How long a start waits for the namespace's search attributes to be usable (a fresh server's cache). */
  TEMPORAL_SEARCH_ATTRIBUTES_WAIT_MS: z.coerce.number().int().min(1000).default(60_000),
  /** Task queue of the control worker (job and environment workflows, control activities). */
  TASK_QUEUE: z.string().min(1).default('batchd-control'),
  /** Task queue of node-pool workflows, apart so that job workflow tasks never delay a pool's. */
  POOL_TASK_QUEUE: z.string().min(1).default('batchd-pools'),
  /** How many queued jobs a pool keeps in memory and schedules from; the rest wait in the pool store. */
  POOL_QUEUE_WINDOW: z.coerce.number().int().min(2).max(100_000).default(1000),
  /** While jobs wait behind held capacity, how often a pool checks that the holders' workflows still run. */
  POOL_RECONCILE_MS: ms.default(300_000),
  /** How often the control worker checks that every pool's workflow runs, and restarts one that closed. */
  POOL_WATCHDOG_MS: ms.default(30_000),
  /** How long a pool's probe of an unreachable host waits on the host's task queue before it is sent again. */
  HOST_PROBE_MS: ms.default(600_000),

  BOOTSTRAP_API_KEY: z.string().min(16, 'BOOTSTRAP_API_KEY must be at least 16 characters').optional(),
  /** Shared secret of agents on other machines that ship logs to the API (generated into DATA_DIR when unset). */
  AGENT_TOKEN: z.string().min(16, 'AGENT_TOKEN must be at least 16 characters').optional(),
  API_KEYS_FILE: z.string().min(1).optional(),
  /** HMAC secret of page tokens (generated into DATA_DIR when unset); the same on every API replica. */
  PAGE_TOKEN_SECRET: z.string().min(16, 'PAGE_TOKEN_SECRET must be at least 16 characters').optional(),
  /** An agent without the API beside it ships its ranks' logs to this API (with BATCHD_AGENT_TOKEN). */
  BATCHD_API_URL: z.string().url('BATCHD_API_URL must be a URL such as http://batchd-api:8080').optional(),
  /** The API's AGENT_TOKEN, as an agent on another host presents it when it ships logs. */
  BATCHD_AGENT_TOKEN: z.string().min(16, 'BATCHD_AGENT_TOKEN must be at least 16 characters').optional(),
  API_KEYS_RELOAD_MS: ms.default(30_000),
  /** The operator's sharing file: pools shared between accounts, quotas, fair share (src/domain/sharing-config.ts). */
  SHARING_FILE: z.string().min(1).optional(),
  DATABASE_URL: z.string().min(1).optional(),
  DEFAULT_POOLS: flag.default(true),

  /** A host whose agent sends no heartbeat for this long is lost; its job fails and capacity is freed. */
  HOST_HEARTBEAT_TIMEOUT_MS: ms.default(20_000),
  /** How long ranks may wait on a host's task queue before the host is declared unavailable. */
  HOST_START_TIMEOUT_MS: ms.default(60_000),
  /** SIGTERM → SIGKILL grace period when ranks are stopped. */
  RANK_STOP_GRACE_MS: ms.default(10_000),
  /** How often the in-process fleet reconciles fake hosts with the node pools. */
  FLEET_SYNC_MS: ms.default(2_000),
  /** Relative python/notebook targets resolve against this directory on the host. */
  WORKSPACE_DIR: z.string().min(1).optional(),
  /** Largest request body the API accepts. */
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  /** How often the API samples each node pool's usage for the last-hour chart (kept in memory). */
  USAGE_SAMPLE_MS: z.coerce.number().int().min(1000).default(30_000),
  /**
   * Rank isolation (docs/security.md): `auto` isolates when the agent runs as root and says plainly
   * when it cannot; `required` refuses to start an agent that cannot isolate; `off` never isolates.
   */
  RANK_ISOLATION: z.enum(['auto', 'required', 'off']).default('auto'),
  /** First uid (and gid) of the range ranks run as, one per account, allocated on demand. */
  RANK_UID_BASE: z.coerce.number().int().min(1000).max(2 ** 31 - 2 ** 20).default(200_000),
  /** How many uids the range has: the most accounts one agent can run ranks for. */
  RANK_UID_COUNT: z.coerce.number().int().min(1).max(2 ** 20).default(65_536),
  /** Memory limit per rank (512M, 2G, bytes, or none); default: the host's memory divided by its slots. */
  RANK_MEMORY_LIMIT: z.string().min(1).optional(),
  /** Most processes and threads one rank may have at once (fork bombs end there); 0 for no limit. */
  RANK_PIDS_MAX: z.coerce.number().int().min(0).default(4096),
  /** History length at which a node-pool workflow continues as new. */
  POOL_CONTINUE_AS_NEW_EVENTS: z.coerce.number().int().min(100).default(4000),

  // Limits per account, checked against the read model before anything is created (429 past one).
  MAX_LIVE_JOBS_PER_ACCOUNT: count.default(5000),
  MAX_QUEUED_JOBS_PER_ACCOUNT: count.default(2000),
  MAX_NODE_POOLS_PER_ACCOUNT: count.default(20),
  MAX_FAKE_HOSTS_PER_ACCOUNT: count.default(128),
  MAX_ENVIRONMENTS_PER_ACCOUNT: count.default(100),
  MAX_SNAPSHOTS_PER_ACCOUNT: count.default(1000),
  /** Requests per second each API key may make on average (a token bucket per API process); 0 turns the limit off. */
  API_RATE_LIMIT_PER_SECOND: z.coerce.number().min(0).default(100),
  /** How many requests a key may make at once beyond the average (the bucket's size). */
  API_RATE_LIMIT_BURST: count.default(200),

  /** Bearer token `/metrics` needs (generated into DATA_DIR/metrics-token when unset). */
  METRICS_TOKEN: z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional(),
  /** A separate listener for `/metrics` (the Prometheus convention); unset: `/metrics` is on the API's port. */
  METRICS_PORT: port.optional(),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),

  /** Bytes of log text a job may store; past it lines are dropped and one marker line says how many. */
  LOG_BUDGET_BYTES_PER_JOB: z.coerce.number().int().min(1024).default(64 * 1024 * 1024),
  /** Most bytes of undelivered log lines a remote agent keeps in its spool; past it the oldest are dropped. */
  LOG_SPOOL_MAX_BYTES: z.coerce.number().int().min(1024 * 1024).default(256 * 1024 * 1024),
  /** Open `:followLogs` streams an account may hold at once. */
  MAX_LOG_STREAMS_PER_ACCOUNT: count.default(16),
  /** A `:followLogs` stream of a job that has not started ends after this long without a line. */
  LOG_STREAM_IDLE_MS: ms.default(10 * 60 * 1000),
  /** Most bytes of log text in one `:getLogs` response (the page token continues after it). */
  LOG_PAGE_MAX_BYTES: z.coerce.number().int().min(1024).default(4 * 1024 * 1024),
});

export type Env = z.infer<typeof envSchema>;

export interface Config extends Env {
  dataDir: string;
  /** RANK_MEMORY_LIMIT in bytes; undefined: the default (host memory ÷ slots), null: no limit. */
  rankMemoryLimit: number | null | undefined;
  workspaceDir: string;
  /** True when this process starts and owns the Temporal dev server. */
  embeddedTemporal: boolean;
  temporalAddress: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const result = envSchema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid configuration: ${problems}`);
  }
  const e = result.data;
  if ((e.TEMPORAL_TLS_CERT === undefined) !== (e.TEMPORAL_TLS_KEY === undefined)) {
    throw new ConfigError('invalid configuration: TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together');
  }
  for (const v of ['TEMPORAL_TLS_CERT', 'TEMPORAL_TLS_KEY', 'TEMPORAL_TLS_CA'] as const) {
    const path = e[v];
    if (path === undefined) continue;
    try {
      accessSync(path, constants.R_OK);
    } catch {
      throw new ConfigError(`invalid configuration: ${v}=${path} is not a readable file`);
    }
  }
  if (e.BATCHD_API_URL !== undefined && e.BATCHD_AGENT_TOKEN === undefined) {
    throw new ConfigError('invalid configuration: BATCHD_API_URL is set but BATCHD_AGENT_TOKEN is not; an agent needs the API\'s AGENT_TOKEN to ship logs');
  }
  if (e.POOL_TASK_QUEUE === e.TASK_QUEUE) {
    throw new ConfigError('invalid configuration: POOL_TASK_QUEUE must differ from TASK_QUEUE (pools get their own task queue so job tasks never delay them)');
  }
  if (e.TEMPORAL_API_KEY !== undefined && e.TEMPORAL_ADDRESS === undefined) {
    throw new ConfigError('invalid configuration: TEMPORAL_API_KEY is set but TEMPORAL_ADDRESS is not; an API key is for a remote Temporal');
  }
  const dataDir = resolve(e.DATA_DIR);
  let rankMemoryLimit: number | null | undefined;
  if (e.RANK_MEMORY_LIMIT !== undefined) {
    const parsed = parseByteSize(e.RANK_MEMORY_LIMIT);
    if (typeof parsed === 'object') throw new ConfigError(`invalid configuration: RANK_MEMORY_LIMIT: ${parsed.error}`);
    rankMemoryLimit = parsed ?? null;
  }
  return {
    ...e,
    dataDir,
    rankMemoryLimit,
    workspaceDir: resolve(e.WORKSPACE_DIR ?? process.cwd()),
    embeddedTemporal: e.TEMPORAL_ADDRESS === undefined,
    temporalAddress: e.TEMPORAL_ADDRESS ?? `127.0.0.1:${e.TEMPORAL_PORT}`,
  };
}
