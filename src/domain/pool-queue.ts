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
 * Invariant: the window holds exactly the queued requests with `seq <= loadedThrough`, in seq order;
 * every other queued request is in the store (or about to be written there by the next sync).
 *
 * Pure and deterministic: the workflow feeds it events and carries out what it asks (sync the store,
 * send grants); unit tests drive it directly.
 */
import { type BatchJobState } from './batch-job-model';
import { type HostFacts } from './control-model';
import { type Allocation, avoidList, emptyScheduler, type QueuedRequest, release as releaseSlots, schedule, type SchedulerState } from './scheduler';

export const POOL_STATE_FORMAT = 2;
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
}

export interface QueueCounters {
  /** Requests queued, in the store or about to be written there, including the window's. */
  length: number;
  /** Ranks those requests ask for, and the most one of them asks for (as of the last sync, plus requests since). */
  ranks: number;
  maxRanks: number;
  /** The highest seq handed out. */
  lastSeq: number;
  /** Every queued request with a seq up to this one is in the window. */
  loadedThrough: number;
}

/** What a pool's workflow carries across continue-as-new: bounded by its hosts and its window, never by its queue. */
export interface PoolCarriedState {
  format: typeof POOL_STATE_FORMAT;
  scheduler: SchedulerState;
  hosts: Record<string, HostEndpoint>;
  /** Jobs in the window or holding an allocation. */
  jobs: Record<string, PoolJob>;
  version: number;
  queue: QueueCounters;
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
  format: typeof POOL_STATE_FORMAT;
  scheduler: Omit<SchedulerState, 'queue'>;
  hosts: Record<string, HostEndpoint>;
  /** Jobs holding allocations. */
  jobs: Record<string, PoolJob>;
  lastSeq: number;
}

/** One step to write to the store, and what to read back. */
export interface PoolSyncStep {
  inserts: QueueEntry[];
  removes: string[];
  snapshot?: { version: number; state: PoolRecoverySnapshot };
  read?: { afterSeq: number; limit: number };
}

export interface PoolSyncOutcome {
  length: number;
  ranks: number;
  maxRanks: number;
  rows: QueueEntry[];
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
  /** Jobs to delete from the stored queue at the next sync. */
  private pendingRemoves = new Set<string>();
  /** The capacity changed since the last snapshot was written. */
  private capacityChanged = false;

  private constructor(
    carried: PoolCarriedState,
    readonly windowSize: number,
  ) {
    this.scheduler = carried.scheduler;
    this.hosts = carried.hosts;
    this.jobs = carried.jobs;
    this.version = carried.version;
    this.counters = { ...carried.queue };
  }

  static fresh(windowSize: number): PoolQueue {
    return new PoolQueue(
      { format: POOL_STATE_FORMAT, scheduler: emptyScheduler(), hosts: {}, jobs: {}, version: 0, queue: { length: 0, ranks: 0, maxRanks: 0, lastSeq: 0, loadedThrough: 0 } },
      windowSize,
    );
  }

