/**
 * Experiment behind "One activation, thousands of signals" in docs/performance.md: how long one pool
 * workflow task takes when N capacity requests reached the pool while no worker served it (as they pile
 * up behind a busy worker), against the SDK's 5 s limit on one activation.
 *
 *   node --require ./dist/src/temporal/workflow-threads.js dist/bench/experiments/pool-activation.js [N...]
 *                                                     # default 1000 5000 20000; without --require, as the SDK ships
 *
 * For each N: a pool workflow starts on a task queue that no worker polls, N `requestCapacity`
 * signals reach it (1-rank requests on a 1-GPU pool: the first holds it, the rest queue), then a worker
 * starts on that queue. Its first workflow task takes all N signals. The figure is that task's
 * WorkflowTaskStarted → WorkflowTaskCompleted time in the pool's history (the activation plus its
 * local activities), the tries before it that failed or timed out, and the worker's CPU time over it.
 * Real Temporal (the CLI dev server), real
 * workflow bundle, the in-memory world of the workflow tests for the activities.
 *
 * Bounded: each N waits at most 300 s for its signals and 300 s for the task.
 */
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { workflowThreadsPreloaded, workflowWorkerOptions } from '../../src/temporal/workflow-worker';
import { requestCapacitySignal } from '../../workflows/messages';
import { WorkflowTestbed } from '../../test/support/workflow-testbed';
import { eventMs, eventName } from '../lib/history';
import { closedLoop } from '../lib/load';
import { fmt, sleep } from '../lib/stats';

const ET = temporal.api.enums.v1.EventType;

async function one(bed: WorkflowTestbed, n: number): Promise<string> {
  const id = `activation-${n}`;
  const name = bed.poolName(id);
  const taskQueue = `activation-queue-${n}`;
  const pool = bed.addPool(id, { numNodes: 1 });
  const input = bed.poolInput(id, pool, { numNodes: 1, queueWindow: 1000 });
  const handle = await bed.client.workflow.start('nodePoolWorkflow', { workflowId: name, taskQueue, args: [{ ...input, settings: { ...input.settings, taskQueue } }] });
  // Grants go to one running workflow that nothing serves, so the first request holds the pool's one
  // GPU and the rest queue behind it (a job that does not exist would be found closed and freed).
  const sink = await bed.client.workflow.start('sink', { workflowId: `${id}-sink`, taskQueue: 'nobody' });
  const sent = await closedLoop({
    concurrency: 32,
    count: n,
    maxMs: 300_000,
    op: (i) => {
      const job = bed.jobName(`${id}-job-${i}`);
      return handle.signal(requestCapacitySignal, { jobName: job, workflowId: sink.workflowId, ranks: 1 });
    },
  });
  if (sent.completed !== n) throw new Error(`only ${sent.completed} of ${n} signals were sent: ${sent.firstErrors.join('; ')}`);
  const worker = await Worker.create({
    connection: bed.env.nativeConnection,
    taskQueue,
    workflowBundle: { codePath: join(__dirname, '..', '..', 'workflow-bundle.js') },
    ...workflowWorkerOptions(),
    activities: bed.world.controlActivities(bed.client),
    shutdownGraceTime: '1 second',
  });
  const cpu0 = process.cpuUsage();
  const running = worker.run();
  try {
    const deadline = Date.now() + 300_000;
    for (;;) {
      // The first run's: a task that takes thousands of signals may continue as new.
      const events = (await bed.client.workflow.getHandle(name, handle.firstExecutionRunId).fetchHistory()).events ?? [];
      const completed = events.findIndex((e) => e.eventType === ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
      const failed = events.filter((e) => e.eventType === ET.EVENT_TYPE_WORKFLOW_TASK_FAILED || e.eventType === ET.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT);
      const failures = failed.map((e) => `${eventName(e)}${e.workflowTaskFailedEventAttributes?.failure?.message ? ` (${e.workflowTaskFailedEventAttributes.failure.message})` : ''}`);
      if (completed >= 0) {
        const cpu = process.cpuUsage(cpu0);
        const started = events.slice(0, completed).filter((e) => e.eventType === ET.EVENT_TYPE_WORKFLOW_TASK_STARTED).at(-1);
        const signals = events.slice(0, completed).filter((e) => e.eventType === ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED).length;
        const ms = eventMs(events[completed]!) - eventMs(started!);
        const nextStarted = events.findIndex((e, i) => i > completed && e.eventType === ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED);
        const mine = events.slice(completed, nextStarted < 0 ? undefined : nextStarted).filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity');
        const types = new Map<string, number>();
        for (const e of mine) {
          const data = e.markerRecordedEventAttributes?.details?.data?.payloads?.[0]?.data;
          const type = data ? (JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string }).activity_type ?? Buffer.from(data).toString('utf8').slice(0, 80) : '?';
          types.set(type, (types.get(type) ?? 0) + 1);
        }
        const markers = [...types].map(([t, c]) => `${t} ${c}`).join(', ');
        const cont = events.some((e) => e.eventType === ET.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW) ? ', then continued as new' : '';
        const heartbeats = events.slice(0, completed).filter((e) => e.eventType === ET.EVENT_TYPE_WORKFLOW_TASK_STARTED).length - 1 - failures.length;
        const before = failures.length > 0 ? `, after ${failures.length} tries that did not complete: ${failures.join(', ')}` : '';
        return `${fmt(n, 0)} signals: the task that took ${fmt(signals, 0)} of them ran ${fmt(ms, 0)} ms (${fmt((ms * 1000) / signals, 0)} µs per signal), ${markers} local activities, ${heartbeats} task heartbeats${cont}${before}; worker CPU ${fmt((cpu.user + cpu.system) / 1000, 0)} ms`;
      }
      if (Date.now() > deadline) return `${fmt(n, 0)} signals: no task completed within 300 s; ${failures.length} tries did not: ${failures.join(', ')}`;
      await sleep(250);
    }
  } finally {
    worker.shutdown();
    await running;
    await handle.terminate('experiment done').catch(() => undefined);
    await sink.terminate('experiment done').catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number);
  const bed = await WorkflowTestbed.start();
  // The service preloads src/temporal/workflow-threads.ts (npm start): run with it to measure what it runs.
  console.log(`workflow threads: ${workflowThreadsPreloaded() ? 'preloaded (no SDK stack-trace hook, as the service runs)' : 'as the SDK ships (stack-trace hook on)'}`);
  try {
    for (const n of sizes.length > 0 ? sizes : [1000, 5000, 20_000]) console.log(await one(bed, n));
  } finally {
    await bed.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
