/**
 * Figure 7, memory: resident set of the service process (process.memoryUsage().rss after a full GC;
 * this process hosts the API, the control worker and every fake host's agent) and of the Temporal dev
 * server (VmRSS from /proc/<pid>/status), idle and with live jobs:
 *
 * - idle: the service with two fake pools and all their agents polling, no jobs (and an idle
 *   bench-only worker);
 * - floor: K bare open workflows (benchWaitWorkflow: waits for a signal) cached by the bench worker
 *   in this same process: what any live workflow costs the TypeScript SDK and the server;
 * - QUEUED-N: a 1 × p4d.24xlarge pool held by one 8-rank `sleep` job, and N 1-rank `sleep` jobs queued
 *   behind it. "Live" here means an open job workflow, cached in the control worker (it is waiting on
 *   its grant), its request in the pool workflow's queue, and its row in the read model; no process;
 * - RUNNING-M on top: M = every slot of a 64 × p5.48xlarge pool (512 GPUs) running a 1-rank `sleep`
 *   job. "Live" adds a runRanks activity on the host's agent, heartbeating to the server every second,
 *   a log writer, and the rank's own processes (bash → sleep), whose RSS is reported apart.
 *
 * --quick: 20 QUEUED and 1 × p5.48xlarge (8 RUNNING). Creation is paced by the system itself: each of
 * 8 clients creates a job and waits until the read model shows it QUEUED (or RUNNING) before it
 * creates the next, until the count or the time budget is reached; the figure says how many were
 * live when sampled. (Unpaced, a burst of ~500 creates overloads the control worker's workflow
 * thread: first workflow tasks exceed their 10 s timeout and almost no job gets past CREATING; see
 * docs/performance.md.)
 */
import { parseFilter } from '../src/domain/filter';
import { FILTER_FIELDS } from '../src/domain/list-fields';
import { type BatchJobRecord } from '../src/store/read-model';
import { getNodePoolInternalsQuery, type NodePoolInternals } from '../workflows/messages';
import { BENCH_TASK_QUEUE, createFakePool, createJob, descendants, diffCounts, frontendRequests, gc, rssMiB, startBenchEnv, type BenchEnv } from './lib/env';
import { type FigureOptions, type FigureResult } from './lib/figure';
import { closedLoop } from './lib/load';
import { fmt, sleep } from './lib/stats';

interface Sample {
  liveQueued: number;
  liveRunning: number;
  serviceRssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  temporalRssMiB: number;
  rankProcesses: number;
  rankProcessesRssMiB: number;
}

async function sample(e: BenchEnv, liveQueued: number, liveRunning: number): Promise<Sample> {
  gc();
  await sleep(1500);
  gc();
  const m = process.memoryUsage();
  const server = e.devServer.process.pid;
  const ranks = descendants(process.pid).filter((p) => p !== server);
  return {
    liveQueued,
    liveRunning,
    serviceRssMiB: m.rss / 2 ** 20,
    heapUsedMiB: m.heapUsed / 2 ** 20,
    externalMiB: m.external / 2 ** 20,
    temporalRssMiB: rssMiB(server),
    rankProcesses: ranks.length,
    rankProcessesRssMiB: ranks.map(rssMiB).filter(Number.isFinite).reduce((a, b) => a + b, 0),
  };
}

const poolInternals = (e: BenchEnv, id: string) =>
  e.client.workflow.getHandle(`accounts/default/nodePools/${id}`).query<NodePoolInternals>(getNodePoolInternalsQuery);

async function countState(e: BenchEnv, pool: string, state: string): Promise<number> {
  const filter = parseFilter(`state = "${state}" AND nodePoolId = "${pool}"`, FILTER_FIELDS.batchJobs);
  return e.service.store.count('batchJobs', 'default', filter);
}

