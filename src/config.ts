/**
 * All configuration, read from the environment once and validated. Every variable is documented in
 * the README's configuration table; an invalid value stops the process at start with a clear message.
 */
import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

const port = z.coerce.number().int().min(1).max(65535);
const ms = z.coerce.number().int().min(1);
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

  BOOTSTRAP_API_KEY: z.string().min(16, 'BOOTSTRAP_API_KEY must be at least 16 characters').optional(),
  /** Shared secret of agents on other machines that ship logs to the API (generated into DATA_DIR when unset). */
  AGENT_TOKEN: z.string().min(16, 'AGENT_TOKEN must be at least 16 characters').optional(),
  API_KEYS_FILE: z.string().min(1).optional(),
  API_KEYS_RELOAD_MS: ms.default(30_000),
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
  /** History length at which a node-pool workflow continues as new. */
  POOL_CONTINUE_AS_NEW_EVENTS: z.coerce.number().int().min(100).default(4000),
});

export type Env = z.infer<typeof envSchema>;

export interface Config extends Env {
  dataDir: string;
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
  if (e.POOL_TASK_QUEUE === e.TASK_QUEUE) {
    throw new ConfigError('invalid configuration: POOL_TASK_QUEUE must differ from TASK_QUEUE (pools get their own task queue so job tasks never delay them)');
  }
  if (e.TEMPORAL_API_KEY !== undefined && e.TEMPORAL_ADDRESS === undefined) {
    throw new ConfigError('invalid configuration: TEMPORAL_API_KEY is set but TEMPORAL_ADDRESS is not; an API key is for a remote Temporal');
  }
  const dataDir = resolve(e.DATA_DIR);
  return {
    ...e,
    dataDir,
    workspaceDir: resolve(e.WORKSPACE_DIR ?? process.cwd()),
    embeddedTemporal: e.TEMPORAL_ADDRESS === undefined,
    temporalAddress: e.TEMPORAL_ADDRESS ?? `127.0.0.1:${e.TEMPORAL_PORT}`,
  };
}
