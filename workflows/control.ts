/**
 * The control activities as workflows call them: local activities on the control worker, retried
 * without a limit because a report must eventually land (the store may be briefly unavailable).
 *
 * One at a time per workflow. Two local activities in flight at once (a pool's syncPool beside its
 * reporter's report, a job's signalPool beside its report) complete in wall-clock order, and their
 * markers are written in that order; a replay resolves them in schedule order instead, so the
 * coroutines waiting on them resume in another order, schedule their next commands under other
 * sequence numbers, and the replay breaks (found by the cluster suite: a pool's syncPool resolved with
 * the result of a report, `undefined`, after a worker restart; sdk-core issue "resolve local
 * activities in order of history events"). With one in flight, completion order is schedule order.
 * Calls queue in the order they are made. Behind the patch below: a history recorded with two in
 * flight holds both markers in one task, which a replay that schedules the second only after the
 * first resolves cannot match ("Missing associated machine for LocalActivity"), so runs that began
 * before it keep running them at once (a pool's until its next continue-as-new).
 *
 * Module state is per workflow: the bundle's modules are evaluated again for each workflow.
 */
import { patched, proxyLocalActivities } from '@temporalio/workflow';
import type { ControlActivities } from '../activities/contracts';

const concurrent = proxyLocalActivities<ControlActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '30 seconds', backoffCoefficient: 2 },
});

/** Local activities run one at a time in workflows started after it (decided at a run's first one). */
export const LOCAL_ACTIVITIES_ONE_AT_A_TIME_PATCH = 'local-activities-one-at-a-time';

let tail: Promise<unknown> = Promise.resolve();
let serial: boolean | undefined;

function oneAtATime<A extends unknown[], R>(fn: (...args: A) => Promise<R>, isSerial: () => boolean): (...args: A) => Promise<R> {
  return (...args: A) => {
    if (!isSerial()) return fn(...args);
    const run = tail.then(() => fn(...args));
    tail = run.catch(() => undefined);
    return run;
  };
}

type AnyActivity = (...args: unknown[]) => Promise<unknown>;
const byName = concurrent as unknown as Record<string, AnyActivity>;

/** The activities by name, each call queued behind the workflow's previous one when `isSerial()` says so (proxyLocalActivities makes them on access). */
function controlProxy(isSerial: () => boolean): ControlActivities {
  const queued = new Map<string, AnyActivity>();
  return new Proxy({} as ControlActivities, {
    get(_target, name) {
      if (typeof name !== 'string') return undefined;
      let fn = queued.get(name);
      if (!fn) {
        fn = oneAtATime(byName[name] as AnyActivity, isSerial);
        queued.set(name, fn);
      }
      return fn;
    },
  });
}

/** For workflow types whose histories may predate the patch: one at a time only in runs that began after it. */
export const control = controlProxy(() => (serial ??= patched(LOCAL_ACTIVITIES_ONE_AT_A_TIME_PATCH)));

/** For workflow types that began after the patch (batchJobWorkflowV2): always one at a time, no marker. */
export const controlInOrder = controlProxy(() => true);
