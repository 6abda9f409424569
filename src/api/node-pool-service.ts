/**
 * Node pools as the API sees them. Each pool is an entity workflow (workflows/node-pool.ts) that owns
 * its hosts and its scheduler; the read model keeps a projection for list. Stats are always read live
 * from the workflow, so they agree with what the scheduler holds at that moment.
 */
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { type Logger } from 'pino';
import type { nodePoolWorkflow } from '../../workflows/node-pool';
import {
  deleteNodePoolUpdate,
  getNodePoolQuery,
  type NodePoolInput,
  type NodePoolInternals,
  type NodePoolView,
  type PoolSettings,
  updateNodePoolUpdate,
} from '../../workflows/messages';
import { BatchdAccount, NodePoolState } from '../../workflows/search-attributes';
import { type AccountLimits } from '../control/account-limits';
import { ApiError } from '../domain/errors';
import { type BatchJob } from '../domain/batch-job-model';
import { type NodePool, type NodePoolSpec, nodePoolCreateBodySchema, okStatus, planNodePoolUpdate, ranksPerNodeOf, statsWithHolders, statsWithJobStates } from '../domain/node-pool';
import { type AllocatedJob } from '../domain/node-pool-model';
import { withStoredClaims } from '../domain/capacity-claim';
import { poolClaims, readPoolInternals } from './pool-internals';
import { resourceName } from '../domain/names';
import { type PoolUsage, summarizePoolUsage } from '../domain/pool-usage';
import { parseOrThrow } from '../domain/validation';
import { type ListQuery, type ReadModel, type StoredResource } from '../store/read-model';
import { type Principal } from './auth';
import { fromTemporal } from './errors';

export interface NodePoolServiceDeps {
  client: Client;
  store: ReadModel;
  /** Pool workflows run on settings.taskQueue. */
  settings: PoolSettings;
  logger: Logger;
  continueAsNewEvents: number;
  queryTimeoutMs?: number;
  /** The account's limits on pools and fake hosts (API creates and updates only: default pools are the service's own). */
  limits?: AccountLimits;
}

type StoredPool = NodePool & StoredResource;

export function specOf(pool: NodePool): NodePoolSpec {
  const spec: NodePoolSpec = {
    minNodeCount: pool.minNodeCount,
    maxNodeCount: pool.maxNodeCount,
    overprovisionNodeCount: pool.overprovisionNodeCount,
    annotations: pool.annotations,
  };
  if (pool.displayName !== undefined) spec.displayName = pool.displayName;
  if (pool.fakeNodePool) spec.fakeNodePool = pool.fakeNodePool;
  if (pool.eksNodePool) spec.eksNodePool = pool.eksNodePool;
  return spec;
}

export class NodePoolService {
  constructor(private readonly d: NodePoolServiceDeps) {}

  private name(account: string, id: string): string {
    return resourceName(account, 'nodePools', id);
  }

  private handle(name: string) {
    return this.d.client.workflow.getHandle(name);
  }

  private deadline<T>(fn: () => Promise<T>): Promise<T> {
    return this.d.client.withDeadline(Date.now() + (this.d.queryTimeoutMs ?? 3000), fn);
  }

  async create(caller: Principal, body: unknown): Promise<NodePool> {
    const { nodePool: spec, nodePoolId } = parseOrThrow(nodePoolCreateBodySchema, body);
    await this.d.limits?.checkNodePool(caller.account, spec.fakeNodePool?.numNodes ?? 0);
    return this.createPool(caller.account, nodePoolId, spec);
  }

  /** Starts the pool's workflow; ALREADY_EXISTS when a pool of that id exists (or is still being deleted). */
  async createPool(account: string, id: string, spec: NodePoolSpec): Promise<NodePool> {
    const name = this.name(account, id);
    if (await this.d.store.get('nodePools', name)) throw new ApiError('ALREADY_EXISTS', `node pool "${id}" already exists`);
    const now = new Date().toISOString();
    const pool: NodePool = {
      ...spec,
      name,
      createTime: now,
      updateTime: now,
      state: 'CREATING',
      status: okStatus(),
      nodePoolStats: { nodeCount: 0, ranksPerNode: ranksPerNodeOf(spec), environmentCount: 0, environmentRanks: 0, batchJobCount: {}, batchJobRanks: {} },
    };
    try {
      await this.startWorkflow({ account, poolId: id, name, pool, continueAsNewEvents: this.d.continueAsNewEvents, settings: this.d.settings });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new ApiError('ALREADY_EXISTS', `node pool "${id}" already exists`);
      throw fromTemporal(err) ?? err;
    }
    await this.d.store.putIfAbsent('nodePools', account, pool, 0);
    try {
      return (await this.deadline(() => this.handle(name).query(getNodePoolQuery))).pool;
    } catch {
      return pool;
    }
  }

  private async startWorkflow(input: NodePoolInput): Promise<void> {
    const spec = input.pool;
    await this.d.client.workflow.start<typeof nodePoolWorkflow>('nodePoolWorkflow', {
      workflowId: input.name,
      taskQueue: this.d.settings.taskQueue,
      args: [input],
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      typedSearchAttributes: [
        { key: BatchdAccount, value: input.account },
        { key: NodePoolState, value: input.pool.state },
      ],
      staticSummary: `node pool ${input.poolId}: ${spec.fakeNodePool ? `${spec.fakeNodePool.numNodes} × ${spec.fakeNodePool.machineType} (fake)` : `EKS ${spec.eksNodePool?.instanceType ?? ''}`}`,
    });
  }

