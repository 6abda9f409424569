/**
 * Rank packing: choose hosts for a gang of `ranks` slots, all at once or not at all.
 *
 * 1. Use as few hosts as possible: k = the smallest number of hosts whose free slots cover the gang.
 * 2. Among placements on k hosts, keep the largest free blocks free: choose the k hosts whose free
 *    counts, read from the largest down, are lexicographically smallest. On a pool of identical hosts
 *    this keeps as many whole free hosts as any k-host placement can; below that level it keeps the
 *    biggest partly free hosts intact (fragmentation-aware best-fit).
 * 3. Fill the chosen hosts smallest first, so the slack stays together on the largest chosen host.
 * 4. Ties go to the host that comes first in pool order, so a decision is deterministic.
 *
 * The previous step 2 ("take the smallest host that still lets the rest cover the gang") could spend a
 * whole host needlessly: free [8, 6, 4, 3] and 10 ranks gave 3 + 7-of-8, where 6 + 4 also uses two hosts.
 *
 * Hosts are bucketed by free-slot count (FreeHostIndex), so a decision costs O(levels² log k + k)
 * and the scheduler can keep one index per pass and update it as it grants.
 */

export interface HostAvailability {
  /** Host id, unique in the pool. */
  host: string;
  /** Free slot indices (GPU indices, or [0] on a CPU host) this gang may use, ascending. */
  free: readonly number[];
}

export interface HostAssignment {
  host: string;
  /** Slot indices given to the gang on this host (GPU indices; [0] on a CPU host). */
  slots: number[];
}

/** One host chosen for a gang: its position in pool order and how many slots the gang takes there. */
export interface HostPick {
  index: number;
  take: number;
}

/** Smallest number of hosts whose free slots sum to at least `ranks`, or undefined if none can. */
export function minimumHosts(freeCounts: readonly number[], ranks: number): number | undefined {
  if (ranks <= 0) return 0;
  const sorted = [...freeCounts].filter((c) => c > 0).sort((a, b) => b - a);
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) {
    sum += sorted[i] ?? 0;
    if (sum >= ranks) return i + 1;
  }
  return undefined;
}

function isGangSize(ranks: number): boolean {
  return Number.isSafeInteger(ranks) && ranks >= 1;
}

/**
 * Free-slot counts of the hosts of a pool, by pool index, bucketed by count with each bucket in pool
 * order. Built once, then kept current with setFree, so repeated placements avoid rescanning the pool.
 */
export class FreeHostIndex {
  private readonly counts: Int32Array;
  /** buckets[c] = pool indices of hosts with exactly c free slots, ascending; bucket 0 is not kept. */
  private readonly buckets: number[][] = [[]];
  private sum = 0;

  constructor(freeCounts: ArrayLike<number>) {
    this.counts = new Int32Array(freeCounts.length);
    for (let i = 0; i < freeCounts.length; i++) this.setFree(i, freeCounts[i] ?? 0);
  }

  /** Free slots over all hosts. */
  get total(): number {
    return this.sum;
  }

  get size(): number {
    return this.counts.length;
  }

  free(index: number): number {
    return this.counts[index] ?? 0;
  }

  setFree(index: number, free: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.counts.length) throw new RangeError(`no host at index ${index}`);
    if (!Number.isInteger(free) || free < 0 || free > 0x7fffffff) throw new RangeError(`free slot count ${free} is not a count`);
    const old = this.counts[index] ?? 0;
    if (old === free) return;
    if (old > 0) {
      const bucket = this.buckets[old] ?? [];
      bucket.splice(lowerBound(bucket, index), 1);
    }
    if (free > 0) {
      while (this.buckets.length <= free) this.buckets.push([]);
      const bucket = this.buckets[free] ?? [];
      // Building in pool order appends; only updates need the ordered insert.
      if (bucket.length === 0 || (bucket[bucket.length - 1] ?? -1) < index) bucket.push(index);
      else bucket.splice(lowerBound(bucket, index), 0, index);
    }
    this.counts[index] = free;
    this.sum += free - old;
  }

  /** The packing decision (see the file comment): picks in pool order, or undefined if the gang does not fit. */
  place(ranks: number): HostPick[] | undefined {
    if (!isGangSize(ranks) || ranks > this.sum) return undefined;
    const top = this.buckets.length - 1;
    const size = (c: number): number => this.buckets[c]?.length ?? 0;
    // Sum of the `count` largest free counts on levels c and below.
    const largest = (c: number, count: number): number => {
      let sum = 0;
      let left = count;
      for (let l = c; l > 0 && left > 0; l--) {
        const use = Math.min(size(l), left);
        sum += use * l;
        left -= use;
      }
      return sum;
    };

    let k = 0;
    for (let c = top, need = ranks; c > 0 && need > 0; c--) {
      const use = Math.min(size(c), Math.ceil(need / c));
      k += use;
      need -= use * c;
    }

    // From the top level down, take as few hosts as still lets k hosts in all cover the gang. Taking
    // more at a level only raises the best reachable sum, so the fewest feasible is a binary search.
    const taken: number[] = new Array<number>(top + 1).fill(0);
    let hosts = 0;
    let sum = 0;
    for (let c = top; c > 0 && hosts < k; c--) {
      let lo = 0;
      let hi = Math.min(size(c), k - hosts);
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sum + mid * c + largest(c - 1, k - hosts - mid) >= ranks) hi = mid;
        else lo = mid + 1;
      }
      taken[c] = lo;
      hosts += lo;
      sum += lo * c;
    }
    if (sum < ranks) return undefined; // unreachable: k was computed from the same buckets

    const picks: HostPick[] = [];
    let need = ranks;
    for (let c = 1; c <= top && need > 0; c++) {
      const bucket = this.buckets[c] ?? [];
      for (let j = 0; j < (taken[c] ?? 0) && need > 0; j++) {
        const take = Math.min(c, need);
        picks.push({ index: bucket[j] ?? -1, take });
        need -= take;
      }
    }
    return picks.sort((a, b) => a.index - b.index);
  }
}

/** First position in the ascending array `a` whose value is ≥ x. */
function lowerBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((a[mid] ?? 0) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Places `ranks` slots on `hosts` (given in pool order). Returns assignments in pool order, or
 * undefined when the free slots cannot hold the whole gang.
 */
export function placeGang(hosts: readonly HostAvailability[], ranks: number): HostAssignment[] | undefined {
  const picks = new FreeHostIndex(hosts.map((h) => h.free.length)).place(ranks);
  if (!picks) return undefined;
  return picks.map(({ index, take }) => {
    const h = hosts[index];
    if (!h) throw new Error('placement chose a host that does not exist');
    return { host: h.host, slots: h.free.slice(0, take) };
  });
}

/** The baseline the benchmark compares against: hosts in pool order, each filled as far as it goes. */
export function placeFirstFit(hosts: readonly HostAvailability[], ranks: number): HostAssignment[] | undefined {
  let total = 0;
  for (const h of hosts) total += h.free.length;
  if (!isGangSize(ranks) || total < ranks) return undefined;
  const out: HostAssignment[] = [];
  let need = ranks;
  for (const h of hosts) {
    if (need === 0) break;
    if (h.free.length === 0) continue;
    const take = Math.min(h.free.length, need);
    out.push({ host: h.host, slots: h.free.slice(0, take) });
    need -= take;
  }
  return out;
}
