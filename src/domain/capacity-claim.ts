/**
 * Capacity a job takes from its pool's store without a round trip through the pool's workflow.
 *
 * A pool with nothing waiting (an empty queue, no head reservation, no preemption asked for, no quota
 * or fair share to apply) marks the capacity snapshot it writes as open (`open`). While it is open, a
 * job's first step may claim a placement in that snapshot directly, and a job that holds one may give it
 * back there. Each claim or return is one transaction on the snapshot's row: it places the job as the
 * pool's own pass would on an empty queue, and counts the snapshot's step number up. So the stored
 * snapshot and its step number are a compare-and-set register that the pool and its jobs share:
 * - The pool's next step names the step it follows; after a claim or a return that step is an older one,
 *   so the store refuses it and answers the snapshot as it stands. The pool takes its own pass back and
 *   takes the snapshot's allocations as given (PoolQueue.followLostStep), then decides again. No grant of
 *   its goes out before the step that writes it.
 * - A pool that has something waiting writes a closed snapshot, and from then on every job asks the
 *   pool's workflow as before. The order of the queue stays the pool's alone: a claim only ever takes
 *   slots that no queued job waits for.
 *
 * One owner per fact still holds: a slot is the pool's, or a claimer's in the stored snapshot; the
 * snapshot's row lock decides which transaction came first.
 *
 * Pure and deterministic; the stores run these inside their transactions (pool-store.ts `amendPoolSnapshot`).
 */
import { type PoolRecoverySnapshot, recoverySnapshotOf } from './pool-queue';
import { hostTaskQueue } from './hosts';
import { type Allocation, release, type RequestTerms, scheduleShared, type SchedulerState, termsOf } from './scheduler';

/** One host of a grant: where its agent listens and which of its slots the job's ranks take. */
export interface GrantedHost {
  host: string;
  address: string;
  taskQueue: string;
  slots: number[];
}

/** What a job is given when its whole gang has its slots (by the pool's signal, or by its own claim). */
export interface CapacityGrant {
  pool: string;
  gpu: boolean;
  masterPort: number;
  hosts: GrantedHost[];
  /** The pool's rank memory limit (its batchd.io/rank-memory-limit annotation): bytes, null for none; absent: each agent's default. */
  rankMemoryLimitBytes?: number | null;
}

/** What a grant says beyond its allocation, the same for every grant of a pool: written in its snapshot so that a claim can build one. */
export interface GrantTerms {
  pool: string;
  gpu: boolean;
  rankMemoryLimitBytes?: number | null;
}

/** The grant for an allocation: the same whether the pool sends it or a claim answers it. */
export function grantOf(allocation: Allocation, hosts: Readonly<Record<string, { address: string; taskQueue: string }>>, terms: GrantTerms): CapacityGrant {
  return {
    pool: terms.pool,
    gpu: terms.gpu,
    masterPort: allocation.masterPort,
    ...(terms.rankMemoryLimitBytes !== undefined ? { rankMemoryLimitBytes: terms.rankMemoryLimitBytes } : {}),
    hosts: allocation.hosts.map((a) => ({
      host: a.host,
      address: hosts[a.host]?.address ?? '127.0.0.1',
      taskQueue: hosts[a.host]?.taskQueue ?? hostTaskQueue(terms.pool, a.host),
      slots: a.slots,
    })),
  };
}

/** A job's request as it claims: what the pool's requestCapacity signal would carry. */
export interface ClaimRequest extends RequestTerms {
  jobName: string;
  workflowId: string;
  ranks: number;
  avoidHosts?: string[];
}

export type ClaimAnswer =
  /** Placed now: the snapshot to write (one step on) and the job's grant. */
  | { kind: 'claimed'; state: PoolRecoverySnapshot; grant: CapacityGrant }
  /** The job holds an allocation in the snapshot already (a repeated step, or the pool granted it): its grant, nothing to write. */
  | { kind: 'held'; grant: CapacityGrant }
  /** Ask the pool's workflow: the snapshot is closed, or the gang does not fit its free slots now. */
  | { kind: 'ask-pool'; why: 'closed' | 'no-fit' };

/**
 * A claim on a stored snapshot (`stored`: its JSON as read; anything but an open snapshot of this
 * format is closed). The job is placed as the pool's shared pass would place it at the head of an
 * empty queue, with neither preemption nor backfill (both are decisions about a queue); `nowMs` is
 * the claim's clock, for the allocation's start and declared end.
 */
export function claimCapacity(stored: unknown, request: ClaimRequest, nowMs: number): ClaimAnswer {
  const snapshot = recoverySnapshotOf(stored);
  if (!snapshot?.terms) return { kind: 'ask-pool', why: 'closed' };
  const held = snapshot.scheduler.allocations[request.jobName];
  if (held) return { kind: 'held', grant: grantOf(held, snapshot.hosts, snapshot.terms) };
  if (!snapshot.open) return { kind: 'ask-pool', why: 'closed' };
  const scheduler: SchedulerState = structuredClone({ ...snapshot.scheduler, queue: [], reservation: null });
  // A request that is never queued: its seq orders nothing.
  scheduler.queue.push({ id: request.jobName, ranks: request.ranks, seq: scheduler.seq + 1, ...(request.avoidHosts && request.avoidHosts.length > 0 ? { avoidHosts: [...request.avoidHosts] } : {}), ...termsOf(request) });
  const pass = scheduleShared(scheduler, { now: nowMs, preemption: false, backfill: false });
  const allocation = pass.grants.find((a) => a.id === request.jobName);
  if (!allocation) return { kind: 'ask-pool', why: 'no-fit' };
  const { queue: _queue, ...rest } = scheduler;
  const state: PoolRecoverySnapshot = {
    ...snapshot,
    scheduler: { ...rest, reservation: null },
    jobs: { ...snapshot.jobs, [request.jobName]: { workflowId: request.workflowId, ranks: request.ranks, state: 'PENDING' } },
    claimed: [...(snapshot.claimed ?? []), request.jobName],
  };
  return { kind: 'claimed', state, grant: grantOf(allocation, snapshot.hosts, snapshot.terms) };
}

/**
 * A job gives back what it holds, in an open snapshot: the snapshot to write (one step on), or
 * undefined when the pool's workflow must be told instead (closed, or the job holds nothing here: a
 * request the pool may still hold in memory can only be withdrawn there).
 */
export function giveBackCapacity(stored: unknown, jobName: string): PoolRecoverySnapshot | undefined {
  const snapshot = recoverySnapshotOf(stored);
  if (!snapshot?.open || !snapshot.scheduler.allocations[jobName]) return undefined;
  const scheduler: SchedulerState = structuredClone({ ...snapshot.scheduler, queue: [] });
  release(scheduler, jobName);
  const { queue: _queue, ...rest } = scheduler;
  const { [jobName]: _gone, ...jobs } = snapshot.jobs;
  return { ...snapshot, scheduler: rest, jobs, claimed: [...(snapshot.claimed ?? []), jobName] };
}
