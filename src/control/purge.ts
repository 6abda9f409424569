/** What deleting a job removes: its logs, its ranks' work folders on this machine, and its record. Idempotent. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type LogStore } from '../store/log-store';
import { type ReadModel } from '../store/read-model';

export async function purgeJob(deps: { store: ReadModel; logs: LogStore; dataDir: string }, account: string, name: string, jobId: string): Promise<void> {
  await deps.logs.deleteJob(name);
  await rm(join(deps.dataDir, 'work', account, jobId), { recursive: true, force: true });
  await deps.store.remove('batchJobs', name);
}
