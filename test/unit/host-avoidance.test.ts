/**
 * Host avoidance: a request's `avoidHosts` (a retry's hosts that failed an earlier attempt) are left
 * out of its placement, and out of its reservation as the head, whenever the pool's other ready hosts
 * have slots enough in all to hold it; otherwise it is placed as if it avoided nothing. Checked against
 * a straightforward reference pass, and for the promises the rule makes: no grant on an avoided host
 * while the rule applies, nobody waits forever, and a head reservation the head can always use.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type HostAvailability, placeGang } from '../../src/domain/packing';
import {
  addHost,
  type Allocation,
  emptyScheduler,
  enqueue,
  type HostStatus,
  hostsToAvoid,
  MASTER_PORT_BASE,
  MASTER_PORT_RANGE,
  type PoolHost,
  type QueuedRequest,
  release,
  type Reservation,
  schedule,
  type SchedulerState,
  setHostStatus,
  standing,
} from '../../src/domain/scheduler';

const RUNS = Number(process.env.FC_RUNS ?? 150);

// ---------------------------------------------------------------------------------------------
// Reference: the rule written plainly, recomputed for every request.

const freeOf = (host: PoolHost) => host.used.flatMap((holder, slot) => (holder === null ? [slot] : []));

/** The ready hosts the request stays off: only when the other ready hosts have `ranks` slots in all. */
function refAvoided(state: SchedulerState, request: QueuedRequest): Set<string> {
  const avoid = new Set(request.avoidHosts ?? []);
  const ready = state.hosts.filter((h) => h.status === 'ready');
  const avoided = ready.filter((h) => avoid.has(h.id));
  const otherSlots = ready.filter((h) => !avoid.has(h.id)).reduce((n, h) => n + h.slots, 0);
  return avoided.length > 0 && otherSlots >= request.ranks ? new Set(avoided.map((h) => h.id)) : new Set();
}

function refAvailability(state: SchedulerState, request: QueuedRequest): HostAvailability[] {
  const reserved = state.reservation && state.reservation.requestId !== request.id ? state.reservation.counts : {};
  const avoided = refAvoided(state, request);
  const out: HostAvailability[] = [];
  for (const host of state.hosts) {
    if (host.status !== 'ready' || avoided.has(host.id)) continue;
    const free = freeOf(host);
    const usable = Math.max(0, free.length - (Object.hasOwn(reserved, host.id) ? (reserved[host.id] ?? 0) : 0));
    if (usable > 0) out.push({ host: host.id, free: free.slice(0, usable) });
  }
  return out;
}

