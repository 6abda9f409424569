/**
 * Figure 3, sustained throughput: a few hundred 1-rank `true` jobs through the API with bounded
 * concurrency (each of C clients creates a job and waits for its workflow to end before the next),
 * against the same number of bare workflows (one activity running `bash -c true`) on the same dev
 * server at the same concurrency. Jobs completed per minute = completed / wall time of the phase.
 *
 * Per phase it also records CPU seconds per job of this process (API, control worker, agents, load
 * generator) and of the dev server, and the frontend RPCs per job that reached the server: on a
 * 2-core machine the CPU per job is what bounds the rate.
 */
import { BENCH_TASK_QUEUE, createFakePool, createJob, measurePhase, startBenchEnv, type BenchEnv } from './lib/env';
import { type FigureOptions, type FigureResult, within } from './lib/figure';
import { closedLoop, type ClosedLoopResult } from './lib/load';
import { fmt, sleep } from './lib/stats';

const JOB = { nodePoolId: 'bench', numRanks: 1, shellExecutor: { command: 'true' } };

interface Phase {
  load: ClosedLoopResult;
  perMinute: number;
  cpuMsPerJob: { service: number; temporal: number };
  rpcPerJob: Record<string, number>;
}

async function phase(e: BenchEnv, run: () => Promise<ClosedLoopResult>): Promise<Phase> {
  const m = await measurePhase(e, run);
  return { load: m.load, perMinute: m.load.throughput * 60, cpuMsPerJob: m.cpuMsPerOp, rpcPerJob: m.rpcPerOp };
}

export async function run(o: FigureOptions): Promise<FigureResult> {
  const jobs = o.quick ? 12 : 300;
  const concurrency = o.quick ? 4 : 16;
  const e = await startBenchEnv({ benchWorker: true });
  try {
    // 64 GPUs: capacity never limits 16 jobs in flight.
    await createFakePool(e, 'bench', 'p4d.24xlarge', 8);
    const floorOp = (prefix: string) => async (i: number) => {
      const h = await e.client.workflow.start('benchCommandWorkflow', { taskQueue: BENCH_TASK_QUEUE, workflowId: `${prefix}-${i}`, args: [{ command: 'true' }] });
      await within(h.result(), 60_000, `bare workflow ${i}`);
    };
    const jobOp = (prefix: string) => async (i: number) => {
      const name = await createJob(e.api, JOB, `${prefix}-${i}`);
      const r = await within(e.client.workflow.getHandle(name).result() as Promise<{ job: { state: string; status: string } }>, 180_000, `job ${name}`);
      if (r.job.state !== 'COMPLETED') throw new Error(`${name} ended ${r.job.state}: ${r.job.status}`);
    };
    const warm = o.quick ? 2 : concurrency;
    await closedLoop({ concurrency, count: warm, maxMs: 15_000, op: floorOp('warm-floor') });
    await closedLoop({ concurrency, count: warm, maxMs: 20_000, op: jobOp('warm-job') });
    await sleep(1000);

    o.log(`  sustained: ${jobs} bare workflows at concurrency ${concurrency}…`);
    const floor = await phase(e, () => closedLoop({ concurrency, count: jobs, maxMs: o.quick ? 8_000 : 30_000, op: floorOp('floor') }));
    o.log(`    ${fmt(floor.perMinute, 0)}/min, CPU/job ${fmt(floor.cpuMsPerJob.service, 1)} ms here + ${fmt(floor.cpuMsPerJob.temporal, 1)} ms Temporal`);
    await sleep(1000);
    o.log(`  sustained: ${jobs} jobs at concurrency ${concurrency}…`);
    const sub = await phase(e, () => closedLoop({ concurrency, count: jobs, maxMs: o.quick ? 12_000 : 90_000, op: jobOp('job') }));
    o.log(`    ${fmt(sub.perMinute, 0)}/min, CPU/job ${fmt(sub.cpuMsPerJob.service, 1)} ms here + ${fmt(sub.cpuMsPerJob.temporal, 1)} ms Temporal, ${sub.load.errors} errors ${sub.load.firstErrors.join('; ')}`);
    const rpcs = (p: Phase) =>
      Object.entries(p.rpcPerJob)
        .filter(([op]) => !op.startsWith('Poll'))
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([op, v]) => `${op} ${v}`)
        .join(', ');
    o.log(`    RPCs per job: ${rpcs(sub)}`);
    o.log(`    RPCs per bare workflow: ${rpcs(floor)}`);
    const strip = (p: Phase) => ({ ...p, load: { ...p.load, latencies: undefined } });
    return {
      name: 'sustained',
      value: sub.perMinute,
      unit: `jobs completed/min (${sub.load.completed} jobs, concurrency ${concurrency})`,
      baseline: floor.perMinute,
      baselineUnit: 'bare workflows/min',
      baselineLabel: 'the same number of bare one-activity workflows, same server, same concurrency',
      ratio: sub.perMinute / floor.perMinute,
      extra:
        `CPU per job ${fmt(sub.cpuMsPerJob.service, 0)} ms service + ${fmt(sub.cpuMsPerJob.temporal, 0)} ms Temporal ` +
        `(bare ${fmt(floor.cpuMsPerJob.service, 0)} + ${fmt(floor.cpuMsPerJob.temporal, 0)} ms); ` +
        `job latency p50/p99 ${fmt(sub.load.latencyMs.p50, 0)}/${fmt(sub.load.latencyMs.p99, 0)} ms` +
        (sub.load.errors ? `; ${sub.load.errors} errors` : ''),
      details: { jobs, concurrency, floor: strip(floor), jobsPhase: strip(sub) },
    };
  } finally {
    await e.stop();
  }
}
