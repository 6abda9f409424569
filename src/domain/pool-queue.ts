/**
 * A node pool's capacity and queue as its workflow carries them: the scheduler state (hosts, slot
 * owners, allocations, head reservation), the jobs it knows, and the bookkeeping of a queue that lives
 * in durable storage with only its head in memory.
 *
 * Why a window: a workflow's state crosses continue-as-new as one payload (2 MiB at most) and every
 * signal stays in its history until then, so a pool that held its whole queue died at about 12,000
 * queued jobs. Here the queue's rows live in the pool store (one row per waiting job, written only by
 * the pool's workflow) and the workflow keeps the first `windowSize` of them, in order, as the
 * scheduler's queue. Passes look at the window only, as Slurm's backfill looks at the first
 * `bf_max_job_test` jobs: a job further back waits its turn even when it would fit now.
 *
 * Order: priority (higher first), then arrival (`seq`); a request's key is (−priority, seq). The store
 * reads in the same order, so the window always holds the first requests of the whole queue: a job of
 * higher priority queued behind 100,000 others is in the window at once.
 *
 * Invariant: the window holds exactly the queued requests whose key is at most the boundary
 * (`loadedPriority`, `loadedThrough`), or every queued request when `loadedAll`, in key order; every
 * other queued request is in the store (or about to be written there by the next sync).
 *
 * Pure and deterministic: the workflow feeds it events and carries out what it asks (sync the store,
 * send grants); unit tests drive it directly.
 */
import { type BatchJobState } from './batch-job-model';
import { type GrantTerms } from './capacity-claim';
import { type HostFacts } from './control-model';
import { type Allocation, avoidList, emptyScheduler, type HostStatus, type QueuedRequest, release as releaseSlots, type RequestTerms, type Reservation, schedule, scheduleShared, type SchedulerState, termsOf } from './scheduler';
import { DEFAULT_PRIORITY, type SharingPolicy } from './sharing';

/** Carried state: 3 adds the priority-ordered window's boundary (`loadedPriority`, `loadedAll`). */
export const POOL_STATE_FORMAT = 3;
/** Carried state from before priorities (a seq-ordered window); resumed as format 3. */
export const POOL_STATE_FORMAT_SEQ = 2;
/** What the pool writes for recovery: unchanged by priorities (queue order lives in the store's rows). */
export const POOL_SNAPSHOT_FORMAT = 2;
/** Default number of queued jobs a pool keeps in memory and schedules from. */
export const DEFAULT_QUEUE_WINDOW = 1000;

/** A row of the durable queue. */
export interface QueueEntry {
  jobName: string;
  workflowId: string;
  ranks: number;
  seq: number;
  enqueuedAt: string;
  /** Hosts the request stays off when the pool can place it elsewhere (a retry's failed hosts); absent: none. */
  avoidHosts?: string[];
  /** Sharing terms (absent on requests from before them): priority (absent: 0), account, preemptible, declared run time. */
  priority?: number;
  account?: string;
  preemptible?: boolean;
  maxRunMs?: number;
}

/** Where a request sorts in the queue: higher priority first, then arrival. */
export interface QueueKey {
  priority: number;
  seq: number;
}

export const keyOf = (r: { priority?: number | undefined; seq: number }): QueueKey => ({ priority: r.priority ?? DEFAULT_PRIORITY, seq: r.seq });

/** Negative when `a` sorts before `b`. */
export function compareKeys(a: QueueKey, b: QueueKey): number {
  return b.priority - a.priority || a.seq - b.seq;
}

export interface HostEndpoint extends HostFacts {
  address: string;
  taskQueue: string;
}

export interface PoolJob {
  workflowId: string;
  ranks: number;
  state: BatchJobState;
  enqueuedAt?: string;
  /** The attempt whose claim made the allocation (capacity-claim.ts); absent: granted by the pool. */
  attempt?: number;
}

export interface QueueCounters {
  /** Requests queued, in the store or about to be written there, including the window's. */
  length: number;
  /** Ranks those requests ask for, and the most one of them asks for (as of the last sync, plus requests since). */
  ranks: number;
  maxRanks: number;
  /** The highest seq handed out. */
  lastSeq: number;
  /** The window's boundary: every queued request whose key is at most (loadedPriority, loadedThrough) is in it. */
  loadedThrough: number;
  loadedPriority: number;
  /** Every queued request is in the window (the boundary is past the last). */
  loadedAll: boolean;
}

/** The counters of format 2: a seq-ordered window, every request of priority 0. */
export type SeqQueueCounters = Omit<QueueCounters, 'loadedPriority' | 'loadedAll'>;

/** What a pool's workflow carries across continue-as-new: bounded by its hosts and its window, never by its queue. */
export interface PoolCarriedState {
  format: typeof POOL_STATE_FORMAT;
  scheduler: SchedulerState;
  hosts: Record<string, HostEndpoint>;
  /** Jobs in the window or holding an allocation. */
  jobs: Record<string, PoolJob>;
  version: number;
  queue: QueueCounters;
  /**
   * The step number of the stored snapshot this state follows (pool-store.ts `expectStep`). Absent in
   * state carried from before step numbers (and before the first step that answered one): the next
   * step is unchecked and learns it. An optional field, so the format stays 3.
   */
  storedStep?: number;
  /** The stored snapshot this state follows is open to claims (capacity-claim.ts); absent: closed. */
  open?: true;
  /**
   * Jobs that closed the snapshot to ask this pool and whose requests have not arrived (runs with
   * pool-keeps-asking-jobs: node-pool.ts POOL_KEEPS_ASKING_PATCH); absent: none.
   */
  asking?: string[];
}

/** The carried state of pools from before priorities: the same, with a seq-ordered window. */
export interface SeqPoolCarriedState extends Omit<PoolCarriedState, 'format' | 'queue'> {
  format: typeof POOL_STATE_FORMAT_SEQ;
  queue: SeqQueueCounters;
}

