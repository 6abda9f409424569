/**
 * The example's workflow: a training run as a batchd batch job, started as a child workflow with
 * `batchd/workflow` (no zod, no Node built-in enters this bundle). A job that ends FAILED or
 * CANCELLED triggers the compensating activity; a job batchd refuses (unknown pool, bad body) fails
 * this workflow at once with a non-retryable `ApiError:<CODE>` failure, before any child starts.
 */
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import { type BatchJob, executeBatchJob } from 'batchd/workflow';
import type * as activities from './activities';

const { releaseReservation } = proxyActivities<typeof activities>({ startToCloseTimeout: '1 minute' });

export interface TrainInput {
  account: string;
  nodePoolId: string;
  jobId: string;
  command: string;
}

export interface TrainOutcome {
  outcome: 'trained' | 'compensated';
  job: BatchJob;
  compensation?: string;
}

export async function trainModel(input: TrainInput): Promise<TrainOutcome> {
  const { job } = await executeBatchJob(
    { nodePoolId: input.nodePoolId, numRanks: 1, displayName: `run of ${workflowInfo().workflowId}`, shellExecutor: { command: input.command } },
    { account: input.account, batchJobId: input.jobId },
  );
  if (job.state === 'COMPLETED') return { outcome: 'trained', job };
  // FAILED or CANCELLED: job.status says which rank ended how.
  const compensation = await releaseReservation(input.jobId, job.status);
  return { outcome: 'compensated', job, compensation };
}
