/**
 * Preloaded (`node --require`, `workflowThreadsNodeArgs()` in ./workflow-worker.ts) into every process
 * that runs batchd's workflows. In the SDK's workflow worker threads it leaves out the SDK's
 * stack-trace promise hook; in the main thread it only marks that it ran (`workflowThreadsPreloaded()`).
 *
 * **Why.** To answer the `__stack_trace` query (the Temporal UI's "Stack Trace" tab), the SDK
 * installs a V8 promise hook in each workflow thread that, for every promise workflow code creates,
 * builds an `Error`, formats its stack and maps every frame through the bundle's source map
 * (sdk-typescript#1587). A pool task that takes 5,000 capacity requests spent 361 µs per signal with
 * the hook and 148 µs without; a sustained 1-rank job cost 52 ms of service CPU with it and 43 ms
 * without (medians; docs/performance.md, run 11). Nothing else reads what it records:
 * workflow errors keep their source-mapped stacks (a separate part of the SDK, left installed), and
 * what a workflow is doing is in its current details (`setCurrentDetails`), which every batchd
 * workflow keeps up to date. Without the hook the SDK answers `__stack_trace` with "Workflow stack
 * traces are not enabled on this worker", a state the SDK already has for runtimes without promise
 * hooks.
 *
 * **How.** SDK 1.24 has no option for it, and its threads load no code of ours before they install
 * the hook, except what the process preloads: Node.js runs `--require` modules in every worker
 * thread too. The module replaces the thread's `globalHandlers.setPromiseHook`, an SDK internal, so
 * it runs only against the SDK version it was written for and otherwise stops the thread at once
 * (the worker then fails to start, and every test says so); package.json pins that version.
 * Started without the preload, the SDK behaves as it ships: slower, with stack traces; the control
 * worker says so in its log (service.ts).
 */
import { isMainThread } from 'node:worker_threads';
import { PRELOADED } from './workflow-worker';

/** The @temporalio/worker version whose internals this module knows. */
export const SDK_VERSION = '1.24.0';

interface GlobalHandlers {
  setPromiseHook(): void;
  promiseHookInstalled: boolean;
}

function leaveOutPromiseHook(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const version = (require('@temporalio/worker/package.json') as { version: string }).version;
  if (version !== SDK_VERSION) {
    throw new Error(`src/temporal/workflow-threads.ts knows @temporalio/worker ${SDK_VERSION}, not ${version}: check the SDK's vm-shared.js and update it`);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { globalHandlers } = require('@temporalio/worker/lib/workflow/vm-shared') as { globalHandlers?: Partial<GlobalHandlers> };
  if (typeof globalHandlers?.setPromiseHook !== 'function' || globalHandlers.promiseHookInstalled !== false) {
    throw new Error(`@temporalio/worker ${version} has no uninstalled globalHandlers.setPromiseHook: src/temporal/workflow-threads.ts needs updating`);
  }
  globalHandlers.setPromiseHook = () => undefined;
}

if (isMainThread) (globalThis as Record<symbol, unknown>)[PRELOADED] = true;
else leaveOutPromiseHook();
