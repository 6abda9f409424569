/**
 * Every signal, query and update our workflows accept, with the payload types that cross the wire.
 * Names are stable: operators use them from the Temporal CLI (docs/operators.md), so renaming one is a
 * breaking change.
 */
import { defineQuery, defineSignal, defineUpdate, type SignalDefinition } from '@temporalio/workflow';
import { type BatchJob, type BatchJobSpec, type BatchJobState } from '../src/domain/batch-job-model';
import { type BatchJobPatch } from '../src/domain/batch-job-patch';
import { type AllocatedJob, type NodePool, type NodePoolSpec } from '../src/domain/node-pool-model';
import { type QueueStanding, type SchedulerState } from '../src/domain/scheduler';
import { type PoolCarriedState } from '../src/domain/pool-queue';
import { type CapacityGrant, type GrantedHost } from '../src/domain/capacity-claim';
import { type CapacityRequestArgs, type EnvironmentUseGrant, type PoolBinding, type EnvironmentUseRequest, type HostFacts, type JobSettings, type PoolSettings, type PoolSignal } from '../src/domain/control-model';

export type { EnvironmentUseGrant, EnvironmentUseRequest, JobSettings, PoolSettings };
import { type Environment, type EnvironmentSpec } from '../src/domain/environment-model';
import { type Snapshot } from '../src/domain/snapshot-model';
import { type EnvironmentCarriedState, type EnvironmentView } from '../src/domain/environment-state';

// ---- batch job workflow -------------------------------------------------------------------------


export interface BatchJobInput {
  name: string;
  account: string;
  jobId: string;
  spec: BatchJobSpec;
  createdBy: string;
  createTime: string;
  /** Omitted by parent workflows: the validation activity then supplies the service's settings. */
  settings?: JobSettings;
  /**
   * Set by the API, which admitted the job before starting it (schema, pool, executor, dependencies,
   * limits): the workflow does not admit it again, unless it uses an environment, whose workflow must
   * register it (validateJob does that). Absent (parent workflows, jobs started before this field):
   * validateJob admits the job.
   */
  admitted?: { pool: PoolBinding; imageRef?: string };
}

export interface RankPlacement {
  rank: number;
  host: string;
  slot: number;
}

export interface BatchJobView {
  job: BatchJob;
  version: number;
  /** Where each rank runs, once capacity is granted. */
  placement?: { masterAddr: string; masterPort: number; ranks: RankPlacement[] };
}

/** What the workflow returns: the job as it ended, and whether it was deleted. */
export interface BatchJobResult {
  job: BatchJob;
  deleted: boolean;
}

/** Cancel and delete carry who asked; an empty payload (e.g. from `temporal workflow signal`) is an operator. */
export interface StopRequest {
  requestedBy?: string;
}

export const getBatchJobQuery = defineQuery<BatchJobView>('getBatchJob');
export const cancelSignal = defineSignal<[StopRequest?]>('cancel');
export const deleteSignal = defineSignal<[StopRequest?]>('delete');
export const updateBatchJobUpdate = defineUpdate<BatchJob, [BatchJobPatch]>('updateBatchJob');

/** Sent by a node pool when the whole gang has its slots (or answered by the job's claim: src/domain/capacity-claim.ts). */
export type { CapacityGrant, GrantedHost };

export const capacityGrantedSignal = defineSignal<[CapacityGrant]>('capacityGranted');
/** Sent by a node pool that can never run the request (pool deleted, or shrunk below the job). */
export const capacityRefusedSignal = defineSignal<[{ reason: string }]>('capacityRefused');
/** A job whose dependsOn names this one asks to be told when it ends. */
export const watchEndSignal = defineSignal<[{ watcher: string }]>('watchEnd');
/**
 * From the job's pool: give back the capacity of the current attempt for a job that needs it (`by`,
 * its name). The job stops its ranks (SIGTERM, grace, SIGKILL), releases, and requeues when its
 * retryPolicy retries PREEMPTED, else ends FAILED naming `by`. Ignored while the job holds nothing.
 */
