/**
 * PoolQueue.followLostStep: a pool's step that the store refuses because a step of a workflow task
 * that was never kept wrote after the snapshot this one follows (pool-store.ts `expectStep`).
 *
 * A lost task and its retry run the same history, so each test builds the state twice from the same
 * events (as a worker replays them); the retry then sees more signals than the lost task did, as a
 * retried task does. The store is in memory, with the pool store's step semantics.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { PoolQueue } from '../../src/domain/pool-queue';
import { addHost, type Allocation } from '../../src/domain/scheduler';
import { passAndSync as toWritten, SteppedStore } from '../support/stepped-store';

const T = '2026-12-01T00:00:00.000Z';
const POLICY = { now: 1_000 };

function pool(hosts: number, slots: number, window: number): PoolQueue {
  const q = PoolQueue.fresh(window);
  q.checkSteps();
  for (let h = 0; h < hosts; h++) addHost(q.scheduler, `h${h}`, slots);
  return q;
}

/** The workflow's loop run to a written step (test/support/stepped-store.ts), with this file's clock. */
const passAndSync = (q: PoolQueue, store: SteppedStore): Allocation[] => toWritten(q, store, POLICY);

/** The same state twice, as the lost task and its retry hold it after replaying one history (nothing may be unwritten). */
function twins(q: PoolQueue): [PoolQueue, PoolQueue] {
  const copy = () => {
    const c = PoolQueue.resume(structuredClone(q.carried()), q.windowSize, T);
    c.checkSteps();
    return c;
  };
  return [copy(), copy()];
}

/** Every slot's owner holds an allocation naming that slot, and every allocation's slots name it; nothing is both queued and placed. */
function assertSlotsConsistent(q: PoolQueue): void {
  const owners = new Map<string, string>();
  for (const h of q.scheduler.hosts) h.used.forEach((u, slot) => u !== null && owners.set(`${h.id}/${slot}`, u));
  const claimed = new Map<string, string>();
  for (const a of Object.values(q.scheduler.allocations)) for (const h of a.hosts) for (const slot of h.slots) claimed.set(`${h.host}/${slot}`, a.id);
  assert.deepEqual(Object.fromEntries([...owners].sort()), Object.fromEntries([...claimed].sort()));
  for (const r of q.window) assert.equal(q.scheduler.allocations[r.id], undefined, `${r.id} is both queued and holding slots`);
}

const slotsOf = (a: Allocation) => a.hosts.map((h) => `${h.host}:${h.slots.join(',')}`).join(' ');

