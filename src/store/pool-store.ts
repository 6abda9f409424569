/**
 * The durable state of node pools that does not fit in a workflow: each pool's queue of waiting jobs,
 * and a snapshot of its capacity (hosts, allocations, reservation) to recover from.
 *
 * Unlike the read model, this is a source of truth. The pool's workflow is its only writer (through
 * the `syncPool` and `loadPool` local activities), so queue order and capacity keep one owner; the
 * API only reads it (queue positions; the hosts in the snapshot, for admission and usage samples). The
 * workflow keeps just the head of the queue in memory (its window), so neither its state carried
 * across continue-as-new nor its history grows with the queue.
 *
 * Ordering: `seq` is assigned by the workflow, one per request, increasing; the queue's order is
 * priority (higher first), then seq (pool-queue.ts `compareKeys`), and every read follows it. A job is
 * queued at most once per pool (primary key), so a repeated request changes nothing.
 */
import { type QueueEntry } from '../domain/pool-queue';
import { DEFAULT_PRIORITY } from '../domain/sharing';

/** A waiting job: name, workflow id, ranks, seq and when it reached the pool. */
export type QueueRow = QueueEntry;

export interface PoolSnapshot {
  /** The pool's state version when it was written; an unchecked write never replaces a newer snapshot. */
  version: number;
  /** The capacity state as the workflow carries it (JSON). */
  state: unknown;
}

/** A snapshot as stored: with the number of the step that wrote it (each step that writes one counts 1 up). */
export interface StoredPoolSnapshot extends PoolSnapshot {
  step: number;
}

/** One atomic step of a pool: what joined and left its queue, its capacity, and the next window rows. */
export interface PoolSync {
  pool: string;
  /** New requests in seq order; a job already queued in this pool is left as it is. */
  inserts: QueueRow[];
  /** Jobs that left the queue: granted, withdrawn, or found to have ended. */
  removes: string[];
  snapshot?: PoolSnapshot;
  /** Rows to read after the writes, in queue order after the key (afterPriority, default 0; afterSeq): the window's refill. */
  read?: { afterSeq: number; afterPriority?: number; limit: number };
  /**
   * The step number of the stored snapshot this step follows (0: none yet). When the store holds a
   * later one, a step of a workflow task that was never kept wrote it (its grants may be out), so this
   * step writes nothing and answers `lost` instead. Absent: unchecked (runs from before the check).
   */
  expectStep?: number;
}

export interface PoolSyncResult {
  /** How many of `inserts` were new. */
  inserted: number;
  /** How many of `removes` were queued. */
  removed: number;
  /** The queue's length after the step. */
  length: number;
  /** Ranks asked for by all queued jobs, and by the largest one. */
  ranks: number;
  maxRanks: number;
  rows: QueueRow[];
  /** The stored snapshot's step number after this step (0: none). */
  step: number;
  /**
   * Present when the store held a later snapshot than `expectStep`: this step wrote and read
   * nothing, and this is what the lost step wrote.
   */
  lost?: StoredPoolSnapshot;
}

/** What an amendment answers, and the state it writes (absent: it writes nothing). */
export interface PoolAmendment<T> {
  answer: T;
  write?: unknown;
}

export interface LoadedPool {
  snapshot?: StoredPoolSnapshot;
  length: number;
  ranks: number;
  maxRanks: number;
  /** The highest seq queued (0 when the queue is empty). */
  maxSeq: number;
  /** The first rows of the queue, in queue order. */
  rows: QueueRow[];
}

export interface QueuePositions {
  length: number;
  /** 1-based position of each named job that is queued. */
  positions: Record<string, number>;
}

