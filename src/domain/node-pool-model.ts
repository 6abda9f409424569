/**
 * The node pool resource (upstream `gatewayNodePool`) without its schemas: the wire types, the
 * capacity helpers the scheduler uses, and how an update lands on a pool. Schema-free on purpose:
 * workflow code imports this module, and every module a workflow loads is evaluated again for each
 * cached workflow, so nothing here may load zod or build a schema (docs/performance.md §7). The
 * create body and update planning are in node-pool.ts, which re-exports all of this.
 */
import { type BatchJobState } from './batch-job-model';
import { type GrpcCodeName } from './errors';
import { isGpuType, machineType, type MachineType, ranksPerHost } from './machine-types';

export const NODE_POOL_STATES = ['CREATING', 'READY', 'DELETING', 'FAILED'] as const;
export type NodePoolState = (typeof NODE_POOL_STATES)[number];

/** `gatewayStatus`: a google.rpc-style code name (e.g. 'OK') and a developer-facing message. */
export interface GatewayStatus {
  code: GrpcCodeName;
  message: string;
}

/** Each fake host is an in-process agent, so a fake pool stays small. */
export const FAKE_POOL_MAX_NODES = 64;

export interface FakeNodePool {
  machineType: string;
  numNodes: number;
  serviceAccount?: string;
}

export interface EksNodePool {
  instanceType: string;
  nodeRole?: string;
  spot?: boolean;
  nodeGroupName?: string;
  subnetIds?: string[];
  zone?: string;
  placementGroup?: string;
  launchTemplate?: string;
}

/** The writable part of a node pool, normalized: the counts carry their defaults. */
export interface NodePoolSpec {
  displayName?: string;
  minNodeCount: number;
  maxNodeCount: number;
  overprovisionNodeCount: number;
  fakeNodePool?: FakeNodePool;
  eksNodePool?: EksNodePool;
  annotations: Record<string, string>;
}

export interface NodePoolStats {
  /** Hosts that take work (ready). */
  nodeCount: number;
  /** batchd extension: hosts declared lost whose agents have not answered since; absent when none. */
  unreachableNodeCount?: number;
  ranksPerNode: number;
  environmentCount: number;
  environmentRanks: number;
  /** Keyed by BatchJob state; states with no job are omitted. */
  batchJobCount: Record<string, number>;
  batchJobRanks: Record<string, number>;
}

/** The node pool as the API returns it. Absent optional fields are omitted on the wire. */
export interface NodePool extends NodePoolSpec {
  name: string;
  createTime: string;
  state: NodePoolState;
  status: GatewayStatus;
  nodePoolStats: NodePoolStats;
  updateTime: string;
}

// ---------------------------------------------------------------------------------------------
// Capacity helpers.

/** The catalogue entry of a validated pool's hosts. */
export function machineTypeOf(spec: Pick<NodePoolSpec, 'fakeNodePool' | 'eksNodePool'>): MachineType {
  const name = spec.fakeNodePool?.machineType ?? spec.eksNodePool?.instanceType;
  const type = name === undefined ? undefined : machineType(name);
  if (!type) throw new Error(`node pool has no known machine type (${name ?? 'none'}); a validated spec always has one`);
  return type;
}

/** Rank slots per host: GPUs per host on a GPU type, 1 on a CPU type. */
export function ranksPerNodeOf(spec: Pick<NodePoolSpec, 'fakeNodePool' | 'eksNodePool'>): number {
  return ranksPerHost(machineTypeOf(spec));
}

export function isGpuPool(spec: Pick<NodePoolSpec, 'fakeNodePool' | 'eksNodePool'>): boolean {
  return isGpuType(machineTypeOf(spec));
}

/**
 * The most ranks one job may ask for: fake = numNodes × ranksPerNode (its hosts are all there is);
 * EKS = maxNodeCount × ranksPerNode (what the autoscaler may grow to).
 */
export function poolCapacityLimit(spec: Pick<NodePoolSpec, 'fakeNodePool' | 'eksNodePool' | 'maxNodeCount'>): number {
  const hosts = spec.fakeNodePool ? spec.fakeNodePool.numNodes : spec.maxNodeCount;
  return hosts * ranksPerNodeOf(spec);
}

