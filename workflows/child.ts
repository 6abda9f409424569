/**
 * Batch jobs as child workflows, for other teams' workflows:
 *
 *   import { executeBatchJob } from 'batchd/workflows/child';
 *   const { job } = await executeBatchJob({ nodePoolId: 'gpu-a', numRanks: 8, pythonExecutor: {...} },
 *                                         { account: 'acme', batchJobId: 'train-42', createdBy: 'ann@acme.dev' });
 *   if (job.state !== 'COMPLETED') throw ApplicationFailure.nonRetryable(job.status);
 *
 * The child is the same `batchJobWorkflowV3` the API starts, with the same id (the job's name), so the
 * API gets, lists, follows, cancels and deletes it like any other job. A bad job fails fast in the
 * parent, before any child starts: the `validateJob` activity, on batchd's task queue and served by
 * its control worker, checks the body with the API's schema and then the admission rules (pool,
 * environment, whether the id is free). The body is not parsed here: workflow code does not load
 * zod, whose schemas would be built again for every cached workflow (docs/performance.md §7).
 *
 * Parent close policy: REQUEST_CANCEL by default — when the parent is cancelled, terminated or times
 * out, or completes while the job still runs, the job is cancelled cleanly (ranks stopped, capacity
 * released, CANCELLED). Pass `parentClosePolicy: 'ABANDON'` for jobs that must outlive their parent.
 */
import {
  ChildWorkflowCancellationType,
  type ChildWorkflowHandle,
  ParentClosePolicy,
  patched,
  proxyActivities,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { ControlActivities } from '../activities/contracts';
import { ID_RULE, isValidId, resourceName } from '../src/domain/names';
import type { batchJobWorkflowV3 } from './batch-job';
import { type BatchJobInput, type BatchJobResult } from './messages';
import { apiFailure } from './failures';
import { now } from './clock';
import { jobMemo, jobSearchAttributes } from './search-attributes';

/** The control worker's task queue (TASK_QUEUE), unless the deployment changed it. */
export const BATCHD_TASK_QUEUE = 'batchd-control';

export interface BatchJobChildOptions {
  account: string;
  /** The job's id (a-z, 0-9, -; starts with a letter); its name is accounts/{account}/batchJobs/{id}. */
  batchJobId: string;
  /** Whom the job acts for; it becomes `createdBy`. Default: `workflow:<parent workflow id>`. */
  createdBy?: string;
  /** What the job does when the parent closes first. Default REQUEST_CANCEL. */
  parentClosePolicy?: 'REQUEST_CANCEL' | 'ABANDON';
  /** batchd's control task queue. Default `batchd-control`. */
  taskQueue?: string;
}

const invalid = apiFailure;

/**
 * Children start as `batchJobWorkflowV2`. A parent workflow whose history started a child before
 * this package version did so as `batchJobWorkflow`, and replays that way.
 */
export const CHILD_JOBS_V2_PATCH = 'batchd-child-jobs-v2';

/**
 * Children start as `batchJobWorkflowV3`, as the API's jobs do: on a pool with nothing waiting they
 * claim their capacity in its store (src/domain/capacity-claim.ts). A parent whose history started a
 * child before this package version did so as V2 (or V1) and replays that way.
 */
export const CHILD_JOBS_V3_PATCH = 'batchd-child-jobs-v3';

/** The job workflow type a child starts as: the newest unless the parent's history started an older one here. */
function childJobType(): 'batchJobWorkflowV3' | 'batchJobWorkflowV2' | 'batchJobWorkflow' {
  if (patched(CHILD_JOBS_V3_PATCH)) return 'batchJobWorkflowV3';
  return patched(CHILD_JOBS_V2_PATCH) ? 'batchJobWorkflowV2' : 'batchJobWorkflow';
}

/** Validates and starts a batch job as a child workflow; throws a non-retryable ApplicationFailure for a bad job. */
export async function startBatchJob(body: unknown, options: BatchJobChildOptions): Promise<ChildWorkflowHandle<typeof batchJobWorkflowV3>> {
  if (!isValidId(options.account)) throw invalid('INVALID_ARGUMENT', `account "${options.account}" is not a valid id: ${ID_RULE}`);
  if (!isValidId(options.batchJobId)) throw invalid('INVALID_ARGUMENT', `batchJobId "${options.batchJobId}" is not a valid id: ${ID_RULE}`);
  const taskQueue = options.taskQueue ?? BATCHD_TASK_QUEUE;
  const name = resourceName(options.account, 'batchJobs', options.batchJobId);
  const createdBy = options.createdBy ?? `workflow:${workflowInfo().workflowId}`;

  const control = proxyActivities<ControlActivities>({
    taskQueue,
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 5 },
    summary: `admit batch job ${options.batchJobId}`,
  });
  // The activity parses the body with the API's create schema before any admission check, so a bad
  // body fails here with the API's field paths and nothing else is looked up.
  const admitted = await control.validateJob({ name, account: options.account, spec: body, createdBy, mustBeNew: true });
  if (!admitted.ok) {
    const details = admitted.fieldViolations ? { fieldViolations: admitted.fieldViolations } : undefined;
    throw invalid(admitted.code ?? 'INVALID_ARGUMENT', `batch job ${options.batchJobId} cannot run: ${admitted.message}`, details);
  }
  const spec = admitted.spec;

  const input: BatchJobInput = { name, account: options.account, jobId: options.batchJobId, spec, createdBy, createTime: now() };
  try {
    return await startChild<typeof batchJobWorkflowV3>(childJobType(), {
      workflowId: name,
      taskQueue,
      args: [input],
      parentClosePolicy: options.parentClosePolicy === 'ABANDON' ? ParentClosePolicy.ABANDON : ParentClosePolicy.REQUEST_CANCEL,
      // A cancelled parent waits until its jobs have stopped their ranks and released their capacity.
      cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
      typedSearchAttributes: jobSearchAttributes(options.account, { ...spec, createdBy, state: 'CREATING' }),
      memo: jobMemo({ ...spec, createdBy }),
      staticSummary: `batch job ${options.batchJobId}: ${spec.numRanks} rank(s) on node pool ${spec.nodePoolId}`,
      staticDetails: `Started by workflow ${workflowInfo().workflowId} for ${createdBy}.`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) throw invalid('ALREADY_EXISTS', `batch job "${options.batchJobId}" already exists`);
    throw err;
  }
}

/** Starts a batch job as a child and waits for its end: returns the job as it ended (COMPLETED, FAILED or CANCELLED). */
export async function executeBatchJob(body: unknown, options: BatchJobChildOptions): Promise<BatchJobResult> {
  const handle = await startBatchJob(body, options);
  return handle.result();
}
