/**
 * Capacity claimed in the pool's store (src/domain/capacity-claim.ts): a pool with nothing waiting
 * writes an open snapshot; jobs claim placements in it and give them back there, each one step of the
 * snapshot's compare-and-set register; the pool's next step is refused and it takes the store's
 * allocations as given (PoolQueue.followLostStep).
 *
 * The store is in memory with the pool store's step semantics (pool-store.ts `syncPool`, `amendPoolSnapshot`).
 * The property test interleaves jobs' claims, returns, requests and releases with the pool's steps,
 * each split where a real one is (the pass and the step's write in one task, the result applied in a
 * later activation, signals in between), and checks them against a reference model of who holds which slot.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type CapacityGrant, claimCapacity, type ClaimRequest, closeForRequest, giveBackCapacity, grantOf } from '../../src/domain/capacity-claim';
import { PoolQueue, type PoolRecoverySnapshot, type PoolSyncStep } from '../../src/domain/pool-queue';
import { addHost, type Allocation, setHostStatus } from '../../src/domain/scheduler';
import { passAndSync, SteppedStore } from '../support/stepped-store';

const POOL = 'accounts/a/nodePools/p';
const TERMS = { pool: POOL, gpu: true };
const T = '2026-12-01T00:00:00.000Z';
const NOW = 1_000;

/** The pool's store in memory, and the jobs' side of it: claims, returns, and closing it to ask the pool. */
class Store extends SteppedStore {
  claim(request: ClaimRequest): CapacityGrant | undefined {
    const answer = claimCapacity(this.snapshot?.state, request, NOW);
    if (answer.kind === 'ask-pool') {
      if (answer.close) this.amend(answer.close);
      return undefined;
    }
    if (answer.kind === 'claimed') this.amend(answer.state);
    return answer.grant;
  }

  /** A job that asks the pool without claiming (V2): the open snapshot is closed for its request. */
  ask(jobName: string): void {
    const close = closeForRequest(this.snapshot?.state, jobName);
    if (close) this.amend(close);
  }

  giveBack(jobName: string): boolean {
    const state = giveBackCapacity(this.snapshot?.state, jobName);
    if (state) this.amend(state);
    return state !== undefined;
  }

  get state(): PoolRecoverySnapshot | undefined {
    return this.snapshot?.state as PoolRecoverySnapshot | undefined;
  }
}

function lendingPool(hosts: number, slots: number): PoolQueue {
  const q = PoolQueue.fresh(50);
  q.checkSteps();
  q.lendWith(TERMS);
  for (let h = 0; h < hosts; h++) addHost(q.scheduler, `h${h}`, slots);
  return q;
}

/** A run of a pool that lends and keeps the jobs it waits on (node-pool.ts POOL_KEEPS_ASKING_PATCH), as its workflow starts it. */
function keepingRun(q: PoolQueue): PoolQueue {
  q.checkSteps();
  q.lendWith(TERMS);
  q.keepAsking();
  return q;
}

/** The workflow's loop run to a written step (test/support/stepped-store.ts). */
const settle = (q: PoolQueue, store: Store): Allocation[] => passAndSync(q, store, { now: NOW });

const request = (jobName: string, ranks: number, extra: Partial<ClaimRequest> = {}): ClaimRequest => ({ jobName, workflowId: jobName, ranks, attempt: 1, ...extra });
const slotKeys = (g: { hosts: Array<{ host: string; slots: number[] }> }) => g.hosts.flatMap((h) => h.slots.map((s) => `${h.host}/${s}`));

/** Every used slot names an allocation that names it back, in the pool's memory or a stored snapshot. */
function assertConsistent(scheduler: PoolRecoverySnapshot['scheduler']): void {
  const owners = new Map<string, string>();
  for (const h of scheduler.hosts) h.used.forEach((u, slot) => u !== null && owners.set(`${h.id}/${slot}`, u));
  const held = new Map<string, string>();
  for (const a of Object.values(scheduler.allocations)) for (const k of slotKeys(a)) held.set(k, a.id);
  assert.deepEqual(Object.fromEntries([...owners].sort()), Object.fromEntries([...held].sort()));
}

