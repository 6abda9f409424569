/**
 * Sharing a pool: the rules a shared pass (scheduler.ts `scheduleShared`) applies on top of gang
 * placement and the head reservation. Pure and deterministic: time is whatever `now` the caller gives.
 *
 * - Order: priority (higher first), then, among accounts waiting at that priority, fair share (the
 *   account furthest below its configured share first), then arrival (seq). Without fair share,
 *   priority then arrival. The head (the first request that does not fit) keeps its place and its
 *   reservation until it is granted; only a request of strictly higher priority goes before it.
 * - Quotas: an account never holds more than its limit of slots on the pool; a request that would
 *   take it past the limit is passed over (it is not the head and reserves nothing).
 * - Fair share: an account's share is (decayed usage + slots held) / weight, where decayed usage is
 *   the slots it held, averaged with exponentially decaying weights of the given half-life. A pool has
 *   one kind of resource (its slots: GPUs, or hosts on CPU pools), so the dominant share is the slot share.
 * - Preemption: a head that does not fit may stop running jobs of strictly lower priority that are
 *   preemptible; victims are the lowest-priority ones that make it fit, and the fewest of those.
 * - Backfill: a request that declares maxRunMs may use the head's reserved slots that are free now
 *   when it ends before the latest time the head's reserved slots will all be free, computed from the
 *   declared ends of their holders (Slurm's conservative backfill); never when a holder declares none.
 */
import { type Allocation, type QueuedRequest, type Reservation, type SchedulerState } from './scheduler';
import { durationMs } from './job-policy';

/** The documented range of `priority` (batchd extension); default 0. */
export const PRIORITY_MIN = -1000;
export const PRIORITY_MAX = 1000;
export const DEFAULT_PRIORITY = 0;

/** The account of requests that name none. */
export const NO_ACCOUNT = '';

export interface FairShareConfig {
  /** Usage counts half as much after this long. */
  halfLifeMs: number;
  /** Relative shares per account; accounts not listed get `defaultWeight` (1). */
  weights?: Readonly<Record<string, number>>;
  defaultWeight?: number;
}

export interface SharingPolicy {
  /** Milliseconds, the caller's clock (workflow time in the pool). */
  now: number;
  /** Slot limits per account on this pool; an account not listed has none. */
  quotas?: Readonly<Record<string, number>>;
  fairShare?: FairShareConfig;
  /** Default true: a head may preempt lower-priority preemptible jobs. */
  preemption?: boolean;
  /** Default true: requests declaring maxRunMs may use the head's free reserved slots when they end in time. */
  backfill?: boolean;
}

/** Decayed slot usage per account, as of `at` (ms): a constant holding of n slots tends to n. */
export interface AccountUsage {
  at: number;
  slots: Record<string, number>;
}

export const priorityOf = (r: { priority?: number | undefined }): number => r.priority ?? DEFAULT_PRIORITY;
export const accountOf = (r: { account?: string | undefined }): string => r.account ?? NO_ACCOUNT;

export function isPriority(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= PRIORITY_MIN && x <= PRIORITY_MAX;
}

/** Slots each account holds on the pool now. */
export function heldByAccount(allocations: Readonly<Record<string, Allocation>>): Map<string, number> {
  const held = new Map<string, number>();
  for (const id in allocations) {
    const a = allocations[id];
    if (!a) continue;
    const account = accountOf(a);
    held.set(account, (held.get(account) ?? 0) + a.ranks);
  }
  return held;
}

export function weightOf(config: FairShareConfig, account: string): number {
  const w = config.weights?.[account] ?? config.defaultWeight ?? 1;
  return w > 0 ? w : 1;
}

/**
 * Brings decayed usage up to `now` given what each account has held since `usage.at` (exact for a
 * constant holding: u ← held + (u − held)·2^(−Δt/halfLife)). Call before anything changes what is held.
 */
