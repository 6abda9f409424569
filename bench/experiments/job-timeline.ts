/**
 * Experiment: the critical path of one 1-rank `true` job, event by event. Creates a 1-GPU fake pool,
 * runs N jobs one after another, then N floor workflows (one activity running `bash -c true`), and
 * prints the last floor's history, then the last job's history with its pool's events in the same
 * window, each on one clock (ms since its start or POST), so a round trip shows as the gap between
 * two lines. Every job's total goes to stderr.
 *
 *   node dist/bench/experiments/job-timeline.js [N=5]
 */
import { BENCH_TASK_QUEUE, createFakePool, createJob, startBenchEnv } from '../lib/env';
import { eventMs, eventName, historyOf } from '../lib/history';

type Event = Awaited<ReturnType<typeof historyOf>>[number];

function detail(e: Event): string {
  const a =
    e.workflowExecutionSignaledEventAttributes?.signalName ??
    e.activityTaskScheduledEventAttributes?.activityType?.name ??
    (e.markerRecordedEventAttributes ? 'local activity' : undefined);
  return a ? ` (${a})` : '';
}

/** One event as a line: ms since t0, whose history it is in, its type and what it names. */
function line(t0: number, who: string, e: Event): string {
  return `${(eventMs(e) - t0).toFixed(1).padStart(7)}  ${who}  ${eventName(e)}${detail(e)}`;
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 5);
  const e = await startBenchEnv({ benchWorker: true });
  try {
    await createFakePool(e, 'timeline', 'p4d.24xlarge', 1);
    let last: { name: string; t0: number; ms: number } | undefined;
    for (let i = 0; i < n; i++) {
      const t0 = Date.now();
      const name = await createJob(e.api, { nodePoolId: 'timeline', numRanks: 1, shellExecutor: { command: 'true' } }, `t-${i}`);
      await e.client.workflow.getHandle(name).result();
      last = { name, t0, ms: Date.now() - t0 };
      process.stderr.write(`job ${i}: ${last.ms} ms\n`);
    }
    if (!last) return;
    // The floor: a bare workflow with one activity running `bash -c true`, on the bench worker.
    for (let i = 0; i < n; i++) {
      const t0 = Date.now();
      const h = await e.client.workflow.start('benchCommandWorkflow', { taskQueue: BENCH_TASK_QUEUE, workflowId: `floor-${i}`, args: [{ command: 'true' }] });
      await h.result();
      if (i === n - 1) {
        console.log(`floor (${Date.now() - t0} ms):`);
        for (const x of await historyOf(e.client, `floor-${i}`)) console.log(line(t0, 'floor', x));
      }
    }
    console.log(`job (${last.ms} ms):`);
    const job = await historyOf(e.client, last.name);
    const end = eventMs(job[job.length - 1] as Event);
    const pool = (await historyOf(e.client, 'accounts/default/nodePools/timeline')).filter((x) => eventMs(x) >= last.t0 && eventMs(x) <= end + 50);
    const merged = [...job.map((x) => ({ who: 'job ', x })), ...pool.map((x) => ({ who: 'pool', x }))].sort((a, b) => eventMs(a.x) - eventMs(b.x));
    for (const { who, x } of merged) console.log(line(last.t0, who, x));
  } finally {
    await e.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
