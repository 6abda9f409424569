import { type BatchJobState } from './batch-job-model';

/**
 * What the control plane hands its workflows and activities, as plain types: the settings a job and a
 * pool run with, how a job is bound to its pool, and a job's use of an environment. Schema-free, so
 * workflows, activities and src/control share them without importing each other.
 */

export interface JobSettings {
  /** A host that sends no heartbeat for this long is lost. */
  heartbeatTimeoutMs: number;
  /** How long a host's ranks may wait on its task queue before the host counts as unavailable. */
  hostStartTimeoutMs: number;
  /** SIGTERM → SIGKILL grace period when ranks are stopped. */
  stopGraceMs: number;
}

export interface PoolSettings {
  /** The task queue pool workflows run on (continue-as-new moves a pool there). */
  taskQueue: string;
  /** How many queued jobs the workflow keeps in memory and schedules from. */
  queueWindow: number;
  /** While jobs wait and capacity is held, how often the pool checks that the holders still live. */
  reconcileMs: number;
  /**
   * How long the probe of an unreachable host waits on the host's task queue before it is sent again
   * (a host is back as soon as its agent picks it up). Absent in settings carried from before it.
   */
  hostProbeMs?: number;
}

export interface PoolBinding {
  /** Workflow id of the node pool. */
  workflowId: string;
  gpu: boolean;
  ranksPerNode: number;
}

/** A job asks to use the environment (and one of its snapshots); sent by job admission. */
export interface EnvironmentUseRequest {
  jobName: string;
  /** The job's creator: the environment must be theirs or shared. */
  createdBy: string;
  snapshotId?: string;
}

export interface EnvironmentUseGrant {
  /** The image the job runs with: the snapshot's, else the environment's; absent when it has none. */
  imageRef?: string;
}

/** The signals a job sends its pool (their definitions are in workflows/messages.ts). */
export type PoolSignal =
  | { name: 'requestCapacity'; args: CapacityRequestArgs }
  | { name: 'releaseCapacity'; args: { jobName: string } }
  | { name: 'jobState'; args: { jobName: string; state: BatchJobState } }
  | { name: 'hostLost'; args: { host: string; reason: string } };

/** Every signal a pool handles: its jobs' and an agent's (`checkJobs`). */
export type PoolInbound = PoolSignal | { name: 'checkJobs'; args: { jobNames: string[] } };

/** The names of the signals a pool handles, as its workflow counts them (workflows/node-pool.ts, missed signals). */
export const POOL_INBOUND_SIGNALS: ReadonlyArray<PoolInbound['name']> = ['requestCapacity', 'releaseCapacity', 'jobState', 'hostLost', 'checkJobs'];

/** The executors of a job, as hosts report which they can run. */
export type ExecutorKind = 'shell' | 'python' | 'notebook';

/** How a host's agent runs ranks: as other users in cgroups (root), hidden in a user namespace, or not isolated. */
export type RankIsolationMode = 'isolated' | 'userns' | 'none';

/** What a host tells its pool when it joins, beside its slots and address. */
export interface HostFacts {
  /** Executors the host can run; absent from agents that predate the report (taken as all). */
  executors?: ExecutorKind[];
  python?: string;
  isolation?: RankIsolationMode;
}

/** Which executors a pool's hosts can run: missing, with the reason, when no ready host reported it. */
export function executorProblem(
  executor: ExecutorKind,
  hosts: ReadonlyArray<{ host: string; status: string } & HostFacts>,
  pool: string,
): string | undefined {
  const ready = hosts.filter((h) => h.status === 'ready');
  // A pool whose hosts have not joined yet, or whose agents predate the report, is taken at its word.
  if (ready.length === 0 || ready.some((h) => h.executors === undefined || h.executors.includes(executor))) return undefined;
  const needs: Record<ExecutorKind, string> = { shell: 'bash', python: 'python3', notebook: 'jupyter-nbconvert (Debian: jupyter-nbconvert python3-nbclient python3-ipykernel)' };
  return `no ready host of node pool ${pool} can run ${executor} jobs: ${needs[executor]} is not installed on ${ready.map((h) => h.host).join(', ')}`;
}

/**
 * A job's request for capacity. `avoidHosts` (a retry's hosts that failed an earlier attempt) are left
 * out of its placement when the pool can place it on its other hosts.
 */
export interface CapacityRequestArgs {
  jobName: string;
  workflowId: string;
  ranks: number;
  avoidHosts?: string[];
  /** Sharing terms (absent from jobs of before them): priority (absent: 0), account, preemptible, declared run time in ms. */
  priority?: number;
  account?: string;
  preemptible?: boolean;
  maxRunMs?: number;
  /** The job's attempt, sent by jobs that claim first (V3; capacity-claim.ts). The pool's workflow reads nothing of it. */
  attempt?: number;
}
