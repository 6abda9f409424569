/**
 * Figure 2, end to end: create → COMPLETED of a 1-rank `true` job, one job at a time, against the
 * floor on the same dev server: a bare workflow with one activity that runs `bash -c true` (as an
 * agent runs a rank) on a bench-only worker. Job and floor alternate, so both see the same noise.
 *
 * A job's time is from just before its POST until its workflow's result arrives (the workflow ends
 * after its final report, so the read model says COMPLETED by then). Each job's history then splits
 * that time into phases by event timestamps, and counts its workflow tasks and local activities.
 */
import { performance } from 'node:perf_hooks';
import { BENCH_TASK_QUEUE, createFakePool, createJob, startBenchEnv } from './lib/env';
import { type FigureOptions, type FigureResult, within } from './lib/figure';
import { countEvents, eventMs, eventName, historyOf } from './lib/history';
import { fmt, median, summarize } from './lib/stats';

const JOB = { nodePoolId: 'bench', numRanks: 1, shellExecutor: { command: 'true' } };

/** Phase name → ms, from one job's history (and the client's own clock for the POST). */
type Phases = Record<string, number>;

function phasesOf(events: Awaited<ReturnType<typeof historyOf>>, t0: number, postMs: number, t1: number): Phases {
  const first = (pred: (name: string, e: (typeof events)[number]) => boolean) => {
    const e = events.find((x) => pred(eventName(x), x));
    return e ? eventMs(e) : Number.NaN;
  };
  const started = first((n) => n === 'WORKFLOW_EXECUTION_STARTED');
  const granted = first((n, e) => n === 'WORKFLOW_EXECUTION_SIGNALED' && e.workflowExecutionSignaledEventAttributes?.signalName === 'capacityGranted');
  const scheduled = first((n) => n === 'ACTIVITY_TASK_SCHEDULED');
  const actStarted = first((n) => n === 'ACTIVITY_TASK_STARTED');
  const actDone = first((n) => n === 'ACTIVITY_TASK_COMPLETED');
  const closed = first((n) => n === 'WORKFLOW_EXECUTION_COMPLETED');
  // Consecutive phases: they add up to the client's total. The POST's own round trip overlaps the first two.
  return {
    'POST → workflow started (API checks, StartWorkflowExecution)': started - t0,
    // A job that claims an idle pool's slots in its store gets no grant signal: its first task runs
    // the claim step (with the QUEUED record), then the PENDING step, then schedules runRanks.
    'started → runRanks scheduled (first task: claim + QUEUED step, PENDING step; or request, the pool, its grant)': scheduled - started,
    '  of which: waiting for the pool\'s grant signal (0 when the job claimed)': Number.isNaN(granted) ? 0 : granted - started,
    'runRanks scheduled → picked up by the agent': actStarted - scheduled,
    'runRanks running (spawn bash -c true, wait, flush logs)': actDone - actStarted,
    'runRanks done → workflow closed (release, reports)': closed - actDone,
    'workflow closed → result seen by the client': t1 - closed,
    'POST round trip (overlaps the above)': postMs,
  };
}

export async function run(o: FigureOptions): Promise<FigureResult> {
  const n = o.quick ? 4 : 30;
  const warm = o.quick ? 1 : 3;
  const deadline = Date.now() + (o.quick ? 30_000 : 120_000);
  const e = await startBenchEnv({ benchWorker: true });
  try {
    await createFakePool(e, 'bench', 'p4d.24xlarge', 1);

    const floorOnce = async (id: string): Promise<{ ms: number; events: number; wfts: number }> => {
      const t0 = performance.now();
      const h = await e.client.workflow.start('benchCommandWorkflow', { taskQueue: BENCH_TASK_QUEUE, workflowId: id, args: [{ command: 'true' }] });
      await within(h.result(), 60_000, `floor workflow ${id}`);
      const ms = performance.now() - t0;
      const c = countEvents(await historyOf(e.client, id));
      return { ms, events: c.events, wfts: c.workflowTasks };
    };
    const jobOnce = async (id: string) => {
      const wall0 = Date.now();
      const t0 = performance.now();
      const name = await createJob(e.api, JOB, id);
      const postMs = performance.now() - t0;
      const result = await within(e.client.workflow.getHandle(name).result() as Promise<{ job: { state: string; status: string } }>, 120_000, `job ${id}`);
      const ms = performance.now() - t0;
      const wall1 = wall0 + ms;
      if (result.job.state !== 'COMPLETED') throw new Error(`job ${id} ended ${result.job.state}: ${result.job.status}`);
      const events = await historyOf(e.client, name);
      const c = countEvents(events);
      return { ms, phases: phasesOf(events, wall0, postMs, wall1), events: c.events, wfts: c.workflowTasks, localActivities: c.localActivities, signals: c.signalsReceived };
    };

    for (let i = 0; i < warm; i++) {
      await floorOnce(`warm-floor-${i}`);
      await jobOnce(`warm-job-${i}`);
    }
    const floor: Awaited<ReturnType<typeof floorOnce>>[] = [];
    const jobs: Awaited<ReturnType<typeof jobOnce>>[] = [];
    for (let i = 0; i < n && Date.now() < deadline; i++) {
      floor.push(await floorOnce(`floor-${i}`));
      jobs.push(await jobOnce(`job-${i}`));
    }
    const job = summarize(jobs.map((j) => j.ms));
    const base = summarize(floor.map((f) => f.ms));
    const phaseNames = Object.keys(jobs[0]?.phases ?? {});
    const phases = Object.fromEntries(phaseNames.map((p) => [p, median(jobs.map((j) => j.phases[p] ?? Number.NaN))]));
    o.log(`    job  p50/p99 ${fmt(job.p50)}/${fmt(job.p99)} ms over ${job.n}; floor p50/p99 ${fmt(base.p50)}/${fmt(base.p99)} ms over ${base.n}`);
    o.log('    median phases of a job (ms):');
    for (const [p, ms] of Object.entries(phases)) o.log(`      ${fmt(ms, 1).padStart(8)}  ${p}`);
    const perJob = {
      events: median(jobs.map((j) => j.events)),
      workflowTasks: median(jobs.map((j) => j.wfts)),
      localActivities: median(jobs.map((j) => j.localActivities)),
      signalsReceived: median(jobs.map((j) => j.signals)),
    };
    const perFloor = { events: median(floor.map((f) => f.events)), workflowTasks: median(floor.map((f) => f.wfts)) };
    o.log(`    job history: ${perJob.events} events, ${perJob.workflowTasks} workflow tasks, ${perJob.localActivities} local activities, ${perJob.signalsReceived} signals in; floor: ${perFloor.events} events, ${perFloor.workflowTasks} workflow tasks`);
    return {
      name: 'end-to-end',
      value: job.p50,
      unit: 'ms p50 create → COMPLETED',
      baseline: base.p50,
      baselineUnit: 'ms p50',
      baselineLabel: 'bare workflow + one activity spawning bash -c true, same server',
      ratio: job.p50 / base.p50,
      extra: `p99 ${fmt(job.p99, 0)} ms (baseline ${fmt(base.p99, 0)} ms) over ${job.n} sequential jobs; ${perJob.workflowTasks} workflow tasks/job vs ${perFloor.workflowTasks}`,
      details: { job, floor: base, medianPhasesMs: phases, perJob, perFloor },
    };
  } finally {
    await e.stop();
  }
}