export interface PoolStore {
  /** Applies one step in one transaction and answers the queue's length and the rows asked for. */
  syncPool(step: PoolSync): Promise<PoolSyncResult>;
  /** The snapshot (if any), the queue's length and its first `windowSize` rows. */
  loadPool(pool: string, windowSize: number): Promise<LoadedPool>;
  /** The snapshot alone, as the pool's last step wrote it (one keyed read): its hosts, for admission and usage samples. */
  poolSnapshot(pool: string): Promise<StoredPoolSnapshot | undefined>;
  /**
   * A job's claim on the snapshot, or its return (src/domain/capacity-claim.ts), in one transaction:
   * `amend` reads the stored state (undefined: no snapshot) and answers, and what it gives as `write`
   * replaces the state and counts the step number one up (the version stays), so the pool's next step
   * is refused and follows it. The row is locked from the read to the write.
   */
  amendPoolSnapshot<T>(pool: string, amend: (state: unknown) => PoolAmendment<T>): Promise<T>;
  /** Where the named jobs stand in the pool's queue (the API's queued status). */
  queuePositions(pool: string, jobNames: readonly string[]): Promise<QueuePositions>;
  /** The names of the jobs queued in the pool, in queue order, at most `limit` (operators and recovery). */
  queuedJobs(pool: string, limit: number): Promise<string[]>;
  /** Forgets a deleted pool's queue and snapshot. */
  dropPool(pool: string): Promise<void>;
}

export const POOL_QUEUE_TABLE = 'pool_queue';
export const POOL_STATE_TABLE = 'pool_state';
/** Each pool's queue length and ranks, kept by every step (so no step counts the queue). */
export const POOL_TOTALS_TABLE = 'pool_queue_totals';

/** A row's sharing terms beyond its priority, as stored in the `terms` column: JSON, or null for none. */
export function queueTermsColumn(row: QueueRow): string | null {
  const terms: Record<string, unknown> = {};
  if (row.account !== undefined && row.account !== '') terms.account = row.account;
  if (row.preemptible) terms.preemptible = true;
  if (row.maxRunMs !== undefined) terms.maxRunMs = row.maxRunMs;
  return Object.keys(terms).length > 0 ? JSON.stringify(terms) : null;
}

/** A row's avoided hosts as stored: a JSON array, or null for none. */
export function avoidHostsColumn(row: QueueRow): string | null {
  return row.avoidHosts && row.avoidHosts.length > 0 ? JSON.stringify(row.avoidHosts) : null;
}

/** What both stores select for a row (JSON columns as text, or already parsed by the driver). */
export interface StoredQueueRow {
  jobName: string;
  workflowId: string;
  ranks: number;
  seq: number;
  enqueuedAt: string;
  priority: number;
  avoidHosts: string | string[] | null;
  terms: string | Record<string, unknown> | null;
}

const parsed = <T>(v: string | T): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

/** A queue row from its columns, with only the fields that are set (a row from before priorities reads as it did). */
export function queueRowOf(stored: StoredQueueRow): QueueRow {
  const row: QueueRow = { jobName: stored.jobName, workflowId: stored.workflowId, ranks: stored.ranks, seq: stored.seq, enqueuedAt: stored.enqueuedAt };
  if (stored.avoidHosts !== null) row.avoidHosts = parsed<string[]>(stored.avoidHosts);
  if (stored.priority !== DEFAULT_PRIORITY) row.priority = stored.priority;
  if (stored.terms !== null) {
    const t = parsed<{ account?: unknown; preemptible?: unknown; maxRunMs?: unknown }>(stored.terms);
    if (typeof t.account === 'string') row.account = t.account;
    if (t.preemptible === true) row.preemptible = true;
    if (typeof t.maxRunMs === 'number') row.maxRunMs = t.maxRunMs;
  }
  return row;
}

/**
 * The condition and order of a read in queue order after a key: `after` absent reads from the start.
 * Placeholders are `?` (SQLite) or `$n` numbered from `first` (PostgreSQL).
 */
export function queueOrderSql(after: { priority: number; seq: number } | undefined, placeholder: (i: number) => string, first: number): { where: string; params: number[] } {
  if (!after) return { where: '', params: [] };
  return { where: ` AND (priority < ${placeholder(first)} OR (priority = ${placeholder(first + 1)} AND seq > ${placeholder(first + 2)}))`, params: [after.priority, after.priority, after.seq] };
}

/** The key a step's read starts after. */
export function readAfter(read: NonNullable<PoolSync['read']>): { priority: number; seq: number } {
  return { priority: read.afterPriority ?? DEFAULT_PRIORITY, seq: read.afterSeq };
}