/** The carried state of pools from before the queue moved to the store (format 1, unversioned): the whole queue in memory. */
export interface LegacyPoolCarriedState {
  format?: undefined;
  scheduler: SchedulerState;
  hosts: Record<string, HostEndpoint>;
  jobs: Record<string, PoolJob>;
  version: number;
}

/** What the pool writes in its store for recovery: its capacity, not its queue. */
export interface PoolRecoverySnapshot {
  format: typeof POOL_SNAPSHOT_FORMAT;
  scheduler: Omit<SchedulerState, 'queue'>;
  hosts: Record<string, HostEndpoint>;
  /** Jobs holding allocations. */
  jobs: Record<string, PoolJob>;
  lastSeq: number;
  /** What every grant of the pool says beyond its allocation (written by pools that lend: capacity-claim.ts). */
  terms?: GrantTerms;
  /** Jobs may claim its free slots and give back what they hold (capacity-claim.ts). */
  open?: true;
  /**
   * Slot limits per account that a claim applies (the pool's quotas in the sharing file), written by
   * pools that lend under quotas (node-pool.ts POOL_LENDS_UNDER_QUOTAS_PATCH); absent: none.
   */
  quotas?: Record<string, number>;
  /** Jobs that claimed or gave back since the pool last wrote it, in order (never written by the pool). */
  claimed?: string[];
  /**
   * Jobs that closed it to ask the pool's workflow instead: it opens again once their requests arrived.
   * Jobs append themselves; pools that keep asking jobs (node-pool.ts POOL_KEEPS_ASKING_PATCH) write
   * those whose requests they still wait for, so a pool recovered from this snapshot waits for them too.
   */
  asking?: string[];
}

/** What a host's agent reported when it joined (executors, python, isolation), and nothing else of its endpoint. */
export function hostFactsOf(endpoint: HostEndpoint | undefined): HostFacts {
  if (!endpoint) return {};
  return {
    ...(endpoint.executors ? { executors: endpoint.executors } : {}),
    ...(endpoint.python ? { python: endpoint.python } : {}),
    ...(endpoint.isolation ? { isolation: endpoint.isolation } : {}),
  };
}

/**
 * Each host of a stored recovery snapshot, with its status and its agent's report: what the pool's
 * getHostFacts query answered when the snapshot was written. Undefined for anything else (no snapshot,
 * or one of another format).
 */
export function snapshotHostFacts(snapshot: unknown): Array<{ host: string; status: string } & HostFacts> | undefined {
  const s = recoverySnapshotOf(snapshot);
  return s?.scheduler.hosts.map((h) => ({ host: h.id, status: h.status, ...hostFactsOf(s.hosts[h.id]) }));
}

/**
 * A stored recovery snapshot's hosts as the usage summary reads them (src/domain/pool-usage.ts): each
 * host's status, slots and the job in each slot. Undefined for anything else.
 */
export function snapshotHosts(snapshot: unknown): Array<{ host: string; status: HostStatus; slots: number; used: Array<string | null> }> | undefined {
  return recoverySnapshotOf(snapshot)?.scheduler.hosts.map((h) => ({ host: h.id, status: h.status, slots: h.slots, used: h.used }));
}

/** A stored snapshot as this format writes it, or undefined (none, or another format). */
export function recoverySnapshotOf(snapshot: unknown): PoolRecoverySnapshot | undefined {
  const s = snapshot as Partial<PoolRecoverySnapshot> | undefined;
  return s?.format === POOL_SNAPSHOT_FORMAT && s.scheduler && s.hosts ? (s as PoolRecoverySnapshot) : undefined;
}

/** One step to write to the store, and what to read back. */
export interface PoolSyncStep {
  inserts: QueueEntry[];
  removes: string[];
  snapshot?: { version: number; state: PoolRecoverySnapshot };
  /** Rows after the key (afterPriority, afterSeq) in key order; afterPriority absent: 0 (steps from before priorities). */
  read?: { afterSeq: number; afterPriority?: number; limit: number };
  /** The stored snapshot's step number this step follows (checked steps only). */
  expectStep?: number;
}

export interface PoolSyncOutcome {
  length: number;
  ranks: number;
  maxRanks: number;
  rows: QueueEntry[];
  /** The stored snapshot's step number after the step (absent in results recorded before step numbers). */
  step?: number;
}

/** What a step of a workflow task that was never kept wrote: the snapshot a refused step answers. */
export interface LostStep {
  step: number;
  version: number;
  state: unknown;
}

/** What the pool takes over from a lost step: grants and preemptions to send again, and holders it did not know. */
export interface AdoptedStep {
  grants: Allocation[];
  preempt: Array<{ victim: string; by: string }>;
  /** Adopted holders this state knew nothing of: perhaps ended since; the pool asks whether their workflows closed. */
  unknown: string[];
  /** Allocations of the lost step whose slots this state holds otherwise (never expected): left out, named for the log. */
  unplaced: string[];
  /** Jobs that claimed their capacity in the store meanwhile (capacity-claim.ts): taken as allocations; they have their grants. */
  claims: string[];
  /** Jobs that gave theirs back in the store meanwhile: freed. */
  returned: string[];
  /** Jobs amended the stored snapshot (claims, returns, or closing it to ask): the refusal was expected. */
  byJobs: boolean;
}

/** What the last pass changed, kept until its step is written, so that a refused step's pass can be taken back. */
interface PassRecord {
  grants: Allocation[];
  /** The granted requests as they were queued. */
  taken: QueuedRequest[];
  /** The reservation before the pass. */
  reservation: Reservation | null;
  preempt: Array<{ victim: string; by: string }>;
}

