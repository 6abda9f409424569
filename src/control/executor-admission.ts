/**
 * The executor part of admission: a job whose pool has no ready host able to run its executor (no
 * python3, no jupyter-nbconvert) is refused with FAILED_PRECONDITION naming what is missing, instead
 * of failing on a host later. Hosts report what they can run when they join their pool. Shell jobs
 * need only bash, which every agent needs too, so they read nothing.
 *
 * The reports are read first where the pool last wrote them, its snapshot in the pool store (one keyed
 * read): no billable query, and nothing for the pool's workflow thread to answer between its
 * scheduling steps, for every python and notebook job created. The snapshot lags the pool by at most
 * a step, so a refusal is never made on it alone: when it shows no snapshot or a problem, the pool's
 * workflow is asked (its getHostFacts query), as a host may have joined since.
 */
import { type BatchJobSpec, executorOf } from '../domain/batch-job-model';
import { executorProblem, type HostFacts } from '../domain/control-model';
import { ApiError } from '../domain/errors';
import { snapshotHostFacts } from '../domain/pool-queue';

export type HostFactsReader = () => Promise<ReadonlyArray<{ host: string; status: string } & HostFacts>>;

export interface HostFactsSources {
  /** The pool's snapshot as the pool store holds it (undefined: none written). */
  stored: () => Promise<unknown>;
  /** The pool workflow's own answer. */
  live: HostFactsReader;
}

export async function admitExecutor(spec: BatchJobSpec, poolId: string, read: HostFactsSources): Promise<void> {
  const kind = executorOf(spec).kind;
  if (kind === 'shell') return;
  const stored = snapshotHostFacts(await read.stored().catch(() => undefined));
  if (stored && executorProblem(kind, stored, poolId) === undefined) return;
  let hosts: Awaited<ReturnType<HostFactsReader>>;
  try {
    hosts = await read.live();
  } catch {
    // The pool's workflow did not answer in time: admit, and let the host report what it lacks.
    return;
  }
  const problem = executorProblem(kind, hosts, poolId);
  if (problem) throw ApiError.failedPrecondition(problem);
}