export const preemptSignal = defineSignal<[{ by: string; reason?: string }]>('preempt');
/** A job this one depends on ended: its final state, or null when it was deleted. */
export const dependencyEndedSignal = defineSignal<[{ batchJob: string; state: BatchJobState | null }]>('dependencyEnded');
/** Sent by a host's agent once every rank it was given is running. */
export const ranksStartedSignal = defineSignal<[{ host: string }]>('ranksStarted');

// ---- node pool workflow -------------------------------------------------------------------------

export type CapacityRequest = CapacityRequestArgs;

export const requestCapacitySignal = defineSignal<[CapacityRequest]>('requestCapacity');
export const releaseCapacitySignal = defineSignal<[{ jobName: string }]>('releaseCapacity');
/** Job states of allocations, for nodePoolStats. */
export const jobStateSignal = defineSignal<[{ jobName: string; state: BatchJobState }]>('jobState');
/**
 * An agent found that a job it ran has no workflow any more (an operator terminated it): the pool
 * checks whether the job's workflow closed and, if so, records its end and frees its capacity. The
 * agent only points; the pool decides.
 */
export const checkJobsSignal = defineSignal<[{ jobNames: string[] }]>('checkJobs');
/** A job lost contact with a host's agent: stop placing work there until the agent joins again. */
export const hostLostSignal = defineSignal<[{ host: string; reason: string }]>('hostLost');

/** Anything that sends signals: a workflow's external handle, or a client's workflow handle. */
interface SignalSender {
  signal<Args extends unknown[]>(def: SignalDefinition<Args>, ...args: Args): Promise<void>;
}

/** Sends one of a job's signals to its pool, through whichever handle the caller has. */
export function sendPoolSignal(pool: SignalSender, signal: PoolSignal): Promise<void> {
  switch (signal.name) {
    case 'requestCapacity':
      return pool.signal(requestCapacitySignal, signal.args);
    case 'releaseCapacity':
      return pool.signal(releaseCapacitySignal, signal.args);
    case 'jobState':
      return pool.signal(jobStateSignal, signal.args);
    case 'hostLost':
      return pool.signal(hostLostSignal, signal.args);
  }
}

export interface HostRegistration extends HostFacts {
  host: string;
  /** Rank slots the host offers (GPUs counted by nvidia-smi, or 1 on a CPU host). */
  slots: number;
  address: string;
}

export interface HostView extends HostFacts {
  host: string;
  address: string;
  taskQueue: string;
  slots: number;
  status: 'ready' | 'draining' | 'unreachable';
  /** slot index → job name, or null. */
  used: Array<string | null>;
}

export interface NodePoolQueueSummary {
  /** Jobs queued in all; `queue` lists only the first of them (the pool's in-memory window). */
  length: number;
  /** Ranks all queued jobs ask for. */
  ranks: number;
  window: number;
}

export interface NodePoolQueueEntry {
  jobName: string;
  ranks: number;
  position: number;
  /** When the request reached the pool. */
  enqueuedAt?: string;
  /** Hosts the request stays off when the pool can place it elsewhere (a retry's failed hosts). */
  avoidHosts?: string[];
  /** Its priority, when not the default 0, and the account of its job (shared pools). */
  priority?: number;
  account?: string;
}

export interface NodePoolInternals {
  hosts: HostView[];
  /** The head of the queue, in order (at most the pool's window; `queueSummary.length` counts all). */
  queue: NodePoolQueueEntry[];
  queueSummary?: NodePoolQueueSummary;
  reservation: SchedulerState['reservation'];
  allocations: Record<string, { ranks: number; state: BatchJobState; hosts: string[]; priority?: number; preemptible?: boolean; account?: string }>;
}