export class PoolQueue {
  readonly scheduler: SchedulerState;
  readonly hosts: Record<string, HostEndpoint>;
  readonly jobs: Record<string, PoolJob>;
  /** The pool resource's version, owned by the workflow (reports are ordered by it). */
  version: number;
  private readonly counters: QueueCounters;
  /** Requests admitted since the last sync, in seq order. */
  private pendingInserts: QueueEntry[] = [];
  /** Their job names: a burst of thousands in one task must not cost a scan per request. */
  private pendingNames = new Set<string>();
  /** Jobs to delete from the stored queue at the next sync. */
  private pendingRemoves = new Set<string>();
  /** The capacity changed since the last snapshot was written. */
  private capacityChanged = false;
  /** The stored snapshot's step number this state follows; undefined: not known yet. */
  private storedStep: number | undefined;
  /** Steps carry `expectStep` (runs with the check: node-pool.ts POOL_STEPS_CHECKED_PATCH). */
  private checked = false;
  /** The last pass, until its step is written. */
  private lastPass: PassRecord | undefined;
  /** Terms to lend with (capacity-claim.ts): set by the pool's workflow while it may lend; undefined: it may not. */
  private lendTerms: GrantTerms | undefined;
  /** The quotas a claim applies while the pool lends (written in the snapshot). */
  private lendQuotas: Readonly<Record<string, number>> | undefined;
  /** The stored snapshot this state follows is open to claims. */
  private writtenOpen: boolean;
  /** A step was taken and its outcome is not applied yet: whether it writes an open snapshot, and the unknown releases it knew. */
  private inFlight: { open: boolean; releasedHere: string[] } | undefined;
  /**
   * Jobs that closed the stored snapshot to ask this pool (capacity-claim.ts) whose requests have not
   * arrived: it stays closed until they have, or until the pool finds a job's workflow closed (one
   * terminated between its store step and its signal). Kept across continue-as-new and recovery only
   * once `keepAsking()` was called; before, a new run forgot them and opened again.
   */
  private readonly awaited = new Set<string>();
  /** `awaited` is carried, written in the snapshot, and read back on recovery (node-pool.ts POOL_KEEPS_ASKING_PATCH). */
  private keepsAsking = false;
  /** The jobs a carried state or recovered snapshot says were asking, taken once `keepAsking()` is called. */
  private askingAtStart: readonly string[] = [];
  /**
   * Jobs that said here that they ended, since the last written step. A claim of one of them that the
   * store still shows is not taken (PoolQueue.followLostStep): the job claimed, the snapshot closed,
   * and it told the pool it ended, before or after the pool took the claim from an earlier answer.
   */
  private readonly releasedHere = new Set<string>();
  /**
   * Requests of jobs this state still sees holding an allocation, while its snapshot is open: the job
   * may have given that allocation back in the store (a retry's new attempt asks again). Decided once
   * the next step has followed the store (PoolQueue.followLostStep); dropped as repeats if it is written.
   */
  private readonly deferred = new Map<string, { req: Parameters<PoolQueue['request']>[0]; now: string }>();

  private constructor(
    carried: PoolCarriedState,
    readonly windowSize: number,
  ) {
    this.scheduler = carried.scheduler;
    this.hosts = carried.hosts;
    this.jobs = carried.jobs;
    this.version = carried.version;
    this.counters = { ...carried.queue };
    this.storedStep = carried.storedStep;
    this.writtenOpen = carried.open === true;
    this.askingAtStart = carried.asking ?? [];
  }

  static fresh(windowSize: number): PoolQueue {
    return new PoolQueue(
      {
        format: POOL_STATE_FORMAT,
        scheduler: emptyScheduler(),
        hosts: {},
        jobs: {},
        version: 0,
        queue: { length: 0, ranks: 0, maxRanks: 0, lastSeq: 0, loadedThrough: 0, loadedPriority: DEFAULT_PRIORITY, loadedAll: true },
      },
      windowSize,
    );
  }

  /**
   * Resumes from carried state of any format. Format 2's window is seq-ordered and all its requests
   * have priority 0, so its boundary is (0, loadedThrough), and it held everything when loadedThrough
   * reached lastSeq. A legacy state holds its whole queue: the part past the window becomes rows to
   * write at the first sync, and the window is trimmed to size.
   */
  static resume(carried: PoolCarriedState | SeqPoolCarriedState | LegacyPoolCarriedState, windowSize: number, now: string): PoolQueue {
    if (carried.format === POOL_STATE_FORMAT) return new PoolQueue(carried, windowSize);
    if (carried.format === POOL_STATE_FORMAT_SEQ) {
      const q = carried.queue;
      return new PoolQueue(
        { ...carried, format: POOL_STATE_FORMAT, queue: { ...q, loadedPriority: DEFAULT_PRIORITY, loadedAll: q.loadedThrough >= q.lastSeq } },
        windowSize,
      );
    }
    const legacy = carried;
    const queue = [...legacy.scheduler.queue].sort((a, b) => a.seq - b.seq);
    const window = queue.slice(0, windowSize);
    const lastSeq = Math.max(legacy.scheduler.seq, ...queue.map((r) => r.seq), 0);
    const jobs: Record<string, PoolJob> = {};
    for (const r of window) jobs[r.id] = legacy.jobs[r.id] ?? { workflowId: r.id, ranks: r.ranks, state: 'QUEUED' };
    for (const id of Object.keys(legacy.scheduler.allocations)) jobs[id] = legacy.jobs[id] ?? { workflowId: id, ranks: legacy.scheduler.allocations[id]?.ranks ?? 0, state: 'PENDING' };
    const state = new PoolQueue(
      {
        format: POOL_STATE_FORMAT,
        scheduler: { ...legacy.scheduler, queue: window, seq: lastSeq },
        hosts: legacy.hosts,
        jobs,
        version: legacy.version,
        queue: {
          length: queue.length,
          ranks: queue.reduce((n, r) => n + r.ranks, 0),
          maxRanks: Math.max(0, ...queue.map((r) => r.ranks)),
          lastSeq,
          loadedThrough: queue.length > windowSize ? (window.at(-1)?.seq ?? 0) : lastSeq,
          loadedPriority: DEFAULT_PRIORITY,
          loadedAll: queue.length <= windowSize,
        },
      },
      windowSize,
    );
    // Every legacy request is written to the store, the window's too: the store holds the whole queue.
    state.pendingInserts = queue.map((r) => ({
      jobName: r.id,
      workflowId: legacy.jobs[r.id]?.workflowId ?? r.id,
      ranks: r.ranks,
      seq: r.seq,
      enqueuedAt: legacy.jobs[r.id]?.enqueuedAt ?? now,
      ...(r.avoidHosts ? { avoidHosts: r.avoidHosts } : {}),
    }));
    state.pendingNames = new Set(state.pendingInserts.map((r) => r.jobName));
    state.capacityChanged = true;
    return state;
  }

