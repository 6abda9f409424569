/**
 * What workflows may ask of activities, as types only: workflows import this file with `import type`,
 * so no activity code enters the workflow bundle.
 */
import { type BatchJobSpec, type BatchJobState, type Executor } from '../src/domain/batch-job-model';
import { type FieldViolation, type GrpcCodeName } from '../src/domain/errors';
import { type ResourceKind, type StoredResource } from '../src/store/read-model';
import { type PoolSync, type PoolSyncResult, type LoadedPool } from '../src/store/pool-store';
import { type JobSettings, type PoolBinding, type PoolInbound, type PoolSettings, type PoolSignal } from '../src/domain/control-model';
import { type HostResult } from '../src/domain/job-attempt';
import { type PoolSharingPolicy } from '../src/domain/sharing-config';
import { type RequestTerms } from '../src/domain/scheduler';
import { type CapacityGrant } from '../src/domain/capacity-claim';

/** A grant to send to a job once the pool's step that made it is written. */
/** A running job asked to stop and give its capacity back to `by`, a job of higher priority. */
export interface PreemptDelivery {
  jobName: string;
  workflowId: string;
  by: string;
  reason: string;
}

export interface GrantDelivery {
  jobName: string;
  workflowId: string;
  grant: {
    pool: string;
    gpu: boolean;
    masterPort: number;
    hosts: Array<{ host: string; address: string; taskQueue: string; slots: number[] }>;
    rankMemoryLimitBytes?: number | null;
  };
}

export type { PoolSignal };

export type { PoolBinding };

export interface ValidateJobInput {
  name: string;
  account: string;
  /**
   * The job: a spec the API already normalized (job workflows), or a create body as a client sends
   * it (parent workflows, which do not load zod). Either is parsed with the API's create schema.
   */
  spec: unknown;
  createdBy: string;
  /** Parent workflows ask that no job of that name exists yet (the API checks that itself). */
  mustBeNew?: boolean;
}


export type ValidateJobResult =
  | { ok: true; spec: BatchJobSpec; pool: PoolBinding; settings: JobSettings; imageRef?: string }
  | { ok: false; message: string; code?: GrpcCodeName; fieldViolations?: FieldViolation[] };

export interface ReportInput {
  kind: ResourceKind;
  account: string;
  resource: StoredResource;
  version: number;
}

/**
 * One step of a job's workflow: signals to its pool, in order, then its record at a version. A
 * request marked `claim` is first claimed in the pool's store, and a release is first given back
 * there (src/domain/capacity-claim.ts); only what the store cannot take is signalled.
 */
export interface JobStepInput {
  signals: Array<{ pool: string; signal: PoolSignal; claim?: true }>;
  report?: ReportInput;
}

export interface JobStepResult {
  /** Per signal: it reached the pool (its store, or its workflow); false for a pool whose workflow is not running. */
  delivered: boolean[];
  /** Per signal, for a claimed request: its grant (null for any other). Absent when nothing was claimed. */
  granted?: Array<CapacityGrant | null>;
}

export interface ControlActivities {
  validateJob(input: ValidateJobInput): Promise<ValidateJobResult>;
  report(input: ReportInput): Promise<void>;
  /**
   * A job's step in one local activity instead of one per signal and one for the report: each is a
   * local-activity round trip on the job's critical path. Sends the signals in order (delivered: false
   * for a pool whose workflow is not running), then writes the record. Every part is idempotent
   * (receivers ignore repeats; the record is version-guarded), so a retry repeats the whole step.
   */
  jobStep(input: JobStepInput): Promise<JobStepResult>;
  /** Removes a deleted resource's record. Idempotent. */
  removeResource(input: { kind: ResourceKind; name: string }): Promise<void>;
  /**
   * Asks each job to tell `watcher` (a job's workflow id) when it ends, then reads each one's state as
   * recorded: null when the job no longer exists. A job that ended before the ask is read as ended.
   */
  watchJobs(input: { watcher: string; jobs: string[] }): Promise<{ states: Record<string, BatchJobState | null> }>;
  /** Tells the jobs waiting on `job` how it ended (null: deleted). A waiter that is gone is skipped. */
  notifyJobEnded(input: { job: string; state: BatchJobState | null; watchers: string[] }): Promise<void>;
  /** Removes a deleted job's record and logs. Idempotent. */
  purgeJob(input: { account: string; name: string; jobId: string }): Promise<void>;
  /**
   * Which of the named batch jobs are still live: present and not COMPLETED, FAILED or CANCELLED
   * (a job without a record yet counts while its workflow runs). Environments ask it before a delete.
   */
  liveJobs(input: { names: string[] }): Promise<{ live: string[] }>;

