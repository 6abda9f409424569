/**
 * Figure 8, queue: one pool with a deep queue, all of it created through the API.
 *
 * A 1-GPU fake pool is held by one running job; then N 1-rank jobs are created behind it by 24
 * clients, unpaced (the repro: 12,000 of them used to get the pool workflow terminated). N is
 * 100,000 in a full run (BENCH_QUEUE_JOBS overrides; --quick: 1,000). BENCH_POOL_CAN sets the pool's
 * POOL_CONTINUE_AS_NEW_EVENTS (default 4000): at 100 the pool continues as new every few seconds of
 * the burst, the race in which a run's last signals must reach the next run. Measured:
 *
 * - create throughput over the last tenth of the creates against the first tenth (the baseline):
 *   the queue's depth must not slow admission;
 * - created → QUEUED lag (read model: the QUEUED record's updateTime − createTime), p50/p99;
 * - one scheduling step at that depth: a pass over the pool's window plus its store step (the same
 *   PoolQueue and store code the workflow runs), p50/p99 over 200 steps;
 * - one pool task that handles a burst of 50,000 requests before its next sync, against ten tasks of
 *   5,000 (linear: about 1×);
 * - service and Temporal memory per queued job;
 * - the time for the head to start once the holder ends, and the pool's grant rate after it;
 * - whether the queue then runs in its order: its first BENCH_QUEUE_DRAIN jobs (default 1,000, --quick
 *   100; at most N) are read from the pool's stored queue before the holder ends; each must complete and start after
 *   the one before it, and no other job may start before the last of them. The figure fails if not.
 *   BENCH_QUEUE_DRAIN=N drains the whole queue (one GPU: about 4 jobs a second on this machine).
 */
import { performance } from 'node:perf_hooks';
import { PoolQueue } from '../src/domain/pool-queue';
import { addHost } from '../src/domain/scheduler';
import { type BatchJobRecord } from '../src/store/read-model';
import { getNodePoolInternalsQuery, type NodePoolInternals } from '../workflows/messages';
import { createFakePool, createJob, gc, rssMiB, startBenchEnv, type BenchEnv } from './lib/env';
import { type FigureOptions, type FigureResult } from './lib/figure';
import { closedLoop } from './lib/load';
import { fmt, sleep, summarize } from './lib/stats';

const POOL = 'accounts/default/nodePools/deep';

const internals = (e: BenchEnv) => e.client.workflow.getHandle(POOL).query<NodePoolInternals>(getNodePoolInternalsQuery);

async function serviceRss(): Promise<number> {
  gc();
  await sleep(1000);
  gc();
  return process.memoryUsage().rss / 2 ** 20;
}

async function stateOf(e: BenchEnv, id: string): Promise<string | undefined> {
  return (await e.service.store.get<BatchJobRecord>('batchJobs', `accounts/default/batchJobs/${id}`))?.resource.state;
}

async function waitState(e: BenchEnv, id: string, states: string | string[], timeoutMs: number): Promise<void> {
  const want = Array.isArray(states) ? states : [states];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await stateOf(e, id);
    if (now !== undefined && want.includes(now)) return;
    if (Date.now() > deadline) {
      const pool = await internals(e).catch(() => undefined);
      const hosts = pool?.hosts.map((h) => `${h.host} ${h.status}`).join(', ');
      const row = await e.service.store.get<BatchJobRecord>('batchJobs', `accounts/default/batchJobs/${id}`);
      throw new Error(`${id} not ${want.join(' or ')} within ${timeoutMs} ms: it is ${now ?? 'absent'} (${row?.resource.status ?? ''}); pool hosts: ${hosts ?? 'no answer'}`);
    }
    await sleep(100);
  }
}

/** Created → QUEUED lag of every QUEUED job, from the read model (ms). */
async function queuedLags(e: BenchEnv): Promise<number[]> {
  const lags: number[] = [];
  let after: unknown[] | undefined;
  for (let page = 0; page < 1000; page++) {
    const result = await e.service.store.list<BatchJobRecord>('batchJobs', {
      account: 'default',
      filter: { kind: 'cmp', field: 'state', op: '=', value: 'QUEUED' },
      orderBy: [
        { field: 'createTime', desc: false },
        { field: 'name', desc: false },
      ],
      pageSize: 1000,
      ...(after ? { after } : {}),
    });
    for (const j of result.items) lags.push(Date.parse(j.updateTime) - Date.parse(j.createTime));
    if (!result.nextAfter) break;
    after = result.nextAfter;
  }
  return lags;
}