describe('PoolQueue: a step that follows a lost one', () => {
  it('takes the lost grant as given when the retry decided otherwise (a higher-priority request arrived meanwhile)', () => {
    const store = new SteppedStore();
    // Kept tasks: a holder runs on the pool's 2 slots.
    const q = pool(1, 2, 10);
    q.request({ jobName: 'holder', workflowId: 'holder', ranks: 2 }, T);
    assert.deepEqual(passAndSync(q, store).map((a) => a.id), ['holder']);
    const [lostTask, retry] = twins(q);

    // The task that is lost: `a` asks, the holder ends; it grants `a`, its step is written and the grant sent.
    for (const t of [lostTask, retry]) {
      t.request({ jobName: 'a', workflowId: 'a', ranks: 2 }, T);
      t.release('holder');
    }
    const lostGrants = passAndSync(lostTask, store);
    assert.deepEqual(lostGrants.map((a) => a.id), ['a']);
    const stepOfLost = store.snapshot?.step;

    // Its retry replays the same history and, before its pass, a request of higher priority for the same slots.
    retry.request({ jobName: 'urgent', workflowId: 'urgent', ranks: 2, priority: 10 }, T);
    const { grants } = retry.pass(POLICY);
    assert.deepEqual(grants.map((a) => a.id), ['urgent'], 'alone, the retry would give the slots `a` was granted to another job');
    const step = retry.takeSync();
    const outcome = store.sync(step);
    assert.equal(outcome.lost?.step, stepOfLost, 'the store refuses it');
    const adopted = retry.followLostStep(step, outcome.lost!);
    assert.deepEqual(adopted.grants.map((a) => [a.id, slotsOf(a)]), [['a', slotsOf(lostGrants[0]!)]]);
    assert.deepEqual(adopted.unknown, []);
    assert.deepEqual(adopted.unplaced, []);
    assert.equal(adopted.byJobs, false, 'a step the pool lost, not a job\'s claim: the pool warns');
    assertSlotsConsistent(retry);
    assert.deepEqual(retry.window.map((r) => r.id), ['urgent'], 'its own grant is taken back: `urgent` waits');

    // It passes again: `urgent` waits for `a`; the step is written, after the lost one.
    assert.deepEqual(passAndSync(retry, store), []);
    assert.equal(store.snapshot?.step, (stepOfLost ?? 0) + 1);
    assert.deepEqual(Object.keys(retry.scheduler.allocations), ['a']);
    assert.deepEqual(store.sorted().map((r) => r.jobName), ['urgent']);
    assertSlotsConsistent(retry);
    assert.equal(retry.length, 1);
  });

  it('a step retried after it was written (the activity failed after its commit) takes its own grants back and sends them again', () => {
    const store = new SteppedStore();
    const q = pool(2, 2, 4);
    // A new pool's first step is unchecked (it learns the stored step); this one is the second.
    q.request({ jobName: 'first', workflowId: 'first', ranks: 1 }, T);
    passAndSync(q, store);
    q.release('first');
    for (let i = 0; i < 5; i++) q.request({ jobName: `j${i}`, workflowId: `j${i}`, ranks: 1 }, T);
    const { grants } = q.pass(POLICY);
    const step = q.takeSync();
    store.sync(step); // written; then the activity failed and is retried with the same input
    const again = store.sync(step);
    assert.ok(again.lost);
    const adopted = q.followLostStep(step, again.lost);
    assert.deepEqual(adopted.grants.map((a) => [a.id, slotsOf(a)]), grants.map((a) => [a.id, slotsOf(a)]), 'the same jobs on the same slots');
    assertSlotsConsistent(q);
    assert.deepEqual(passAndSync(q, store), [], 'nothing new to grant');
    assert.deepEqual(q.window.map((r) => r.id), ['j4']);
    assert.deepEqual(store.sorted().map((r) => r.jobName), ['j4']);
    assert.equal(q.length, 1);
  });

  it('adopts a lost grant whose job this state forgot (withdrawn since), and names it for a check', () => {
    const store = new SteppedStore();
    const q = pool(1, 1, 10);
    q.request({ jobName: 'a', workflowId: 'a', ranks: 1 }, T);
    q.request({ jobName: 'b', workflowId: 'b', ranks: 1 }, T);
    passAndSync(q, store);
    const [lostTask, retry] = twins(q);
    for (const t of [lostTask, retry]) t.release('a');
    assert.deepEqual(passAndSync(lostTask, store).map((g) => g.id), ['b']);
    retry.release('b'); // `b` withdrew: its release reached the retry, after the lost grant went out
    retry.request({ jobName: 'c', workflowId: 'c', ranks: 1 }, T);
    const sent = passAndSync(retry, store);
    assert.deepEqual(sent.map((g) => g.id), ['b'], 'the lost grant is sent again, nothing else');
    assert.deepEqual(Object.keys(retry.scheduler.allocations), ['b'], '`b` holds the slot until the pool finds its workflow closed');
    assert.deepEqual(retry.window.map((r) => r.id), ['c']);
    assertSlotsConsistent(retry);
  });

  it('property: whatever the retry saw meanwhile, every job a lost step granted holds the slots it was granted, and nothing is lost or placed twice', () => {
    type Op = { kind: 'request'; job: number; ranks: number; priority: number; preemptible: boolean } | { kind: 'release'; job: number } | { kind: 'end' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant('request' as const),
        job: fc.integer({ min: 0, max: 30 }),
        ranks: fc.integer({ min: 1, max: 4 }),
        priority: fc.constantFrom(0, 0, 5, 10),
        preemptible: fc.boolean(),
      }),
      fc.record({ kind: fc.constant('release' as const), job: fc.integer({ min: 0, max: 30 }) }),
      fc.record({ kind: fc.constant('end' as const) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 2, max: 6 }),
        fc.array(op, { maxLength: 30 }),
        fc.array(op, { maxLength: 8 }),
        fc.array(op, { maxLength: 8 }),
        (hosts, slots, window, before, both, retryOnly) => {
          const store = new SteppedStore();
          const q = pool(hosts, slots, window);
          const asked = new Set<string>();
          const apply = (t: PoolQueue, o: Op, record: boolean) => {
            const name = `j${o.kind === 'end' ? 0 : o.job}`;
            if (o.kind === 'request') {
              if (asked.has(name) || o.ranks > hosts * slots) return;
              if (record) asked.add(name);
              t.request({ jobName: name, workflowId: name, ranks: o.ranks, priority: o.priority, ...(o.preemptible ? { preemptible: true } : {}) }, T);
            } else if (o.kind === 'release') t.release(name);
            else for (const id of Object.keys(t.scheduler.allocations).slice(0, 1)) t.release(id);
          };
          for (const o of before) {
            apply(q, o, true);
            if (o.kind === 'end') passAndSync(q, store);
          }
          passAndSync(q, store);
          const [lostTask, retry] = twins(q);
          // Requests seen by both tasks must be the same requests: decide them once.
          const shared = both.filter((o) => o.kind !== 'request' || !asked.has(`j${o.job}`));
          for (const o of shared) {
            apply(lostTask, o, false);
            apply(retry, o, false);
          }
          for (const o of shared) if (o.kind === 'request') asked.add(`j${o.job}`);
          const lostGrants = passAndSync(lostTask, store);
          for (const o of retryOnly) apply(retry, o, true);
          const sent = passAndSync(retry, store);
          assertSlotsConsistent(retry);
          // A job ignores a second grant: it runs where its first one put it.
          for (const g of lostGrants) {
            const held = retry.scheduler.allocations[g.id];
            assert.ok(held, `${g.id}, granted by the lost step, holds capacity`);
            assert.equal(slotsOf(held), slotsOf(g), `${g.id} holds the slots it was granted`);
          }
          for (const g of sent) assert.ok(retry.scheduler.allocations[g.id], `${g.id} was sent a grant and holds capacity`);
          // The store and the state agree: every queued row is a job that holds nothing.
          for (const row of store.rows.values()) assert.equal(retry.scheduler.allocations[row.jobName], undefined, `${row.jobName} is queued and placed`);
          assert.equal(retry.length, store.rows.size, 'the length counts every stored request');
          assert.equal(retry.needsSync(), false);
        },
      ),
      { numRuns: 400 },
    );
  });
});
