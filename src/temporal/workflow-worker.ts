/**
 * Options every worker that runs batchd's workflows shares (the control worker, the workflow tests'
 * and the benches' workers), so what is measured and tested is what runs.
 *
 * **The limit on one activation.** The SDK stops a workflow activation that runs longer than its
 * `isolateExecutionTimeout` (5 s by default, a watchdog on the sandbox's `vm` script) and fails the
 * workflow task as a "potential deadlock". That is below the workflow task timeout, Temporal's
 * default of 10 s, which every batchd workflow keeps. So a task that was slow but finite failed on
 * every retry and its workflow never moved again; a pool's task is such a task when thousands of
 * signals reach it at once (`bench/experiments/pool-activation.ts`: 9,000 signals in one task take
 * 4.4 s on this project's idle 2-core machine, more when it is loaded). Worse, the watchdog fires
 * inside the sandbox's microtasks, where a `vm` timeout corrupts the worker thread's async-hook
 * stack (Node.js 20; `bench/experiments/vm-timeout-abort.ts` reproduces it): the next message to
 * the thread aborts the whole process with "async hook stack has become corrupted". 9,900 signals
 * into one pool task on a loaded machine did exactly that; it is the abort the 20,000-job queue
 * figure of docs/performance.md (run 8) met after a pool task of 5.05 s.
 *
 * So the limit is twice the task timeout: the server's timeout decides when a task took too long (it
 * is retried), and the watchdog only stops code that never yields. The task timeout itself stays 10 s:
 * a workflow task whose local activity runs long is heartbeated at 80 % of it, and queries and signals
 * wait for that, so a longer one would make every pool slower to answer while its store is slow.
 *
 * The option is the SDK's own (`WorkerOptionsWithDefaults.isolateExecutionTimeout`, honoured by
 * `Worker.create`), not yet in its public `WorkerOptions` type.
 */
import { join } from 'node:path';
import type { WorkerOptions } from '@temporalio/worker';

/** Temporal's default workflow task timeout, which every batchd workflow keeps. */
export const DEFAULT_WORKFLOW_TASK_TIMEOUT_MS = 10_000;

/** How long one workflow activation may run before the SDK stops it. */
export const WORKFLOW_ACTIVATION_LIMIT_MS = 2 * DEFAULT_WORKFLOW_TASK_TIMEOUT_MS;

export function workflowWorkerOptions(): Partial<WorkerOptions> {
  return { isolateExecutionTimeout: WORKFLOW_ACTIVATION_LIMIT_MS } as Partial<WorkerOptions>;
}

/**
 * The module every process that runs batchd's workflows preloads (./workflow-threads.ts: it leaves
 * the SDK's stack-trace promise hook out of the workflow threads).
 */
export const WORKFLOW_THREADS_PRELOAD = join(__dirname, 'workflow-threads.js');

/** Node.js arguments, before the script, for a process that runs batchd's workflows. */
export function workflowThreadsNodeArgs(): string[] {
  return ['--require', WORKFLOW_THREADS_PRELOAD];
}

/** Set by ./workflow-threads.ts in the main thread of a process that preloads it. */
export const PRELOADED = Symbol.for('batchd.workflowThreadsPreloaded');

/** Whether this process was started with the preload (its workflow threads then have no stack-trace hook). */
export function workflowThreadsPreloaded(): boolean {
  return (globalThis as Record<symbol, unknown>)[PRELOADED] === true;
}
