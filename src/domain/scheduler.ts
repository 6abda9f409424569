/**
 * The capacity of one node pool: hosts and their slots, gang allocations, and the FIFO queue with a
 * head reservation. Deterministic and free of I/O; the node-pool workflow owns one SchedulerState and
 * calls these functions from its handlers. State is plain JSON (it crosses continue-as-new), and the
 * functions mutate it in place.
 *
 * Queue policy (contract, "Scheduling"): first come, first served per pool. When the head does not fit,
 * it reserves, on the hosts it will use, the slots it still needs as they free up. Later jobs may start
 * ahead of it only on capacity outside that reservation, so the head is never overtaken on what it
 * waits for, and every job reaches the head once those before it have started.
 */
import { type HostAssignment, type HostAvailability, placeGang } from './packing';

export type HostStatus = 'ready' | 'draining' | 'unreachable';

export interface PoolHost {
  id: string;
  /** Rank slots: GPUs on a GPU host, 1 on a CPU host. */
  slots: number;
  status: HostStatus;
  /** used[slot] = the allocation holding that slot, or null. */
  used: Array<string | null>;
}

export interface Allocation {
  id: string;
  ranks: number;
  hosts: HostAssignment[];
  masterPort: number;
}

export interface QueuedRequest {
  id: string;
  ranks: number;
  seq: number;
}

/** The queue head's claim: per host, how many slots it will take there once they are free. */
export interface Reservation {
  requestId: string;
  counts: Record<string, number>;
}

export interface SchedulerState {
  hosts: PoolHost[];
  allocations: Record<string, Allocation>;
  queue: QueuedRequest[];
  reservation: Reservation | null;
  seq: number;
}

export const MASTER_PORT_BASE = 29500;
export const MASTER_PORT_RANGE = 4096;

export function emptyScheduler(): SchedulerState {
  return { hosts: [], allocations: {}, queue: [], reservation: null, seq: 0 };
}

export function newHost(id: string, slots: number): PoolHost {
  return { id, slots, status: 'ready', used: new Array<string | null>(slots).fill(null) };
}

function freeSlots(host: PoolHost): number[] {
  const out: number[] = [];
  host.used.forEach((holder, slot) => {
    if (holder === null) out.push(slot);
  });
  return out;
}

export type EnqueueResult = 'queued' | 'already-queued' | 'already-allocated';

export function enqueue(state: SchedulerState, id: string, ranks: number): EnqueueResult {
  if (state.allocations[id]) return 'already-allocated';
  if (state.queue.some((r) => r.id === id)) return 'already-queued';
  state.seq += 1;
  state.queue.push({ id, ranks, seq: state.seq });
  return 'queued';
}

export type ReleaseResult = 'freed' | 'dequeued' | 'unknown';

/** Frees an allocation or withdraws a queued request. Idempotent: a second release is 'unknown'. */
export function release(state: SchedulerState, id: string): ReleaseResult {
  if (state.reservation?.requestId === id) state.reservation = null;
  const allocation = state.allocations[id];
  if (allocation) {
    for (const a of allocation.hosts) {
      const host = state.hosts.find((h) => h.id === a.host);
      if (!host) continue;
      for (const slot of a.slots) if (host.used[slot] === id) host.used[slot] = null;
    }
    delete state.allocations[id];
    removeDrainedHosts(state);
    return 'freed';
  }
  const index = state.queue.findIndex((r) => r.id === id);
  if (index >= 0) {
    state.queue.splice(index, 1);
    return 'dequeued';
  }
  return 'unknown';
}

/** Slots on hosts that may take new work. */
function schedulable(host: PoolHost): boolean {
  return host.status === 'ready';
}

/** Total slots a gang could ever use: every host that is not draining out of the pool. */
export function poolSlots(state: SchedulerState): number {
  return state.hosts.filter((h) => h.status !== 'draining').reduce((n, h) => n + h.slots, 0);
}

export function freeSlotCount(state: SchedulerState): number {
  return state.hosts.filter(schedulable).reduce((n, h) => n + freeSlots(h).length, 0);
}

function availability(state: SchedulerState, forRequest: string): HostAvailability[] {
  const reserved = state.reservation && state.reservation.requestId !== forRequest ? state.reservation.counts : {};
  const out: HostAvailability[] = [];
  for (const host of state.hosts) {
    if (!schedulable(host)) continue;
    const free = freeSlots(host);
    const keep = reserved[host.id] ?? 0;
    const usable = Math.max(0, free.length - keep);
    if (usable > 0) out.push({ host: host.id, free: free.slice(0, usable) });
  }
  return out;
}

function nextMasterPort(state: SchedulerState): number {
  const taken = new Set(Object.values(state.allocations).map((a) => a.masterPort));
  for (let p = MASTER_PORT_BASE; p < MASTER_PORT_BASE + MASTER_PORT_RANGE; p++) if (!taken.has(p)) return p;
  return MASTER_PORT_BASE; // more than 4096 live gangs in one pool: ports repeat, hosts still differ
}

