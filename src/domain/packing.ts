/**
 * Rank packing: choose hosts for a gang of `ranks` slots, all at once or not at all.
 *
 * 1. Use as few hosts as possible: k = the smallest number of hosts whose free slots cover the gang.
 * 2. Among placements on k hosts, keep whole free hosts free: fill hosts in best-fit order, taking
 *    each time the host with the fewest free slots that still lets the remaining hosts cover the rest.
 * 3. Ties go to the host that comes first in pool order, so a decision is deterministic.
 *
 * Hosts are bucketed by free-slot count, so a decision costs O(k × maxSlots + H) instead of sorting.
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

/**
 * Places `ranks` slots on `hosts` (given in pool order). Returns assignments in pool order, or
 * undefined when the free slots cannot hold the whole gang.
 */
export function placeGang(hosts: readonly HostAvailability[], ranks: number): HostAssignment[] | undefined {
  if (!Number.isInteger(ranks) || ranks < 1) return undefined;
  let maxFree = 0;
  let total = 0;
  for (const h of hosts) {
    total += h.free.length;
    if (h.free.length > maxFree) maxFree = h.free.length;
  }
  if (total < ranks) return undefined;

  // buckets[c] = indices (pool order) of hosts with exactly c free slots, consumed from the front.
  const buckets: number[][] = Array.from({ length: maxFree + 1 }, () => []);
  hosts.forEach((h, i) => {
    if (h.free.length > 0) buckets[h.free.length]?.push(i);
  });
  const heads = new Array<number>(maxFree + 1).fill(0);
  const remainingIn = (c: number) => (buckets[c]?.length ?? 0) - (heads[c] ?? 0);

  // k: the fewest hosts that can cover the gang.
  let k = 0;
  {
    let need = ranks;
    for (let c = maxFree; c > 0 && need > 0; c--) {
      const n = remainingIn(c);
      const use = Math.min(n, Math.ceil(need / c));
      k += use;
      need -= use * c;
    }
  }

  // Sum of the `count` largest free counts still unchosen, treating one host of size `skip` as taken.
  const topSum = (count: number, skip: number): number => {
    let sum = 0;
    let left = count;
    let skipped = false;
    for (let c = maxFree; c > 0 && left > 0; c--) {
      let n = remainingIn(c);
      if (!skipped && c === skip && n > 0) {
        n -= 1;
        skipped = true;
      }
      const use = Math.min(n, left);
      sum += use * c;
      left -= use;
    }
    return sum;
  };

  const chosen: Array<{ index: number; take: number }> = [];
  let need = ranks;
  for (let step = 0; step < k && need > 0; step++) {
    const after = k - step - 1;
    let pick: number | undefined;
    for (let c = 1; c <= maxFree; c++) {
      if (remainingIn(c) === 0) continue;
      if (Math.min(c, need) + topSum(after, c) >= need) {
        pick = c;
        break;
      }
    }
    if (pick === undefined) return undefined; // unreachable when k was computed from the same buckets
    const index = buckets[pick]?.[heads[pick] ?? 0];
    if (index === undefined) return undefined;
    heads[pick] = (heads[pick] ?? 0) + 1;
    const take = Math.min(pick, need);
    chosen.push({ index, take });
    need -= take;
  }
  if (need > 0) return undefined;

  return chosen
    .sort((a, b) => a.index - b.index)
    .map(({ index, take }) => {
      const h = hosts[index];
      if (!h) throw new Error('placement chose a host that does not exist');
      return { host: h.host, slots: h.free.slice(0, take) };
    });
}

/** The baseline the benchmark compares against: hosts in pool order, each filled as far as it goes. */
export function placeFirstFit(hosts: readonly HostAvailability[], ranks: number): HostAssignment[] | undefined {
  let total = 0;
  for (const h of hosts) total += h.free.length;
  if (ranks < 1 || total < ranks) return undefined;
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
