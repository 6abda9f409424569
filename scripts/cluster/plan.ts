/**
 * The shape of the one-machine cluster (`npm run cluster`), as data and nothing else: which processes
 * run, on which ports and addresses, with which arguments and batchd variables, under which folders.
 * Pure, so that the compose check (test/unit/cluster-compose.test.ts) can hold docker-compose.yml to
 * the same roles and variables without starting anything.
 *
 * Every process binds to one address, the cluster's bridge (10.233.<net>.1), which the host agents —
 * each in a network namespace of its own, joined to the bridge by a veth pair — reach as a second
 * machine would. PostgreSQL alone stays on loopback: only the control plane talks to it.
 */
import { join, resolve } from 'node:path';

export interface ClusterOptions {
  /** Everything the cluster keeps lives under this folder. */
  dir: string;
  /** First of the ports the cluster uses (it takes portBase .. portBase+99). */
  portBase: number;
  /** Third octet of the cluster's subnet 10.233.<net>.0/24 (its bridge, namespaces and veths are named after it). */
  net: number;
  /** Hosts of the cluster's real node pool, one agent each, each in its own network namespace. */
  hosts: number;
  /** Rank slots each host offers (declared with the agent's --gpus). */
  slotsPerHost: number;
}

export const DEFAULT_OPTIONS: ClusterOptions = { dir: resolve('data/cluster'), portBase: 17200, net: 0, hosts: 3, slotsPerHost: 4 };

export const NAMESPACE = 'default';
export const ACCOUNT = 'default';
export const POOL_ID = 'cluster-hosts';
/** A GPU instance type with four slots per host, so one pool holds jobs of 1, 2 and 4 ranks per host. */
export const POOL_INSTANCE_TYPE = 'g5.12xlarge';
export const TEMPORAL_SERVICES = ['history', 'matching', 'frontend', 'worker'] as const;
export type TemporalService = (typeof TEMPORAL_SERVICES)[number];
export const API_REPLICAS = 2;
export const CONTROL_WORKERS = 2;

export type ProcessKind = 'postgres' | 'temporal' | 'api' | 'worker' | 'agent';

export interface ProcessSpec {
  name: string;
  kind: ProcessKind;
  /** The port it serves (none for control workers and agents, which only dial out). */
  port?: number;
  /** batchd's own variables (for batchd processes), exactly as docker-compose.yml must set them too. */
  env?: Record<string, string>;
  /** For batchd: the roles argument of dist/src/main.js, or `agent` for a host. */
  roles?: string;
  /** For agents: the host id and the network namespace it runs in, and its address there. */
  host?: { id: string; netns: string; address: string; vethHere: string; vethThere: string };
  /** For Temporal's services: which one. */
  service?: TemporalService;
}

export interface Ports {
  postgres: number;
  frontend: number;
  frontendHttp: number;
  history: number;
  matching: number;
  worker: number;
  membership: Record<TemporalService, number>;
  metrics: Record<TemporalService, number>;
  api: number[];
}

export function portsOf(o: ClusterOptions): Ports {
  const b = o.portBase;
  return {
    postgres: b,
    frontend: b + 10,
    frontendHttp: b + 11,
    history: b + 12,
    matching: b + 13,
    worker: b + 14,
    membership: { frontend: b + 20, history: b + 21, matching: b + 22, worker: b + 23 },
    metrics: { frontend: b + 30, history: b + 31, matching: b + 32, worker: b + 33 },
    api: Array.from({ length: API_REPLICAS }, (_, i) => b + 80 + i),
  };
}

/**
 * Temporal records each service's membership port in PostgreSQL as a smallint (cluster_membership.rpc_port):
 * a port above 32767 makes the service exit at start ("value ... is out of range for type smallint").
 */
export const MAX_MEMBERSHIP_PORT = 32_767;
export const MAX_PORT_BASE = MAX_MEMBERSHIP_PORT - 23;

export interface Layout {
  dir: string;
  postgresData: string;
  /** PostgreSQL's Unix socket folder (and the server's lock files). */
  postgresRun: string;
  temporalConfig: string;
  logs: string;
  batchd: string;
  secretsFile: string;
  stateFile: string;
  /** Per-rank lock files (the kill suite's proof that no rank ran twice) live here, readable by ranks. */
  workspace: string;
}

