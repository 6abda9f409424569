/**
 * Scheduler benchmark: a seeded, reproducible trace on one GPU pool. Every job is queued up front; then
 * running jobs are released one at a time in a seeded random order and the queue is scheduled after
 * each release, until every job has run. The same trace is replayed with placeFirstFit swapped in to
 * compare how many whole free hosts each placement policy keeps.
 *
 *   node --import tsx bench/scheduler.ts [--quick] [--seed=N]
 *
 * Full: 1000 hosts × 8 GPUs, 10,000 jobs; --quick: 100 hosts, 1000 jobs. Sizes 1–64 ranks, uniform.
 *
 * The same trace is replayed a third time through scheduleShared with sharing on (src/domain/sharing.ts):
 * 20 accounts of weights 1–4, priorities -2..2 with half the jobs preemptible, a quota per account of a
 * quarter of the pool, fair share with a half-life of 500 passes (the clock advances 1 ms per pass). A
 * preempted job queues again at once (it retries PREEMPTED). The fairness error is |share received −
 * share configured| per account, over the passes while every account still has work queued (after
 * that the shares received are whatever work is left).
 */
import { cpus, loadavg } from 'node:os';
import { placeFirstFit } from '../src/domain/packing';
import {
  addHost,
  type Allocation,
  emptyScheduler,
  enqueue,
  type PlacementPolicy,
  release,
  schedule,
  scheduleShared,
  type ScheduleStats,
} from '../src/domain/scheduler';
import { heldByAccount, type SharingPolicy } from '../src/domain/sharing';
import { prng } from './lib/stats';

export interface SchedulerBenchOptions {
  quick?: boolean;
  hosts?: number;
  jobs?: number;
  seed?: number;
  /** Where the report lines go; console.log by default. */
  log?: (line: string) => void;
}

const GPUS_PER_HOST = 8;
const SIZES = [1, 2, 4, 8, 16, 32, 64] as const;

interface TraceResult {
  passes: number;
  passNs: number[];
  /** CPU time of each pass (user + system, µs): unlike wall time, not inflated when the machine is busy. */
  passCpuUs: number[];
  scheduleNs: number;
  stats: ScheduleStats;
  hostsUsed: number;
  hostsLowerBound: number;
  /** Hosts with all 8 GPUs free, sampled after each grant. */
  wholeFree: number[];
  leftQueued: number;
}

function runTrace(hosts: number, sizes: readonly number[], seed: number, place?: PlacementPolicy): TraceResult {
  const state = emptyScheduler();
  for (let h = 0; h < hosts; h++) addHost(state, `h${h}`, GPUS_PER_HOST);
  sizes.forEach((ranks, j) => enqueue(state, `j${j}`, ranks));

  // Free GPUs per host and the count of wholly free hosts, kept outside the scheduler so sampling costs O(1).
  const free = new Map(state.hosts.map((h) => [h.id, GPUS_PER_HOST]));
  let whole = hosts;
  const take = (a: Allocation, sign: 1 | -1): void => {
    for (const { host, slots } of a.hosts) {
      const before = free.get(host) ?? 0;
      const after = before - sign * slots.length;
      free.set(host, after);
      if (before === GPUS_PER_HOST) whole--;
      if (after === GPUS_PER_HOST) whole++;
    }
  };

  const pickRelease = prng(seed ^ 0x5bd1e995);
  const live: Allocation[] = [];
  const result: TraceResult = {
    passes: 0,
    passNs: [],
    passCpuUs: [],
    scheduleNs: 0,
    stats: { considered: 0, granted: 0 },
    hostsUsed: 0,
    hostsLowerBound: 0,
    wholeFree: [],
    leftQueued: 0,
  };
  const options = place ? { place, stats: result.stats } : { stats: result.stats };
  for (;;) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const grants = schedule(state, options);
    const ns = Number(process.hrtime.bigint() - t0);
    const cpu = process.cpuUsage(c0);
    result.passes++;
    result.passNs.push(ns);
    result.passCpuUs.push(cpu.user + cpu.system);
    result.scheduleNs += ns;
    for (const g of grants) {
      live.push(g);
      take(g, 1);
      result.hostsUsed += g.hosts.length;
      result.hostsLowerBound += Math.ceil(g.ranks / GPUS_PER_HOST);
      result.wholeFree.push(whole);
    }
    if (live.length === 0) break;
    const i = Math.floor(pickRelease() * live.length);
    const done = live[i];
    const last = live.pop();
    if (!done || !last) break;
    if (i < live.length) live[i] = last;
    release(state, done.id);
    take(done, -1);
  }
  result.leftQueued = state.queue.length;
  return result;
}