/**
 * One pool task that handles a burst of `n` requests before its next sync (PoolQueue.request, as the
 * handler runs it), against the same requests as ten tasks of n/10: equal when the cost is linear in
 * the burst. A scan per request made it quadratic: 50,000 took 10 s, past a workflow task's timeout.
 */
function burstCost(n: number): { burstMs: number; tenthsMs: number } {
  const handle = (count: number, from: number): number => {
    const q = PoolQueue.fresh(1000);
    const t0 = performance.now();
    for (let i = from; i < from + count; i++) q.request({ jobName: `accounts/default/batchJobs/burst-${i}`, workflowId: `burst-${i}`, ranks: 1 }, '2026-01-01T00:00:00.000Z');
    return performance.now() - t0;
  };
  const burstMs = handle(n, 0);
  let tenthsMs = 0;
  for (let k = 0; k < 10; k++) tenthsMs += handle(n / 10, k * (n / 10));
  return { burstMs, tenthsMs };
}

/** One scheduling step at the queue's real depth: a pass over a full window, then the store step. */
async function stepCost(e: BenchEnv, window: number, steps: number): Promise<number[]> {
  const pool = 'accounts/default/nodePools/step-probe';
  const q = PoolQueue.fresh(window);
  addHost(q.scheduler, 'h0', 8);
  const durations: number[] = [];
  // The probe pool's own queue is shallow; the store's tables hold the deep pool's rows beside it.
  for (let i = 0; i < window + steps; i++) q.request({ jobName: `probe-${i}`, workflowId: `probe-${i}`, ranks: 1 }, new Date().toISOString());
  const settle = async () => {
    while (q.needsSync()) {
      const step = q.takeSync();
      q.applySync(step, await e.service.store.syncPool({ pool, ...step }));
    }
  };
  await settle();
  for (let i = 0; i < steps; i++) {
    for (const id of Object.keys(q.scheduler.allocations)) q.release(id);
    q.request({ jobName: `probe-late-${i}`, workflowId: `probe-late-${i}`, ranks: 1 }, new Date().toISOString());
    const t0 = performance.now();
    q.pass();
    await settle();
    durations.push(performance.now() - t0);
  }
  await e.service.store.dropPool(pool);
  return durations;
}

/** Waits until the last of `order` has COMPLETED, with a line of progress a minute. */
async function drain(e: BenchEnv, order: readonly string[], timeoutMs: number, log: (line: string) => void): Promise<void> {
  const last = order[order.length - 1];
  if (last === undefined) return;
  const deadline = Date.now() + timeoutMs;
  let lastLog = Date.now();
  while ((await stateOf(e, last.split('/').pop() ?? last)) !== 'COMPLETED') {
    if (Date.now() > deadline) throw new Error(`the first ${order.length} of the queue did not complete within ${timeoutMs} ms`);
    if (Date.now() - lastLog >= 60_000) {
      lastLog = Date.now();
      const done = await e.service.store.list<BatchJobRecord>('batchJobs', { account: 'default', filter: { kind: 'cmp', field: 'state', op: '=', value: 'COMPLETED' }, orderBy: [{ field: 'name', desc: false }], pageSize: 1 });
      log(`    draining: ${done.totalSize} of ${order.length} completed`);
    }
    await sleep(500);
  }
}

/**
 * Whether the jobs of `order` (the queue's first, in its order) ran in that order: on one GPU each
 * starts after the one before it. Also counts jobs outside them that started before the last of them
 * (a job that jumped the queue).
 */
async function ranInOrder(e: BenchEnv, order: readonly string[]): Promise<{ outOfOrder: number; ahead: number; problems: string[] }> {
  const problems: string[] = [];
  let outOfOrder = 0;
  let previous = -Infinity;
  for (const name of order) {
    const job = (await e.service.store.get<BatchJobRecord>('batchJobs', name))?.resource;
    const started = job?.startTime !== undefined ? Date.parse(job.startTime) : NaN;
    if (job?.state !== 'COMPLETED' || !(started > previous)) {
      outOfOrder++;
      problems.push(`${name} is ${job?.state ?? 'absent'}, started ${job?.startTime ?? 'never'}`);
    }
    if (started > previous) previous = started;
  }
  const mine = new Set(order);
  let ahead = 0;
  let after: unknown[] | undefined;
  for (let page = 0; page < 1000; page++) {
    const result = await e.service.store.list<BatchJobRecord>('batchJobs', {
      account: 'default',
      filter: { kind: 'cmp', field: 'state', op: '=', value: 'COMPLETED' },
      orderBy: [{ field: 'name', desc: false }],
      pageSize: 1000,
      ...(after ? { after } : {}),
    });
    for (const job of result.items) {
      if (mine.has(job.name) || job.startTime === undefined || Date.parse(job.startTime) >= previous) continue;
      ahead++;
      problems.push(`${job.name} started ${job.startTime}, before the last of the queue's first ${order.length}`);
    }
    if (!result.nextAfter) break;
    after = result.nextAfter;
  }
  return { outOfOrder, ahead, problems };
}

