/**
 * Figure 5, the gang scheduler: bench/scheduler.ts's run() (a colleague's benchmark, reused as is) on
 * 1000 hosts × 8 GPUs with 10,000 queued jobs of 1–64 ranks (--quick: 100 hosts, 1000 jobs). The
 * figure is placement decisions per second; the baseline compares packing: hosts used against the
 * lower bound sum(ceil(ranks/8)) for our best-fit placement and for first-fit on the same trace.
 */
import { type FigureOptions, type FigureResult } from './lib/figure';
import { fmt } from './lib/stats';
import { run as schedulerBench } from './scheduler';

export async function run(o: FigureOptions): Promise<FigureResult> {
  const r = await schedulerBench({ quick: o.quick, log: (line) => o.log(`    ${line}`) });
  const get = (k: string) => r[k] ?? Number.NaN;
  return {
    name: 'scheduler',
    value: get('hostsRatio'),
    unit: `× the lower bound in hosts used (best-fit, ${get('hosts')} hosts × 8 GPUs, ${get('jobs')} jobs)`,
    baseline: get('firstFitHostsRatio'),
    baselineUnit: '× (first-fit, same trace)',
    baselineLabel: 'first-fit placement replayed on the same seeded trace',
    ratio: get('hostsRatio') / get('firstFitHostsRatio'),
    extra:
      `${fmt(get('decisionsPerSecond'), 0)} placement decisions/s, ${fmt(get('grantsPerSecond'), 0)} grants/s, ` +
      `schedule() pass p50/p99 ${fmt(get('passMedianMs'), 3)}/${fmt(get('passP99Ms'), 3)} ms; ` +
      `free whole hosts after each grant, median ${fmt(get('wholeFreeHostsMedianBestFit'), 0)} vs ${fmt(get('wholeFreeHostsMedianFirstFit'), 0)} first-fit ` +
      `(mean ${fmt(get('wholeFreeHostsMeanBestFit'), 1)} vs ${fmt(get('wholeFreeHostsMeanFirstFit'), 1)}); ` +
      `sharing on (priorities, 20 accounts' quotas and fair share): ${fmt(get('sharedDecisionsPerSecond'), 0)} decisions/s, ` +
      `pass p50/p99 ${fmt(get('sharedPassMedianMs'), 3)}/${fmt(get('sharedPassP99Ms'), 3)} ms, ` +
      `fairness error max/mean ${fmt(get('fairnessErrorMax') * 100, 2)}/${fmt(get('fairnessErrorMean') * 100, 2)} points`,
    details: r,
  };
}
