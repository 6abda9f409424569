/**
 * `batchd/workflow`: batch jobs as child workflows, for other teams' workflow code. A thin typed face
 * over `workflows/child.ts` (the same functions batchd's own parent workflows use), so a workflow
 * bundle that imports it gets @temporalio/workflow, @temporalio/common and a few schema-free domain
 * modules — no zod, no Node built-in, nothing the workflow sandbox refuses.
 *
 *   import { executeBatchJob } from 'batchd/workflow';
 *   const { job } = await executeBatchJob({ nodePoolId: 'default-gpu', numRanks: 8, shellExecutor: { command: './train.sh' } },
 *                                         { account: 'default', batchJobId: 'train-42' });
 *   if (job.state !== 'COMPLETED') ... // FAILED or CANCELLED: job.status says why
 *
 * A bad job fails the parent with a non-retryable ApplicationFailure of type `ApiError:<CODE>` (see
 * `API_ERROR_FAILURE_PREFIX`) before any child starts; its details carry the API's field violations.
 */
import { type ChildWorkflowHandle } from '@temporalio/workflow';
import { executeBatchJob as executeChild, startBatchJob as startChild, type BatchJobChildOptions } from '../../workflows/child';
import { type batchJobWorkflowV3 } from '../../workflows/batch-job';
import { type BatchJobResult } from '../../workflows/messages';
import { type CreateBatchJobRequest } from '../client/batchd-client';

export { BATCHD_TASK_QUEUE, type BatchJobChildOptions } from '../../workflows/child';
export { type BatchJobResult } from '../../workflows/messages';
export { type CreateBatchJobRequest } from '../client/batchd-client';
export { type BatchJob, type BatchJobState, isTerminal } from '../domain/batch-job-model';
export { API_ERROR_FAILURE_PREFIX } from '../domain/errors';

/** The child's handle: `result()` resolves to the job as it ended. */
export type BatchJobHandle = ChildWorkflowHandle<typeof batchJobWorkflowV3>;

/** Validates and starts a batch job as a child workflow (the body is checked by batchd's validateJob activity). */
export function startBatchJob(body: CreateBatchJobRequest, options: BatchJobChildOptions): Promise<BatchJobHandle> {
  return startChild(body, options);
}

/** Starts a batch job as a child and waits for its end: the job as it ended (COMPLETED, FAILED or CANCELLED). */
export function executeBatchJob(body: CreateBatchJobRequest, options: BatchJobChildOptions): Promise<BatchJobResult> {
  return executeChild(body, options);
}
