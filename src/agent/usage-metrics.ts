/**
 * What the isolated ranks of this process's agents used, added up for /metrics: CPU seconds, peak
 * memory (a histogram) and out-of-memory kills, by account and pool. Agents on other machines keep
 * their own totals (they are in their logs); the API's /metrics shows the ones beside it.
 */
export const PEAK_MEMORY_BUCKETS = [256 * 2 ** 20, 2 ** 30, 4 * 2 ** 30, 16 * 2 ** 30, 64 * 2 ** 30];

export interface RankUsageTotals {
  ranks: number;
  cpuSeconds: number;
  oomKills: number;
  /** Ranks whose peak memory was at most each bucket of PEAK_MEMORY_BUCKETS (cumulative). */
  peakBuckets: number[];
  peakSum: number;
  peakCount: number;
}

const totals = new Map<string, RankUsageTotals>();

export function recordRankUsage(account: string, pool: string, usage: { cpuSeconds?: number; peakMemoryBytes?: number; oomKills?: number }): void {
  const key = JSON.stringify([account, pool]);
  const t = totals.get(key) ?? { ranks: 0, cpuSeconds: 0, oomKills: 0, peakBuckets: PEAK_MEMORY_BUCKETS.map(() => 0), peakSum: 0, peakCount: 0 };
  t.ranks += 1;
  t.cpuSeconds += usage.cpuSeconds ?? 0;
  t.oomKills += usage.oomKills ?? 0;
  if (usage.peakMemoryBytes !== undefined) {
    PEAK_MEMORY_BUCKETS.forEach((b, i) => {
      if ((usage.peakMemoryBytes ?? 0) <= b) t.peakBuckets[i] = (t.peakBuckets[i] ?? 0) + 1;
    });
    t.peakSum += usage.peakMemoryBytes;
    t.peakCount += 1;
  }
  totals.set(key, t);
}

export function rankUsageTotals(): Array<{ account: string; pool: string } & RankUsageTotals> {
  return [...totals].map(([key, t]) => {
    const [account = '', pool = ''] = JSON.parse(key) as [string, string];
    return { account, pool, ...t };
  });
}
