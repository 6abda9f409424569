/**
 * Sharing a pool (src/domain/sharing.ts, scheduleShared): priority order, preemption, quotas, fair
 * share and conservative backfill, each checked against a plain reference or for the promise it makes:
 *
 * - priority: a shared pass with no quotas, fair share, preemption or backfill is the FIFO pass over
 *   the queue sorted by priority then arrival; with everything at priority 0 it is today's FIFO pass;
 * - preemption: victims are the lowest-priority, then fewest, preemptible running jobs of strictly
 *   lower priority that make the head fit (brute force over subsets), and the head starts once they stop;
 * - quotas are never exceeded; fair share converges to the configured shares over a long trace;
 * - backfill never pushes the head past the time its reserved slots were certain to be free;
 * - no starvation: the head is granted in the first pass where its reserved slots are free, unless a
 *   request of strictly higher priority (or its account's quota) takes its place; every job of a
 *   finite trace runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  addHost,
  type Allocation,
  emptyScheduler,
  enqueue,
  release,
  type RequestTerms,
  schedule,
  type SchedulerState,
  scheduleShared,
  type SharedPass,
} from '../../src/domain/scheduler';
import {
  accountOf,
  accrueUsage,
  chooseVictims,
  heldByAccount,
  overQuota,
  priorityOf,
  reservationFreeBy,
  type SharingPolicy,
  type VictimCandidate,
  weightOf,
} from '../../src/domain/sharing';

const RUNS = Number(process.env.FC_RUNS ?? 100);
const clone = <T>(x: T): T => structuredClone(x);
const shape = (a: Allocation) => ({ id: a.id, hosts: a.hosts, masterPort: a.masterPort });
/** Was a request of strictly higher priority than `id` queued, or `id`'s account at its quota, when the pass began? */
function mayGoFirst(before: SchedulerState, id: string, quotas?: Record<string, number>): boolean {
  const r = before.queue.find((q) => q.id === id);
  if (!r) return true;
  const held = heldByAccount(before.allocations).get(accountOf(r)) ?? 0;
  return before.queue.some((q) => priorityOf(q) > priorityOf(r)) || overQuota(quotas, accountOf(r), held, r.ranks);
}

// ---------------------------------------------------------------------------------------------
// A seeded simulation: jobs arrive, run for their time (never past a declared maxRunMs), and end;
// preempted jobs stop at once and queue again (they retry PREEMPTED). A pass runs after every event.

interface SimJob extends RequestTerms {
  id: string;
  ranks: number;
  arrive: number;
  runMs: number;
}

interface SimObserver {
  afterPass?: (state: SchedulerState, pass: SharedPass, now: number, before: SchedulerState) => void;
}

interface SimResult {
  grantedAt: Map<string, number>;
  endedAt: Map<string, number>;
  slotMsByAccount: Map<string, number>;
  state: SchedulerState;
  passes: number;
  preemptions: number;
}

function simulate(hosts: number[], jobs: readonly SimJob[], policy: Omit<SharingPolicy, 'now'>, observer: SimObserver = {}, until = Number.POSITIVE_INFINITY): SimResult {
  const state = emptyScheduler();
  hosts.forEach((slots, i) => addHost(state, `h${i}`, slots));
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const arrivals = [...jobs].sort((a, b) => a.arrive - b.arrive);
  const running = new Map<string, number>(); // id -> end time
  const result: SimResult = { grantedAt: new Map(), endedAt: new Map(), slotMsByAccount: new Map(), state, passes: 0, preemptions: 0 };
  let next = 0;
  let now = 0;
  let again = false; // victims stopped: pass again at once
  const terms = (j: SimJob): RequestTerms => ({ priority: j.priority, account: j.account, preemptible: j.preemptible, maxRunMs: j.maxRunMs });
  const accrue = (to: number) => {
    for (const [id] of running) {
      const j = byId.get(id);
      const a = state.allocations[id];
      if (j && a) result.slotMsByAccount.set(accountOf(j), (result.slotMsByAccount.get(accountOf(j)) ?? 0) + a.ranks * (to - now));
    }
    if (policy.fairShare) {
      state.usage ??= { at: now, slots: {} };
      accrueUsage(state.usage, heldByAccount(state.allocations), to, policy.fairShare.halfLifeMs);
    }
  };
  for (let guard = 0; guard < 200_000; guard++) {
    const nextEnd = Math.min(...running.values());
    const nextArrival = arrivals[next]?.arrive ?? Number.POSITIVE_INFINITY;
    const t = again ? now : Math.min(nextEnd, nextArrival);
    again = false;
    if (!Number.isFinite(t) || t > until) break;
    accrue(t);
    now = t;
    for (const [id, end] of [...running]) {
      if (end > now) continue;
      running.delete(id);
      release(state, id);
      result.endedAt.set(id, now);
    }
    while (arrivals[next] && (arrivals[next]?.arrive ?? 0) <= now) {
      const j = arrivals[next++];
      if (j) enqueue(state, j.id, j.ranks, undefined, terms(j));
    }
    const before = observer.afterPass ? clone(state) : state;
    const pass = scheduleShared(state, { ...policy, now });
    result.passes++;
    for (const g of pass.grants) {
      const j = byId.get(g.id);
      if (!j) throw new Error(`granted unknown ${g.id}`);
      if (!result.grantedAt.has(g.id)) result.grantedAt.set(g.id, now);
      running.set(g.id, now + j.runMs);
    }
    observer.afterPass?.(state, pass, now, before);
    for (const { victim } of pass.preempt) {
      // The victim stops (SIGTERM, grace, SIGKILL: here at once) and queues again: it retries PREEMPTED.
      result.preemptions++;
      running.delete(victim);
      release(state, victim);
      result.grantedAt.delete(victim);
      const j = byId.get(victim);
      if (j) enqueue(state, j.id, j.ranks, undefined, terms(j));
      again = true;
    }
  }
  return result;
}

