/**
 * First-start setup of an embedded deployment: the bootstrap API key (account `default`, user
 * `admin@localhost`), the page-token secret, and the default node pools. Everything is idempotent, so
 * a restart with the same DATA_DIR finds what it made before.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError } from './domain/errors';
import { type NodePoolSpec } from './domain/node-pool';
import { type NodePoolService } from './api/node-pool-service';

export const DEFAULT_ACCOUNT = 'default';
export const DEFAULT_USER = 'admin@localhost';

export interface BootstrapKey {
  key: string;
  /** True when this start created it (and should print it, once). */
  created: boolean;
}

export function bootstrapKey(dataDir: string, fromEnv: string | undefined): BootstrapKey {
  const file = join(dataDir, 'api-key');
  if (fromEnv) {
    writeFileSync(file, `${fromEnv}\n`, { mode: 0o600 });
    return { key: fromEnv, created: false };
  }
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim();
    if (key) return { key, created: false };
  }
  const key = `bd_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return { key, created: true };
}

/** The agents' shared token: AGENT_TOKEN, else one generated into DATA_DIR/agent-token. */
export function agentToken(dataDir: string, fromEnv: string | undefined): string {
  return savedToken(dataDir, 'agent-token', fromEnv);
}

/** The bearer token of `/metrics`: METRICS_TOKEN, else one generated into DATA_DIR/metrics-token. */
export function metricsToken(dataDir: string, fromEnv: string | undefined): string {
  return savedToken(dataDir, 'metrics-token', fromEnv);
}

/** A secret from the environment, else the one saved in DATA_DIR/<fileName> (generated on first use, mode 600). */
function savedToken(dataDir: string, fileName: string, fromEnv: string | undefined): string {
  if (fromEnv) return fromEnv;
  const file = join(dataDir, fileName);
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token) return token;
  }
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

/** The HMAC secret of page tokens: PAGE_TOKEN_SECRET when API replicas must share it, else one per DATA_DIR. */
export function pageTokenSecret(dataDir: string, fromEnv: string | undefined): Buffer {
  if (fromEnv) return Buffer.from(fromEnv, 'utf8');
  const file = join(dataDir, 'page-token.secret');
  if (existsSync(file)) return Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  const secret = randomBytes(32);
  writeFileSync(file, secret.toString('base64'), { mode: 0o600 });
  return secret;
}

export const DEFAULT_POOLS: Array<{ id: string; spec: NodePoolSpec }> = [
  {
    id: 'default-gpu',
    spec: {
      displayName: 'Local GPU pool (2 × p4d.24xlarge, simulated)',
      minNodeCount: 0,
      maxNodeCount: 2,
      overprovisionNodeCount: 0,
      fakeNodePool: { machineType: 'p4d.24xlarge', numNodes: 2 },
      annotations: {},
    },
  },
  {
    id: 'default-cpu',
    spec: {
      displayName: 'Local CPU pool (4 × m5.xlarge, simulated)',
      minNodeCount: 0,
      maxNodeCount: 4,
      overprovisionNodeCount: 0,
      fakeNodePool: { machineType: 'm5.xlarge', numNodes: 4 },
      annotations: {},
    },
  },
];

/** Creates the default pools that do not exist yet. */
export async function ensureDefaultPools(pools: NodePoolService): Promise<string[]> {
  const created: string[] = [];
  for (const { id, spec } of DEFAULT_POOLS) {
    try {
      await pools.createPool(DEFAULT_ACCOUNT, id, spec);
      created.push(id);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'ALREADY_EXISTS')) throw err;
    }
  }
  return created;
}