function refReserve(state: SchedulerState, request: QueuedRequest): Reservation | null {
  if (!Number.isSafeInteger(request.ranks) || request.ranks < 1) return null;
  const avoided = refAvoided(state, request);
  const candidates = state.hosts
    .map((host, index) => ({ host, index, free: freeOf(host).length, holders: new Set(host.used.filter((u) => u !== null)).size }))
    .filter((c) => c.host.status === 'ready' && !avoided.has(c.host.id))
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

function refMasterPort(state: SchedulerState, master: string): number {
  const live = Object.values(state.allocations);
  const taken = new Set(live.map((a) => a.masterPort));
  for (let p = MASTER_PORT_BASE; p < MASTER_PORT_BASE + MASTER_PORT_RANGE; p++) if (!taken.has(p)) return p;
  const onMaster = new Set(live.filter((a) => a.hosts[0]?.host === master).map((a) => a.masterPort));
  let p = MASTER_PORT_BASE;
  while (onMaster.has(p)) p++;
  return p;
}

/** A head's reservation it can use now: on ready hosts only, and on none it avoids. */
function refReservationValid(state: SchedulerState, head: QueuedRequest): boolean {
  const r = state.reservation;
  if (r === null || r.requestId !== head.id) return false;
  const avoided = refAvoided(state, head);
  return Object.keys(r.counts).every((id) => state.hosts.some((h) => h.id === id && h.status === 'ready') && !avoided.has(id));
}

function referenceSchedule(state: SchedulerState): Allocation[] {
  const grants: Allocation[] = [];
  let headSeen = false;
  let i = 0;
  while (i < state.queue.length) {
    const request = state.queue[i];
    if (!request) break;
    const isHead = !headSeen;
    if (isHead && !refReservationValid(state, request)) state.reservation = null;
    const placement = placeGang(refAvailability(state, request), request.ranks);
    if (placement) {
      for (const a of placement) {
        const host = state.hosts.find((h) => h.id === a.host);
        assert.ok(host);
        for (const slot of a.slots) host.used[slot] = request.id;
      }
      const allocation: Allocation = { id: request.id, ranks: request.ranks, hosts: placement, masterPort: refMasterPort(state, placement[0]?.host ?? '') };
      state.allocations[request.id] = allocation;
      grants.push(allocation);
      state.queue.splice(i, 1);
      if (state.reservation?.requestId === request.id) state.reservation = null;
      continue;
    }
    if (isHead) {
      headSeen = true;
      if (!state.reservation) state.reservation = refReserve(state, request);
    }
    i++;
  }
  return grants;
}

// ---------------------------------------------------------------------------------------------
// Random pools, requests that avoid some hosts, and what happens to hosts meanwhile.

type Op =
  | { kind: 'enqueue'; seed: number; avoid: number[]; unknown: boolean }
  | { kind: 'release'; pick: number }
  | { kind: 'withdraw'; pick: number }
  | { kind: 'schedule' }
  | { kind: 'status'; pick: number; status: HostStatus }
  /** A host is lost for one pass and comes back: heads reserve without it, then may avoid again. */
  | { kind: 'flap'; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('enqueue' as const),
      seed: fc.nat(),
      avoid: fc.array(fc.nat({ max: 11 }), { maxLength: 4 }),
      unknown: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('withdraw' as const), pick: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('schedule' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('status' as const), pick: fc.nat(), status: fc.constantFrom<HostStatus>('ready', 'ready', 'unreachable', 'draining') }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flap' as const), pick: fc.nat() }) },
);

const scenarioArb = fc.record({
  slotsPerHost: fc.constantFrom(1, 2, 4, 8),
  hosts: fc.integer({ min: 1, max: 12 }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 60, size: 'max' }),
});

function pool(slotsPerHost: number, hosts: number): SchedulerState {
  const state = emptyScheduler();
  for (let i = 0; i < hosts; i++) addHost(state, `h${i}`, slotsPerHost);
  return state;
}

/** What the rule promises about one pass, from the state before it, its grants and the state after. */
function assertPass(before: SchedulerState, grants: Allocation[], after: SchedulerState): void {
  for (const g of grants) {
    const request = before.queue.find((r) => r.id === g.id);
    assert.ok(request, `${g.id} was not queued`);
    const avoided = refAvoided(before, request);
    for (const a of g.hosts) assert.ok(!avoided.has(a.host), `${g.id} placed on ${a.host}, which it avoids while the pool can place it elsewhere`);
  }
  const head = after.queue[0];
  if (!head) return;
  const readySlots = after.hosts.filter((h) => h.status === 'ready').reduce((n, h) => n + h.slots, 0);
  const r = after.reservation;
  if (head.ranks <= readySlots) {
    // The head always holds a reservation it can use: never on a host it must avoid.
    assert.equal(r?.requestId, head.id, `head ${head.id} holds no reservation`);
    assert.ok(refReservationValid(after, head), `head ${head.id} reserved a host it avoids: ${JSON.stringify(r?.counts)}`);
    assert.equal(Object.values(r?.counts ?? {}).reduce((a, b) => a + b, 0), head.ranks);
  }
  // The head waits only when the free slots it may use cannot hold it.
  const usable = refAvailability(after, head).reduce((n, h) => n + h.free.length, 0);
  assert.ok(usable < head.ranks, `head ${head.id} (${head.ranks}) waits on ${usable} usable slots`);
  // A head whose (valid) reservation is all free is granted in the pass.
  const headBefore = before.queue[0];
  if (headBefore && refReservationValid(before, headBefore)) {
    const counts = before.reservation?.counts ?? {};
    const free = Object.entries(counts).every(([id, n]) => freeOf(before.hosts.find((h) => h.id === id)!).length >= n);
    if (free) assert.ok(grants.some((g) => g.id === headBefore.id), `head ${headBefore.id} waited although its reserved slots were free`);
  }
}

