/**
 * The fake hosts of every fake node pool, run as agents inside this process. The fleet reconciles
 * itself with the pools in the read model every FLEET_SYNC_MS: new hosts get an agent, hosts that left
 * their pool (a shrink, a deleted pool) lose theirs once no rank runs there.
 */
import { type Client } from '@temporalio/client';
import { type NativeConnection } from '@temporalio/worker';
import { type Logger } from 'pino';
import { fakeHostAddress, fakeHostId } from '../domain/hosts';
import { type NodePool, ranksPerNodeOf } from '../domain/node-pool';
import { type AgentLogs } from '../store/log-store';
import { type ReadModel, type StoredResource } from '../store/read-model';
import { HostAgent, type TemporalWatch } from './agent';
import { type RankIsolation } from './isolation';

export interface FleetOptions {
  store: ReadModel;
  connection: NativeConnection;
  client: Client;
  namespace: string;
  dataDir: string;
  workspaceDir: string;
  logs: AgentLogs;
  /** LOG_BUDGET_BYTES_PER_JOB, for every agent. */
  logBudgetBytes: number;
  logger: Logger;
  maxStopGraceMs: number;
  heartbeatTimeoutMs: number;
  syncMs: number;
  isolation: RankIsolation;
  /** Whether the Temporal server answers; the agents' ranks' outcomes wait while it does not. */
  temporal?: TemporalWatch;
}

interface DesiredHost {
  poolName: string;
  host: string;
  address: string;
  slots: number;
}

export class FakeFleet {
  private readonly agents = new Map<string, HostAgent>();
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private lastError: string | undefined;
  private desiredCount = 0;

  constructor(private readonly o: FleetOptions) {}

  async start(): Promise<void> {
    await this.sync();
    this.timer = setInterval(() => void this.sync(), this.o.syncMs);
  }

  /** Why the fleet is not ready (a desired host has no agent yet), or undefined. */
  problem(): string | undefined {
    if (this.lastError) return this.lastError;
    if (this.agents.size < this.desiredCount) return `${this.desiredCount - this.agents.size} fake host(s) have no agent yet`;
    return undefined;
  }

  sync(): Promise<void> {
    this.syncing ??= this.reconcile().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async reconcile(): Promise<void> {
    let pools: NodePool[];
    try {
      pools = (await this.o.store.listAll<NodePool & StoredResource>('nodePools')).filter((p) => p.fakeNodePool && p.state !== 'DELETING');
    } catch (err) {
      this.lastError = `cannot read node pools: ${String(err)}`;
      return;
    }
    const desired = new Map<string, DesiredHost>();
    for (const pool of pools) {
      const fake = pool.fakeNodePool;
      if (!fake) continue;
      for (let i = 0; i < fake.numNodes; i++) {
        const host = fakeHostId(i);
        desired.set(`${pool.name}/${host}`, { poolName: pool.name, host, address: fakeHostAddress(pool.name, i), slots: ranksPerNodeOf(pool) });
      }
    }
    this.desiredCount = desired.size;
    let failure: string | undefined;
    for (const [key, want] of desired) {
      if (this.agents.has(key)) continue;
      const agent = new HostAgent({ ...want, ...this.common() });
      try {
        await agent.start();
        this.agents.set(key, agent);
      } catch (err) {
        failure = `agent for ${key} could not start: ${err instanceof Error ? err.message : String(err)}`;
        this.o.logger.warn({ host: key, err: String(err) }, 'fake host agent could not start; will retry');
      }
    }
    for (const [key, agent] of this.agents) {
      if (desired.has(key) || agent.activeJobs > 0) continue;
      await agent.stop();
      this.agents.delete(key);
      this.o.logger.info({ host: key }, 'fake host left its pool; agent stopped');
    }
    this.lastError = failure;
  }

  private common() {
    return {
      connection: this.o.connection,
      client: this.o.client,
      namespace: this.o.namespace,
      dataDir: this.o.dataDir,
      workspaceDir: this.o.workspaceDir,
      logs: this.o.logs,
      logBudgetBytes: this.o.logBudgetBytes,
      logger: this.o.logger,
      maxStopGraceMs: this.o.maxStopGraceMs,
      heartbeatTimeoutMs: this.o.heartbeatTimeoutMs,
      isolation: this.o.isolation,
      ...(this.o.temporal ? { temporal: this.o.temporal } : {}),
    };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.syncing;
    await Promise.all([...this.agents.values()].map((a) => a.stop()));
    this.agents.clear();
  }
}
