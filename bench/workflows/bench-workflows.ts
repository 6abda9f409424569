/**
 * Baseline workflows for the benchmarks, run by a bench-only worker on its own task queue (never by
 * the service). Bundled at bench time with bundleWorkflowCode; imports only @temporalio/workflow and
 * activity types.
 */
import { condition, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';
import type { BenchActivities } from '../lib/bench-activities';

const { runCommand } = proxyActivities<BenchActivities>({
  startToCloseTimeout: '10 minutes',
  // The same heartbeat timeout the service gives a host's runRanks by default (HOST_HEARTBEAT_TIMEOUT_MS).
  heartbeatTimeout: '20 seconds',
  retry: { maximumAttempts: 1 },
});

/** The ceiling of "start a workflow": it does nothing and completes in its first workflow task. */
export async function benchNoopWorkflow(): Promise<void> {
  // nothing
}

/**
 * The floor of "run a job": one activity per host, each running `command` in bash (as an agent runs a
 * rank) and heartbeating while it runs; nothing else (no validation, no pool, no read model).
 */
export async function benchCommandWorkflow(input: { command: string; hosts?: number }): Promise<number[]> {
  return Promise.all(Array.from({ length: input.hosts ?? 1 }, () => runCommand({ command: input.command })));
}

export const benchDoneSignal = defineSignal('done');

/** The floor of "a live job": an open workflow waiting for a signal, cached by its worker, nothing else. */
export async function benchWaitWorkflow(): Promise<void> {
  let done = false;
  setHandler(benchDoneSignal, () => {
    done = true;
  });
  await condition(() => done);
}