function apply(state: SchedulerState, op: Op, s: { slotsPerHost: number; hosts: number; next: number }, check: (before: SchedulerState, grants: Allocation[]) => void): void {
  switch (op.kind) {
    case 'enqueue': {
      const cap = s.hosts * s.slotsPerHost;
      const ranks = 1 + (op.seed % (cap + 1));
      const avoid = op.avoid.map((i) => `h${i % s.hosts}`);
      if (op.unknown) avoid.push('gone');
      enqueue(state, `j${s.next++}`, ranks, avoid);
      break;
    }
    case 'release': {
      const ids = Object.keys(state.allocations);
      const id = ids[op.pick % Math.max(1, ids.length)];
      if (id !== undefined) release(state, id);
      break;
    }
    case 'withdraw': {
      const request = state.queue[op.pick % Math.max(1, state.queue.length)];
      if (request) release(state, request.id);
      break;
    }
    case 'schedule': {
      const before = structuredClone(state);
      check(before, schedule(state));
      break;
    }
    case 'status': {
      const host = state.hosts[op.pick % Math.max(1, state.hosts.length)];
      // Hosts that drained away come back, so the pool keeps its size.
      if (host) setHostStatus(state, host.id, op.status);
      for (let i = 0; i < s.hosts; i++) if (!state.hosts.some((h) => h.id === `h${i}`)) addHost(state, `h${i}`, s.slotsPerHost);
      break;
    }
    case 'flap': {
      const host = state.hosts[op.pick % Math.max(1, state.hosts.length)];
      if (!host) break;
      setHostStatus(state, host.id, 'unreachable');
      apply(state, { kind: 'schedule' }, s, check);
      addHost(state, host.id, s.slotsPerHost);
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------

describe('host avoidance: properties', () => {
  it('each pass decides as the reference does, and keeps the rule’s promises', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const state = pool(sc.slotsPerHost, sc.hosts);
        const s = { slotsPerHost: sc.slotsPerHost, hosts: sc.hosts, next: 0 };
        for (const op of sc.ops) {
          apply(state, op, s, (before, grants) => {
            const ref = structuredClone(before);
            const refGrants = referenceSchedule(ref);
            assert.deepEqual(grants, refGrants, 'grants as the reference does');
            assert.deepEqual(state, ref, 'leaves the state the reference leaves');
            assertPass(before, grants, state);
          });
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('never makes a job wait forever: once every allocation ends, everything that fits the ready hosts runs', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const state = pool(sc.slotsPerHost, sc.hosts);
        const s = { slotsPerHost: sc.slotsPerHost, hosts: sc.hosts, next: 0 };
        for (const op of sc.ops) apply(state, op, s, () => {});
        const readySlots = state.hosts.filter((h) => h.status === 'ready').reduce((n, h) => n + h.slots, 0);
        const fits = state.queue.filter((r) => r.ranks <= readySlots).map((r) => r.id);
        const granted = new Set<string>();
        for (let step = 0; step <= fits.length + Object.keys(state.allocations).length + 1; step++) {
          for (const id of Object.keys(state.allocations)) release(state, id);
          for (const g of schedule(state)) granted.add(g.id);
        }
        for (const id of fits) assert.ok(granted.has(id), `${id} never ran`);
      }),
      { numRuns: RUNS },
    );
  });

  it('schedules a request that avoids no ready host exactly as one that avoids nothing', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const state = pool(sc.slotsPerHost, sc.hosts);
        const s = { slotsPerHost: sc.slotsPerHost, hosts: sc.hosts, next: 0 };
        for (const op of sc.ops) {
          apply(state, op, s, () => {});
          // The same state, with every request avoiding only hosts that are not ready or not in the pool.
          const notReady = state.hosts.filter((h) => h.status !== 'ready').map((h) => h.id);
          const avoiding = structuredClone(state);
          for (const r of avoiding.queue) r.avoidHosts = [...notReady, 'gone'];
          const plain = structuredClone(state);
          for (const r of plain.queue) delete r.avoidHosts;
          assert.deepEqual(schedule(avoiding), schedule(plain));
          assert.deepEqual(avoiding.reservation, plain.reservation);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('host avoidance: examples', () => {
  it('places a retry on the other host when both are free', () => {
    const state = pool(8, 2);
    enqueue(state, 'retry', 8, ['h0']);
    assert.deepEqual(schedule(state).map((g) => g.hosts.map((a) => a.host)), [['h1']]);
  });

  it('places on the avoided host of a one-host pool: avoidance never makes a job wait forever', () => {
    const state = pool(8, 1);
    enqueue(state, 'retry', 4, ['h0']);
    assert.deepEqual(schedule(state).map((g) => g.hosts.map((a) => a.host)), [['h0']]);
  });

  it('ignores avoidance when the other hosts are too few for the gang, or not ready', () => {
    const state = pool(8, 2);
    enqueue(state, 'wide', 16, ['h0']);
    assert.deepEqual(schedule(state).map((g) => g.hosts.map((a) => a.host)), [['h0', 'h1']]);

    const lost = pool(8, 2);
    setHostStatus(lost, 'h1', 'unreachable');
    enqueue(lost, 'retry', 2, ['h0']);
    assert.deepEqual(schedule(lost).map((g) => g.hosts.map((a) => a.host)), [['h0']]);
  });

  it('waits for the other host rather than take the avoided one, reserving only there; others backfill the avoided host', () => {
    const state = pool(8, 2);
    enqueue(state, 'holder', 8);
    assert.deepEqual(schedule(state).map((g) => g.hosts.map((a) => a.host)), [['h0']]);
    enqueue(state, 'retry', 4, ['h1']);
    enqueue(state, 'small', 4);
    // h1 is free, but the retry avoids it: it waits for h0 and reserves there; the small job takes h1.
    const grants = schedule(state);
    assert.deepEqual(grants.map((g) => [g.id, g.hosts.map((a) => a.host)]), [['small', ['h1']]]);
    assert.deepEqual(state.reservation, { requestId: 'retry', counts: { h0: 4 } });
    assert.equal(standing(state, 'retry')?.usableSlots, 0, 'the slots it could use now: none, h1 is avoided');
    release(state, 'holder');
    assert.deepEqual(schedule(state).map((g) => [g.id, g.hosts.map((a) => a.host)]), [['retry', ['h0']]]);
  });

  it('makes the head’s reservation again when a host comes back and avoidance starts to apply', () => {
    const state = pool(4, 2);
    enqueue(state, 'a', 4);
    enqueue(state, 'b', 4);
    schedule(state);
    setHostStatus(state, 'h1', 'unreachable'); // b's host; b keeps its slots there
    enqueue(state, 'retry', 4, ['h0']);
    schedule(state);
    // Only h0 is ready: avoidance cannot apply, so the head reserves the host it avoids.
    assert.deepEqual(state.reservation, { requestId: 'retry', counts: { h0: 4 } });
    addHost(state, 'h1', 4); // h1's agent is back
    release(state, 'a');
    // h0 is free and was reserved, but h1 can now hold the retry: it waits for h1 and reserves there.
    assert.deepEqual(schedule(state), []);
    assert.deepEqual(state.reservation, { requestId: 'retry', counts: { h1: 4 } });
    release(state, 'b');
    assert.deepEqual(schedule(state).map((g) => [g.id, g.hosts.map((a) => a.host)]), [['retry', ['h1']]]);
  });

  it('hostsToAvoid names the avoided ready hosts only while the others can hold the gang', () => {
    const state = pool(2, 3);
    assert.deepEqual(hostsToAvoid(state, { ranks: 4, avoidHosts: ['h0', 'gone'] }), new Set(['h0']));
    assert.equal(hostsToAvoid(state, { ranks: 5, avoidHosts: ['h0'] }), undefined);
    assert.equal(hostsToAvoid(state, { ranks: 1 }), undefined);
    setHostStatus(state, 'h0', 'unreachable');
    assert.equal(hostsToAvoid(state, { ranks: 1, avoidHosts: ['h0'] }), undefined, 'an avoided host that is not ready changes nothing');
  });

  it('keeps distinct, non-empty host ids, and nothing for an empty list', () => {
    const state = emptyScheduler();
    enqueue(state, 'a', 1, ['h1', 'h1', '', 'h2']);
    enqueue(state, 'b', 1, []);
    assert.deepEqual(state.queue, [
      { id: 'a', ranks: 1, seq: 1, avoidHosts: ['h1', 'h2'] },
      { id: 'b', ranks: 1, seq: 2 },
    ]);
  });
});
