/**
 * What workflows may ask of activities, as types only: workflows import this file with `import type`,
 * so no activity code enters the workflow bundle.
 */
import { type BatchJobSpec, type Executor } from '../src/domain/batch-job-model';
import { type FieldViolation, type GrpcCodeName } from '../src/domain/errors';
import { type ResourceKind, type StoredResource } from '../src/store/read-model';
import { type JobSettings } from '../workflows/messages';

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

export interface PoolBinding {
  /** Workflow id of the node pool. */
  workflowId: string;
  gpu: boolean;
  ranksPerNode: number;
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

export interface ControlActivities {
  validateJob(input: ValidateJobInput): Promise<ValidateJobResult>;
  report(input: ReportInput): Promise<void>;
  /** Removes a deleted resource's record. Idempotent. */
  removeResource(input: { kind: ResourceKind; name: string }): Promise<void>;
  /** Removes a deleted job's record and logs. Idempotent. */
  purgeJob(input: { account: string; name: string; jobId: string }): Promise<void>;
  /**
   * Which of the named batch jobs are still live: present and not COMPLETED, FAILED or CANCELLED
   * (a job without a record yet counts while its workflow runs). Environments ask it before a delete.
   */
  liveJobs(input: { names: string[] }): Promise<{ live: string[] }>;
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
}

export type HostOutcome =
  | { outcome: 'succeeded' }
  | { outcome: 'failed'; rank: number; exitCode: number | null; signal: string | null; message: string }
  | { outcome: 'stopped' };

export interface AgentActivities {
  /** Runs the host's ranks to their end, heartbeating; stops them all when one fails. */
  runRanks(input: HostRunInput): Promise<HostOutcome>;
  /** Stops the job's ranks on this host (SIGTERM, grace, SIGKILL, reap) and refuses to start them later. */
  stopRanks(input: { jobName: string; graceMs: number }): Promise<{ stopped: number }>;
}
