/**
 * The node pool resource (upstream `gatewayNodePool`) without its schemas: the wire types, the
 * capacity helpers the scheduler uses, and how an update lands on a pool. Schema-free on purpose:
 * workflow code imports this module, and every module a workflow loads is evaluated again for each
 * cached workflow, so nothing here may load zod or build a schema (docs/performance.md §7). The
 * create body and update planning are in node-pool.ts, which re-exports all of this.
 */
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

/** The pool after an update: the new spec replaces the old one, so a cleared displayName goes away. */
export function applyNodePoolSpec(pool: NodePool, spec: NodePoolSpec, now: string): NodePool {
  const { displayName: _old, fakeNodePool: _fake, eksNodePool: _eks, ...rest } = pool;
  return { ...rest, ...spec, updateTime: now };
}

/** The status of a pool with nothing wrong. */
export function okStatus(message = ''): GatewayStatus {
  return { code: 'OK', message };
}