export async function run(o: FigureOptions): Promise<FigureResult> {
  const n = Number(process.env.BENCH_QUEUE_JOBS ?? (o.quick ? 1000 : 100_000));
  const concurrency = 24;
  const window = 1000;
  // The figure is one account's deep queue: its per-account limits (docs/operators.md) must admit all of it.
  const limit = String(n + 100);
  const e = await startBenchEnv({ env: { POOL_QUEUE_WINDOW: String(window), MAX_QUEUED_JOBS_PER_ACCOUNT: limit, MAX_LIVE_JOBS_PER_ACCOUNT: limit, ...(process.env.BENCH_POOL_CAN ? { POOL_CONTINUE_AS_NEW_EVENTS: process.env.BENCH_POOL_CAN } : {}) } });
  try {
    await createFakePool(e, 'deep', 'g5.xlarge', 1);
    await createJob(e.api, { nodePoolId: 'deep', shellExecutor: { command: 'sleep 86400' } }, 'holder');
    await waitState(e, 'holder', 'RUNNING', 60_000);
    const rss0 = await serviceRss();
    const temporal0 = rssMiB(e.devServer.process.pid);

    const doneAt: number[] = [];
    const t0 = performance.now();
    const load = await closedLoop({
      concurrency,
      count: n,
      maxMs: 4 * 3600_000,
      op: async (i) => {
        await createJob(e.api, { nodePoolId: 'deep', shellExecutor: { command: 'true' } }, `q-${i}`);
        doneAt.push(performance.now() - t0);
        if (doneAt.length % 5000 === 0) o.log(`    ${doneAt.length} created in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      },
    });
    const tenth = Math.max(1, Math.floor(doneAt.length / 10));
    const rateOf = (from: number, to: number) => (to - from) / (((doneAt[to - 1] ?? 0) - (doneAt[from] ?? 0)) / 1000);
    const startRate = rateOf(0, tenth);
    const endRate = rateOf(doneAt.length - tenth, doneAt.length);
    o.log(`    ${load.completed} created (${load.errors} errors ${load.firstErrors[0] ?? ''}) in ${(load.elapsedMs / 1000).toFixed(0)} s: ${fmt(startRate)}/s first tenth, ${fmt(endRate)}/s last tenth`);
    // A queue cut short (refused creates, the time bound) is not the queue this figure is about.
    if (load.completed < n) throw new Error(`only ${load.completed} of ${n} jobs were created (${load.errors} errors; first: ${load.firstErrors[0] ?? 'none'})`);

    // Every request reaches the pool (its queue counts them all), and every job reports QUEUED. The
    // bound grows with the queue: a full run's 100,000 first tasks drained at 24-41/s on 2 cores
    // (docs/performance.md, run 11), past a fixed 30 minutes.
    const deadline = Date.now() + 30 * 60_000 + load.completed * 30;
    let inPool = 0;
    let lastLog = Date.now();
    while (Date.now() < deadline) {
      inPool = await internals(e).then((v) => v.queueSummary?.length ?? 0, () => inPool);
      if (inPool >= load.completed) break;
      if (Date.now() - lastLog >= 60_000) {
        lastLog = Date.now();
        o.log(`    ${inPool} of ${load.completed} in the pool's queue`);
      }
      await sleep(2000);
    }
    const lags = await queuedLags(e);
    const lag = summarize(lags);
    o.log(`    ${inPool} in the pool's queue, ${lags.length} QUEUED in the read model; created → QUEUED p50 ${fmt(lag.p50, 0)} ms, p99 ${fmt(lag.p99, 0)} ms`);
    // Every accepted job must be in the queue: a figure over a queue that lost some would hide it.
    if (inPool < load.completed) throw new Error(`${load.completed - inPool} of ${load.completed} accepted jobs never reached the pool's queue (${lags.length} say QUEUED)`);
    const rss1 = await serviceRss();
    const temporal1 = rssMiB(e.devServer.process.pid);
    const steps = summarize(await stepCost(e, window, 200));
    o.log(`    one scheduling step (pass over a ${window}-job window + store step) at this depth: p50 ${fmt(steps.p50, 2)} ms, p99 ${fmt(steps.p99, 2)} ms`);
    const burst = burstCost(50_000);
    o.log(`    one pool task handling 50,000 requests before its sync: ${fmt(burst.burstMs, 0)} ms (ten tasks of 5,000: ${fmt(burst.tenthsMs, 0)} ms, ratio ${fmt(burst.burstMs / burst.tenthsMs, 2)})`);

    // The holder ends (cancelled): how long until the head runs, and whether the queue then runs in its
    // order. Its order as the pool grants it (priority, then arrival at the pool) is read first.
    const drainCount = Math.min(Number(process.env.BENCH_QUEUE_DRAIN ?? (o.quick ? 100 : 1000)), load.completed);
    const order = await e.service.store.queuedJobs(POOL, drainCount);
    if (order.length < drainCount) throw new Error(`the pool's stored queue holds ${order.length} jobs, not the ${drainCount} to drain`);
    const idOf = (name: string) => name.split('/').pop() ?? name;
    const h0 = performance.now();
    const cancelled = await e.api.post(`/v1/accounts/default/batchJobs/holder:cancel`, {});
    if (cancelled.status !== 200) throw new Error(`cancelling the holder: ${cancelled.status} ${JSON.stringify(cancelled.body)}`);
    await waitState(e, idOf(order[0] ?? ''), ['RUNNING', 'COMPLETED'], 120_000);
    const headMs = performance.now() - h0;
    // One GPU runs them one at a time: a bound of 2 s a job, plus 5 minutes.
    await drain(e, order, drainCount * 2000 + 300_000, o.log);
    const drainPerSecond = drainCount / ((performance.now() - h0) / 1000);
    const inOrder = await ranInOrder(e, order);
    o.log(
      `    head RUNNING ${fmt(headMs, 0)} ms after the holder ended; the first ${drainCount} of the queue completed at ${fmt(drainPerSecond, 2)} jobs/s (one GPU): ` +
        `${inOrder.outOfOrder} started out of the queue's order, ${inOrder.ahead} other jobs started before the last of them`,
    );
    // A queue that runs out of order is a bug, not a figure.
    if (inOrder.outOfOrder > 0 || inOrder.ahead > 0) throw new Error(`the queue did not run in order: ${inOrder.problems.slice(0, 5).join('; ')}`);

    const perJobService = ((rss1 - rss0) * 1024) / Math.max(1, lags.length);
    const perJobTemporal = ((temporal1 - temporal0) * 1024) / Math.max(1, lags.length);
    return {
      name: 'queue',
      value: endRate,
      unit: `creates/s over the last tenth of ${load.completed} queued in one pool`,
      baseline: startRate,
      baselineUnit: 'creates/s over the first tenth',
      baselineLabel: 'the same run while the queue was shallow',
      ratio: endRate / startRate,
      extra:
        `created → QUEUED p50 ${fmt(lag.p50, 0)} / p99 ${fmt(lag.p99, 0)} ms; scheduling step p99 ${fmt(steps.p99, 2)} ms; ` +
        `${fmt(perJobService, 1)} KiB service + ${fmt(perJobTemporal, 1)} KiB Temporal per queued job; head ran ${fmt(headMs / 1000, 1)} s after the holder ended; ` +
        `the first ${drainCount} ran in the queue's order (${fmt(drainPerSecond, 2)} jobs/s); ` +
        `a 50,000-request burst in one pool task ${fmt(burst.burstMs, 0)} ms (${fmt(burst.burstMs / burst.tenthsMs, 2)}× ten tasks of 5,000)`,
      details: { n, concurrency, window, load, startRate, endRate, inPool, queued: lags.length, lag, steps, burst, rss0, rss1, temporal0, temporal1, perJobService, perJobTemporal, headMs, drainCount, drainPerSecond, inOrder: { outOfOrder: inOrder.outOfOrder, ahead: inOrder.ahead } },
    };
  } finally {
    await e.stop();
  }
}