  /**
   * Starts a pool's workflow again after it closed unexpectedly (the pool watchdog): it resumes from
   * the pool store. False when a run already exists (another watchdog was first).
   */
  async recoverPool(stored: NodePool, version: number, reason: string): Promise<boolean> {
    const [, account = '', , poolId = ''] = stored.name.split('/');
    try {
      await this.startWorkflow({
        account,
        poolId,
        name: stored.name,
        pool: stored,
        continueAsNewEvents: this.d.continueAsNewEvents,
        settings: this.d.settings,
        recover: { reason, version },
      });
      return true;
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return false;
      throw err;
    }
  }

  async get(caller: Principal, id: string): Promise<NodePool> {
    const name = this.name(caller.account, id);
    const row = await this.d.store.get<StoredPool>('nodePools', name);
    if (!row) throw ApiError.notFound(`node pool "${id}"`);
    return this.live(row.resource);
  }

  /**
   * The pool with live stats from its workflow; the stored projection when the workflow cannot
   * answer. A job holding capacity is counted in the state its own record says (the pool knows
   * PENDING; the job knows whether its ranks run).
   */
  private async live(stored: NodePool): Promise<NodePool> {
    let view: NodePoolView;
    try {
      view = await this.deadline(() => this.handle(stored.name).query(getNodePoolQuery));
    } catch (err) {
      this.d.logger.warn({ pool: stored.name, err: String(err) }, 'node pool query failed; answering from the read model');
      return stored;
    }
    // Jobs that claimed or gave back capacity in the pool's store since its last step (capacity-claim.ts).
    const claims = await poolClaims(this.d.store, stored.name, this.storeWarning(stored.name));
    const pooled = view.allocated ?? [];
    const allocated = withStoredClaims(pooled, claims, (a): AllocatedJob => ({ jobName: a.id, ranks: a.ranks, state: 'PENDING' }));
    const stats = statsWithHolders(view.pool.nodePoolStats, pooled, allocated);
    if (allocated.length === 0) return { ...view.pool, nodePoolStats: stats };
    const records = await Promise.all(allocated.map((a) => this.d.store.get<BatchJob>('batchJobs', a.jobName)));
    const recorded = new Map(allocated.map((a, i) => [a.jobName, records[i]?.resource.state]));
    return { ...view.pool, nodePoolStats: statsWithJobStates(stats, allocated, recorded) };
  }

  private storeWarning(pool: string): (err: unknown) => void {
    return (err) => this.d.logger.warn({ pool, err: String(err) }, 'reading the pool store failed; answering without its claims');
  }

  /** The pool's workflow's view, with the claims and returns its store holds that it has not taken yet. */
  async internals(caller: Principal, id: string): Promise<NodePoolInternals> {
    const name = await this.existing(caller, id);
    return readPoolInternals(this.d.client, this.d.store, name, this.d.queryTimeoutMs ?? 3000, this.storeWarning(name));
  }

  /** The pool's hosts with their slots in use, and its queue, as its workflow holds them now. */
  async usage(caller: Principal, id: string): Promise<PoolUsage> {
    const internals = await this.internals(caller, id).catch((err: unknown) => {
      if (err instanceof ApiError) throw err;
      throw new ApiError('UNAVAILABLE', `node pool "${id}" did not answer; try again`);
    });
    return summarizePoolUsage(internals, new Date());
  }

  /** The pool's full name; NOT_FOUND when the caller's account has no such pool. */
  async existing(caller: Principal, id: string): Promise<string> {
    const name = this.name(caller.account, id);
    if (!(await this.d.store.get('nodePools', name))) throw ApiError.notFound(`node pool "${id}"`);
    return name;
  }

  async list(caller: Principal, query: Omit<ListQuery, 'account'>): Promise<{ pools: NodePool[]; totalSize: number; nextAfter?: unknown[] }> {
    const page = await this.d.store.list<StoredPool>('nodePools', { ...query, account: caller.account });
    const pools = await Promise.all(page.items.map((p) => this.live(p)));
    return { pools, totalSize: page.totalSize, ...(page.nextAfter ? { nextAfter: page.nextAfter } : {}) };
  }

  async update(caller: Principal, id: string, body: unknown, updateMask: string | undefined): Promise<NodePool> {
    const current = await this.get(caller, id);
    if (current.state === 'DELETING') throw ApiError.failedPrecondition(`node pool "${id}" is being deleted`);
    const spec = planNodePoolUpdate(specOf(current), body, updateMask);
    const grownTo = spec.fakeNodePool?.numNodes ?? 0;
    if (grownTo > (current.fakeNodePool?.numNodes ?? 0)) await this.d.limits?.checkFakePoolSize(caller.account, current.name, grownTo);
    try {
      return await this.handle(current.name).executeUpdate(updateNodePoolUpdate, { args: [{ spec }] });
    } catch (err) {
      throw fromTemporal(err) ?? err;
    }
  }

  async delete(caller: Principal, id: string): Promise<void> {
    const current = await this.get(caller, id);
    if (current.state === 'DELETING') return;
    try {
      await this.handle(current.name).executeUpdate(deleteNodePoolUpdate, { args: [{ requestedBy: caller.email }] });
    } catch (err) {
      throw fromTemporal(err) ?? err;
    }
  }

  /** Checks every pool first (exists, no live jobs); only then deletes them. */
  async deleteMany(caller: Principal, ids: string[]): Promise<void> {
    const unique = [...new Set(ids)];
    for (const id of unique) {
      const pool = await this.get(caller, id);
      const live = Object.values(pool.nodePoolStats.batchJobCount).reduce((n, c) => n + c, 0);
      if (live > 0) throw ApiError.failedPrecondition(`node pool "${id}" still has ${live} live batch job(s); nothing was deleted`);
    }
    for (const id of unique) await this.delete(caller, id);
  }
}