/** Why a pool refuses a request for `ranks` outright (being deleted, or never that big), or undefined. */
export function capacityRefusal(pool: Pick<NodePool, 'name' | 'fakeNodePool' | 'eksNodePool' | 'maxNodeCount'>, ranks: number, deleting: boolean): string | undefined {
  if (deleting) return `node pool ${pool.name} is being deleted`;
  const limit = poolCapacityLimit(pool);
  if (ranks > limit) return `node pool ${pool.name} can never hold ${ranks} ranks: it has at most ${limit}`;
  return undefined;
}

/** The pool after an update: the new spec replaces the old one, so a cleared displayName goes away. */
export function applyNodePoolSpec(pool: NodePool, spec: NodePoolSpec, now: string): NodePool {
  const { displayName: _old, fakeNodePool: _fake, eksNodePool: _eks, ...rest } = pool;
  return { ...rest, ...spec, updateTime: now };
}

/** The status of a pool with nothing wrong. */
export function okStatus(message = ''): GatewayStatus {
  return { code: 'OK', message };
}

// ---------------------------------------------------------------------------------------------
// Stats of the jobs that hold capacity.

/** A job that holds capacity in a pool, with the state the pool knows it in (PENDING until it says otherwise). */
export interface AllocatedJob {
  jobName: string;
  ranks: number;
  state: BatchJobState;
}

/** States in which a job can hold capacity, as its own record says them. */
const HOLDING_STATES: ReadonlySet<BatchJobState> = new Set<BatchJobState>(['PENDING', 'RUNNING', 'CANCELLING', 'DELETING']);

/**
 * The pool's stats with each job that holds capacity counted in the state its own record says.
 * The pool decides capacity; the job owns its state, so the pool's count of a job it granted stays in
 * the state the pool last knew (PENDING: today's jobs do not signal their pool when their ranks start)
 * unless the job's record says it is further on. A record that lags (still QUEUED) or is already
 * terminal (the release is on its way) leaves the pool's state.
 */
export function statsWithJobStates(stats: NodePoolStats, allocated: readonly AllocatedJob[], recorded: ReadonlyMap<string, BatchJobState | undefined>): NodePoolStats {
  const count = { ...stats.batchJobCount };
  const ranks = { ...stats.batchJobRanks };
  const add = (state: BatchJobState, jobs: number, r: number) => {
    count[state] = (count[state] ?? 0) + jobs;
    ranks[state] = (ranks[state] ?? 0) + r;
    if (count[state] <= 0) {
      delete count[state];
      delete ranks[state];
    }
  };
  for (const a of allocated) {
    const own = recorded.get(a.jobName);
    if (own === undefined || own === a.state || !HOLDING_STATES.has(own)) continue;
    add(a.state, -1, -a.ranks);
    add(own, 1, a.ranks);
  }
  return { ...stats, batchJobCount: count, batchJobRanks: ranks };
}

/** The pool's stats with its holders changed from `from` to `to` (each counted in its state as listed): claims and returns in the pool's store. */
export function statsWithHolders(stats: NodePoolStats, from: readonly AllocatedJob[], to: readonly AllocatedJob[]): NodePoolStats {
  const count = { ...stats.batchJobCount };
  const ranks = { ...stats.batchJobRanks };
  const add = (a: AllocatedJob, sign: 1 | -1) => {
    count[a.state] = (count[a.state] ?? 0) + sign;
    ranks[a.state] = (ranks[a.state] ?? 0) + sign * a.ranks;
    if (count[a.state]! <= 0) {
      delete count[a.state];
      delete ranks[a.state];
    }
  };
  const before = new Set(from.map((a) => a.jobName));
  const after = new Set(to.map((a) => a.jobName));
  for (const a of from) if (!after.has(a.jobName)) add(a, -1);
  for (const a of to) if (!before.has(a.jobName)) add(a, 1);
  return { ...stats, batchJobCount: count, batchJobRanks: ranks };
}