  /**
   * Resumes a pool whose workflow closed unexpectedly from what it last wrote: its capacity snapshot
   * and the head of its stored queue. Allocations made after the snapshot cannot exist (the snapshot
   * is written before grants go out); releases made after it are found by the recovery's reconcile.
   */
  static recover(
    snapshot: PoolRecoverySnapshot,
    loaded: { length: number; ranks: number; maxRanks: number; maxSeq: number; rows: QueueEntry[]; snapshot?: { step?: number } },
    version: number,
    windowSize: number,
  ): PoolQueue {
    // The store reads in key order; sorted again so that rows of a store from before priorities (seq order, all 0) fit too.
    const rows = [...loaded.rows].sort((a, b) => compareKeys(keyOf(a), keyOf(b))).slice(0, windowSize);
    const lastSeq = Math.max(snapshot.lastSeq, loaded.maxSeq);
    const jobs: Record<string, PoolJob> = { ...snapshot.jobs };
    for (const r of rows) jobs[r.jobName] = { workflowId: r.workflowId, ranks: r.ranks, state: 'QUEUED', enqueuedAt: r.enqueuedAt };
    const last = rows.at(-1);
    const all = loaded.length <= rows.length;
    const scheduler: SchedulerState = { ...snapshot.scheduler, queue: rows.map(queuedRequestOf), seq: lastSeq };
    if (scheduler.reservation && !scheduler.queue.some((r) => r.id === scheduler.reservation?.requestId)) scheduler.reservation = null;
    return new PoolQueue(
      {
        format: POOL_STATE_FORMAT,
        scheduler,
        hosts: snapshot.hosts,
        jobs,
        version,
        queue: {
          length: loaded.length,
          ranks: loaded.ranks,
          maxRanks: loaded.maxRanks,
          lastSeq,
          loadedThrough: all ? lastSeq : (last?.seq ?? 0),
          loadedPriority: all || !last ? DEFAULT_PRIORITY : keyOf(last).priority,
          loadedAll: all,
        },
        // A store from before step numbers answers none: the first step learns it.
        ...(loaded.snapshot?.step !== undefined ? { storedStep: loaded.snapshot.step } : loaded.snapshot ? {} : { storedStep: 0 }),
        ...(snapshot.open ? { open: true as const } : {}),
        ...(snapshot.asking && snapshot.asking.length > 0 ? { asking: snapshot.asking } : {}),
      },
      windowSize,
    );
  }

  /** Requests queued in all, in the window or not. */
  get length(): number {
    return this.counters.length;
  }

  /** Ranks asked for by every queued request. */
  get queuedRanks(): number {
    return this.counters.ranks;
  }

  /** The most ranks any live job (queued or holding capacity) needs. */
  largestJob(): number {
    return Math.max(0, this.counters.maxRanks, ...this.scheduler.queue.map((r) => r.ranks), ...Object.values(this.scheduler.allocations).map((a) => a.ranks));
  }

  /** The queued requests in memory, in order. */
  get window(): readonly QueuedRequest[] {
    return this.scheduler.queue;
  }

  has(jobName: string): boolean {
    return this.scheduler.allocations[jobName] !== undefined || this.jobs[jobName] !== undefined || this.pendingNames.has(jobName);
  }

  /**
   * A job asks for capacity. A job already known here is a repeat and changes nothing; one queued only
   * in the store is caught by the store's key at the next sync (and `length` is corrected then).
   */
  request(req: { jobName: string; workflowId: string; ranks: number; avoidHosts?: readonly string[] } & RequestTerms, now: string): 'queued' | 'deferred' | 'duplicate' {
    this.awaited.delete(req.jobName);
    if (this.scheduler.allocations[req.jobName] && this.mayBeClaimed()) {
      this.deferred.set(req.jobName, { req, now });
      return 'deferred';
    }
    if (this.has(req.jobName)) return 'duplicate';
    const seq = ++this.counters.lastSeq;
    this.scheduler.seq = seq;
    const avoidHosts = avoidList(req.avoidHosts);
    const entry: QueueEntry = { jobName: req.jobName, workflowId: req.workflowId, ranks: req.ranks, seq, enqueuedAt: now, ...(avoidHosts ? { avoidHosts } : {}), ...termsOf(req) };
    this.pendingInserts.push(entry);
    this.pendingNames.add(req.jobName);
    this.pendingRemoves.delete(req.jobName);
    // The window takes it when it sorts before the window's boundary (or the window holds everything).
    if (this.withinBoundary(entry)) this.admit(entry);
    this.counters.length++;
    this.counters.ranks += req.ranks;
    this.counters.maxRanks = Math.max(this.counters.maxRanks, req.ranks);
    return 'queued';
  }