describe('capacity claims', () => {
  it('an idle pool writes an open snapshot with its grant terms; a claim places the job there as the pool would, one step on', () => {
    const store = new Store();
    const q = lendingPool(2, 4);
    settle(q, store);
    assert.equal(store.state?.open, true);
    assert.deepEqual(store.state?.terms, TERMS);
    const step = store.snapshot?.step ?? 0;

    const grant = store.claim(request('a', 3));
    assert.ok(grant);
    assert.equal(store.snapshot?.step, step + 1);
    assert.deepEqual(grant, grantOf(store.state.scheduler.allocations.a!, store.state.hosts, TERMS), 'the grant the pool would send');
    assert.equal(grant.hosts.length, 1, 'packed onto one host, as the pool packs');
    assert.deepEqual(store.state?.claimed, ['a']);
    assert.equal(store.state?.jobs.a?.state, 'PENDING');
    assertConsistent(store.state.scheduler);

    // Asked again (a repeated step): the same grant, nothing written.
    assert.deepEqual(store.claim(request('a', 3)), grant);
    assert.equal(store.snapshot?.step, step + 1);
  });

  it('a gang that does not fit, or a closed snapshot, asks the pool', () => {
    const store = new Store();
    const q = lendingPool(1, 2);
    settle(q, store);
    assert.equal(claimCapacity(store.state, request('big', 3), NOW).kind, 'ask-pool');
    assert.ok(store.claim(request('a', 2)));
    const noFit = claimCapacity(store.state, request('b', 1), NOW);
    assert.equal(noFit.kind === 'ask-pool' && noFit.why, 'no-fit');
    assert.ok(noFit.kind === 'ask-pool' && noFit.close && noFit.close.open === undefined, 'it closes the snapshot for its request');
    assert.deepEqual(noFit.kind === 'ask-pool' && noFit.close?.asking, ['b']);

    // The pool has a request waiting: its step closes the snapshot, and no claim jumps the queue.
    q.request({ jobName: 'b', workflowId: 'b', ranks: 1 }, T);
    settle(q, store);
    assert.equal(store.state?.open, undefined);
    assert.ok(store.giveBack('a') === false, 'a closed snapshot takes nothing back: the pool is told');
    q.release('a');
    assert.deepEqual(settle(q, store).map((g) => g.id), ['b'], 'the waiting job gets the slots');
    assert.equal(store.state?.open, true, 'nothing waits any more: open again');
    assert.equal(claimCapacity(store.state, request('c', 1), NOW).kind, 'claimed');
  });

  it('the pool takes claims and returns as given at its next step, sends claimers no grant, and checks none of them', () => {
    const store = new Store();
    const q = lendingPool(2, 2);
    q.request({ jobName: 'pooled', workflowId: 'pooled', ranks: 2 }, T);
    assert.deepEqual(settle(q, store).map((g) => g.id), ['pooled']);
    assert.equal(store.state?.open, true);
    const claimed = store.claim(request('c1', 1));
    assert.ok(claimed);
    assert.ok(store.giveBack('pooled'), 'a job the pool granted gives its slots back in the store');
    assert.ok(store.claim(request('c2', 2)));

    // A host is lost: the pool's step follows the claims first.
    setHostStatus(q.scheduler, 'h1', 'unreachable');
    q.touchCapacity();
    const step = q.takeSync();
    const outcome = store.sync(step);
    assert.ok(outcome.lost, 'the claims moved the stored step on: the pool step is refused');
    const adopted = q.followLostStep(step, outcome.lost);
    assert.deepEqual(adopted.grants, [], 'claimers have their grants');
    assert.deepEqual(adopted.unknown, [], 'and are not asked about');
    assert.deepEqual(adopted.claims.sort(), ['c1', 'c2']);
    assert.deepEqual(adopted.returned, ['pooled']);
    assert.equal(adopted.byJobs, true, 'an expected refusal: the pool does not warn');
    assert.deepEqual(Object.keys(q.scheduler.allocations).sort(), ['c1', 'c2']);
    assert.deepEqual(slotKeys(q.scheduler.allocations.c1!), slotKeys(claimed));
    assertConsistent(q.scheduler);
    settle(q, store);
    assert.deepEqual(store.state?.claimed, undefined, 'the pool writes no claims list');
    assert.deepEqual(Object.keys(store.state.scheduler.allocations).sort(), ['c1', 'c2']);
  });

  it('a claim on a host a shrink has since removed as idle keeps the host, draining, until the claimer ends', () => {
    const store = new Store();
    const q = lendingPool(2, 1);
    settle(q, store);
    assert.ok(store.claim(request('a', 1)));
    assert.ok(store.claim(request('b', 1)));
    // The pool shrinks to one host before it has seen the claims: h1 is idle in its memory, and goes.
    setHostStatus(q.scheduler, 'h1', 'draining');
    q.touchCapacity();
    assert.equal(q.scheduler.hosts.length, 1);
    settle(q, store);
    assert.deepEqual(
      q.scheduler.hosts.map((h) => [h.id, h.status, h.used.filter((u) => u !== null).length]),
      [
        ['h0', 'ready', 1],
        ['h1', 'draining', 1],
      ],
    );
    assertConsistent(q.scheduler);
    q.release(Object.keys(q.scheduler.allocations).find((id) => q.scheduler.allocations[id]?.hosts[0]?.host === 'h1')!);
    assert.deepEqual(q.scheduler.hosts.map((h) => h.id), ['h0'], 'then it leaves');
  });

  it('the snapshot stays closed while a pool does not lend, and closes when lending stops', () => {
    const store = new Store();
    const q = PoolQueue.fresh(10);
    q.checkSteps();
    addHost(q.scheduler, 'h0', 2);
    settle(q, store);
    assert.equal(store.state?.open, undefined);
    assert.equal(store.state?.terms, undefined);
    assert.equal(claimCapacity(store.state, request('a', 1), NOW).kind, 'ask-pool');
    q.lendWith(TERMS);
    settle(q, store);
    assert.equal(store.state?.open, true);
    assert.equal(q.mayBeClaimed(), true);
    q.lendWith(undefined);
    assert.equal(q.needsSync(), true);
    settle(q, store);
    assert.equal(store.state?.open, undefined);
    assert.equal(q.mayBeClaimed(), false);
  });

  it('under quotas: the snapshot carries them; a claim within its account\'s quota is placed, one past it asks the pool, which holds it back', () => {
    const store = new Store();
    const q = PoolQueue.fresh(50);
    q.checkSteps();
    // As the workflow does: its passes and its snapshot apply the same quotas.
    let quotas: Record<string, number> | undefined = { acme: 1 };
    const settleShared = () => passAndSync(q, store, { now: NOW, ...(quotas ? { quotas } : {}) });
    q.lendWith(TERMS, quotas);
    for (let h = 0; h < 3; h++) addHost(q.scheduler, `h${h}`, 1);
    settleShared();
    assert.deepEqual(store.state?.quotas, { acme: 1 });
    assert.equal(store.state?.open, true);
    assert.ok(store.claim(request('a1', 1, { account: 'acme' })), 'within the quota');
    assert.ok(store.claim(request('b1', 1, { account: 'bravo' })), 'no quota for bravo');
    const past = claimCapacity(store.state, request('a2', 1, { account: 'acme' }), NOW);
    assert.equal(past.kind === 'ask-pool' && past.why, 'no-fit', 'a free slot, but past acme\'s quota');
    assert.deepEqual(past.kind === 'ask-pool' && past.close?.asking, ['a2']);
    assert.equal(store.claim(request('a2', 1, { account: 'acme' })), undefined);
    q.request({ jobName: 'a2', workflowId: 'a2', ranks: 1, account: 'acme' }, T);
    assert.deepEqual(settleShared(), [], 'the pool holds it back too');
    assert.equal(store.state?.open, undefined, 'closed while a2 waits');
    q.release('a1');
    assert.deepEqual(settleShared().map((g) => g.id), ['a2']);
    assert.equal(store.state?.open, true);

    // The quotas change (the sharing file was edited): written; none: lends without them.
    quotas = { acme: 2 };
    q.lendWith(TERMS, quotas);
    assert.equal(q.needsSync(), true);
    settleShared();
    assert.deepEqual(store.state?.quotas, { acme: 2 });
    q.lendWith(TERMS, { ...quotas });
    assert.equal(q.needsSync(), false, 'the same quotas: nothing to write');
    quotas = undefined;
    q.lendWith(TERMS);
    settleShared();
    assert.equal(store.state?.quotas, undefined);
  });

  it('a pass\'s grants are unwritten until their step is written; a step refused because a job claimed meanwhile takes them back, and they may land elsewhere', () => {
    const store = new Store();
    const q = lendingPool(2, 1);
    settle(q, store);
    q.request({ jobName: 'r', workflowId: 'r', ranks: 1 }, T);
    const { grants } = q.pass({ now: NOW });
    assert.deepEqual(grants.map((g) => g.id), ['r']);
    assert.deepEqual([...q.unwrittenGrants()], ['r'], 'decided, not written: reads leave it out');
    assert.deepEqual(
      q.unwrittenRequests().map((r) => [r.id, r.ranks]),
      [['r', 1]],
      'and show it still queued',
    );
    const placed = slotKeys(grants[0]!);
    // Meanwhile a job claims that very slot in the store: the pool's step is refused.
    const step = q.takeSync();
    assert.ok(store.claim(request('c', 1)));
    const outcome = store.sync(step);
    assert.ok(outcome.lost);
    q.followLostStep(step, outcome.lost);
    assert.deepEqual([...q.unwrittenGrants()], [], 'taken back');
    assert.deepEqual(q.unwrittenRequests(), []);
    const sent = settle(q, store);
    assert.deepEqual(sent.map((g) => g.id), ['r']);
    assert.notDeepEqual(slotKeys(sent[0]!), placed, 'r landed elsewhere than its first pass placed it');
    assert.deepEqual([...q.unwrittenGrants()], [], 'written');
    assert.deepEqual(q.unwrittenRequests(), []);
  });

  it('while a pass that moved the head reservation is unwritten, reads see the reservation written before it', () => {
    const store = new Store();
    // Two hosts of two slots: a 2-rank job holds one host; a 4-rank head cannot start, so it reserves.
    const q = lendingPool(2, 2);
    settle(q, store);
    q.request({ jobName: 'holder', workflowId: 'holder', ranks: 2 }, T);
    settle(q, store);
    q.request({ jobName: 'big', workflowId: 'big', ranks: 4 }, T);
    settle(q, store);
    const reserved = q.scheduler.reservation;
    assert.equal(reserved?.requestId, 'big', 'the head reserves');
    assert.deepEqual(q.writtenReservation(), reserved);
    // The holder ends: the next pass grants the head and drops its reservation, not yet written.
    q.release('holder');
    const { grants } = q.pass({ now: NOW });
    assert.deepEqual(grants.map((g) => g.id), ['big']);
    assert.equal(q.scheduler.reservation, null, 'in memory: no reservation any more');
    assert.deepEqual(q.writtenReservation(), reserved, 'as written: still the head’s');
    assert.deepEqual(q.unwrittenRequests().map((r) => r.id), ['big']);
    const step = q.takeSync();
    const outcome = store.sync(step);
    assert.equal(outcome.lost, undefined);
    q.applySync(step, outcome);
    assert.equal(q.writtenReservation(), null, 'written');
    assert.deepEqual(q.unwrittenRequests(), []);
  });

  it('carried across continue-as-new, the pool still knows its stored snapshot is open', () => {
    const store = new Store();
    const q = lendingPool(1, 2);
    settle(q, store);
    const next = PoolQueue.resume(structuredClone(q.carried()), 50, T);
    next.checkSteps();
    assert.equal(next.mayBeClaimed(), true);
    next.lendWith(TERMS);
    next.request({ jobName: 'w', workflowId: 'w', ranks: 3 }, T);
    settle(next, store);
    assert.equal(store.state?.open, undefined, 'a request waits: closed');
  });

  it('a job that closed the snapshot to ask is waited on across continue-as-new and recovery, once the pool keeps asking jobs', () => {
    const store = new Store();
    const q = keepingRun(lendingPool(1, 2));
    settle(q, store);
    assert.ok(store.claim(request('a', 1)));
    store.ask('b');
    settle(q, store);
    assert.deepEqual(q.awaiting(), ['b']);
    assert.equal(store.state?.open, undefined, 'closed until b asks');

    // Continue-as-new: the next run waits for b's request too. A run that does not keep them forgets it (as before the patch).
    const next = keepingRun(PoolQueue.resume(structuredClone(q.carried()), 50, T));
    const forgetful = PoolQueue.resume(structuredClone(q.carried()), 50, T);
    forgetful.checkSteps();
    forgetful.lendWith(TERMS);
    const other = new Store();
    other.snapshot = structuredClone(store.snapshot);
    settle(forgetful, other);
    assert.equal(other.state?.open, true, 'a run that forgot b opens before b asks');
    settle(next, store);
    assert.equal(store.state?.open, undefined, 'the next run keeps it closed');
    assert.deepEqual(next.awaiting(), ['b']);

    // a ends: the snapshot the pool writes names b, so a pool recovered from it waits for b as well.
    next.release('a');
    settle(next, store);
    assert.deepEqual(store.state?.asking, ['b']);
    assert.equal(store.state?.open, undefined);
    const recovered = keepingRun(PoolQueue.recover(store.state, { length: 0, ranks: 0, maxRanks: 0, maxSeq: 0, rows: [], snapshot: { step: store.snapshot?.step ?? 0 } }, 1, 50));
    settle(recovered, store);
    assert.equal(store.state?.open, undefined, 'recovered, it still waits for b');
    assert.equal(claimCapacity(store.state, request('c', 1), NOW).kind, 'ask-pool', 'no claim overtakes b');

    // b's request arrives: granted, and the snapshot opens with no one asking.
    recovered.request({ jobName: 'b', workflowId: 'b', ranks: 1 }, T);
    assert.deepEqual(settle(recovered, store).map((g) => g.id), ['b']);
    assert.equal(store.state?.open, true);
    assert.equal(store.state?.asking, undefined);
  });

  it('an asker whose request a recovered pool finds in its stored queue, past the window, is no longer waited on once the window takes it', () => {
    const store = new Store();
    const q = keepingRun(PoolQueue.fresh(1));
    addHost(q.scheduler, 'h0', 1);
    settle(q, store);
    assert.ok(store.claim(request('holder', 1)));
    store.ask('b');
    q.request({ jobName: 'x', workflowId: 'x', ranks: 1 }, T);
    settle(q, store);
    q.request({ jobName: 'b', workflowId: 'b', ranks: 1 }, T);
    settle(q, store);
    assert.deepEqual(store.state?.asking, ['b'], 'written while the pool still waited for b');
    assert.deepEqual(store.sorted().map((r) => r.jobName), ['x', 'b']);

    const rows = store.sorted();
    const loaded = { length: 2, ranks: 2, maxRanks: 1, maxSeq: Math.max(...rows.map((r) => r.seq)), rows: rows.slice(0, 1), snapshot: { step: store.snapshot?.step ?? 0 } };
    const recovered = keepingRun(PoolQueue.recover(store.state, loaded, 1, 1));
    assert.deepEqual(recovered.awaiting(), ['b'], 'b is past the window: not known yet');
    recovered.release('holder');
    assert.deepEqual(settle(recovered, store).map((g) => g.id), ['x']);
    recovered.release('x');
    assert.deepEqual(settle(recovered, store).map((g) => g.id), ['b']);
    assert.deepEqual(recovered.awaiting(), []);
    assert.equal(store.state?.open, true, 'nothing waits: open while b runs');
  });

  it('a job that asked and whose workflow closed before its request came is released, and the snapshot opens again', () => {
    const store = new Store();
    const q = keepingRun(lendingPool(1, 2));
    settle(q, store);
    store.ask('gone');
    settle(q, store);
    assert.equal(store.state?.open, undefined);
    // What the pool's check does for a closed job (node-pool.ts forgetClosed).
    q.release('gone');
    settle(q, store);
    assert.deepEqual(q.awaiting(), []);
    assert.equal(store.state?.open, true);
  });

  it('a retry that asks the pool while the pool still sees its given-back allocation is decided once the pool has followed the store', () => {
    const store = new Store();
    const q = lendingPool(1, 1);
    q.request({ jobName: 'x', workflowId: 'x', ranks: 1 }, T);
    assert.deepEqual(settle(q, store).map((g) => g.id), ['x']);
    assert.equal(store.state?.open, true);
    // Attempt 1 ends: given back in the store. Attempt 2 (a V2 job) closes the snapshot and asks.
    assert.ok(store.giveBack('x'));
    store.ask('x');
    assert.equal(q.request({ jobName: 'x', workflowId: 'x', ranks: 1 }, T), 'deferred', 'not a repeat: the pool has not seen the return yet');
    assert.deepEqual(settle(q, store).map((g) => g.id), ['x'], 'granted again once the return is taken');
  });

  it('a stale answer that still holds an earlier attempt\'s claim does not take the job\'s newer request out of the queue', () => {
    const store = new Store();
    const q = lendingPool(1, 1);
    settle(q, store);
    assert.ok(store.claim(request('x', 1)));
    // The pool's step is refused now; its answer (x's claim) is applied only later, as a later activation does.
    q.touchCapacity();
    const step = q.takeSync();
    const outcome = store.sync(step);
    assert.ok(outcome.lost);
    // Meanwhile x gives back, y claims the slot, and x's attempt 2 does not fit: it closes the snapshot and asks.
    assert.ok(store.giveBack('x'));
    assert.ok(store.claim(request('y', 1)));
    assert.equal(store.claim(request('x', 1, { attempt: 2 })), undefined);
    q.request({ jobName: 'x', workflowId: 'x', ranks: 1 }, T);
    const adopted = q.followLostStep(step, outcome.lost);
    assert.deepEqual(adopted.claims, [], "attempt 1's claim is not taken: x asks again");
    assert.deepEqual(q.window.map((r) => r.id), ['x']);
    assert.deepEqual(settle(q, store), []);
    assert.deepEqual(Object.keys(q.scheduler.allocations), ['y']);
    // y ends (told to the pool: the snapshot is closed); x gets the slot.
    assert.equal(store.giveBack('y'), false);
    q.release('y');
    assert.deepEqual(settle(q, store).map((g) => g.id), ['x']);
  });

  it('a job that gave back and claimed again elsewhere is taken where the store places it now', () => {
    const store = new Store();
    const q = lendingPool(2, 1);
    settle(q, store);
    assert.deepEqual(slotKeys(store.claim(request('x', 1))!), ['h0/0']);
    q.touchCapacity();
    const step = q.takeSync();
    const outcome = store.sync(step);
    assert.ok(outcome.lost);
    assert.ok(store.giveBack('x'));
    assert.deepEqual(slotKeys(store.claim(request('y', 1))!), ['h0/0']);
    assert.deepEqual(slotKeys(store.claim(request('x', 1, { attempt: 2 }))!), ['h1/0']);
    // The stale answer places x on h0; the next step follows the store: y on h0, x on h1.
    q.followLostStep(step, outcome.lost);
    settle(q, store);
    assert.deepEqual(
      Object.values(q.scheduler.allocations).map((a) => [a.id, slotKeys(a).join()]).sort(),
      [
        ['x', 'h1/0'],
        ['y', 'h0/0'],
      ],
    );
    assertConsistent(q.scheduler);
  });

  it('property: no slot is ever held by two jobs, no account past its quota, a queued request is never overtaken by a claim, and every job is served (claiming and non-claiming jobs of two accounts, one with a quota or none, each asking again after it ended; the pool continuing as new)', () => {
    type Job = { name: string; account: string; ranks: number; phase: 'idle' | 'asked' | 'holding' | 'done'; grant?: CapacityGrant; served: boolean; attempt: number };
    type Command =
      | { kind: 'job'; job: number }
      | { kind: 'deliver' }
      | { kind: 'take' }
      | { kind: 'apply' }
      | { kind: 'host'; host: number; status: 'ready' | 'unreachable' }
      | { kind: 'continue' };
    const command: fc.Arbitrary<Command> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('job' as const), job: fc.nat(5) }) },
      { weight: 3, arbitrary: fc.constant({ kind: 'deliver' as const }) },
      { weight: 3, arbitrary: fc.constant({ kind: 'take' as const }) },
      { weight: 3, arbitrary: fc.constant({ kind: 'apply' as const }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('host' as const), host: fc.nat(2), status: fc.constantFrom('ready' as const, 'unreachable' as const) }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'continue' as const }) },
    );
    fc.assert(
      // Account a's quota: none, or 3 or 4 slots (every job fits it: 1 to 3 ranks).
      fc.property(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 6, maxLength: 6 }), fc.array(command, { maxLength: 80 }), fc.option(fc.integer({ min: 3, max: 4 })), (sizes, commands, quota) => {
        const quotas = quota === null ? undefined : { a: quota };
        const policy = { now: NOW, ...(quotas ? { quotas } : {}) };
        /** A run of the pool as its workflow starts it: lending under the quotas, keeping its askers. */
        const run = (x: PoolQueue) => {
          keepingRun(x).lendWith(TERMS, quotas);
          return x;
        };
        const store = new Store();
        let q = run(lendingPool(3, 2));
        passAndSync(q, store, policy);
        // j0, j2 and j4 claim (V3), the others ask the pool (V2); j0 to j2 are account a's, the others b's.
        const jobs: Job[] = sizes.map((ranks, i) => ({ name: `j${i}`, account: i < 3 ? 'a' : 'b', ranks, phase: 'idle', served: false, attempt: 0 }));
        const byName = new Map(jobs.map((j) => [j.name, j]));
        /** A step taken and written, its outcome not yet applied (signals may arrive meanwhile). */
        let inFlight: { step: PoolSyncStep; outcome: ReturnType<Store['sync']>; grants: Allocation[] } | undefined;
        let resend: Allocation[] = [];
        /** Signals on their way to the pool's workflow, in the order sent. */
        const signals: Array<{ kind: 'request' | 'release'; job: Job }> = [];
        const receive = () => {
          const signal = signals.shift();
          if (!signal) return;
          if (signal.kind === 'request') q.request({ jobName: signal.job.name, workflowId: signal.job.name, ranks: signal.job.ranks, account: signal.job.account }, T);
          else q.release(signal.job.name);
        };

        const deliver = (grants: Allocation[]) => {
          for (const a of grants) {
            const job = byName.get(a.id);
            if (!job) continue;
            if (job.phase === 'asked') {
              job.phase = 'holding';
              job.grant = grantOf(a, q.hosts, TERMS);
              job.served = true;
            } else if (job.phase !== 'holding') {
              q.release(job.name); // a grant nobody waits for goes back (the job's dropGrant)
            }
          }
        };
        const apply = () => {
          if (!inFlight) return;
          const { step, outcome, grants } = inFlight;
          inFlight = undefined;
          if (outcome.lost) {
            resend = [...resend, ...grants, ...q.followLostStep(step, outcome.lost).grants];
            return;
          }
          q.applySync(step, outcome);
          deliver([...resend.filter((a) => q.scheduler.allocations[a.id] === a), ...grants]);
          resend = [];
        };
        const take = () => {
          if (inFlight) return;
          const { grants } = q.pass(policy);
          if (grants.length === 0 && !q.needsSync()) return;
          const step = q.takeSync();
          inFlight = { step, outcome: store.sync(step), grants };
        };
        /** The safety check: what the jobs hold never overlaps, and the store is consistent. */
        const check = () => {
          const seen = new Map<string, string>();
          for (const j of jobs) {
            if (j.phase !== 'holding' || !j.grant) continue;
            for (const k of slotKeys(j.grant)) {
              assert.equal(seen.get(k), undefined, `${k} held by ${seen.get(k)} and ${j.name}`);
              seen.set(k, j.name);
            }
          }
          if (store.state) assertConsistent(store.state.scheduler);
          const heldByA = jobs.filter((j) => j.phase === 'holding' && j.account === 'a').reduce((n, j) => n + j.ranks, 0);
          if (quota !== null) assert.ok(heldByA <= quota, `account a holds ${heldByA} slots, past its quota of ${quota}`);
          if (store.rows.size > 0) assert.notEqual(store.state?.open, true, 'a request is queued in the store while claims are open');
        };

        for (const c of commands) {
          if (c.kind === 'take') take();
          else if (c.kind === 'apply') apply();
          else if (c.kind === 'continue') {
            // Continue-as-new: once nothing is in flight or unwritten; signals on their way reach the next run.
            if (!inFlight && resend.length === 0 && !q.needsSync()) q = run(PoolQueue.resume(structuredClone(q.carried()), 50, T));
          }
          else if (c.kind === 'deliver') receive();
          else if (c.kind === 'host') {
            const id = `h${c.host}`;
            setHostStatus(q.scheduler, id, c.status);
            q.touchCapacity();
          } else {
            const job = jobs[c.job]!;
            if (job.phase === 'idle' || job.phase === 'done') {
              job.phase = 'asked';
              job.attempt++;
              // Even jobs claim (V3); odd ones ask the pool without claiming (V2), closing the snapshot first.
              if (c.job % 2 === 1) store.ask(job.name);
              const grant = c.job % 2 === 1 ? undefined : store.claim(request(job.name, job.ranks, { attempt: job.attempt, account: job.account }));
              if (grant) {
                // No claim overtakes a job that asked the pool before it: each of those holds its slots already.
                for (const other of jobs) if (other.phase === 'asked' && other !== job) assert.ok(store.state?.scheduler.allocations[other.name], `${job.name} claimed ahead of ${other.name}, which asked the pool first`);
                job.phase = 'holding';
                job.grant = grant;
                job.served = true;
              } else signals.push({ kind: 'request', job });
            } else if (job.phase === 'holding') {
              job.phase = 'done';
              job.grant = undefined;
              if (!store.giveBack(job.name)) signals.push({ kind: 'release', job });
            }
          }
          check();
        }
        // Every host back, every holder done; then the pool runs until every asking job was served and is
        // done, and every signal on its way has reached it (a release may still be, with every job done).
        for (let h = 0; h < 3; h++) setHostStatus(q.scheduler, `h${h}`, 'ready');
        q.touchCapacity();
        for (let round = 0; round < 40 && (signals.length > 0 || jobs.some((j) => j.phase !== 'done' && j.phase !== 'idle')); round++) {
          while (signals.length > 0) receive();
          for (const j of jobs) {
            if (j.phase !== 'holding') continue;
            j.phase = 'done';
            j.grant = undefined;
            if (!store.giveBack(j.name)) q.release(j.name);
          }
          check();
          take();
          apply();
          check();
        }
        for (const j of jobs) assert.ok(j.phase === 'done' || j.phase === 'idle', `${j.name} still ${j.phase}`);
        take();
        apply();
        passAndSync(q, store, policy);
        assert.deepEqual(Object.keys(q.scheduler.allocations), [], 'every slot is free again');
        assert.deepEqual(Object.keys(store.state!.scheduler.allocations), []);
        assert.equal(store.state?.open, true, 'and the idle pool lends again');
        assert.equal(q.length, 0);
      }),
      { numRuns: 1500 },
    );
  });
});