const ACCOUNTS = 20;

interface SharedTraceResult {
  passNs: number[];
  scheduleNs: number;
  stats: ScheduleStats;
  preemptions: number;
  leftQueued: number;
  /** max and mean over accounts of |share received − share configured| while all accounts had work queued. */
  fairnessErrorMax: number;
  fairnessErrorMean: number;
  backloggedPasses: number;
}

function runSharedTrace(hosts: number, sizes: readonly number[], seed: number): SharedTraceResult {
  const state = emptyScheduler();
  for (let h = 0; h < hosts; h++) addHost(state, `h${h}`, GPUS_PER_HOST);
  const pick = prng(seed ^ 0x2545f491);
  const weights: Record<string, number> = {};
  const quotas: Record<string, number> = {};
  for (let a = 0; a < ACCOUNTS; a++) {
    weights[`acct${a}`] = 1 + (a % 4);
    quotas[`acct${a}`] = Math.floor((hosts * GPUS_PER_HOST) / 4);
  }
  const terms = sizes.map(() => ({
    account: `acct${Math.floor(pick() * ACCOUNTS)}`,
    priority: Math.floor(pick() * 5) - 2,
    preemptible: pick() < 0.5,
  }));
  sizes.forEach((ranks, j) => enqueue(state, `j${j}`, ranks, undefined, terms[j]));
  const queuedBy = new Map<string, number>();
  for (const t of terms) queuedBy.set(t.account, (queuedBy.get(t.account) ?? 0) + 1);

  const policy: Omit<SharingPolicy, 'now'> = { quotas, fairShare: { halfLifeMs: 500, weights } };
  const result: SharedTraceResult = {
    passNs: [],
    scheduleNs: 0,
    stats: { considered: 0, granted: 0 },
    preemptions: 0,
    leftQueued: 0,
    fairnessErrorMax: Number.NaN,
    fairnessErrorMean: Number.NaN,
    backloggedPasses: 0,
  };
  const received = new Map<string, number>();
  let measured = true;
  const pickRelease = prng(seed ^ 0x68e31da4);
  const live: string[] = [];
  const liveAt = new Map<string, number>();
  const drop = (id: string) => {
    const i = liveAt.get(id);
    if (i === undefined) return;
    const last = live.pop();
    if (last !== undefined && last !== id) {
      live[i] = last;
      liveAt.set(last, i);
    }
    liveAt.delete(id);
  };
  for (let now = 0; ; now++) {
    const t0 = process.hrtime.bigint();
    const pass = scheduleShared(state, { ...policy, now }, { stats: result.stats });
    const ns = Number(process.hrtime.bigint() - t0);
    result.passNs.push(ns);
    result.scheduleNs += ns;
    for (const g of pass.grants) {
      liveAt.set(g.id, live.length);
      live.push(g.id);
      const account = terms[Number(g.id.slice(1))]?.account ?? '';
      queuedBy.set(account, (queuedBy.get(account) ?? 0) - 1);
    }
    for (const { victim } of pass.preempt) {
      result.preemptions++;
      release(state, victim);
      drop(victim);
      const t = terms[Number(victim.slice(1))];
      if (t) queuedBy.set(t.account, (queuedBy.get(t.account) ?? 0) + 1);
      enqueue(state, victim, sizes[Number(victim.slice(1))] ?? 1, undefined, t);
    }
    if (measured && [...queuedBy.values()].some((n) => n <= 0)) measured = false;
    if (measured) {
      result.backloggedPasses++;
      for (const [account, held] of heldByAccount(state.allocations)) received.set(account, (received.get(account) ?? 0) + held);
    }
    if (pass.preempt.length > 0) continue;
    if (live.length === 0) break;
    const done = live[Math.floor(pickRelease() * live.length)];
    if (done === undefined) break;
    release(state, done);
    drop(done);
  }
  result.leftQueued = state.queue.length;
  const total = [...received.values()].reduce((a, b) => a + b, 0);
  const wsum = Object.values(weights).reduce((a, b) => a + b, 0);
  const errors = Object.entries(weights).map(([account, w]) => Math.abs((received.get(account) ?? 0) / total - w / wsum));
  result.fairnessErrorMax = Math.max(...errors);
  result.fairnessErrorMean = mean(errors);
  return result;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

const mean = (xs: readonly number[]) => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
const median = (xs: readonly number[]) => quantile([...xs].sort((a, b) => a - b), 0.5);

export function run(options: SchedulerBenchOptions = {}): Promise<Record<string, number>> {
  const log = options.log ?? ((line: string) => console.log(line));
  const hosts = options.hosts ?? (options.quick ? 100 : 1000);
  const jobs = options.jobs ?? (options.quick ? 1000 : 10_000);
  const seed = options.seed ?? 1;

  const pickSize = prng(seed);
  const sizes = Array.from({ length: jobs }, () => SIZES[Math.floor(pickSize() * SIZES.length)] ?? 1);
  const cpu = cpus();
  log(`scheduler bench: ${hosts} hosts × ${GPUS_PER_HOST} GPUs, ${jobs} jobs of ${SIZES.join('/')} ranks, seed ${seed}`);
  log(`node ${process.version}; CPU ${cpu[0]?.model ?? 'unknown'} × ${cpu.length}; load average ${loadavg()[0]?.toFixed(1) ?? '?'}`);

  const started = process.hrtime.bigint();
  const best = runTrace(hosts, sizes, seed);
  const first = runTrace(hosts, sizes, seed, placeFirstFit);
  const shared = runSharedTrace(hosts, sizes, seed);
  if (shared.leftQueued > 0) throw new Error(`the shared trace ended with ${shared.leftQueued} jobs still queued`);
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (best.leftQueued > 0 || first.leftQueued > 0) throw new Error(`trace ended with jobs still queued (${best.leftQueued}, ${first.leftQueued})`);

  const scheduleSeconds = best.scheduleNs / 1e9;
  const passMs = best.passNs.map((ns) => ns / 1e6).sort((a, b) => a - b);
  const passCpuMs = best.passCpuUs.map((us) => us / 1e3).sort((a, b) => a - b);
  const sharedPassMs = shared.passNs.map((ns) => ns / 1e6).sort((a, b) => a - b);
  const r: Record<string, number> = {
    hosts,
    jobs,
    seed,
    passes: best.passes,
    decisions: best.stats.considered,
    grants: best.stats.granted,
    decisionsPerSecond: best.stats.considered / scheduleSeconds,
    grantsPerSecond: best.stats.granted / scheduleSeconds,
    passMedianMs: quantile(passMs, 0.5),
    passP99Ms: quantile(passMs, 0.99),
    passMaxMs: passMs[passMs.length - 1] ?? Number.NaN,
    firstPassMs: (best.passNs[0] ?? Number.NaN) / 1e6,
    passCpuMedianMs: quantile(passCpuMs, 0.5),
    passCpuP99Ms: quantile(passCpuMs, 0.99),
    scheduleSeconds,
    hostsUsed: best.hostsUsed,
    hostsLowerBound: best.hostsLowerBound,
    hostsRatio: best.hostsUsed / best.hostsLowerBound,
    firstFitHostsUsed: first.hostsUsed,
    firstFitHostsRatio: first.hostsUsed / first.hostsLowerBound,
    wholeFreeHostsMedianBestFit: median(best.wholeFree),
    wholeFreeHostsMeanBestFit: mean(best.wholeFree),
    wholeFreeHostsMedianFirstFit: median(first.wholeFree),
    wholeFreeHostsMeanFirstFit: mean(first.wholeFree),
    firstFitPasses: first.passes,
    sharedDecisionsPerSecond: shared.stats.considered / (shared.scheduleNs / 1e9),
    sharedGrantsPerSecond: shared.stats.granted / (shared.scheduleNs / 1e9),
    sharedPasses: shared.passNs.length,
    sharedPassMedianMs: quantile(sharedPassMs, 0.5),
    sharedPassP99Ms: quantile(sharedPassMs, 0.99),
    sharedPassMaxMs: sharedPassMs[sharedPassMs.length - 1] ?? Number.NaN,
    sharedPreemptions: shared.preemptions,
    fairnessErrorMax: shared.fairnessErrorMax,
    fairnessErrorMean: shared.fairnessErrorMean,
    fairnessBackloggedPasses: shared.backloggedPasses,
    wallSeconds,
  };
  const f = (x: number, d = 1) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  log(`placement decisions/s (queued requests considered by a pass): ${f(r.decisionsPerSecond ?? 0, 0)} (${r.decisions} in ${f(scheduleSeconds, 2)} s of schedule())`);
  log(`grants/s: ${f(r.grantsPerSecond ?? 0, 0)} (${r.grants} grants over ${r.passes} passes)`);
  log(`schedule() pass median: ${f(r.passMedianMs ?? 0, 3)} ms`);
  log(`schedule() pass p99: ${f(r.passP99Ms ?? 0, 3)} ms (max ${f(r.passMaxMs ?? 0, 1)} ms; first pass, onto the empty pool: ${f(r.firstPassMs ?? 0, 1)} ms)`);
  log(`schedule() pass CPU time median / p99: ${f(r.passCpuMedianMs ?? 0, 3)} / ${f(r.passCpuP99Ms ?? 0, 3)} ms`);
  log(`hosts used vs lower bound sum(ceil(ranks/8)): ${r.hostsUsed} vs ${r.hostsLowerBound}, ratio ${f(r.hostsRatio ?? 0, 3)} (first-fit ${r.firstFitHostsUsed}, ratio ${f(r.firstFitHostsRatio ?? 0, 3)})`);
  log(`free whole hosts after each grant, median: best-fit ${f(r.wholeFreeHostsMedianBestFit ?? 0, 0)} vs first-fit ${f(r.wholeFreeHostsMedianFirstFit ?? 0, 0)}`);
  log(`free whole hosts after each grant, mean: best-fit ${f(r.wholeFreeHostsMeanBestFit ?? 0)} vs first-fit ${f(r.wholeFreeHostsMeanFirstFit ?? 0)}`);
  log(
    `shared (priorities -2..2, ${ACCOUNTS} accounts, quotas, fair share): ${f(r.sharedDecisionsPerSecond ?? 0, 0)} placement decisions/s, ` +
      `pass median / p99 ${f(r.sharedPassMedianMs ?? 0, 3)} / ${f(r.sharedPassP99Ms ?? 0, 3)} ms (max ${f(r.sharedPassMaxMs ?? 0, 1)}), ` +
      `${r.sharedPasses} passes, ${r.sharedPreemptions} preemptions; beside FIFO ${f(r.decisionsPerSecond ?? 0, 0)}/s, p99 ${f(r.passP99Ms ?? 0, 3)} ms`,
  );
  log(
    `fairness error |received − configured| over the ${r.fairnessBackloggedPasses} passes while every account had work queued: ` +
      `max ${f((r.fairnessErrorMax ?? 0) * 100, 2)} points, mean ${f((r.fairnessErrorMean ?? 0) * 100, 2)} points`,
  );
  log(`wall time (three traces): ${f(wallSeconds, 1)} s`);
  return Promise.resolve(r);
}

if (require.main === module) {
  const seedArg = process.argv.find((a) => a.startsWith('--seed='));
  run({ quick: process.argv.includes('--quick'), ...(seedArg ? { seed: Number(seedArg.slice('--seed='.length)) } : {}) }).catch(
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
