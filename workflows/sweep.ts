/**
 * An example parent workflow: a sweep of N batch jobs that succeeds when every job completes. The
 * first job that does not complete fails the sweep, after the others are cancelled (and have stopped).
 */
import { ApplicationFailure, CancellationScope, isCancellation } from '@temporalio/workflow';
import { type BatchJob } from '../src/domain/batch-job-model';
import { startBatchJob } from './child';
import { apiFailure } from './failures';

export interface SweepInput {
  account: string;
  createdBy?: string;
  /** The jobs: an id and a create body each (the API's body). */
  jobs: Array<{ batchJobId: string; body: unknown }>;
}

export interface SweepResult {
  jobs: BatchJob[];
}

export async function sweepWorkflow(input: SweepInput): Promise<SweepResult> {
  if (input.jobs.length === 0) throw apiFailure('INVALID_ARGUMENT', 'a sweep needs at least one job');
  const scope = new CancellationScope();
  const handles = [];
  // Every job is checked and started before any is awaited, so a bad one fails the sweep before work begins.
  for (const j of input.jobs) {
    handles.push(
      await scope.run(() =>
        startBatchJob(j.body, { account: input.account, batchJobId: j.batchJobId, ...(input.createdBy ? { createdBy: input.createdBy } : {}) }),
      ),
    );
  }
  const ended: BatchJob[] = [];
  let failure: BatchJob | undefined;
  await Promise.all(
    handles.map(async (h) => {
      try {
        const { job } = await h.result();
        ended.push(job);
        if (job.state !== 'COMPLETED' && !failure) {
          failure = job;
          scope.cancel();
        }
      } catch (err) {
        if (!isCancellation(err)) throw err;
      }
    }),
  );
  if (failure) {
    throw ApplicationFailure.nonRetryable(`job ${failure.name} ended ${failure.state}: ${failure.status}; the other jobs were cancelled`, 'SweepFailed');
  }
  return { jobs: ended.sort((a, b) => a.name.localeCompare(b.name)) };
}
