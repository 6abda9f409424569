/**
 * Figure 1, API create: throughput and latency of `POST /v1/accounts/default/batchJobs` (a 1-rank
 * `true` job) from a closed loop of N concurrent clients, against the ceiling on the same dev server
 * at the same concurrency: `client.workflow.start` of a no-op workflow served by a bench-only worker.
 *
 * Three phases, in this order, on one dev server:
 *   1. baseline   — raw starts of benchNoopWorkflow (the bench worker completes each in one task);
 *   2. API alone  — the same POSTs to a second API instance whose task queue no worker serves, so
 *                   the jobs' workflows never run: the cost of the request path alone;
 *   3. API + jobs — the POSTs to the full service (control worker and fake-host agents running), so
 *                   each created job also validates, queues, runs `true` and reports while the load
 *                   goes on. This is the figure.
 * Per phase it also records the CPU time of this process (API + workers + load generator) and of
 * the dev server per request, and the frontend RPCs that reached the server per request.
 */
import { BENCH_TASK_QUEUE, createFakePool, createJob, measurePhase, type MeasuredPhase, startBenchEnv, startExtraService } from './lib/env';
import { type FigureOptions, type FigureResult } from './lib/figure';
import { closedLoop } from './lib/load';
import { fmt, sleep } from './lib/stats';

const JOB = { nodePoolId: 'bench', numRanks: 1, shellExecutor: { command: 'true' } };

type Phase = MeasuredPhase;

const describe = (p: Phase) =>
  `${fmt(p.load.throughput, 1)}/s, p50 ${fmt(p.load.latencyMs.p50, 1)} ms, p99 ${fmt(p.load.latencyMs.p99, 1)} ms, ` +
  `CPU/op ${fmt(p.cpuMsPerOp.service, 2)} ms here + ${fmt(p.cpuMsPerOp.temporal, 2)} ms Temporal${p.load.errors ? `, ${p.load.errors} errors (${p.load.firstErrors[0] ?? ''})` : ''}`;

export async function run(o: FigureOptions): Promise<FigureResult> {
  const concurrency = 8;
  const count = o.quick ? 24 : 400;
  const warm = o.quick ? 3 : 30;
  // Per phase: the loop stops starting requests after this long (it ends earlier at `count`).
  const maxMs = o.quick ? 4_000 : 25_000;
  const e = await startBenchEnv({ benchWorker: true });
  try {
    await createFakePool(e, 'bench', 'p4d.24xlarge', 2);
    const alone = await startExtraService(e, ['api'], { TASK_QUEUE: 'bench-unserved' });
    try {
      const start = (prefix: string) => (i: number) => e.client.workflow.start('benchNoopWorkflow', { taskQueue: BENCH_TASK_QUEUE, workflowId: `${prefix}-${i}` }).then(() => undefined);
      await closedLoop({ concurrency, count: warm, maxMs, op: start('warm') });
      await closedLoop({ concurrency, count: warm, maxMs, op: (i) => createJob(alone.api, JOB, `warm-alone-${i}`).then(() => undefined) });
      await sleep(1000);

      o.log('  api-create: baseline (workflow.start of a no-op workflow)…');
      const baseline = await measurePhase(e, () => closedLoop({ concurrency, count, maxMs, op: start('noop') }));
      o.log(`    ${describe(baseline)}`);
      await sleep(1000);
      o.log('  api-create: the API alone (jobs not executed)…');
      const apiAlone = await measurePhase(e, () => closedLoop({ concurrency, count, maxMs, op: (i) => createJob(alone.api, JOB, `alone-${i}`).then(() => undefined) }));
      o.log(`    ${describe(apiAlone)}`);
      await sleep(1000);
      o.log('  api-create: the full service (jobs run while the load goes on)…');
      const warmFull = await closedLoop({ concurrency, count: warm, maxMs, op: (i) => createJob(e.api, JOB, `warm-full-${i}`).then(() => undefined) });
      const full = await measurePhase(e, () => closedLoop({ concurrency, count, maxMs, op: (i) => createJob(e.api, JOB, `full-${i}`).then(() => undefined) }));
      // How far the jobs got while the load went on: work done inside the phase costs its creates CPU.
      // (The API-alone phase's jobs never run: only this phase's and its warm-up's can have completed.)
      const created = warmFull.completed + full.load.completed;
      const completed = (await e.service.store.jobCounts()).filter((c) => c.nodePoolId === 'bench' && c.state === 'COMPLETED').reduce((n, c) => n + c.count, 0);
      o.log(`    ${describe(full)}; ${completed} of its ${created} jobs (warm-up included) had completed when the load stopped`);

      const strip = (p: Phase) => ({ ...p, load: { ...p.load, latencies: undefined } });
      return {
        name: 'api-create',
        value: full.load.throughput,
        unit: `creates/s at concurrency ${concurrency}`,
        baseline: baseline.load.throughput,
        baselineUnit: 'starts/s',
        baselineLabel: 'client.workflow.start of a no-op workflow, same server, same concurrency',
        ratio: full.load.throughput / baseline.load.throughput,
        extra:
          `p50/p99 ${fmt(full.load.latencyMs.p50, 1)}/${fmt(full.load.latencyMs.p99, 1)} ms ` +
          `(baseline ${fmt(baseline.load.latencyMs.p50, 1)}/${fmt(baseline.load.latencyMs.p99, 1)} ms); ` +
          `API alone, jobs not run: ${fmt(apiAlone.load.throughput, 1)}/s, p50/p99 ${fmt(apiAlone.load.latencyMs.p50, 1)}/${fmt(apiAlone.load.latencyMs.p99, 1)} ms; ` +
          `${completed} of ${created} jobs completed when the load stopped`,
        details: { concurrency, count, baseline: strip(baseline), apiAlone: strip(apiAlone), full: strip(full), jobsCreated: created, jobsCompleted: completed },
      };
    } finally {
      await alone.service.stop();
    }
  } finally {
    await e.stop();
  }
}