export function accrueUsage(usage: AccountUsage, held: ReadonlyMap<string, number>, now: number, halfLifeMs: number): void {
  const dt = now - usage.at;
  if (!(dt > 0)) {
    if (usage.at === 0 && Object.keys(usage.slots).length === 0) usage.at = now;
    return;
  }
  const keep = halfLifeMs > 0 ? Math.pow(2, -dt / halfLifeMs) : 0;
  const accounts = new Set([...Object.keys(usage.slots), ...held.keys()]);
  for (const account of accounts) {
    const h = held.get(account) ?? 0;
    const u = h + ((usage.slots[account] ?? 0) - h) * keep;
    if (u < 1e-9 && h === 0) delete usage.slots[account];
    else usage.slots[account] = u;
  }
  usage.at = now;
}

/** The key fair share orders accounts by (lower goes first). */
export function shareKey(config: FairShareConfig, usage: AccountUsage | undefined, held: number, account: string): number {
  return ((usage?.slots[account] ?? 0) + held) / weightOf(config, account);
}

/** Would granting `ranks` more slots to the account take it past its quota? */
export function overQuota(quotas: Readonly<Record<string, number>> | undefined, account: string, held: number, ranks: number): boolean {
  const limit = quotas?.[account];
  return limit !== undefined && held + ranks > limit;
}

// ---------------------------------------------------------------------------------------------
// Preemption

export interface VictimCandidate {
  id: string;
  priority: number;
  /** Slots it would free that the preemptor could use. */
  slots: number;
  /** When it started (ms); among equals, the most recently started loses least work. */
  startedAt: number;
}

/**
 * The victims that free at least `need` slots: the lowest highest-priority among all sets that do,
 * then the fewest victims at that bound, then (ties) lower priority and later start first. Undefined
 * when all candidates together free too little. Only pass candidates that may be preempted.
 */
export function chooseVictims(candidates: readonly VictimCandidate[], need: number): VictimCandidate[] | undefined {
  if (need <= 0) return [];
  const byPriority = [...new Set(candidates.map((c) => c.priority))].sort((a, b) => a - b);
  for (const bound of byPriority) {
    const allowed = candidates.filter((c) => c.priority <= bound);
    if (allowed.reduce((n, c) => n + c.slots, 0) < need) continue;
    // The k largest give the most slots any k can: the fewest is the first k whose largest reach `need`.
    const sorted = [...allowed].sort((a, b) => b.slots - a.slots || a.priority - b.priority || b.startedAt - a.startedAt || (a.id < b.id ? -1 : 1));
    const out: VictimCandidate[] = [];
    let freed = 0;
    for (const c of sorted) {
      if (freed >= need) break;
      out.push(c);
      freed += c.slots;
    }
    return out;
  }
  return undefined;
}

/**
 * Running jobs the request may preempt: preemptible, strictly lower priority, not already being
 * preempted; counted by their slots on hosts the request may use (`unusable`: the others, usually none).
 */
