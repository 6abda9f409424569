/**
 * Which batch jobs' workflows have closed, and the one path by which a job that closed without its
 * final report (an operator terminated it, or it timed out) gets its end written: FAILED, saying so.
 * Its node pool calls it for jobs holding capacity (and frees that capacity); a PATCH of such a job
 * calls it before it edits the record.
 */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { type BatchJob, isTerminal } from '../domain/batch-job';
import { type BatchJobRecord, type ReadModel } from '../store/read-model';

type Closed = { closed: false } | { closed: true; how: string };

async function workflowClosed(client: Client, workflowId: string): Promise<Closed> {
  try {
    const described = await client.workflow.getHandle(workflowId).describe();
    if (described.status.name === 'RUNNING') return { closed: false };
    return { closed: true, how: `its workflow ${described.status.name.toLowerCase().replaceAll('_', ' ')}` };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { closed: true, how: 'its workflow no longer exists' };
    throw err;
  }
}

/**
 * The names among `names` whose job workflows are closed. A closed job whose record still says it is
 * live ended without its final report (an operator terminated it, or it timed out): it is recorded
 * FAILED here, saying so. A job's workflow writes its own end in every other case.
 */
export async function closedJobs(store: ReadModel, client: Client, names: readonly string[]): Promise<string[]> {
  const closed: string[] = [];
  for (const name of new Set(names)) {
    const state = await workflowClosed(client, name);
    if (!state.closed) continue;
    closed.push(name);
    const row = await store.get<BatchJobRecord>('batchJobs', name);
    if (!row || isTerminal(row.resource.state)) continue;
    // A normal end writes its record before the workflow completes; re-read in case it just did.
    const now = new Date().toISOString();
    const failed: BatchJob = {
      ...row.resource,
      state: 'FAILED',
      status: `the job's workflow ended without finishing the job (${state.how})`,
      updateTime: now,
      endTime: now,
    };
    await store.put('batchJobs', name.split('/')[1] ?? '', failed, row.version + 1);
  }
  return closed;
}