  /** A job ended or left the queue: frees its slots or withdraws its request. Idempotent. */
  release(jobName: string): 'freed' | 'dequeued' | 'unknown' {
    this.releasedHere.add(jobName);
    return this.withdraw(jobName);
  }

  /** Frees a job's slots or withdraws its request, whoever asks (the job, or the store's answer). */
  private withdraw(jobName: string): 'freed' | 'dequeued' | 'unknown' {
    this.awaited.delete(jobName);
    const pending = this.pendingNames.has(jobName) ? this.pendingInserts.findIndex((r) => r.jobName === jobName) : -1;
    const ranks = this.scheduler.queue.find((r) => r.id === jobName)?.ranks ?? 0;
    const result = releaseSlots(this.scheduler, jobName);
    delete this.jobs[jobName];
    if (result === 'freed') {
      this.capacityChanged = true;
      return 'freed';
    }
    if (pending >= 0) {
      // Never written: forget it here, and make sure the store does not keep it either.
      const [entry] = this.pendingInserts.splice(pending, 1);
      this.pendingNames.delete(jobName);
      this.dequeued(entry?.ranks ?? 0);
      this.pendingRemoves.add(jobName);
      return 'dequeued';
    }
    if (result === 'dequeued') {
      this.dequeued(ranks);
      this.pendingRemoves.add(jobName);
      return 'dequeued';
    }
    // Perhaps queued past the window: the store knows, and the next sync corrects the length.
    this.pendingRemoves.add(jobName);
    return 'unknown';
  }

  /** Capacity changed outside a grant or release (hosts joined, drained or were lost). */
  touchCapacity(): void {
    this.capacityChanged = true;
  }

  /**
   * One scheduling pass over the window: the new allocations, whose requests leave the queue. With a
   * sharing policy, a shared pass (priorities, preemption, backfill, quotas, fair share) that may also
   * ask running jobs to stop; without, first come first served in the window's order.
   */
  pass(policy?: SharingPolicy): { grants: Allocation[]; preempt: Array<{ victim: string; by: string }> } {
    const queued = [...this.scheduler.queue];
    const reservation = this.scheduler.reservation;
    const { grants, preempt } = policy ? scheduleShared(this.scheduler, policy) : { grants: schedule(this.scheduler), preempt: [] };
    const granted = new Set(grants.map((a) => a.id));
    this.lastPass = { grants, taken: grants.length > 0 ? queued.filter((r) => granted.has(r.id)) : [], reservation, preempt };
    if (preempt.length > 0) this.capacityChanged = true;
    for (const a of grants) {
      this.pendingRemoves.add(a.id);
      this.dequeued(a.ranks);
      const job = this.jobs[a.id];
      if (job) job.state = 'PENDING';
    }
    if (grants.length > 0) this.capacityChanged = true;
    return { grants, preempt };
  }

  private dequeued(ranks: number): void {
    this.counters.length = Math.max(0, this.counters.length - 1);
    this.counters.ranks = Math.max(0, this.counters.ranks - ranks);
  }

  /** True when the next sync should read more of the queue into the window. */
  wantsRefill(): boolean {
    return !this.counters.loadedAll && this.scheduler.queue.length < Math.ceil(this.windowSize / 2) && this.counters.length > this.scheduler.queue.length;
  }

  /** True when something must be written before anything else may be acted on. */
  needsSync(): boolean {
    return this.pendingInserts.length > 0 || this.pendingRemoves.size > 0 || this.capacityChanged || this.wantsRefill() || this.opensOrCloses() || this.deferred.size > 0;
  }

  /**
   * Lends the pool's free slots while nothing waits for them (capacity-claim.ts), with these terms in
   * every grant and these quotas applied to every claim; undefined: lends nothing (a pool being
   * deleted, or one whose passes apply fair share, which a claim cannot). The workflow says so before
   * each step.
   */
  lendWith(terms: GrantTerms | undefined, quotas?: Readonly<Record<string, number>>): void {
    const lent = terms === undefined ? undefined : quotas;
    if (terms && this.lendTerms && terms.gpu === this.lendTerms.gpu && terms.rankMemoryLimitBytes === this.lendTerms.rankMemoryLimitBytes && sameQuotas(lent, this.lendQuotas)) return;
    if (terms === undefined && this.lendTerms === undefined) return;
    this.lendTerms = terms;
    this.lendQuotas = lent;
    // The snapshot carries the terms: a change is written.
    this.capacityChanged = true;
  }

  /**
   * Nothing waits: no request queued (in the window, the store or unwritten), no head reservation, no
   * stop asked for; and the pool lends, on checked steps (a claim is only safe against a step that names
   * the snapshot it follows).
   */
  private wantsOpen(): boolean {
    const s = this.scheduler;
    return (
      this.lendTerms !== undefined &&
      this.checked &&
      this.storedStep !== undefined &&
      this.counters.length === 0 &&
      this.pendingInserts.length === 0 &&
      s.queue.length === 0 &&
      s.reservation === null &&
      Object.keys(s.preemptions ?? {}).length === 0 &&
      this.awaited.size === 0
    );
  }

  /** The stored snapshot is open and should close, or the other way round. */
  private opensOrCloses(): boolean {
    return this.wantsOpen() !== this.writtenOpen;
  }

  /** Jobs may be claiming in the store now: its snapshot is open, or a step in flight opens it. */
  mayBeClaimed(): boolean {
    return this.writtenOpen || this.inFlight?.open === true;
  }