export const queueStandingQuery = defineQuery<Record<string, QueueStanding>, [string[]]>('queueStanding');
export const getNodePoolInternalsQuery = defineQuery<NodePoolInternals>('getNodePoolInternals');
/** Each host's status and what it reported at join (executors, isolation): small, for admission. */
export const getHostFactsQuery = defineQuery<Array<{ host: string; status: HostView['status'] } & HostFacts>>('getHostFacts');
/** A host's agent (re)joins its pool; the answer says under which task queue it must poll. */
export const joinHostUpdate = defineUpdate<{ taskQueue: string }, [HostRegistration]>('joinHost');

// ---- node pool resource -------------------------------------------------------------------------

export interface NodePoolInput {
  account: string;
  poolId: string;
  name: string;
  pool: NodePool;
  /** History length at which the workflow continues as new (default 4000). */
  continueAsNewEvents?: number;
  /** Carried across continue-as-new; absent on the first run. Legacy runs carried the unversioned format. */
  carried?: PoolCarriedState | NodePoolCarriedState;
  /** The service's settings for pools; a run without them asks the poolSettings activity. */
  settings?: PoolSettings;
  /** Set by the pool watchdog: the previous run closed unexpectedly; resume from the pool store. */
  recover?: { reason: string; /** The version of the pool's record in the read model. */ version: number };
  /**
   * The run this one continues, and how many pool signals it had handled when it took `carried`:
   * this run handles the ones after those, read from that run's history. Absent from runs continued
   * by code from before it (they carry no count).
   */
  lastRun?: { runId: string; signalsHandled: number };
}


/** The carried state of the first pool workflows (format 1, unversioned): the whole queue in the payload. */
export interface NodePoolCarriedState {
  scheduler: SchedulerState;
  hosts: Record<string, { address: string; taskQueue: string }>;
  jobs: Record<string, { workflowId: string; ranks: number; state: BatchJobState; enqueuedAt?: string }>;
  version: number;
}

export interface NodePoolView {
  pool: NodePool;
  version: number;
  /**
   * The jobs holding capacity, in the state the pool knows (PENDING until a job says otherwise; jobs
   * of batchJobWorkflowV2 do not). The API counts each in its record's state (statsWithJobStates).
   * Absent from pools of code before it.
   */
  allocated?: AllocatedJob[];
}

export const getNodePoolQuery = defineQuery<NodePoolView>('getNodePool');
export const updateNodePoolUpdate = defineUpdate<NodePool, [{ spec: NodePoolSpec }]>('updateNodePool');
export const deleteNodePoolUpdate = defineUpdate<NodePool, [{ requestedBy?: string }]>('deleteNodePool');

// ---- environment resource (and its snapshots) ---------------------------------------------------

export interface EnvironmentInput {
  account: string;
  environmentId: string;
  name: string;
  environment: Environment;
  /** History length at which the workflow continues as new (default 4000). */
  continueAsNewEvents?: number;
  /** Carried across continue-as-new; absent on the first run. */
  carried?: EnvironmentCarriedState;
}

/** The carried state and the query's answer are the domain's (src/domain/environment-state.ts). */
export type { EnvironmentCarriedState, EnvironmentView };


export const getEnvironmentQuery = defineQuery<EnvironmentView>('getEnvironment');
export const updateEnvironmentUpdate = defineUpdate<Environment, [{ spec: EnvironmentSpec; requestedBy?: string }]>('updateEnvironment');
export const deleteEnvironmentUpdate = defineUpdate<Environment, [{ requestedBy?: string }]>('deleteEnvironment');
export const useEnvironmentUpdate = defineUpdate<EnvironmentUseGrant, [EnvironmentUseRequest]>('useEnvironment');
export const createSnapshotUpdate = defineUpdate<Snapshot, [{ snapshotId: string; requestedBy?: string }]>('createSnapshot');
export const deleteSnapshotUpdate = defineUpdate<Snapshot, [{ snapshotId: string; requestedBy?: string }]>('deleteSnapshot');