  // ---- node pools: their durable queue and capacity (src/store/pool-store.ts) ----
  /** The service's settings for pool workflows. */
  poolSettings(): Promise<PoolSettings>;
  /**
   * One atomic step of a pool's queue and capacity snapshot; answers the queue's totals and the rows
   * asked for. Once it is written it sends what the pool decided: grants, and preemptions (a running
   * job asked to stop for a higher-priority one). A job ignores a grant it already has, so a retried
   * step is harmless. `undeliverable`: jobs of either whose workflows are gone. A step that follows a
   * lost one (`lost` in the answer) writes nothing and sends nothing.
   */
  syncPool(step: PoolSync & { grants?: GrantDelivery[]; preempts?: PreemptDelivery[] }): Promise<PoolSyncResult & { undeliverable: string[]; sharing?: PoolSharingPolicy }>;
  /** Sends a job's signal to its pool; delivered is false when the pool's workflow is not running. */
  signalPool(input: { pool: string; signal: PoolSignal }): Promise<{ delivered: boolean }>;
  /** What a pool last wrote: its snapshot and the head of its queue (recovery). */
  loadPool(input: { pool: string; windowSize: number }): Promise<LoadedPool>;
  /**
   * Which of the named jobs' workflows are closed. A job whose workflow closed without its final report
   * (terminated, timed out) is recorded FAILED in the read model here, saying why: this is the one
   * path by which such a job's end is written.
   */
  closedJobs(input: { names: string[] }): Promise<{ closed: string[] }>;
  /**
   * After a pool's recovery: its jobs that may still wait for capacity but are neither in its stored
   * queue nor `known` to it (their requests were never written), oldest first; and the recorded states
   * of the `known` jobs.
   */
  poolOrphans(input: { pool: string; account: string; poolId: string; known: string[] }): Promise<{
    /** `terms` is absent from results recorded before sharing. */
    orphans: Array<{ jobName: string; ranks: number; createTime: string; terms?: RequestTerms }>;
    states: Record<string, string>;
  }>;
  /** Whether the pool's record exists (a pool being deleted still has one). */
  poolExists(input: { pool: string }): Promise<boolean>;
  /**
   * The pool signals in one closed run's history after its first `skip` (in history order), at most
   * `limit` of them: the ones that run received after it took the state it continued as new with
   * (workflows/node-pool.ts, "Signals a run missed"). `more`: some are left past `limit`.
   */
  missedPoolSignals(input: { workflowId: string; runId: string; skip: number; limit: number }): Promise<{ signals: PoolInbound[]; more: boolean }>;
}

export interface RankLaunch {
  rank: number;
  env: Record<string, string>;
}

export interface HostRunInput {
  jobName: string;
  jobId: string;
  account: string;
  workflowId: string;
  host: string;
  executor: Executor;
  ranks: RankLaunch[];
  stopGraceMs: number;
  /** Each rank's memory limit as the pool sets it: bytes, null for none; absent: the agent's default. */
  rankMemoryLimitBytes?: number | null;
  /** The job's attempt (1-based; absent: 1). A stop of one attempt never refuses the next. Log entries carry it. */
  attempt?: number;
}

/** What an agent answers for its host's ranks: the results of src/domain/job-attempt.ts that an agent gives (the others the workflow sees instead of one). */
export type HostOutcome = Extract<HostResult, { outcome: 'succeeded' | 'failed' | 'stopped' }>;

/** A host's agent answers its pool's probe: it polls again, and these jobs still have ranks running here. */
export interface HostProbeAnswer {
  host: string;
  /** Jobs with ranks on this host right now (names). */
  activeJobs: string[];
}

export interface AgentActivities {
  /** Runs the host's ranks to their end, heartbeating; stops them all when one fails. */
  runRanks(input: HostRunInput): Promise<HostOutcome>;
  /** Stops the job's ranks on this host (SIGTERM, grace, SIGKILL, reap) and refuses to start them later. */
  stopRanks(input: { jobName: string; graceMs: number; attempt?: number }): Promise<{ stopped: number }>;
  /** Sent by the pool while it holds the host unreachable; answered at once by an agent that polls again. */
  probeHost(input: { host: string }): Promise<HostProbeAnswer>;
  /**
   * A deleted job's ranks' folders on this host (DATA_DIR/work/<account>/<job id>) are removed.
   * Idempotent; refused (retried) while ranks of the job still run here.
   */
  purgeRanks(input: { jobName: string; account: string; jobId: string }): Promise<{ removed: boolean }>;
}
