/**
 * Capacity a job takes from its pool's store without a round trip through the pool's workflow.
 *
 * A pool with nothing waiting (an empty queue, no head reservation, no preemption asked for, no fair
 * share to apply) marks the capacity snapshot it writes as open (`open`). While it is open, a
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
 * - A job that finds the snapshot open but must ask the pool (its gang does not fit, or it does not
 *   claim) closes the snapshot in the same transaction and is named in `asking`; the pool opens it
 *   again only once those requests have reached it. So no claim overtakes a request on its way to the
 *   pool, and jobs are served in the order their requests reach it, as without claims.
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
  /** Which attempt of the job claims: a repeat of the same attempt's claim gets the same grant, a new attempt never an old one's. */
  attempt: number;
}

export type ClaimAnswer =
  /** Placed now: the snapshot to write (one step on) and the job's grant. */
  | { kind: 'claimed'; state: PoolRecoverySnapshot; grant: CapacityGrant }
  /** This attempt's claim is in the snapshot already (its step ran again): the same grant, nothing to write. */
  | { kind: 'held'; grant: CapacityGrant }
  /** Ask the pool's workflow: the snapshot is closed, or the gang does not fit its free slots (or its account's quota) now (then `close` is the snapshot to write). */
  | { kind: 'ask-pool'; why: 'closed' | 'no-fit'; close?: PoolRecoverySnapshot };

/**
 * A claim on a stored snapshot (`stored`: its JSON as read; anything but an open snapshot of this
 * format is closed). The job is placed as the pool's shared pass would place it at the head of an
 * empty queue, with neither preemption nor backfill (both are decisions about a queue), and within
 * its account's quota when the snapshot sets quotas (a claim past it asks the pool, which holds it
 * back as its passes do); `nowMs` is the claim's clock, for the allocation's start and declared end.
 */
export function claimCapacity(stored: unknown, request: ClaimRequest, nowMs: number): ClaimAnswer {
  const snapshot = recoverySnapshotOf(stored);
  if (!snapshot?.terms) return { kind: 'ask-pool', why: 'closed' };
  const held = snapshot.scheduler.allocations[request.jobName];
  if (held && snapshot.jobs[request.jobName]?.attempt === request.attempt) return { kind: 'held', grant: grantOf(held, snapshot.hosts, snapshot.terms) };
  // Held by an earlier attempt whose release has not been taken yet (or granted by the pool): the pool decides.
  if (!snapshot.open || held) return { kind: 'ask-pool', why: 'closed', ...(snapshot.open ? { close: closedFor(snapshot, request.jobName) } : {}) };
  const scheduler: SchedulerState = structuredClone({ ...snapshot.scheduler, queue: [], reservation: null });
  // A request that is never queued: its seq orders nothing.
  scheduler.queue.push({ id: request.jobName, ranks: request.ranks, seq: scheduler.seq + 1, ...(request.avoidHosts && request.avoidHosts.length > 0 ? { avoidHosts: [...request.avoidHosts] } : {}), ...termsOf(request) });
  const pass = scheduleShared(scheduler, { now: nowMs, preemption: false, backfill: false, ...(snapshot.quotas ? { quotas: snapshot.quotas } : {}) });
  const allocation = pass.grants.find((a) => a.id === request.jobName);
  if (!allocation) return { kind: 'ask-pool', why: 'no-fit', close: closedFor(snapshot, request.jobName) };
  const { queue: _queue, ...rest } = scheduler;
  const state: PoolRecoverySnapshot = {
    ...snapshot,
    scheduler: { ...rest, reservation: null },
    jobs: { ...snapshot.jobs, [request.jobName]: { workflowId: request.workflowId, ranks: request.ranks, state: 'PENDING', attempt: request.attempt } },
    claimed: [...(snapshot.claimed ?? []), request.jobName],
  };
  return { kind: 'claimed', state, grant: grantOf(allocation, snapshot.hosts, snapshot.terms) };
}

/**
 * A job that asks the pool's workflow without claiming (a V2 job): the open snapshot closed, naming it
 * in `asking`, to write before its request is sent; undefined when there is nothing to close.
 */
export function closeForRequest(stored: unknown, jobName: string): PoolRecoverySnapshot | undefined {
  const snapshot = recoverySnapshotOf(stored);
  return snapshot?.open ? closedFor(snapshot, jobName) : undefined;
}

/** The snapshot closed, with the job that asks the pool named among those it waits to hear from. */
function closedFor(snapshot: PoolRecoverySnapshot, jobName: string): PoolRecoverySnapshot {
  const { open: _open, ...closed } = snapshot;
  return { ...closed, asking: [...(snapshot.asking ?? []), jobName] };
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

/** Claims and returns a pool's workflow has not taken yet: what its own answers leave out until its next step. */
export interface StoredClaims {
  /** Jobs that hold a claim in the store, with their allocations. */
  held: Allocation[];
  /** Jobs that gave their capacity back in the store. */
  returned: string[];
}

/** The stored snapshot's claims and returns since the pool last wrote it (none for anything but a snapshot of this format). */
export function storedClaims(stored: unknown): StoredClaims {
  const snapshot = recoverySnapshotOf(stored);
  const out: StoredClaims = { held: [], returned: [] };
  for (const name of new Set(snapshot?.claimed ?? [])) {
    const allocation = snapshot?.scheduler.allocations[name];
    if (allocation) out.held.push(allocation);
    else out.returned.push(name);
  }
  return out;
}

/**
 * A pool's view of who holds what (its query's answer) with the store's claims and returns since its
 * last step: a claim held is listed PENDING (as the pool lists what it granted), a return is gone.
 */
export function withStoredClaims<A extends { jobName: string; ranks: number }>(allocated: readonly A[], claims: StoredClaims, claimed: (a: Allocation) => A): A[] {
  const returned = new Set(claims.returned);
  const known = new Set(allocated.map((a) => a.jobName));
  return [...allocated.filter((a) => !returned.has(a.jobName)), ...claims.held.filter((a) => !known.has(a.id)).map(claimed)];
}

/** The part of a pool's internals (its workflow's `getNodePoolInternals`) that claims change. */
interface InternalsShape {
  hosts: Array<{ host: string; used: Array<string | null> }>;
  allocations: Record<string, { ranks: number; state: string; hosts: string[] }>;
}

/** A pool's internals with the store's claims and returns applied: a claimer on its slots, PENDING; a returned job's slots free. */
export function internalsWithClaims<I extends InternalsShape>(internals: I, claims: StoredClaims): I {
  if (claims.held.length === 0 && claims.returned.length === 0) return internals;
  const allocations = { ...internals.allocations };
  const hosts = internals.hosts.map((h) => ({ ...h, used: [...h.used] }));
  for (const name of claims.returned) {
    if (!allocations[name]) continue;
    delete allocations[name];
    for (const h of hosts) h.used = h.used.map((u) => (u === name ? null : u));
  }
  for (const a of claims.held) {
    if (allocations[a.id]) continue;
    allocations[a.id] = { ranks: a.ranks, state: 'PENDING', hosts: a.hosts.map((h) => h.host) };
    for (const placed of a.hosts) {
      const host = hosts.find((h) => h.host === placed.host);
      if (host) for (const slot of placed.slots) if (slot < host.used.length) host.used[slot] = a.id;
    }
  }
  return { ...internals, hosts, allocations };
}