/** Creates a job and waits until the read model shows it in `state`; throws if it ends first. */
async function createAndWait(e: BenchEnv, body: Record<string, unknown>, id: string, state: string, timeoutMs: number): Promise<void> {
  const name = await createJob(e.api, body, id);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await e.service.store.get<BatchJobRecord>('batchJobs', name);
    const now = row?.resource.state;
    if (now === state) return;
    if (now === 'FAILED' || now === 'CANCELLED' || now === 'COMPLETED') throw new Error(`${name} ended ${now}: ${row?.resource.status ?? ''}`);
    if (Date.now() > deadline) throw new Error(`${name} not ${state} within ${timeoutMs} ms (still ${now ?? 'absent'})`);
    await sleep(150);
  }
}

/** Polls `probe` until it reaches `want` or the deadline passes; returns the last value. */
async function waitCount(probe: () => Promise<number>, want: number, deadline: number): Promise<number> {
  let v = 0;
  for (;;) {
    v = await probe().catch(() => v);
    if (v >= want || Date.now() > deadline) return v;
    await sleep(500);
  }
}

export async function run(o: FigureOptions): Promise<FigureResult> {
  const queued = o.quick ? 20 : 1000;
  const runHosts = o.quick ? 1 : 64;
  const running = runHosts * 8;
  const concurrency = 8;
  const floorCount = o.quick ? 10 : 100;
  const e = await startBenchEnv({ benchWorker: true });
  try {
    await createFakePool(e, 'hold', 'p4d.24xlarge', 1);
    await createFakePool(e, 'run', 'p5.48xlarge', runHosts, 180_000);
    await sleep(2000);
    const idle = await sample(e, 0, 0);
    o.log(`    idle: service ${fmt(idle.serviceRssMiB)} MiB (heap ${fmt(idle.heapUsedMiB)}), Temporal ${fmt(idle.temporalRssMiB)} MiB`);

    // The floor: K bare workflows left open, each cached after its first workflow task.
    const f0 = Date.now();
    const rpc0 = await frontendRequests(e.metricsUrl);
    const startedFloor = await closedLoop({
      concurrency,
      count: floorCount,
      maxMs: o.quick ? 8_000 : 25_000,
      op: (i) => e.client.workflow.start('benchWaitWorkflow', { taskQueue: BENCH_TASK_QUEUE, workflowId: `wait-${i}` }).then(() => undefined),
    });
    await waitCount(async () => diffCounts(await frontendRequests(e.metricsUrl), rpc0).RespondWorkflowTaskCompleted ?? 0, startedFloor.completed, Date.now() + 20_000);
    const fl = await sample(e, 0, 0);
    const perFloorKiB = ((fl.serviceRssMiB - idle.serviceRssMiB) * 1024) / Math.max(1, startedFloor.completed);
    const perFloorServerKiB = ((fl.temporalRssMiB - idle.temporalRssMiB) * 1024) / Math.max(1, startedFloor.completed);
    o.log(
      `    floor, ${startedFloor.completed} open bare workflows (${((Date.now() - f0) / 1000).toFixed(0)} s): service ${fmt(fl.serviceRssMiB)} MiB, Temporal ${fmt(fl.temporalRssMiB)} MiB: ` +
        `${fmt(perFloorKiB, 0)} + ${fmt(perFloorServerKiB, 0)} KiB each`,
    );

    // QUEUED-N behind an 8-rank holder.
    const sleepJob = (pool: string, ranks = 1) => ({ nodePoolId: pool, numRanks: ranks, shellExecutor: { command: 'sleep 3600' } });
    // The holder must own the pool before the others queue: created alongside them, a 1-rank job
    // could reach the pool first and leave the holder queued at the head.
    await createAndWait(e, sleepJob('hold', 8), 'holder', 'RUNNING', 60_000);
    const t0 = Date.now();
    const made = await closedLoop({ concurrency, count: queued, maxMs: o.quick ? 8_000 : 150_000, op: (i) => createAndWait(e, sleepJob('hold'), `q-${i}`, 'QUEUED', 90_000) });
    const liveQueued = await countState(e, 'hold', 'QUEUED');
    const inPool = await poolInternals(e, 'hold').then((p) => p.queue.length, () => Number.NaN);
    o.log(`    ${liveQueued} QUEUED (${inPool} in the pool's queue; ${made.completed} created and seen QUEUED in ${((Date.now() - t0) / 1000).toFixed(0)} s, ${made.errors} errors ${made.firstErrors[0] ?? ''})`);
    const q = await sample(e, liveQueued, 1);
    // QUEUED deltas are taken from the floor sample (the bare workflows stay open throughout).
    o.log(`    QUEUED-${liveQueued}: service ${fmt(q.serviceRssMiB)} MiB (heap ${fmt(q.heapUsedMiB)}), Temporal ${fmt(q.temporalRssMiB)} MiB`);

    // RUNNING-M on top.
    const t1 = Date.now();
    const madeR = await closedLoop({ concurrency, count: running, maxMs: o.quick ? 8_000 : 150_000, op: (i) => createAndWait(e, sleepJob('run'), `r-${i}`, 'RUNNING', 90_000) });
    // Jobs created but not yet RUNNING when the budget ran out get a short while to get there.
    const liveRunning = await waitCount(() => countState(e, 'run', 'RUNNING'), madeR.completed + madeR.errors, Date.now() + 10_000);
    const failedR = await countState(e, 'run', 'FAILED');
    o.log(`    ${liveRunning} RUNNING (${madeR.completed} created and seen RUNNING in ${((Date.now() - t1) / 1000).toFixed(0)} s, ${madeR.errors} errors ${madeR.firstErrors[0] ?? ''}, ${failedR} FAILED)`);
    const r = await sample(e, liveQueued, liveRunning + 1);
    o.log(
      `    + RUNNING-${liveRunning}: service ${fmt(r.serviceRssMiB)} MiB (heap ${fmt(r.heapUsedMiB)}), Temporal ${fmt(r.temporalRssMiB)} MiB, ` +
        `${r.rankProcesses} rank processes ${fmt(r.rankProcessesRssMiB)} MiB`,
    );
    const perQueuedKiB = ((q.serviceRssMiB - fl.serviceRssMiB) * 1024) / Math.max(1, liveQueued);
    const perQueuedServerKiB = ((q.temporalRssMiB - fl.temporalRssMiB) * 1024) / Math.max(1, liveQueued);
    const perRunningKiB = ((r.serviceRssMiB - q.serviceRssMiB) * 1024) / Math.max(1, liveRunning);
    const perRunningServerKiB = ((r.temporalRssMiB - q.temporalRssMiB) * 1024) / Math.max(1, liveRunning);
    return {
      name: 'memory',
      value: q.serviceRssMiB,
      unit: `MiB service RSS with ${liveQueued} QUEUED jobs`,
      baseline: idle.serviceRssMiB,
      baselineUnit: 'MiB idle',
      baselineLabel: `the same service idle (two fake pools, ${runHosts + 1} agents polling)`,
      ratio: q.serviceRssMiB / idle.serviceRssMiB,
      extra:
        `${fmt(perQueuedKiB, 0)} KiB/QUEUED job here + ${fmt(perQueuedServerKiB, 0)} KiB in Temporal (Temporal ${fmt(idle.temporalRssMiB, 0)} → ${fmt(q.temporalRssMiB, 0)} MiB; ` +
        `floor: ${fmt(perFloorKiB, 0)} + ${fmt(perFloorServerKiB, 0)} KiB per open bare workflow); ` +
        `+${liveRunning} RUNNING on ${runHosts} hosts: service ${fmt(r.serviceRssMiB, 0)} MiB (${fmt(perRunningKiB, 0)} KiB/job), Temporal ${fmt(r.temporalRssMiB, 0)} MiB ` +
        `(${fmt(perRunningServerKiB, 0)} KiB/job), rank processes ${fmt(r.rankProcessesRssMiB, 0)} MiB in ${r.rankProcesses}`,
      details: { queuedTarget: queued, runningTarget: running, runHosts, idle, floor: fl, floorWorkflows: startedFloor.completed, perFloorKiB, perFloorServerKiB, queued: q, running: r, perQueuedKiB, perQueuedServerKiB, perRunningKiB, perRunningServerKiB, failedRunning: failedR },
    };
  } finally {
    await e.stop();
  }
}
