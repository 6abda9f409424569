/**
 * Which batch jobs are still live, for the guards that refuse to delete what a live job uses (an
 * environment, a snapshot). A job is live while it is present and not COMPLETED, FAILED or CANCELLED.
 * The read model answers for most jobs; Temporal answers for the rest: a job admitted a moment ago may
 * not have a record yet (its first report races its validation), and a job whose record says it runs
 * but whose workflow has closed (an operator terminated it) is not live.
 */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { isTerminal } from '../domain/batch-job';
import { type BatchJobRecord, type ReadModel } from '../store/read-model';

/** The names among `names` whose jobs are live, in the order given. Each job's workflow id is its name. */
export async function liveJobs(store: ReadModel, client: Client | undefined, names: readonly string[]): Promise<string[]> {
  const live: string[] = [];
  for (const name of new Set(names)) {
    const row = await store.get<BatchJobRecord>('batchJobs', name);
    if (row && isTerminal(row.resource.state)) continue;
    if (!client) {
      if (row) live.push(name);
      continue;
    }
    if (await workflowRunning(client, name)) live.push(name);
  }
  return live;
}

async function workflowRunning(client: Client, workflowId: string): Promise<boolean> {
  try {
    const described = await client.workflow.getHandle(workflowId).describe();
    return described.status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}
