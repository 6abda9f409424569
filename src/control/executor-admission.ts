/**
 * The executor part of admission: a job whose pool has no ready host able to run its executor (no
 * python3, no jupyter-nbconvert) is refused with FAILED_PRECONDITION naming what is missing, instead
 * of failing on a host later. Hosts report what they can run when they join their pool; the caller
 * passes how to read that (the pool workflow's getHostFacts query). Shell jobs need only bash, which
 * every agent needs too, so they cost no query.
 */
import { type BatchJobSpec, executorOf } from '../domain/batch-job-model';
import { executorProblem, type HostFacts } from '../domain/control-model';
import { ApiError } from '../domain/errors';

export type HostFactsReader = () => Promise<ReadonlyArray<{ host: string; status: string } & HostFacts>>;

export async function admitExecutor(spec: BatchJobSpec, poolId: string, readFacts: HostFactsReader): Promise<void> {
  const kind = executorOf(spec).kind;
  if (kind === 'shell') return;
  let hosts: Awaited<ReturnType<HostFactsReader>>;
  try {
    hosts = await readFacts();
  } catch {
    // The pool's workflow did not answer in time: admit, and let the host report what it lacks.
    return;
  }
  const problem = executorProblem(kind, hosts, poolId);
  if (problem) throw ApiError.failedPrecondition(problem);
}