  /**
   * What to write and read now. Everything pending is handed over; a request admitted while the step
   * is in flight stays pending for the next one.
   */
  takeSync(): PoolSyncStep {
    const step: PoolSyncStep = { inserts: this.pendingInserts, removes: [...this.pendingRemoves] };
    if (this.checked && this.storedStep !== undefined) step.expectStep = this.storedStep;
    if (this.capacityChanged || this.opensOrCloses()) step.snapshot = { version: this.version, state: this.recoverySnapshot() };
    this.inFlight = { open: step.snapshot?.state.open === true || (step.snapshot === undefined && this.writtenOpen), releasedHere: [...this.releasedHere] };
    if (this.wantsRefill()) {
      step.read = { afterSeq: this.counters.loadedThrough, limit: this.windowSize - this.scheduler.queue.length };
      if (this.counters.loadedPriority !== DEFAULT_PRIORITY) step.read.afterPriority = this.counters.loadedPriority;
    }
    this.pendingInserts = [];
    this.pendingNames = new Set();
    this.pendingRemoves = new Set();
    this.capacityChanged = false;
    return step;
  }

  /** Applies the store's answer to a step from takeSync: the true queue length, and the rows read into the window. */
  applySync(step: PoolSyncStep, outcome: PoolSyncOutcome): void {
    if (outcome.step !== undefined) this.storedStep = outcome.step;
    if (step.snapshot) this.writtenOpen = step.snapshot.state.open === true;
    // Written: a claim made since is one a release known when the step was taken never meant (a release
    // that came while it was in flight may be of a claim made after it was written: kept). A deferred
    // request whose job still holds its allocation here was a repeat.
    for (const name of this.inFlight?.releasedHere ?? []) this.releasedHere.delete(name);
    this.inFlight = undefined;
    this.deferred.clear();
    // The pass before this step is written; its grants go out.
    this.lastPass = undefined;
    this.counters.length = outcome.length + this.pendingInserts.length;
    this.counters.ranks = outcome.ranks + this.pendingInserts.reduce((n, r) => n + r.ranks, 0);
    // Not Math.max(...pending): a burst of 100,000 would overflow the call's arguments.
    this.counters.maxRanks = this.pendingInserts.reduce((m, r) => Math.max(m, r.ranks), outcome.maxRanks);
    if (!step.read || this.counters.loadedAll) return;
    const inWindow = new Set(this.scheduler.queue.map((r) => r.id));
    const boundary = this.boundary();
    // Rows come in key order, all past the boundary the step read from (unless the boundary moved
    // back meanwhile: a request of higher priority trimmed the window). Jobs released while the step
    // was in flight are in pendingRemoves: not taken.
    for (const row of outcome.rows) {
      if (compareKeys(keyOf(row), boundary) <= 0 || inWindow.has(row.jobName) || this.pendingRemoves.has(row.jobName)) continue;
      this.scheduler.queue.push(queuedRequestOf(row));
      this.jobs[row.jobName] = { workflowId: row.workflowId, ranks: row.ranks, state: 'QUEUED', enqueuedAt: row.enqueuedAt };
      // Its request is here (it came while the window was full).
      if (this.keepsAsking) this.awaited.delete(row.jobName);
    }
    const last = outcome.rows.at(-1);
    if (outcome.rows.length < step.read.limit) {
      // Fewer rows than asked for: the store holds nothing past them, so the window has everything
      // but requests admitted while the step was in flight (still pending), which it takes now.
      this.counters.loadedAll = true;
      this.counters.loadedThrough = this.counters.lastSeq;
      this.counters.loadedPriority = DEFAULT_PRIORITY;
      this.counters.length = Math.min(this.counters.length, this.scheduler.queue.length + this.pendingInserts.length);
    } else if (last && compareKeys(keyOf(last), boundary) > 0) {
      this.counters.loadedThrough = last.seq;
      this.counters.loadedPriority = keyOf(last).priority;
    }
    // Requests admitted while the step was in flight that now sort inside the boundary join the window.
    // (Pending names are distinct, so the window as it is now tells which are in it already.)
    const present = new Set(this.scheduler.queue.map((r) => r.id));
    for (const entry of this.pendingInserts) if (!inWindow.has(entry.jobName) && this.withinBoundary(entry) && !present.has(entry.jobName)) this.admit(entry);
    this.trim();
  }

  private boundary(): QueueKey {
    return { priority: this.counters.loadedPriority, seq: this.counters.loadedThrough };
  }

  /** Does this request belong in the window now? */
  private withinBoundary(entry: QueueEntry): boolean {
    return this.counters.loadedAll || compareKeys(keyOf(entry), this.boundary()) <= 0;
  }

  /** Puts a request into the window at its place in key order, then keeps the window to its size. */
  private admit(entry: QueueEntry): void {
    this.placeInWindow(queuedRequestOf(entry));
    this.jobs[entry.jobName] = { workflowId: entry.workflowId, ranks: entry.ranks, state: 'QUEUED', enqueuedAt: entry.enqueuedAt };
    this.trim();
  }

  /**
   * A window over its size gives back its last requests (they stay in the store, or are about to be
   * written there) and its boundary moves to the new last one. Never the reservation's holder.
   */
  private trim(): void {
    const queue = this.scheduler.queue;
    while (queue.length > this.windowSize && queue.length > 1) {
      const last = queue[queue.length - 1] as QueuedRequest;
      if (this.scheduler.reservation?.requestId === last.id) break;
      queue.pop();
      delete this.jobs[last.id];
      const tail = queue[queue.length - 1] as QueuedRequest;
      this.counters.loadedAll = false;
      this.counters.loadedThrough = tail.seq;
      this.counters.loadedPriority = keyOf(tail).priority;
    }
  }

  recoverySnapshot(): PoolRecoverySnapshot {
    const { queue: _queue, ...scheduler } = this.scheduler;
    const jobs: Record<string, PoolJob> = {};
    for (const id of Object.keys(this.scheduler.allocations)) {
      const j = this.jobs[id];
      if (j) jobs[id] = j;
    }
    const lending = this.lendTerms ? { terms: this.lendTerms, ...(this.wantsOpen() ? { open: true as const } : {}), ...(this.lendQuotas ? { quotas: { ...this.lendQuotas } } : {}) } : {};
    return { format: POOL_SNAPSHOT_FORMAT, scheduler, hosts: this.hosts, jobs, lastSeq: this.counters.lastSeq, ...lending, ...this.askingKept() };
  }