function allocate(state: SchedulerState, request: QueuedRequest, hosts: HostAssignment[]): Allocation {
  for (const a of hosts) {
    const host = state.hosts.find((h) => h.id === a.host);
    if (!host) throw new Error(`placement names unknown host ${a.host}`);
    for (const slot of a.slots) {
      if (host.used[slot] !== null) throw new Error(`slot ${slot} of host ${a.host} is already held by ${host.used[slot]}`);
      host.used[slot] = request.id;
    }
  }
  const allocation: Allocation = { id: request.id, ranks: request.ranks, hosts, masterPort: nextMasterPort(state) };
  state.allocations[request.id] = allocation;
  return allocation;
}

/** Chooses where the head will run: hosts with the most free slots first, then the fewest jobs to wait on. */
function reserveFor(state: SchedulerState, request: QueuedRequest): Reservation | null {
  const candidates = state.hosts
    .map((host, index) => ({
      host,
      index,
      free: freeSlots(host).length,
      holders: new Set(host.used.filter((u): u is string => u !== null)).size,
    }))
    .filter((c) => schedulable(c.host))
    .sort((a, b) => b.free - a.free || a.holders - b.holders || a.index - b.index);
  const counts: Record<string, number> = {};
  let need = request.ranks;
  for (const c of candidates) {
    if (need === 0) break;
    const take = Math.min(c.host.slots, need);
    counts[c.host.id] = take;
    need -= take;
  }
  return need === 0 ? { requestId: request.id, counts } : null;
}

function reservationStillValid(state: SchedulerState, head: QueuedRequest): boolean {
  const r = state.reservation;
  if (!r || r.requestId !== head.id) return false;
  return Object.keys(r.counts).every((id) => state.hosts.some((h) => h.id === id && schedulable(h)));
}

/**
 * One scheduling pass: grants, in queue order, every request that fits; the first request that does
 * not fit becomes the head and holds a reservation. Returns the new allocations.
 */
export function schedule(state: SchedulerState): Allocation[] {
  const grants: Allocation[] = [];
  let headSeen = false;
  let i = 0;
  while (i < state.queue.length) {
    const request = state.queue[i];
    if (!request) break;
    const isHead = !headSeen;
    if (isHead && !reservationStillValid(state, request)) state.reservation = null;
    const placement = placeGang(availability(state, request.id), request.ranks);
    if (placement) {
      grants.push(allocate(state, request, placement));
      state.queue.splice(i, 1);
      if (state.reservation?.requestId === request.id) state.reservation = null;
      continue;
    }
    if (isHead) {
      headSeen = true;
      if (!state.reservation) state.reservation = reserveFor(state, request);
    }
    if (freeSlotCount(state) === 0) break;
    i++;
  }
  return grants;
}

export interface QueueStanding {
  position: number;
  queueLength: number;
  ranks: number;
  freeSlots: number;
  /** Slots outside the head's reservation, i.e. what this request could use now if it is not the head. */
  usableSlots: number;
  isHead: boolean;
}

export function standing(state: SchedulerState, id: string): QueueStanding | undefined {
  const index = state.queue.findIndex((r) => r.id === id);
  const request = state.queue[index];
  if (!request) return undefined;
  return {
    position: index + 1,
    queueLength: state.queue.length,
    ranks: request.ranks,
    freeSlots: freeSlotCount(state),
    usableSlots: availability(state, id).reduce((n, h) => n + h.free.length, 0),
    isHead: index === 0,
  };
}

/** Adds hosts (pool growth or an agent joining). Existing ids are made ready again. */
export function addHost(state: SchedulerState, id: string, slots: number): void {
  const existing = state.hosts.find((h) => h.id === id);
  if (existing) {
    existing.status = 'ready';
    return;
  }
  state.hosts.push(newHost(id, slots));
}

export function setHostStatus(state: SchedulerState, id: string, status: HostStatus): void {
  const host = state.hosts.find((h) => h.id === id);
  if (!host) return;
  host.status = status;
  if (state.reservation && state.reservation.counts[id] !== undefined && status !== 'ready') state.reservation = null;
  removeDrainedHosts(state);
}

/** Hosts leaving the pool stop taking work at once and disappear when their last rank has ended. */
function removeDrainedHosts(state: SchedulerState): void {
  state.hosts = state.hosts.filter((h) => h.status !== 'draining' || h.used.some((u) => u !== null));
}

export function allocationsOnHost(state: SchedulerState, hostId: string): string[] {
  const host = state.hosts.find((h) => h.id === hostId);
  if (!host) return [];
  return [...new Set(host.used.filter((u): u is string => u !== null))];
}