  /**
   * Resumes from carried state of either format. A legacy state holds its whole queue: the part past
   * the window becomes rows to write at the first sync, and the window is trimmed to size.
   */
  static resume(carried: PoolCarriedState | LegacyPoolCarriedState, windowSize: number, now: string): PoolQueue {
    if (carried.format === POOL_STATE_FORMAT) return new PoolQueue(carried, windowSize);
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
    loaded: { length: number; ranks: number; maxRanks: number; maxSeq: number; rows: QueueEntry[] },
    version: number,
    windowSize: number,
  ): PoolQueue {
    const rows = loaded.rows.slice(0, windowSize);
    const lastSeq = Math.max(snapshot.lastSeq, loaded.maxSeq);
    const jobs: Record<string, PoolJob> = { ...snapshot.jobs };
    for (const r of rows) jobs[r.jobName] = { workflowId: r.workflowId, ranks: r.ranks, state: 'QUEUED', enqueuedAt: r.enqueuedAt };
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
          loadedThrough: loaded.length > rows.length ? (rows.at(-1)?.seq ?? 0) : lastSeq,
        },
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
    return this.scheduler.allocations[jobName] !== undefined || this.jobs[jobName] !== undefined || this.pendingInserts.some((r) => r.jobName === jobName);
  }

  /**
   * A job asks for capacity. A job already known here is a repeat and changes nothing; one queued only
   * in the store is caught by the store's key at the next sync (and `length` is corrected then).
   */
  request(req: { jobName: string; workflowId: string; ranks: number; avoidHosts?: readonly string[] }, now: string): 'queued' | 'duplicate' {
    if (this.has(req.jobName)) return 'duplicate';
    const seq = ++this.counters.lastSeq;
    this.scheduler.seq = seq;
    const avoidHosts = avoidList(req.avoidHosts);
    const entry: QueueEntry = { jobName: req.jobName, workflowId: req.workflowId, ranks: req.ranks, seq, enqueuedAt: now, ...(avoidHosts ? { avoidHosts } : {}) };
    this.pendingInserts.push(entry);
    this.pendingRemoves.delete(req.jobName);
    // The window takes it only when it already holds the whole queue before it, which keeps it contiguous.
    if (this.counters.loadedThrough === seq - 1 && this.scheduler.queue.length < this.windowSize) {
      this.scheduler.queue.push(queuedRequestOf(entry));
      this.jobs[req.jobName] = { workflowId: req.workflowId, ranks: req.ranks, state: 'QUEUED', enqueuedAt: now };
      this.counters.loadedThrough = seq;
    }
    this.counters.length++;
    this.counters.ranks += req.ranks;
    this.counters.maxRanks = Math.max(this.counters.maxRanks, req.ranks);
    return 'queued';
  }

  /** A job ended or left the queue: frees its slots or withdraws its request. Idempotent. */
  release(jobName: string): 'freed' | 'dequeued' | 'unknown' {
    const pending = this.pendingInserts.findIndex((r) => r.jobName === jobName);
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

  /** One scheduling pass over the window: the new allocations, whose requests leave the queue. */
  pass(): Allocation[] {
    const grants = schedule(this.scheduler);
    for (const a of grants) {
      this.pendingRemoves.add(a.id);
      this.dequeued(a.ranks);
      const job = this.jobs[a.id];
      if (job) job.state = 'PENDING';
    }
    if (grants.length > 0) this.capacityChanged = true;
    return grants;
  }

  private dequeued(ranks: number): void {
    this.counters.length = Math.max(0, this.counters.length - 1);
    this.counters.ranks = Math.max(0, this.counters.ranks - ranks);
  }

  /** True when the next sync should read more of the queue into the window. */
  wantsRefill(): boolean {
    return this.scheduler.queue.length < Math.ceil(this.windowSize / 2) && this.counters.length > this.scheduler.queue.length;
  }

  /** True when something must be written before anything else may be acted on. */
  needsSync(): boolean {
    return this.pendingInserts.length > 0 || this.pendingRemoves.size > 0 || this.capacityChanged || this.wantsRefill();
  }

  /**
   * What to write and read now. Everything pending is handed over; a request admitted while the step
   * is in flight stays pending for the next one.
   */
  takeSync(): PoolSyncStep {
    const step: PoolSyncStep = { inserts: this.pendingInserts, removes: [...this.pendingRemoves] };
    if (this.capacityChanged) step.snapshot = { version: this.version, state: this.recoverySnapshot() };
    if (this.wantsRefill()) step.read = { afterSeq: this.counters.loadedThrough, limit: this.windowSize - this.scheduler.queue.length };
    this.pendingInserts = [];
    this.pendingRemoves = new Set();
    this.capacityChanged = false;
    return step;
  }

  /** Applies the store's answer to a step from takeSync: the true queue length, and the rows read into the window. */
  applySync(step: PoolSyncStep, outcome: PoolSyncOutcome): void {
    this.counters.length = outcome.length + this.pendingInserts.length;
    this.counters.ranks = outcome.ranks + this.pendingInserts.reduce((n, r) => n + r.ranks, 0);
    this.counters.maxRanks = Math.max(outcome.maxRanks, ...this.pendingInserts.map((r) => r.ranks));
    if (!step.read) return;
    const inWindow = new Set(this.scheduler.queue.map((r) => r.id));
    const from = this.counters.loadedThrough;
    for (const row of outcome.rows) {
      if (row.seq <= from || inWindow.has(row.jobName)) continue;
      this.scheduler.queue.push(queuedRequestOf(row));
      this.jobs[row.jobName] = { workflowId: row.workflowId, ranks: row.ranks, state: 'QUEUED', enqueuedAt: row.enqueuedAt };
    }
    const last = outcome.rows.at(-1);
    if (last) this.counters.loadedThrough = Math.max(this.counters.loadedThrough, last.seq);
    if (outcome.rows.length < step.read.limit) {
      // Fewer rows than asked for: everything written by this step is in the window now. Requests
      // admitted while the step was in flight are still pending and have larger seqs.
      const written = Math.max(this.counters.loadedThrough, ...step.inserts.map((r) => r.seq));
      const firstPending = this.pendingInserts[0]?.seq ?? Infinity;
      this.counters.loadedThrough = Math.max(this.counters.loadedThrough, Math.min(written, firstPending - 1));
      // And the store holds nothing more: the queue is the window plus what is still to be written.
      this.counters.length = Math.min(this.counters.length, this.scheduler.queue.length + this.pendingInserts.length);
    }
  }

  recoverySnapshot(): PoolRecoverySnapshot {
    const { queue: _queue, ...scheduler } = this.scheduler;
    const jobs: Record<string, PoolJob> = {};
    for (const id of Object.keys(this.scheduler.allocations)) {
      const j = this.jobs[id];
      if (j) jobs[id] = j;
    }
    return { format: POOL_STATE_FORMAT, scheduler, hosts: this.hosts, jobs, lastSeq: this.counters.lastSeq };
  }

  /** The state to carry across continue-as-new. Call only when nothing is pending (after a sync). */
  carried(): PoolCarriedState {
    if (this.pendingInserts.length > 0 || this.pendingRemoves.size > 0) throw new Error('the pool has unwritten queue changes; sync before continuing as new');
    return { format: POOL_STATE_FORMAT, scheduler: this.scheduler, hosts: this.hosts, jobs: this.jobs, version: this.version, queue: { ...this.counters } };
  }

  /** Where the queue stands for the counters' checks (tests, internals query). */
  counts(): Readonly<QueueCounters> & { pendingInserts: number; pendingRemoves: number } {
    return { ...this.counters, pendingInserts: this.pendingInserts.length, pendingRemoves: this.pendingRemoves.size };
  }
}

/** The scheduler's request for a row of the queue, with the hosts it avoids when it has any. */
function queuedRequestOf(row: QueueEntry): QueuedRequest {
  const avoidHosts = avoidList(row.avoidHosts);
  return avoidHosts ? { id: row.jobName, ranks: row.ranks, seq: row.seq, avoidHosts } : { id: row.jobName, ranks: row.ranks, seq: row.seq };
}