  /** The state to carry across continue-as-new. Call only when nothing is pending (after a sync). */
  carried(): PoolCarriedState {
    if (this.pendingInserts.length > 0 || this.pendingRemoves.size > 0) throw new Error('the pool has unwritten queue changes; sync before continuing as new');
    return {
      format: POOL_STATE_FORMAT,
      scheduler: this.scheduler,
      hosts: this.hosts,
      jobs: this.jobs,
      version: this.version,
      queue: { ...this.counters },
      ...(this.storedStep !== undefined ? { storedStep: this.storedStep } : {}),
      ...(this.writtenOpen ? { open: true as const } : {}),
      ...this.askingKept(),
    };
  }

  /**
   * From now on the jobs this pool waits on (`awaited`) are carried across continue-as-new and written
   * in its snapshot; those a carried state or recovered snapshot named are waited on now, unless their
   * requests are already here.
   */
  keepAsking(): void {
    this.keepsAsking = true;
    for (const name of this.askingAtStart) if (!this.has(name)) this.awaited.add(name);
    this.askingAtStart = [];
  }

  /**
   * The jobs the last pass granted whose step is not written yet: decided, not yet true (a step refused
   * because jobs claimed meanwhile takes them back, and they may be placed elsewhere). Reads leave them
   * out, so that nobody is told of a placement that may never happen.
   */
  unwrittenGrants(): Set<string> {
    return new Set((this.lastPass?.grants ?? []).filter((a) => this.scheduler.allocations[a.id] === a).map((a) => a.id));
  }

  /**
   * The requests of the unwritten grants (unwrittenGrants), as they were queued, in queue order: for
   * reads, they are still at the head of the queue until their step is written.
   */
  unwrittenRequests(): QueuedRequest[] {
    const unwritten = this.unwrittenGrants();
    return (this.lastPass?.taken ?? []).filter((r) => unwritten.has(r.id));
  }

  /** The head reservation as written: the one before the last pass while any of its grants is unwritten. */
  writtenReservation(): Reservation | null {
    return this.lastPass && this.unwrittenGrants().size > 0 ? this.lastPass.reservation : this.scheduler.reservation;
  }

  /** Jobs that closed the snapshot to ask, whose requests have not arrived. */
  awaiting(): string[] {
    return [...this.awaited];
  }

  private askingKept(): { asking?: string[] } {
    return this.keepsAsking && this.awaited.size > 0 ? { asking: [...this.awaited] } : {};
  }

  /** From now on every step says which stored snapshot it follows, once that is known (takeSync's `expectStep`). */
  checkSteps(): void {
    this.checked = true;
  }

