/**
 * The batch job resource (upstream `gatewayBatchJob`) without its create schema: the state list, the
 * wire types and the rules workflows use. Schema-free on purpose: workflow code imports this module,
 * and every module a workflow loads is evaluated again for each cached workflow, so nothing here may
 * load zod or build a schema (docs/performance.md §7). The create schema is in batch-job.ts, which
 * re-exports all of this.
 */

export const BATCH_JOB_STATES = [
  'CREATING',
  'QUEUED',
  'PENDING',
  'RUNNING',
  'COMPLETED',
  'FAILED',
  'CANCELLING',
  'CANCELLED',
  'DELETING',
] as const;
export type BatchJobState = (typeof BATCH_JOB_STATES)[number];

export const TERMINAL_STATES: readonly BatchJobState[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

export function isTerminal(state: BatchJobState): boolean {
  return TERMINAL_STATES.includes(state);
}

/**
 * A CREATING job's status. The API admits a job before it starts its workflow, so such a job waits
 * only for its workflow's first task, which queues it (after a burst of creates, a while); a job a
 * parent workflow starts is validated by its own workflow first.
 */
export function creatingStatus(admitted: boolean, nodePoolId: string): string {
  return admitted ? `accepted; waiting for its workflow to queue it in node pool ${nodePoolId}` : 'validating the job';
}

export function isBatchJobState(value: string): value is BatchJobState {
  return (BATCH_JOB_STATES as readonly string[]).includes(value);
}

/** The variables every rank gets from its placement; a job's envVars cannot override them. */
export const RANK_ENV_VARS = [
  'RANK',
  'WORLD_SIZE',
  'LOCAL_RANK',
  'LOCAL_WORLD_SIZE',
  'NODE_RANK',
  'NNODES',
  'MASTER_ADDR',
  'MASTER_PORT',
  'CUDA_VISIBLE_DEVICES',
  'BATCH_JOB_NAME',
  'BATCH_JOB_ID',
  'BATCH_JOB_IMAGE_REF',
  'BATCH_JOB_ATTEMPT',
  'BATCHD_RANK_ID',
] as const;

export const MAX_RANKS = 100_000;

export const EXECUTOR_FIELDS = ['pythonExecutor', 'notebookExecutor', 'shellExecutor'] as const;

/** Runs a Python module or file on each rank. batch-job.ts checks that its schema yields exactly this. */
export interface PythonExecutor {
  targetType: 'MODULE' | 'FILENAME';
  target: string;
  args?: string[] | undefined;
}

/** Runs a notebook on each rank. */
export interface NotebookExecutor {
  notebookFilename: string;
}

/** Runs a shell command (`bash -c`) on each rank. */
export interface ShellExecutor {
  command: string;
}

/** A validated, normalized create body: what the job workflow receives. */
export interface BatchJobSpec {
  displayName?: string;
  nodePoolId: string;
  environmentId?: string;
  snapshotId?: string;
  numRanks: number;
  envVars: Record<string, string>;
  role?: string;
  pythonExecutor?: PythonExecutor;
  notebookExecutor?: NotebookExecutor;
  shellExecutor?: ShellExecutor;
  imageRef?: string;
  annotations: Record<string, string>;
  shared: boolean;
  /** batchd extensions (docs/api.md "Retries, time limits, dependencies, priority"); absent: run once, no limits, no dependencies. */
  retryPolicy?: RetryPolicy;
  maxRunDuration?: string;
  maxQueueDuration?: string;
  dependsOn?: JobDependency[];
  /**
   * batchd extension (docs/api.md "Retries, time limits, dependencies, priority"): an integer from
   * PRIORITY_MIN to PRIORITY_MAX (src/domain/sharing.ts); absent means 0. A pool's queue orders by
   * priority, then arrival.
   */
  priority?: number;
}

/** Conditions other than exit codes under which an attempt is retried. */
export const RETRY_CONDITIONS = ['HOST_LOST', 'PREEMPTED', 'OUT_OF_MEMORY'] as const;
export type RetryCondition = (typeof RETRY_CONDITIONS)[number];

/** How a job retries a failed attempt (the whole gang is queued again). */
export interface RetryPolicy {
  /** Attempts in all, the first included: 1 to 10. */
  maxAttempts: number;
  /** Exit codes that retry, each "N" or a range "N-M" (0-255). */
  exitCodes?: string[];
  conditions?: RetryCondition[];
  /** Wait before attempt 2 (protobuf Duration JSON, default "10s"), doubling each attempt up to maxBackoff (default "300s"). */
  initialBackoff?: string;
  maxBackoff?: string;
}

export const DEPENDENCY_CONDITIONS = ['COMPLETED', 'FAILED', 'ENDED'] as const;
export type DependencyCondition = (typeof DEPENDENCY_CONDITIONS)[number];

/** The job waits until `batchJob` (accounts/{account}/batchJobs/{id}, same account) ends as `condition` says. */
export interface JobDependency {
  batchJob: string;
  condition: DependencyCondition;
}

/** The batch job as the API returns it. Absent optional fields are omitted on the wire. */
export interface BatchJob extends BatchJobSpec {
  name: string;
  createTime: string;
  startTime?: string;
  endTime?: string;
  createdBy: string;
  state: BatchJobState;
  status: string;
  updateTime: string;
  /** The attempt the job is on (1-based); set on jobs with a retryPolicy. */
  attempt?: number;
}

/** Where a live job's ranks run (`:getPlacement`): each rank's host and slot (its GPU index, 0 on a CPU host). */
export interface BatchJobPlacement {
  ranks: Array<{ rank: number; host: string; slot: number }>;
  masterAddr?: string;
  masterPort?: number;
}

export type Executor =
  | { kind: 'python'; python: PythonExecutor }
  | { kind: 'notebook'; notebook: NotebookExecutor }
  | { kind: 'shell'; shell: ShellExecutor };

export function executorOf(spec: BatchJobSpec): Executor {
  if (spec.pythonExecutor) return { kind: 'python', python: spec.pythonExecutor };
  if (spec.notebookExecutor) return { kind: 'notebook', notebook: spec.notebookExecutor };
  if (spec.shellExecutor) return { kind: 'shell', shell: spec.shellExecutor };
  throw new Error('a validated batch job always has exactly one executor');
}
