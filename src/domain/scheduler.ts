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
 *
 * Host avoidance (a retry stays off the hosts that failed its earlier attempt): a request's
 * `avoidHosts` are left out of its placement, and out of its reservation when it is the head, whenever
 * the pool's other ready hosts have slots enough in all to hold it; otherwise it is placed as if it
 * avoided nothing, so avoidance never makes a job wait forever.
 */
import { FreeHostIndex, type HostAssignment, type HostAvailability } from './packing';
import {
  accountOf,
  type AccountUsage,
  accrueUsage,
  chooseVictims,
  fitsBeforeHead,
  heldByAccount,
  overQuota,
  preemptionCandidates,
  priorityOf,
  reservationFreeBy,
  shareKey,
  type ShareStanding,
  type SharingPolicy,
} from './sharing';

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
  /** Sharing (all absent on a FIFO pool): copied from the request when granted. */
  priority?: number;
  account?: string;
  preemptible?: boolean;
  /** When it was granted and when it is bound to have ended (its declared maxRunDuration), ms. */
  startedAt?: number;
  endsBy?: number;
}

export interface QueuedRequest {
  id: string;
  ranks: number;
  seq: number;
  /** Hosts to stay off when the other ready hosts can hold the gang (absent: none). */
  avoidHosts?: string[];
  /** Sharing (scheduleShared): priority (default 0), account, whether it may be preempted, declared run time. */
  priority?: number;
  account?: string;
  preemptible?: boolean;
  maxRunMs?: number;
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
  /** Jobs asked to stop for a higher-priority head, and the head they stop for (until released). */
  preemptions?: Record<string, string>;
  /** Decayed usage per account, for fair share. */
  usage?: AccountUsage;
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

function freeCount(host: PoolHost): number {
  let n = 0;
  for (const holder of host.used) if (holder === null) n++;
  return n;
}

/** A gang size the packer can place; anything else stays queued, is never granted and reserves nothing. */
function isGangSize(ranks: number): boolean {
  return Number.isSafeInteger(ranks) && ranks >= 1;
}

export type EnqueueResult = 'queued' | 'already-queued' | 'already-allocated';

/** What a shared pool knows of a request beyond its size (all optional). */
export type RequestTerms = Pick<QueuedRequest, 'priority' | 'account' | 'preemptible' | 'maxRunMs'>;

export function enqueue(state: SchedulerState, id: string, ranks: number, avoidHosts?: readonly string[], terms?: RequestTerms): EnqueueResult {
  if (state.allocations[id]) return 'already-allocated';
  if (state.queue.some((r) => r.id === id)) return 'already-queued';
  state.seq += 1;
  const avoid = avoidList(avoidHosts);
  const request: QueuedRequest = avoid ? { id, ranks, seq: state.seq, avoidHosts: avoid } : { id, ranks, seq: state.seq };
  if (terms) Object.assign(request, termsOf(terms));
  state.queue.push(request);
  return 'queued';
}

/** The terms that are set, and only those (so a request or allocation without any keeps the shape it had before them). */
export function termsOf(terms: RequestTerms): RequestTerms {
  const out: RequestTerms = {};
  if (terms.priority !== undefined && terms.priority !== 0) out.priority = terms.priority;
  if (terms.account !== undefined && terms.account !== '') out.account = terms.account;
  if (terms.preemptible) out.preemptible = true;
  if (terms.maxRunMs !== undefined) out.maxRunMs = terms.maxRunMs;
  return out;
}

/** A request's hosts to avoid as kept: distinct non-empty ids in the order given, or undefined for none. */
export function avoidList(hosts: readonly unknown[] | undefined): string[] | undefined {
  if (!hosts || hosts.length === 0) return undefined;
  const out: string[] = [];
  for (const h of hosts) if (typeof h === 'string' && h !== '' && !out.includes(h)) out.push(h);
  return out.length > 0 ? out : undefined;
}

/**
 * The hosts the request stays off in a placement now: its avoided hosts that are ready, when the other
 * ready hosts have at least `ranks` slots in all; otherwise (or when it avoids no ready host) none.
 */
export function hostsToAvoid(state: SchedulerState, request: Pick<QueuedRequest, 'ranks' | 'avoidHosts'>): Set<string> | undefined {
  const avoid = request.avoidHosts;
  if (!avoid || avoid.length === 0) return undefined;
  const names = new Set(avoid);
  const avoided = new Set<string>();
  let otherSlots = 0;
  for (const h of state.hosts) {
    if (!schedulable(h)) continue;
    if (names.has(h.id)) avoided.add(h.id);
    else otherSlots += h.slots;
  }
  return avoided.size > 0 && otherSlots >= request.ranks ? avoided : undefined;
}

export type ReleaseResult = 'freed' | 'dequeued' | 'unknown';

/** Frees an allocation or withdraws a queued request. Idempotent: a second release is 'unknown'. */
export function release(state: SchedulerState, id: string): ReleaseResult {
  if (state.reservation?.requestId === id) state.reservation = null;
  if (state.preemptions) {
    delete state.preemptions[id];
    for (const victim in state.preemptions) if (state.preemptions[victim] === id) delete state.preemptions[victim];
  }
  const allocation = state.allocations[id];
  if (allocation) {
    const slotsByHost = new Map(allocation.hosts.map((a) => [a.host, a.slots]));
    let drainingTouched = false;
    for (const host of state.hosts) {
      const slots = slotsByHost.get(host.id);
      if (!slots) continue;
      for (const slot of slots) if (host.used[slot] === id) host.used[slot] = null;
      if (host.status === 'draining') drainingTouched = true;
    }
    delete state.allocations[id];
    // Only a host this allocation held can have just emptied.
    if (drainingTouched) removeDrainedHosts(state);
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
  return state.hosts.filter(schedulable).reduce((n, h) => n + freeCount(h), 0);
}

function availability(state: SchedulerState, request: QueuedRequest): HostAvailability[] {
  const reserved = state.reservation && state.reservation.requestId !== request.id ? state.reservation.counts : {};
  const avoided = hostsToAvoid(state, request);
  const out: HostAvailability[] = [];
  for (const host of state.hosts) {
    if (!schedulable(host) || avoided?.has(host.id)) continue;
    const free = freeSlots(host);
    const keep = Object.hasOwn(reserved, host.id) ? (reserved[host.id] ?? 0) : 0;
    const usable = Math.max(0, free.length - keep);
    if (usable > 0) out.push({ host: host.id, free: free.slice(0, usable) });
  }
  return out;
}

/** A placement policy: the default is placeGang's best-fit; the benchmark swaps in placeFirstFit. */
export type PlacementPolicy = (hosts: readonly HostAvailability[], ranks: number) => HostAssignment[] | undefined;

/** What passes did, added up across the passes it is given to (for the benchmark). */
export interface ScheduleStats {
  /** Queued requests a pass looked at, granted or not. */
  considered: number;
  granted: number;
}

export interface ScheduleOptions {
  place?: PlacementPolicy;
  stats?: ScheduleStats;
}

/**
 * MASTER_PORT for new gangs: the lowest port no live gang uses. Past MASTER_PORT_RANGE live gangs,
 * the lowest port no live gang with the same master host (its first host, where rank 0 runs) uses.
 */
class MasterPorts {
  /** taken[p - MASTER_PORT_BASE] = 1 when a live gang uses port p. */
  private readonly taken = new Uint8Array(MASTER_PORT_RANGE);
  private next = 0;
  private byMaster: Map<string, Set<number>> | undefined;

  constructor(private readonly allocations: Record<string, Allocation>) {
    for (const id in allocations) {
      const offset = (allocations[id]?.masterPort ?? -1) - MASTER_PORT_BASE;
      if (offset >= 0 && offset < MASTER_PORT_RANGE) this.taken[offset] = 1;
    }
  }

  pick(master: string): number {
    // Within a pass ports are only taken, never freed, so the lowest free port only moves up.
    while (this.next < MASTER_PORT_RANGE && this.taken[this.next] === 1) this.next++;
    let port = MASTER_PORT_BASE + this.next;
    if (this.next >= MASTER_PORT_RANGE) {
      const onMaster = this.portsOn(master);
      port = MASTER_PORT_BASE;
      while (onMaster.has(port)) port++;
    } else this.taken[this.next] = 1;
    if (this.byMaster) this.portsOn(master).add(port);
    return port;
  }

  private portsOn(master: string): Set<number> {
    if (!this.byMaster) {
      this.byMaster = new Map();
      for (const a of Object.values(this.allocations)) {
        const m = a.hosts[0]?.host;
        if (m !== undefined) this.portsOn(m).add(a.masterPort);
      }
    }
    let set = this.byMaster.get(master);
    if (!set) this.byMaster.set(master, (set = new Set()));
    return set;
  }
}

/**
 * One pass's view of the pool, computed once and updated on each grant: per host (pool order) the
 * slots the request being considered may use. Before the head fails that is every free slot on a
 * ready host; after, the head's reserved counts are held back.
 */
class PassView {
  readonly index: FreeHostIndex;
  private readonly ready: Uint8Array;
  /** Pool indices of the hosts named by `reserved`, and how many of them are ready. */
  private reserved: Reservation | null;
  private reservedAt: number[] = [];
  private reservedReady = 0;
  private byId: Map<string, number> | undefined;
  private ports: MasterPorts | undefined;
  /** Slots of the ready hosts, counted on first use. */
  private readySlotTotal: number | undefined;

  constructor(
    private readonly state: SchedulerState,
    private readonly policy: PlacementPolicy | undefined,
    /** Set by a shared pass: grants record when they started. */
    private readonly now?: number,
  ) {
    // One plain loop and typed arrays: a pass runs after every release, so it should be cheap and
    // leave little garbage behind.
    const hosts = state.hosts;
    const n = hosts.length;
    this.ready = new Uint8Array(n);
    const free = new Int32Array(n);
    this.reserved = state.reservation;
    const counts = this.reserved?.counts;
    for (let i = 0; i < n; i++) {
      const h = hosts[i];
      if (!h) continue;
      const ready = schedulable(h);
      if (ready) {
        this.ready[i] = 1;
        const used = h.used;
        let f = 0;
        for (let s = 0; s < used.length; s++) if (used[s] === null) f++;
        free[i] = f;
      }
      if (counts && Object.hasOwn(counts, h.id)) {
        this.reservedAt.push(i);
        if (ready) this.reservedReady++;
      }
    }
    this.index = new FreeHostIndex(free);
  }

  /** Only a custom placement policy and requests that avoid hosts name hosts by id, so only they pay for the map. */
  private hostIndex(id: string): number | undefined {
    if (!this.byId) this.byId = new Map(this.state.hosts.map((h, i) => [h.id, i]));
    return this.byId.get(id);
  }

  isReady(index: number): boolean {
    return this.ready[index] === 1;
  }

  /** Ids of the pool's hosts that are not ready (usually none), found once per pass. */
  notReadyIds(): string[] {
    if (!this.notReady) {
      this.notReady = [];
      for (let i = 0; i < this.state.hosts.length; i++) if (!this.isReady(i)) this.notReady.push(this.state.hosts[i]?.id ?? '');
    }
    return this.notReady;
  }

  private notReady: string[] | undefined;

  /** True when the reservation names only hosts of the pool that are ready. */
  coversReadyHostsOnly(reservation: Reservation): boolean {
    if (reservation !== this.reserved) this.locate(reservation);
    return this.reservedReady === Object.keys(reservation.counts).length;
  }

  /** From now on, requests other than the head may not use the head's reserved slots. */
  holdBack(reservation: Reservation): void {
    if (reservation !== this.reserved) this.locate(reservation);
    for (const i of this.reservedAt) {
      const h = this.state.hosts[i];
      if (!h || !this.isReady(i)) continue;
      this.index.setFree(i, Math.max(0, this.index.free(i) - (reservation.counts[h.id] ?? 0)));
    }
  }

  /**
   * Runs `fn` with the reservation's free slots usable again (backfill into them), then holds back
   * again what is still free of them.
   */
  lendReserved<T>(reservation: Reservation, fn: () => T): T {
    if (reservation !== this.reserved) this.locate(reservation);
    const setFromHost = (hold: boolean) => {
      for (const i of this.reservedAt) {
        const h = this.state.hosts[i];
        if (!h || !this.isReady(i)) continue;
        const free = freeCount(h);
        this.index.setFree(i, hold ? Math.max(0, free - (reservation.counts[h.id] ?? 0)) : free);
      }
    };
    setFromHost(false);
    try {
      return fn();
    } finally {
      setFromHost(true);
    }
  }

  private locate(reservation: Reservation): void {
    this.reserved = reservation;
    this.reservedAt = [];
    this.reservedReady = 0;
    this.state.hosts.forEach((h, i) => {
      if (!Object.hasOwn(reservation.counts, h.id)) return;
      this.reservedAt.push(i);
      if (this.isReady(i)) this.reservedReady++;
    });
  }

  /** Grants the whole gang if it fits the usable slots; otherwise changes nothing. */
  tryGrant(request: QueuedRequest): Allocation | undefined {
    // A gang never fits in fewer usable slots than it has ranks, whatever the placement.
    if (!isGangSize(request.ranks) || request.ranks > this.index.total) return undefined;
    const avoided = this.avoidedBy(request);
    if (!avoided) return this.place(request);
    // The avoided hosts are hidden from this request's placement only.
    const kept = avoided.map((i) => this.index.free(i));
    for (const i of avoided) this.index.setFree(i, 0);
    try {
      return this.place(request);
    } finally {
      avoided.forEach((i, k) => this.index.setFree(i, kept[k] ?? 0));
    }
  }

  private place(request: QueuedRequest): Allocation | undefined {
    if (request.ranks > this.index.total) return undefined;
    const assignments = this.policy ? this.policyPlacement(request.ranks) : this.bestFit(request.ranks);
    if (!assignments) return undefined;
    return this.allocate(request, assignments);
  }

  /**
   * Pool indices of the ready hosts the request stays off in this pass (hostsToAvoid's rule), or
   * undefined. Free for a request that avoids nothing; the first one that does pays O(hosts) once per pass.
   */
  avoidedBy(request: QueuedRequest): number[] | undefined {
    const avoid = request.avoidHosts;
    if (!avoid || avoid.length === 0) return undefined;
    const at: number[] = [];
    let avoidedSlots = 0;
    for (const id of avoid) {
      const i = this.hostIndex(id);
      if (i === undefined || !this.isReady(i) || at.includes(i)) continue;
      at.push(i);
      avoidedSlots += this.state.hosts[i]?.slots ?? 0;
    }
    if (at.length === 0) return undefined;
    return this.readySlots() - avoidedSlots >= request.ranks ? at : undefined;
  }

  /** True when the reservation names a host the request must stay off in this pass. */
  namesAvoidedHost(reservation: Reservation, request: QueuedRequest): boolean {
    const avoided = this.avoidedBy(request);
    return avoided !== undefined && avoided.some((i) => Object.hasOwn(reservation.counts, this.state.hosts[i]?.id ?? ''));
  }

  private readySlots(): number {
    if (this.readySlotTotal === undefined) {
      let n = 0;
      this.state.hosts.forEach((h, i) => {
        if (this.isReady(i)) n += h.slots;
      });
      this.readySlotTotal = n;
    }
    return this.readySlotTotal;
  }

  private bestFit(ranks: number): Array<{ index: number; slots: number[] }> | undefined {
    const picks = this.index.place(ranks);
    if (!picks) return undefined;
    return picks.map(({ index, take }) => {
      const host = this.state.hosts[index];
      if (!host) throw new Error(`placement chose host index ${index}, which does not exist`);
      const slots: number[] = [];
      for (let s = 0; s < host.used.length && slots.length < take; s++) if (host.used[s] === null) slots.push(s);
      return { index, slots };
    });
  }

  private policyPlacement(ranks: number): Array<{ index: number; slots: number[] }> | undefined {
    const hosts: HostAvailability[] = [];
    this.state.hosts.forEach((host, i) => {
      const usable = this.index.free(i);
      if (usable > 0) hosts.push({ host: host.id, free: freeSlots(host).slice(0, usable) });
    });
    const placement = this.policy?.(hosts, ranks);
    if (!placement) return undefined;
    const placed = placement.reduce((n, a) => n + a.slots.length, 0);
    if (placed !== ranks) throw new Error(`placement policy placed ${placed} of ${ranks} ranks; a gang is placed whole or not at all`);
    return placement.map((a) => {
      const index = this.hostIndex(a.host);
      if (index === undefined || !this.isReady(index)) throw new Error(`placement names host ${a.host}, which is not ready`);
      return { index, slots: a.slots };
    });
  }

  private allocate(request: QueuedRequest, assignments: Array<{ index: number; slots: number[] }>): Allocation {
    // Check every slot before taking any, so a bad placement leaves the pool as it was.
    for (const { index, slots } of assignments) {
      const host = this.state.hosts[index];
      if (!host) throw new Error(`placement names host index ${index}, which does not exist`);
      for (const slot of slots)
        if (host.used[slot] !== null) throw new Error(`slot ${slot} of host ${host.id} is not free (held by ${host.used[slot] ?? 'nothing: no such slot'})`);
      if (new Set(slots).size !== slots.length) throw new Error(`placement names a slot of host ${host.id} twice`);
    }
    const hosts: HostAssignment[] = [];
    for (const { index, slots } of assignments) {
      const host = this.state.hosts[index];
      if (!host) continue;
      for (const slot of slots) host.used[slot] = request.id;
      this.index.setFree(index, Math.max(0, this.index.free(index) - slots.length));
      hosts.push({ host: host.id, slots });
    }
    if (!this.ports) this.ports = new MasterPorts(this.state.allocations);
    const allocation: Allocation = { id: request.id, ranks: request.ranks, hosts, masterPort: this.ports.pick(hosts[0]?.host ?? '') };
    if (this.now !== undefined) {
      Object.assign(allocation, termsOf({ priority: request.priority, account: request.account, preemptible: request.preemptible }));
      allocation.startedAt = this.now;
      if (request.maxRunMs !== undefined) allocation.endsBy = this.now + request.maxRunMs;
    }
    this.state.allocations[request.id] = allocation;
    return allocation;
  }

  /**
   * Where the head will run: ready hosts with the most free slots first, then the fewest jobs to wait
   * on, then pool order, leaving out the hosts it avoids. Visits free-count levels from the top and
   * stops once the head is covered.
   */
  reserveFor(request: QueuedRequest): Reservation | null {
    if (!isGangSize(request.ranks)) return null;
    const avoided = this.avoidedBy(request);
    const skip = avoided ? new Set(avoided) : undefined;
    const levels: number[][] = [];
    this.state.hosts.forEach((_, i) => {
      if (!this.isReady(i) || skip?.has(i)) return;
      const free = this.index.free(i);
      (levels[free] ??= []).push(i);
    });
    const counts: Record<string, number> = {};
    let need = request.ranks;
    for (let free = levels.length - 1; free >= 0 && need > 0; free--) {
      const byHolders: number[][] = [];
      for (const i of levels[free] ?? []) {
        const host = this.state.hosts[i];
        if (host) (byHolders[holderCount(host)] ??= []).push(i);
      }
      for (const group of byHolders) {
        for (const i of group ?? []) {
          const host = this.state.hosts[i];
          if (!host || need === 0) break;
          const take = Math.min(host.slots, need);
          counts[host.id] = take;
          need -= take;
        }
      }
    }
    return need === 0 ? { requestId: request.id, counts } : null;
  }
}

/** How many distinct allocations hold slots on the host. */
function holderCount(host: PoolHost): number {
  const seen: string[] = [];
  for (const holder of host.used) if (holder !== null && !seen.includes(holder)) seen.push(holder);
  return seen.length;
}

function reservationStillValid(state: SchedulerState, head: QueuedRequest, view: PassView): boolean {
  const r = state.reservation;
  // A reservation made while the head could not avoid its hosts is made again once it can.
  return r !== null && r.requestId === head.id && view.coversReadyHostsOnly(r) && !view.namesAvoidedHost(r, head);
}

/**
 * One scheduling pass: grants, in queue order, every request that fits; the first request that does
 * not fit becomes the head and holds a reservation. Returns the new allocations. `options.place`
 * swaps the placement policy (default: best-fit packing); `options.stats` adds up what passes did.
 *
 * Cost: O(hosts × slots) to build the pass's view, O(1) per request too large for the usable slots,
 * and a placement plus an incremental view update per grant. Requests that avoid hosts add O(hosts)
 * once per pass (a host index) and O(hosts they avoid) each.
 */
export function schedule(state: SchedulerState, options: ScheduleOptions = {}): Allocation[] {
  const queue = state.queue;
  const grants: Allocation[] = [];
  if (queue.length === 0) return grants;
  const view = new PassView(state, options.place);
  const granted = new Set<QueuedRequest>();
  let considered = 0;

  // Until one does not fit, each request in turn is the head and may use every free slot.
  let i = 0;
  let last = 0;
  try {
    for (; i < queue.length; i++) {
      const request = queue[i];
      if (!request) break;
      considered++;
      last = i;
      if (!reservationStillValid(state, request, view)) state.reservation = null;
      const allocation = view.tryGrant(request);
      if (!allocation) break;
      grants.push(allocation);
      granted.add(request);
      if (state.reservation?.requestId === request.id) state.reservation = null;
    }

    // The head waits; later requests backfill only outside its reservation.
    const head = queue[i];
    if (head) {
      if (!state.reservation) state.reservation = view.reserveFor(head);
      if (state.reservation) view.holdBack(state.reservation);
      for (let j = i + 1; j < queue.length && view.index.total > 0; j++) {
        const request = queue[j];
        if (!request) break;
        considered++;
        last = j;
        const allocation = view.tryGrant(request);
        if (!allocation) continue;
        grants.push(allocation);
        granted.add(request);
      }
    }
  } finally {
    // Granted requests leave the queue even if a placement policy threw part-way. Only the part of
    // the queue this pass looked at is compacted; the rest moves up in one splice.
    if (granted.size > 0) {
      let w = 0;
      for (let r = 0; r <= last && r < queue.length; r++) {
        const request = queue[r];
        if (request && !granted.has(request)) queue[w++] = request;
      }
      queue.splice(w, Math.min(last + 1, queue.length) - w);
    }
  }
  if (options.stats) {
    options.stats.considered += considered;
    options.stats.granted += grants.length;
  }
  return grants;
}

/** What a shared pass did: its grants, and the running jobs it asks to stop for a higher-priority head. */
export interface SharedPass {
  grants: Allocation[];
  preempt: Array<{ victim: string; by: string }>;
}

/**
 * The queue in a shared pass's order (sharing.ts): priority tiers from the highest; in a tier the
 * head that holds the reservation first, then fair share across accounts (lowest key first, ties by
 * arrival) or, without fair share, arrival. Built in O(queue); each step costs O(accounts in the tier).
 */
interface OrderList {
  account: string;
  items: QueuedRequest[];
  at: number;
  key: number;
  stale: boolean;
}

class PassOrder {
  private readonly tiers: Array<{ first: QueuedRequest | undefined; lists: OrderList[] }> = [];
  private t = 0;

  constructor(
    queue: readonly QueuedRequest[],
    stickyId: string | undefined,
    private readonly key: ((account: string) => number) | undefined,
  ) {
    const byPriority = new Map<number, { first: QueuedRequest | undefined; lists: Map<string, OrderList> }>();
    for (const r of queue) {
      const p = priorityOf(r);
      let tier = byPriority.get(p);
      if (!tier) byPriority.set(p, (tier = { first: undefined, lists: new Map() }));
      if (r.id === stickyId) {
        tier.first = r;
        continue;
      }
      const account = key ? accountOf(r) : '';
      let list = tier.lists.get(account);
      if (!list) tier.lists.set(account, (list = { account, items: [], at: 0, key: 0, stale: true }));
      list.items.push(r);
    }
    for (const p of [...byPriority.keys()].sort((a, b) => b - a)) {
      const tier = byPriority.get(p);
      if (tier) this.tiers.push({ first: tier.first, lists: [...tier.lists.values()] });
    }
  }

  next(): QueuedRequest | undefined {
    for (; this.t < this.tiers.length; this.t++) {
      const tier = this.tiers[this.t];
      if (!tier) continue;
      if (tier.first) {
        const r = tier.first;
        tier.first = undefined;
        return r;
      }
      let best: OrderList | undefined;
      for (const list of tier.lists) {
        const r = list.items[list.at];
        if (!r) continue;
        if (!this.key) {
          best = list;
          break;
        }
        // A key changes only when its account is granted something: recomputed then, not per step.
        if (list.stale) {
          list.key = this.key(list.account);
          list.stale = false;
        }
        if (!best || list.key < best.key || (list.key === best.key && r.seq < (best.items[best.at]?.seq ?? 0))) best = list;
      }
      if (best) return best.items[best.at++];
    }
    return undefined;
  }

  /** The account was granted slots: its share key has changed. */
  granted(account: string): void {
    if (!this.key) return;
    for (const tier of this.tiers) for (const list of tier.lists) if (list.account === account) list.stale = true;
  }
}

/**
 * One pass of a shared pool (sharing.ts has the rules): requests in priority / fair-share / arrival
 * order, each granted if it fits and its account's quota allows; the first eligible one that does not
 * fit is the head, keeps (or makes) its reservation, and may preempt lower-priority preemptible jobs;
 * later requests use slots outside the reservation, or backfill into its free slots when they declare
 * a run time that ends before the reservation is certain to be free. Mutates state like schedule().
 */
export function scheduleShared(state: SchedulerState, policy: SharingPolicy, options: ScheduleOptions = {}): SharedPass {
  const out: SharedPass = { grants: [], preempt: [] };
  const fair = policy.fairShare;
  const held = heldByAccount(state.allocations);
  if (fair) {
    state.usage ??= { at: policy.now, slots: {} };
    accrueUsage(state.usage, held, policy.now, fair.halfLifeMs);
  }
  const queue = state.queue;
  if (queue.length === 0) return out;
  const view = new PassView(state, options.place, policy.now);
  const order = new PassOrder(queue, state.reservation?.requestId, fair ? (account) => shareKey(fair, state.usage, held.get(account) ?? 0, account) : undefined);
  const granted = new Set<string>();
  let considered = 0;
  const grant = (request: QueuedRequest, allocation: Allocation) => {
    out.grants.push(allocation);
    granted.add(request.id);
    const account = accountOf(request);
    held.set(account, (held.get(account) ?? 0) + request.ranks);
    order.granted(account);
  };
  const blocked = (r: QueuedRequest) => overQuota(policy.quotas, accountOf(r), held.get(accountOf(r)) ?? 0, r.ranks);

  try {
    let head: QueuedRequest | undefined;
    for (let r = order.next(); r; r = order.next()) {
      considered++;
      if (blocked(r)) continue;
      const allocation = view.tryGrant(r);
      if (!allocation) {
        head = r;
        break;
      }
      grant(r, allocation);
      if (state.reservation?.requestId === r.id) state.reservation = null;
    }
    if (!head) {
      state.reservation = null;
      return out;
    }
    if (!reservationStillValid(state, head, view)) state.reservation = null;
    if (policy.preemption !== false && !waitsOnPreemption(state, head.id)) preemptFor(state, head, view, out);
    if (!state.reservation) state.reservation = view.reserveFor(head);
    const reservation = state.reservation;
    if (reservation) view.holdBack(reservation);
    const freeBy = reservation && policy.backfill !== false ? reservationFreeBy(state, reservation, policy.now) : Number.POSITIVE_INFINITY;
    const backfill = reservation !== null && Number.isFinite(freeBy);
    for (let r = order.next(); r; r = order.next()) {
      if (view.index.total === 0 && !backfill) break;
      considered++;
      if (blocked(r)) continue;
      let allocation = view.tryGrant(r);
      if (!allocation && reservation && backfill && fitsBeforeHead(r, policy.now, freeBy)) allocation = view.lendReserved(reservation, () => view.tryGrant(r));
      if (allocation) grant(r, allocation);
    }
  } finally {
    if (granted.size > 0) {
      let w = 0;
      for (const request of queue) if (!granted.has(request.id)) queue[w++] = request;
      queue.length = w;
    }
    if (options.stats) {
      options.stats.considered += considered;
      options.stats.granted += out.grants.length;
    }
  }
  return out;
}

function waitsOnPreemption(state: SchedulerState, headId: string): boolean {
  const p = state.preemptions;
  if (!p) return false;
  for (const victim in p) if (p[victim] === headId) return true;
  return false;
}

/**
 * Picks victims for a head that does not fit (sharing.ts chooseVictims) and reserves for it the free
 * slots and the victims' slots, victims' hosts first, so it starts as soon as they have stopped.
 */
function preemptFor(state: SchedulerState, head: QueuedRequest, view: PassView, out: SharedPass): void {
  if (!isGangSize(head.ranks)) return;
  // Before the head's reservation is held back, the view's free counts are the hosts' free slots.
  const avoided = view.avoidedBy(head) ?? [];
  let free = view.index.total;
  for (const i of avoided) free -= view.index.free(i);
  const need = head.ranks - free;
  if (need <= 0) return;
  const unusable = new Set<string>(view.notReadyIds());
  for (const i of avoided) unusable.add(state.hosts[i]?.id ?? '');
  const usable = (h: PoolHost) => h.status === 'ready' && !unusable.has(h.id);
  const victims = chooseVictims(preemptionCandidates(state, head, unusable), need);
  if (!victims || victims.length === 0) return;
  const freed = new Map<string, number>();
  for (const v of victims)
    for (const a of state.allocations[v.id]?.hosts ?? []) freed.set(a.host, (freed.get(a.host) ?? 0) + a.slots.length);
  const give = state.hosts
    .map((h, index) => ({ h, index, victim: freed.get(h.id) ?? 0, give: usable(h) ? freeCount(h) + (freed.get(h.id) ?? 0) : 0 }))
    .filter((g) => g.give > 0)
    .sort((a, b) => Number(b.victim > 0) - Number(a.victim > 0) || b.give - a.give || a.index - b.index);
  const counts: Record<string, number> = {};
  let left = head.ranks;
  for (const g of give) {
    if (left === 0) break;
    const take = Math.min(g.give, left);
    counts[g.h.id] = take;
    left -= take;
  }
  if (left > 0) return;
  state.reservation = { requestId: head.id, counts };
  state.preemptions ??= {};
  for (const v of victims) {
    state.preemptions[v.id] = head.id;
    out.preempt.push({ victim: v.id, by: head.id });
  }
}

export interface QueueStanding {
  position: number;
  queueLength: number;
  ranks: number;
  freeSlots: number;
  /** Slots outside the head's reservation, i.e. what this request could use now if it is not the head. */
  usableSlots: number;
  isHead: boolean;
  /** Its priority, when not the default. */
  priority?: number;
  /** Running jobs being preempted to make room for it (shared pools). */
  preempting?: string[];
  /** Its account's quota and fair share, when they hold it back (shared pools; sharing.ts shareStanding). */
  quota?: ShareStanding['quota'];
  share?: ShareStanding['share'];
}

export function standing(state: SchedulerState, id: string): QueueStanding | undefined {
  const index = state.queue.findIndex((r) => r.id === id);
  const request = state.queue[index];
  if (!request) return undefined;
  const preempting = Object.entries(state.preemptions ?? {})
    .filter(([, by]) => by === id)
    .map(([victim]) => victim);
  return {
    position: index + 1,
    queueLength: state.queue.length,
    ranks: request.ranks,
    freeSlots: freeSlotCount(state),
    usableSlots: availability(state, request).reduce((n, h) => n + h.free.length, 0),
    isHead: index === 0,
    ...(request.priority !== undefined && request.priority !== 0 ? { priority: request.priority } : {}),
    ...(preempting.length > 0 ? { preempting } : {}),
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
  if (state.reservation && Object.hasOwn(state.reservation.counts, id) && status !== 'ready') state.reservation = null;
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