const jobArb = (accounts: number, withDurations: boolean): fc.Arbitrary<Omit<SimJob, 'id'>> =>
  fc.record({
    ranks: fc.constantFrom(1, 2, 3, 4, 8, 12),
    arrive: fc.integer({ min: 0, max: 50 }),
    runMs: fc.integer({ min: 1, max: 40 }),
    priority: fc.integer({ min: -2, max: 2 }),
    account: fc.integer({ min: 0, max: accounts - 1 }).map((a) => `acct${a}`),
    preemptible: fc.boolean(),
    declare: withDurations ? fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 20 })) : fc.constant(undefined),
  }).map(({ declare, ...j }) => (declare === undefined ? j : { ...j, maxRunMs: j.runMs + declare }));

const traceArb = (accounts: number, withDurations: boolean) =>
  fc.array(jobArb(accounts, withDurations), { minLength: 1, maxLength: 40 }).map((js) => js.map((j, i) => ({ ...j, id: `j${i}` })));

const poolArb = fc.array(fc.constantFrom(4, 8), { minLength: 1, maxLength: 5 });

// ---------------------------------------------------------------------------------------------

describe('sharing: priority order', () => {
  it('is the FIFO pass over the queue sorted by priority, then arrival', () => {
    fc.assert(
      fc.property(poolArb, traceArb(3, false), fc.integer({ min: 0, max: 20 }), (hosts, jobs, running) => {
        // A random pool part-full, its reservation cleared, and a queue of mixed priorities.
        const state = emptyScheduler();
        hosts.forEach((slots, i) => addHost(state, `h${i}`, slots));
        jobs.forEach((j) => enqueue(state, j.id, j.ranks, undefined, { priority: j.priority, account: j.account }));
        schedule(state); // fills some of the pool in arrival order
        for (const id of Object.keys(state.allocations).slice(0, running)) release(state, id);
        state.reservation = null;

        const reference = clone(state);
        reference.queue.sort((a, b) => priorityOf(b) - priorityOf(a) || a.seq - b.seq);
        const expected = schedule(reference);
        const got = scheduleShared(state, { now: 0, preemption: false, backfill: false });
        assert.deepEqual(got.grants.map(shape), expected.map(shape));
        assert.deepEqual(state.reservation, reference.reservation);
        assert.deepEqual(new Set(state.queue.map((r) => r.id)), new Set(reference.queue.map((r) => r.id)));
      }),
      { numRuns: RUNS },
    );
  });

  it('with every job at priority 0 and no quota or share, decides exactly as today’s FIFO pass, pass after pass', () => {
    fc.assert(
      fc.property(poolArb, traceArb(1, false), (hosts, jobs) => {
        const fifo = jobs.map((j) => ({ ...j, priority: 0, preemptible: false }));
        const shared = emptyScheduler();
        hosts.forEach((slots, i) => addHost(shared, `h${i}`, slots));
        const plain = clone(shared);
        fifo.forEach((j) => {
          enqueue(shared, j.id, j.ranks);
          enqueue(plain, j.id, j.ranks);
        });
        for (let step = 0; step < 60; step++) {
          const a = scheduleShared(shared, { now: step }).grants.map(shape);
          const b = schedule(plain).map(shape);
          assert.deepEqual(a, b);
          assert.deepEqual(shared.reservation, plain.reservation);
          const live = Object.keys(plain.allocations);
          const victim = live[step % Math.max(1, live.length)];
          if (victim === undefined) break;
          release(shared, victim);
          release(plain, victim);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('a request of higher priority overtakes the head; one of equal priority does not', () => {
    const state = emptyScheduler();
    addHost(state, 'h0', 8);
    enqueue(state, 'running', 6, undefined, {});
    scheduleShared(state, { now: 0 });
    enqueue(state, 'head', 8, undefined, {});
    enqueue(state, 'same', 2, undefined, {});
    scheduleShared(state, { now: 1 });
    assert.equal(state.reservation?.requestId, 'head');
    assert.deepEqual(Object.keys(state.allocations), ['running'], 'the equal-priority 2-rank job does not take the head’s reserved slots');
    enqueue(state, 'urgent', 2, undefined, { priority: 5 });
    const pass = scheduleShared(state, { now: 2 });
    assert.deepEqual(pass.grants.map((g) => g.id), ['urgent']);
  });
});

// ---------------------------------------------------------------------------------------------

function bruteForceVictims(candidates: readonly VictimCandidate[], need: number): { max: number; count: number } | undefined {
  let best: { max: number; count: number } | undefined;
  for (let mask = 1; mask < 1 << candidates.length; mask++) {
    const set = candidates.filter((_, i) => mask & (1 << i));
    if (set.reduce((n, c) => n + c.slots, 0) < need) continue;
    const cand = { max: Math.max(...set.map((c) => c.priority)), count: set.length };
    if (!best || cand.max < best.max || (cand.max === best.max && cand.count < best.count)) best = cand;
  }
  return best;
}

describe('sharing: preemption', () => {
  it('chooses the lowest-priority victims that free enough, and the fewest of those (brute force)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ priority: fc.integer({ min: -3, max: 3 }), slots: fc.integer({ min: 1, max: 16 }), startedAt: fc.nat(100) }), { maxLength: 10 }),
        fc.integer({ min: 1, max: 64 }),
        (raw, need) => {
          const candidates = raw.map((c, i) => ({ ...c, id: `v${i}` }));
          const got = chooseVictims(candidates, need);
          const ref = bruteForceVictims(candidates, need);
          if (!ref) return assert.equal(got, undefined);
          assert.ok(got);
          assert.ok(got.reduce((n, c) => n + c.slots, 0) >= need);
          assert.equal(new Set(got.map((c) => c.id)).size, got.length);
          assert.deepEqual({ max: Math.max(...got.map((c) => c.priority)), count: got.length }, ref);
        },
      ),
      { numRuns: RUNS * 5 },
    );
  });

  it('preempts only preemptible jobs of strictly lower priority, and the head starts as soon as they stop', () => {
    fc.assert(
      fc.property(poolArb, traceArb(2, true), (hosts, jobs) => {
        const byId = new Map(jobs.map((j) => [j.id, j]));
        let expectHead: string | undefined;
        simulate(hosts, jobs, {}, {
          afterPass: (state, pass, _now, before) => {
            if (expectHead !== undefined) {
              // The previous pass's victims stopped right after it: the head they stopped for is granted
              // now unless a request of strictly higher priority is queued.
              const granted = pass.grants.some((g) => g.id === expectHead);
              assert.ok(granted || mayGoFirst(before, expectHead), `${expectHead} was not granted once its victims stopped`);
            }
            expectHead = undefined;
            for (const { victim, by } of pass.preempt) {
              const v = before.allocations[victim];
              const head = byId.get(by);
              assert.ok(v, `victim ${victim} was running`);
              assert.ok(v.preemptible, `victim ${victim} is preemptible`);
              assert.ok(priorityOf(v) < priorityOf(head ?? {}), `victim ${victim} has lower priority than ${by}`);
              assert.equal(state.reservation?.requestId, by);
              expectHead = by;
            }
          },
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('example: a high-priority gang preempts the one low-priority preemptible job it needs, not the others', () => {
    const state = emptyScheduler();
    addHost(state, 'h0', 8);
    addHost(state, 'h1', 8);
    enqueue(state, 'keep', 8, undefined, { priority: -1 }); // not preemptible
    enqueue(state, 'low', 4, undefined, { priority: -1, preemptible: true });
    enqueue(state, 'mid', 4, undefined, { priority: 0, preemptible: true });
    scheduleShared(state, { now: 0 });
    enqueue(state, 'urgent', 4, undefined, { priority: 3 });
    const pass = scheduleShared(state, { now: 1 });
    assert.deepEqual(pass.preempt, [{ victim: 'low', by: 'urgent' }]);
    assert.deepEqual(pass.grants, []);
    assert.equal(scheduleShared(state, { now: 2 }).preempt.length, 0, 'no second round while the victim stops');
    release(state, 'low');
    assert.deepEqual(scheduleShared(state, { now: 3 }).grants.map((g) => g.id), ['urgent']);
  });
});

// ---------------------------------------------------------------------------------------------

describe('sharing: quotas', () => {
  it('an account never holds more slots than its quota, and a blocked account does not hold up the others', () => {
    fc.assert(
      fc.property(poolArb, traceArb(3, true), fc.array(fc.integer({ min: 1, max: 16 }), { minLength: 3, maxLength: 3 }), (hosts, jobs, limits) => {
        const quotas = { acct0: limits[0] ?? 8, acct1: limits[1] ?? 8 }; // acct2 has none
        const runnable = jobs.filter((j) => j.ranks <= (quotas[j.account as keyof typeof quotas] ?? Infinity));
        const r = simulate(hosts, jobs, { quotas, fairShare: { halfLifeMs: 20 } }, {
          afterPass: (state) => {
            for (const [account, held] of heldByAccount(state.allocations)) assert.ok(held <= (quotas[account as keyof typeof quotas] ?? Infinity), `${account} holds ${held}`);
          },
        });
        const capacity = hosts.reduce((a, b) => a + b, 0);
        for (const j of runnable) if (j.ranks <= capacity) assert.ok(r.endedAt.has(j.id), `${j.id} (within its quota) never ran`);
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('sharing: fair share', () => {
  it('converges to the configured shares over a long trace when every account keeps work queued', () => {
    const weights = { a: 1, b: 2, c: 3, d: 2 };
    for (const seed of [1, 2, 3]) {
      let x = seed * 2654435761;
      const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
      const jobs: SimJob[] = [];
      // Each account queues far more than it can run in the window measured; sizes and run times vary.
      for (const account of Object.keys(weights))
        for (let k = 0; k < 1500; k++)
          jobs.push({ id: `${account}${k}`, ranks: [1, 2, 4, 8][Math.floor(rnd() * 4)] ?? 1, arrive: 0, runMs: 1 + Math.floor(rnd() * 20), account });
      const r = simulate([8, 8, 8, 8, 8, 8, 8, 8], jobs, { fairShare: { halfLifeMs: 50, weights } }, {}, 600);
      const total = [...r.slotMsByAccount.values()].reduce((a, b) => a + b, 0);
      const wsum = Object.values(weights).reduce((a, b) => a + b, 0);
      for (const [account, w] of Object.entries(weights)) {
        const got = (r.slotMsByAccount.get(account) ?? 0) / total;
        assert.ok(Math.abs(got - w / wsum) < 0.03, `seed ${seed}: ${account} received ${got.toFixed(3)} of the pool, configured ${(w / wsum).toFixed(3)}`);
      }
    }
  });

  it('without fair share the same trace is arrival order: the first account takes the pool', () => {
    const jobs: SimJob[] = [];
    for (const account of ['a', 'b']) for (let k = 0; k < 100; k++) jobs.push({ id: `${account}${k}`, ranks: 4, arrive: 0, runMs: 5, account });
    const r = simulate([8, 8], jobs, {}, {}, 100);
    assert.equal(r.slotMsByAccount.get('b') ?? 0, 0);
    const fair = simulate([8, 8], jobs, { fairShare: { halfLifeMs: 20 } }, {}, 100);
    assert.ok(Math.abs((fair.slotMsByAccount.get('a') ?? 0) - (fair.slotMsByAccount.get('b') ?? 0)) <= 4 * 5 * 2);
  });

  it('weights default to 1, and usage decays by half per half-life', () => {
    assert.equal(weightOf({ halfLifeMs: 1 }, 'x'), 1);
    const usage = { at: 0, slots: { a: 8 } };
    accrueUsage(usage, new Map(), 10, 10);
    assert.equal(usage.slots.a, 4);
    accrueUsage(usage, new Map([['a', 4]]), 1000, 10);
    assert.ok(Math.abs((usage.slots.a ?? 0) - 4) < 1e-9, 'a constant holding tends to itself');
  });
});

// ---------------------------------------------------------------------------------------------

describe('sharing: backfill and starvation', () => {
  it('backfill never pushes the head past the time its reserved slots were certain to be free', () => {
    let backfilled = 0;
    fc.assert(
      fc.property(poolArb, traceArb(2, true), (hosts, jobs) => {
        // One priority and no preemption, so a head leaves only by being granted (or its quota: none here).
        const flat = jobs.map((j) => ({ ...j, priority: 0, preemptible: false }));
        const bound = new Map<string, number>();
        simulate(hosts, flat, { fairShare: { halfLifeMs: 10 } }, {
          afterPass: (state, pass, now, before) => {
            for (const g of pass.grants) {
              const b = bound.get(g.id);
              if (b !== undefined) assert.ok(now <= b, `head ${g.id} granted at ${now}, after its bound ${b}`);
              const r = before.reservation;
              if (r && r.requestId !== g.id && g.hosts.some((h) => (r.counts[h.host] ?? 0) > 0) && bound.has(r.requestId)) backfilled++;
            }
            const r = state.reservation;
            if (r && !bound.has(r.requestId)) {
              const b = reservationFreeBy(state, r, now);
              if (Number.isFinite(b)) bound.set(r.requestId, b);
            }
          },
        });
      }),
      { numRuns: RUNS },
    );
    assert.ok(backfilled > 0, 'the traces backfilled something, so the property was put to the test');
  });

  it('example: a short job runs in the head’s reserved slots when it ends before they are certain to free; a long one does not', () => {
    const state = emptyScheduler();
    addHost(state, 'h0', 8);
    enqueue(state, 'running', 6, undefined, { maxRunMs: 100 });
    scheduleShared(state, { now: 0 });
    enqueue(state, 'head', 8, undefined, {});
    enqueue(state, 'long', 2, undefined, { maxRunMs: 200 });
    enqueue(state, 'short', 2, undefined, { maxRunMs: 90 });
    enqueue(state, 'undeclared', 2, undefined, {});
    // running is bound to end by 100: short (10 + 90 = 100) fits before the head, long does not, and
    // undeclared never does.
    const pass = scheduleShared(state, { now: 10 });
    assert.deepEqual(pass.grants.map((g) => g.id), ['short']);
    assert.equal(state.reservation?.requestId, 'head');
    assert.equal(scheduleShared(state, { now: 11 }).grants.length, 0);
    assert.deepEqual(scheduleShared(clone(state), { now: 11, backfill: false }).grants, []);
    release(state, 'running');
    release(state, 'short');
    assert.deepEqual(scheduleShared(state, { now: 100 }).grants.map((g) => g.id), ['head']);
  });

  it('example: no backfill while the slots the head waits for are held by a job being preempted', () => {
    const state = emptyScheduler();
    addHost(state, 'h0', 8);
    enqueue(state, 'low', 6, undefined, { priority: -1, preemptible: true, maxRunMs: 1000 });
    scheduleShared(state, { now: 0 });
    enqueue(state, 'urgent', 8, undefined, { priority: 1 });
    enqueue(state, 'short', 2, undefined, { maxRunMs: 1 });
    const pass = scheduleShared(state, { now: 5 });
    assert.deepEqual(pass.preempt, [{ victim: 'low', by: 'urgent' }]);
    assert.deepEqual(pass.grants, []);
  });

  it('the head is granted in the first pass its reserved slots are free, unless a higher-priority request comes first; every job of a finite trace runs', () => {
    let checked = 0;
    fc.assert(
      fc.property(poolArb, traceArb(3, true), fc.boolean(), (hosts, jobs, withQuota) => {
        const capacity = hosts.reduce((a, b) => a + b, 0);
        const quotas = withQuota ? { acct0: 12 } : undefined;
        const r = simulate(hosts, jobs, { fairShare: { halfLifeMs: 15 }, ...(quotas ? { quotas } : {}) }, {
          afterPass: (_state, pass, _now, before) => {
            const res = before.reservation;
            if (!res || !before.queue.some((q) => q.id === res.requestId)) return;
            const freeNow = before.hosts.every((h) => h.status !== 'ready' || h.used.filter((u) => u === null).length >= (res.counts[h.id] ?? 0));
            if (!freeNow) return;
            checked++;
            const granted = pass.grants.some((g) => g.id === res.requestId);
            assert.ok(granted || mayGoFirst(before, res.requestId, quotas), `head ${res.requestId} not granted though its reserved slots were free`);
          },
        });
        for (const j of jobs) {
          if (j.ranks > capacity || (quotas && j.account === 'acct0' && j.ranks > quotas.acct0)) continue;
          assert.ok(r.endedAt.has(j.id), `${j.id} never ran`);
        }
      }),
      { numRuns: RUNS },
    );
    assert.ok(checked > 0, 'some head saw its reserved slots free');
  });
});