export function layoutOf(o: ClusterOptions): Layout {
  const dir = resolve(o.dir);
  return {
    dir,
    postgresData: join(dir, 'postgres', 'data'),
    postgresRun: join(dir, 'postgres', 'run'),
    temporalConfig: join(dir, 'temporal', 'config'),
    logs: join(dir, 'logs'),
    batchd: join(dir, 'batchd'),
    secretsFile: join(dir, 'secrets.json'),
    stateFile: join(dir, 'state.json'),
    workspace: join(dir, 'workspace'),
  };
}

/** The bridge's address: every served port of the cluster listens there. */
export function bridgeAddress(o: ClusterOptions): string {
  return `10.233.${o.net}.1`;
}

export function bridgeName(o: ClusterOptions): string {
  return `bdcl${o.net}`;
}

export interface Secrets {
  postgresPassword: string;
  bootstrapApiKey: string;
  agentToken: string;
  pageTokenSecret: string;
  metricsToken: string;
}

export const TEMPORAL_DB = 'temporal';
export const VISIBILITY_DB = 'temporal_visibility';
export const BATCHD_DB = 'batchd';
export const POSTGRES_USER = 'temporal';

export function databaseUrl(o: ClusterOptions, secrets: Secrets): string {
  return `postgresql://${POSTGRES_USER}:${encodeURIComponent(secrets.postgresPassword)}@127.0.0.1:${portsOf(o).postgres}/${BATCHD_DB}`;
}

/** Every process of the cluster, in start order (stop order is the reverse). */
export function processesOf(o: ClusterOptions, secrets: Secrets): ProcessSpec[] {
  const ports = portsOf(o);
  const layout = layoutOf(o);
  const here = bridgeAddress(o);
  const temporalAddress = `${here}:${ports.frontend}`;
  const common = (name: string): Record<string, string> => ({
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_NAMESPACE: NAMESPACE,
    DATA_DIR: join(layout.batchd, name),
    LOG_LEVEL: 'info',
  });
  const control = (name: string): Record<string, string> => ({
    ...common(name),
    DATABASE_URL: databaseUrl(o, secrets),
    BOOTSTRAP_API_KEY: secrets.bootstrapApiKey,
    AGENT_TOKEN: secrets.agentToken,
    // The cluster's only pool is real; the default pools are fake and would have no hosts here.
    DEFAULT_POOLS: 'false',
  });
  const out: ProcessSpec[] = [{ name: 'postgres', kind: 'postgres', port: ports.postgres }];
  for (const service of TEMPORAL_SERVICES) {
    out.push({ name: `temporal-${service}`, kind: 'temporal', service, port: ports[service] });
  }
  for (let i = 1; i <= CONTROL_WORKERS; i++) {
    out.push({ name: `batchd-worker-${i}`, kind: 'worker', roles: 'worker', env: control(`batchd-worker-${i}`) });
  }
  ports.api.forEach((port, i) => {
    const name = `batchd-api-${i + 1}`;
    out.push({
      name,
      kind: 'api',
      roles: 'api',
      port,
      env: { ...control(name), HOST: here, PORT: String(port), PAGE_TOKEN_SECRET: secrets.pageTokenSecret, METRICS_TOKEN: secrets.metricsToken },
    });
  });
  for (let i = 1; i <= o.hosts; i++) {
    const name = `agent-host-${i}`;
    // Hosts ship their ranks' logs to the replicas in turn, so each replica takes some.
    const apiPort = ports.api[(i - 1) % ports.api.length] as number;
    out.push({
      name,
      kind: 'agent',
      roles: 'agent',
      env: {
        ...common(name),
        BATCHD_API_URL: `http://${here}:${apiPort}`,
        BATCHD_AGENT_TOKEN: secrets.agentToken,
      },
      host: {
        id: `host-${i}`,
        netns: `bdcl${o.net}h${i}`,
        address: `10.233.${o.net}.${10 + i}`,
        vethHere: `bdcl${o.net}v${i}a`,
        vethThere: `bdcl${o.net}v${i}b`,
      },
    });
  }
  return out;
}

export function poolName(): string {
  return `accounts/${ACCOUNT}/nodePools/${POOL_ID}`;
}

/** The agent command's arguments after `agent`. */
export function agentArgs(o: ClusterOptions, p: ProcessSpec): string[] {
  if (!p.host) throw new Error(`${p.name} is not an agent`);
  return ['--pool', poolName(), '--host', p.host.id, '--address', p.host.address, '--gpus', String(o.slotsPerHost)];
}