export function preemptionCandidates(state: SchedulerState, request: QueuedRequest, unusable: ReadonlySet<string>): VictimCandidate[] {
  const p = priorityOf(request);
  const pending = state.preemptions ?? {};
  const out: VictimCandidate[] = [];
  for (const id in state.allocations) {
    const a = state.allocations[id];
    if (!a?.preemptible || priorityOf(a) >= p || Object.hasOwn(pending, id)) continue;
    let slots = a.ranks;
    if (unusable.size > 0) for (const { host, slots: s } of a.hosts) if (unusable.has(host)) slots -= s.length;
    if (slots > 0) out.push({ id, priority: priorityOf(a), slots, startedAt: a.startedAt ?? 0 });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Backfill

/**
 * The latest time by which the head's reserved slots are all free, from the declared ends of the
 * jobs holding slots on its reserved hosts: per host, the time enough of them have ended for the
 * count it reserves there. Infinity when that depends on a job with no declared end.
 */
export function reservationFreeBy(state: SchedulerState, reservation: Reservation, now: number): number {
  let latest = now;
  for (const host of state.hosts) {
    const want = reservation.counts[host.id];
    if (want === undefined || !Object.hasOwn(reservation.counts, host.id)) continue;
    let free = 0;
    const holding = new Map<string, number>();
    for (const holder of host.used) {
      if (holder === null) free++;
      else holding.set(holder, (holding.get(holder) ?? 0) + 1);
    }
    if (free >= want) continue;
    // A job being preempted is stopping now: nothing may be backfilled in front of it.
    const endOf = (id: string) => (state.preemptions && Object.hasOwn(state.preemptions, id) ? now : (state.allocations[id]?.endsBy ?? Number.POSITIVE_INFINITY));
    const ends = [...holding].map(([id, n]) => ({ end: endOf(id), n })).sort((a, b) => a.end - b.end);
    for (const { end, n } of ends) {
      free += n;
      if (free >= want) {
        latest = Math.max(latest, end);
        break;
      }
    }
    if (free < want) return Number.POSITIVE_INFINITY;
  }
  return latest;
}

/** May the request be backfilled into the head's free reserved slots, given when those are certain to be free? */
export function fitsBeforeHead(request: QueuedRequest, now: number, freeBy: number): boolean {
  const d = request.maxRunMs;
  return d !== undefined && Number.isFinite(freeBy) && d > 0 && now + d <= freeBy;
}

// ---------------------------------------------------------------------------------------------
// Why a request waits, in numbers

/** What a waiting request's account holds against its quota and its fair share (for its status). */
export interface ShareStanding {
  quota?: { account: string; held: number; limit: number };
  share?: { account: string; held: number; fairSlots: number; weight: number; totalWeight: number };
}

/**
 * The numbers behind a queued request's wait on a shared pool: its account's quota when the request
 * would take the account past it, and, with fair share on and several accounts active (waiting or
 * holding), what its account holds beside its fair part of the pool.
 */
export function shareStanding(state: SchedulerState, id: string, policy: { quotas?: Readonly<Record<string, number>>; fairShare?: FairShareConfig } | undefined): ShareStanding {
  const request = state.queue.find((r) => r.id === id);
  if (!request || !policy) return {};
  const account = accountOf(request);
  const held = heldByAccount(state.allocations);
  const holds = held.get(account) ?? 0;
  const out: ShareStanding = {};
  const limit = policy.quotas?.[account];
  if (limit !== undefined && holds + request.ranks > limit) out.quota = { account, held: holds, limit };
  const fair = policy.fairShare;
  if (fair) {
    const active = new Set<string>([...held.keys(), ...state.queue.map(accountOf)]);
    if (active.size > 1) {
      const slots = state.hosts.filter((h) => h.status !== 'draining').reduce((n, h) => n + h.slots, 0);
      const weight = weightOf(fair, account);
      const totalWeight = [...active].reduce((n, a) => n + weightOf(fair, a), 0);
      out.share = { account, held: holds, fairSlots: Math.round((slots * weight * 10) / totalWeight) / 10, weight, totalWeight };
    }
  }
  return out;
}

/**
 * What a job's request tells its pool beyond its size: its account and priority, its declared run
 * time (backfill), and whether this attempt may be preempted: its policy retries PREEMPTED and an
 * attempt is left to retry with. The job's workflow and a recovered pool's orphan search agree on it.
 */
export function requestTermsOf(
  account: string,
  spec: { priority?: number; maxRunDuration?: string; retryPolicy?: { maxAttempts: number; conditions?: readonly string[] } },
  attempt: number,
): { account: string; priority?: number; maxRunMs?: number; preemptible?: true } {
  const runMs = spec.maxRunDuration === undefined ? undefined : durationMs(spec.maxRunDuration);
  const policy = spec.retryPolicy;
  return {
    account,
    ...(spec.priority !== undefined && spec.priority !== DEFAULT_PRIORITY ? { priority: spec.priority } : {}),
    ...(runMs !== undefined ? { maxRunMs: runMs } : {}),
    ...(policy?.conditions?.includes('PREEMPTED') === true && attempt < policy.maxAttempts ? { preemptible: true as const } : {}),
  };
}