  /**
   * The store refused `step` (from takeSync): a step of a workflow task that was never kept (its worker
   * died, or it outlived its task timeout) wrote `lost` after the snapshot this state follows, and may
   * have sent its grants. This task decided again, with the signals that arrived since, and may have
   * decided otherwise; so its last pass is taken back, the lost step's allocations are taken as given
   * (each on the slots it was granted), and the pool passes again. Nothing of `step` was written: it
   * is pending again, with the snapshot.
   *
   * An allocation of the lost step whose job this state does not know any more (it ended since, or its
   * request was trimmed from the window) is adopted too: a job that may run must hold its slots. Those
   * are named in `unknown` for the pool to ask whether their workflows closed.
   */
  followLostStep(step: PoolSyncStep, lost: LostStep): AdoptedStep {
    // 1. The refused step's writes are pending again (before anything admitted while it was in flight).
    this.pendingInserts = [...step.inserts, ...this.pendingInserts];
    this.pendingNames = new Set(this.pendingInserts.map((r) => r.jobName));
    for (const name of step.removes) this.pendingRemoves.add(name);
    this.capacityChanged = true;
    // 2. Its pass is taken back: its grants were never sent.
    const pass = this.lastPass;
    this.lastPass = undefined;
    if (pass) {
      for (const allocation of pass.grants) {
        // Released while the step was in flight (a withdrawn request): nothing to give back.
        if (this.scheduler.allocations[allocation.id] !== allocation) continue;
        releaseSlots(this.scheduler, allocation.id);
        const request = pass.taken.find((r) => r.id === allocation.id);
        if (!request) continue;
        this.pendingRemoves.delete(allocation.id);
        this.requeue(request);
      }
      // The next pass makes its reservation again where the one it had then no longer holds.
      if (pass.grants.length > 0) this.scheduler.reservation = pass.reservation && this.scheduler.queue.some((r) => r.id === pass.reservation?.requestId) ? pass.reservation : null;
      // Its stops were never sent either.
      for (const { victim, by } of pass.preempt) if (this.scheduler.preemptions?.[victim] === by) delete this.scheduler.preemptions[victim];
    }
    this.inFlight = undefined;
    const snapshot = lost.state as PoolRecoverySnapshot;
    const adopted: AdoptedStep = { grants: [], preempt: [], unknown: [], unplaced: [], claims: [], returned: [], byJobs: (snapshot.claimed?.length ?? 0) + (snapshot.asking?.length ?? 0) > 0 };
    // 3. On a pool that lends, what the snapshot no longer holds was given back there (capacity-claim.ts),
    // and a job it places elsewhere gave back and claimed again (a later attempt): freed here, then taken
    // as the snapshot places it. (A step the pool lost freed only what this state freed too: that
    // release is in this run's history; and it placed nothing this state places otherwise.)
    if (snapshot.terms !== undefined) {
      for (const [id, held] of Object.entries(this.scheduler.allocations)) {
        const there = snapshot.scheduler.allocations[id];
        if (there && samePlacement(there, held)) continue;
        this.withdraw(id);
        adopted.returned.push(id);
      }
    }
    // 4. The lost step's allocations, as granted.
    const claimed = new Set(snapshot.claimed ?? []);
    for (const allocation of Object.values(snapshot.scheduler.allocations)) {
      if (this.scheduler.allocations[allocation.id]) continue;
      // A claimer that ended already and said so here, or that asks again (a later attempt: a job asks
      // only after its claim, and gives that back first): its slots are free (the next written step drops the claim).
      if (claimed.has(allocation.id) && (this.releasedHere.has(allocation.id) || this.queuedHere(allocation.id))) {
        adopted.returned.push(allocation.id);
        continue;
      }
      // A host a shrink removed here once idle may hold a claim made before the shrink: it stays, draining, until that ends.
      for (const a of allocation.hosts) {
        const there = snapshot.scheduler.hosts.find((h) => h.id === a.host);
        if (there && !this.scheduler.hosts.some((h) => h.id === a.host)) this.scheduler.hosts.push({ id: there.id, slots: there.slots, status: 'draining', used: new Array<string | null>(there.slots).fill(null) });
      }
      const free = allocation.hosts.every((a) => {
        const host = this.scheduler.hosts.find((h) => h.id === a.host);
        return host !== undefined && a.slots.every((slot) => slot < host.used.length && host.used[slot] === null);
      });
      if (!free) {
        adopted.unplaced.push(allocation.id);
        continue;
      }
      const known = this.has(allocation.id);
      // Out of the queue (window, unwritten requests, store), as a grant takes it.
      const left = this.withdraw(allocation.id);
      const claim = claimed.has(allocation.id);
      if (!claim && (!known || left === 'unknown')) adopted.unknown.push(allocation.id);
      const taken: Allocation = { ...allocation, hosts: allocation.hosts.map((a) => ({ ...a, slots: [...a.slots] })) };
      for (const a of taken.hosts) {
        const host = this.scheduler.hosts.find((h) => h.id === a.host);
        for (const slot of a.slots) if (host) host.used[slot] = taken.id;
      }
      this.scheduler.allocations[taken.id] = taken;
      this.jobs[taken.id] = { ...(snapshot.jobs[taken.id] ?? { workflowId: taken.id, ranks: taken.ranks }), state: 'PENDING' };
      // A claimer has its grant from its claim; a lost step's grant may never have been sent.
      if (claim) adopted.claims.push(taken.id);
      else adopted.grants.push(taken);
    }
    for (const [victim, by] of Object.entries(snapshot.scheduler.preemptions ?? {})) {
      if (!this.scheduler.allocations[victim] || this.scheduler.preemptions?.[victim] !== undefined || !this.scheduler.queue.some((r) => r.id === by)) continue;
      this.scheduler.preemptions ??= {};
      this.scheduler.preemptions[victim] = by;
      adopted.preempt.push({ victim, by });
    }
    this.storedStep = lost.step;
    this.writtenOpen = snapshot.open === true;
    // Jobs that closed the snapshot to ask: it stays closed until their requests are here.
    for (const name of snapshot.asking ?? []) if (!this.has(name)) this.awaited.add(name);
    // Requests that came while their jobs' given-back allocations were still held here.
    const deferred = [...this.deferred.values()];
    this.deferred.clear();
    for (const { req, now } of deferred) this.request(req, now);
    this.version = Math.max(this.version, lost.version);
    this.trim();
    return adopted;
  }

  /** The job's request is in the window or not yet written. */
  private queuedHere(jobName: string): boolean {
    return this.pendingNames.has(jobName) || this.scheduler.queue.some((r) => r.id === jobName);
  }

  /** Puts a request into the window at its place in key order. */
  private placeInWindow(request: QueuedRequest): void {
    const queue = this.scheduler.queue;
    const key = keyOf(request);
    let at = queue.length;
    // Requests mostly arrive at the back: search from there.
    while (at > 0 && compareKeys(keyOf(queue[at - 1] as QueuedRequest), key) > 0) at--;
    queue.splice(at, 0, request);
  }

  /** A granted request back in the window, at its place in key order (a pass taken back). */
  private requeue(request: QueuedRequest): void {
    this.placeInWindow(request);
    const job = this.jobs[request.id];
    if (job) job.state = 'QUEUED';
    this.counters.length++;
    this.counters.ranks += request.ranks;
  }

  /** Where the queue stands for the counters' checks (tests, internals query). */
  counts(): Readonly<QueueCounters> & { pendingInserts: number; pendingRemoves: number } {
    return { ...this.counters, pendingInserts: this.pendingInserts.length, pendingRemoves: this.pendingRemoves.size };
  }
}

/** Two allocations of a job on the same slots with the same master port. */
function samePlacement(a: Allocation, b: Allocation): boolean {
  return a.masterPort === b.masterPort && JSON.stringify(a.hosts) === JSON.stringify(b.hosts);
}

/** The scheduler's request for a row of the queue, with the hosts it avoids and its terms when it has any. */
function queuedRequestOf(row: QueueEntry): QueuedRequest {
  const avoidHosts = avoidList(row.avoidHosts);
  return { id: row.jobName, ranks: row.ranks, seq: row.seq, ...(avoidHosts ? { avoidHosts } : {}), ...termsOf(row) };
}

/** Two quota maps set the same limits (absent and empty are the same: no limit). */
function sameQuotas(a: Readonly<Record<string, number>> | undefined, b: Readonly<Record<string, number>> | undefined): boolean {
  const ka = Object.keys(a ?? {});
  if (ka.length !== Object.keys(b ?? {}).length) return false;
  return ka.every((k) => a?.[k] === b?.[k]);
}
