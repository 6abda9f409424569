/**
 * PoolQueue: a pool's queue kept in a store with only its head (the window) in memory. Checked against
 * an in-memory store with the pool store's semantics, and against a reference model: the plain
 * scheduler holding the whole queue, which is what pools did before the window.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compareKeys, keyOf, type LegacyPoolCarriedState, PoolQueue, type PoolSyncOutcome, type PoolSyncStep, type QueueEntry } from '../../src/domain/pool-queue';
import { addHost, emptyScheduler, enqueue, release, schedule } from '../../src/domain/scheduler';

/** The pool store's contract for one pool, in memory (src/store/pool-store.ts). */
class MemoryQueueStore {
  rows = new Map<string, QueueEntry>();
  snapshots = 0;

  sync(step: PoolSyncStep): PoolSyncOutcome {
    for (const r of step.inserts) if (!this.rows.has(r.jobName)) this.rows.set(r.jobName, r);
    for (const name of step.removes) this.rows.delete(name);
    if (step.snapshot) this.snapshots++;
    const sorted = this.sorted();
    const after = step.read && { priority: step.read.afterPriority ?? 0, seq: step.read.afterSeq };
    const rows = step.read && after ? sorted.filter((r) => compareKeys(keyOf(r), after) > 0).slice(0, step.read.limit) : [];
    return { length: sorted.length, ranks: sorted.reduce((n, r) => n + r.ranks, 0), maxRanks: Math.max(0, ...sorted.map((r) => r.ranks)), rows };
  }

  /** In the store's order: priority (higher first), then seq. */
  sorted(): QueueEntry[] {
    return [...this.rows.values()].sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
  }
}

const T = '2026-11-30T00:00:00.000Z';

function pool(hosts: number, slots: number, window: number): PoolQueue {
  const q = PoolQueue.fresh(window);
  for (let h = 0; h < hosts; h++) addHost(q.scheduler, `h${h}`, slots);
  return q;
}

function syncAll(q: PoolQueue, store: MemoryQueueStore): void {
  for (let i = 0; i < 100 && q.needsSync(); i++) {
    const step = q.takeSync();
    q.applySync(step, store.sync(step));
  }
  assert.equal(q.needsSync(), false, 'sync settles');
}

/** The window is the queue's head: exactly the first stored rows in key order (priority, then seq), in order. */
function assertWindowIsHead(q: PoolQueue, store: MemoryQueueStore): void {
  const head = store.sorted().slice(0, q.window.length);
  assert.deepEqual(
    q.window.map((r) => r.id),
    head.map((r) => r.jobName),
  );
  assert.equal(q.length, store.rows.size, 'length counts every stored request');
}

describe('PoolQueue', () => {
  it('keeps only the head in memory, writes every request, and refills the window as jobs start', () => {
    const store = new MemoryQueueStore();
    const q = pool(1, 1, 4);
    for (let i = 0; i < 10; i++) assert.equal(q.request({ jobName: `j${i}`, workflowId: `j${i}`, ranks: 1 }, T), 'queued');
    assert.equal(q.request({ jobName: 'j3', workflowId: 'j3', ranks: 1 }, T), 'duplicate');
    assert.equal(q.window.length, 4);
    assert.equal(q.length, 10);
    const granted: string[] = [];
    for (let round = 0; round < 20 && granted.length < 10; round++) {
      const grants = q.pass().grants;
      syncAll(q, store);
      assertWindowIsHead(q, store);
      for (const g of grants) {
        granted.push(g.id);
        q.release(g.id);
      }
    }
    assert.deepEqual(granted, Array.from({ length: 10 }, (_, i) => `j${i}`), 'FIFO through the store');
    assert.equal(q.length, 0);
    assert.equal(store.rows.size, 0);
  });

  it('withdraws a request wherever it is: in the window, only in the store, or not yet written', () => {
    const store = new MemoryQueueStore();
    const q = pool(1, 1, 2);
    q.request({ jobName: 'holder', workflowId: 'holder', ranks: 1 }, T);
    q.pass();
    for (let i = 0; i < 6; i++) q.request({ jobName: `j${i}`, workflowId: `j${i}`, ranks: 1 }, T);
    assert.equal(q.release('j5'), 'dequeued', 'not yet written');
    syncAll(q, store);
    assert.equal(store.rows.has('j5'), false);
    assert.equal(q.release('j0'), 'dequeued', 'in the window');
    assert.equal(q.release('j4'), 'unknown', 'only in the store: the store answers');
    syncAll(q, store);
    assertWindowIsHead(q, store);
    assert.deepEqual(
      store.sorted().map((r) => r.jobName),
      ['j1', 'j2', 'j3'],
    );
    assert.equal(q.length, 3);
  });

  it('carries a bounded state, and refuses to carry unwritten changes', () => {
    const store = new MemoryQueueStore();
    const q = pool(1, 1, 3);
    q.request({ jobName: 'holder', workflowId: 'holder', ranks: 1 }, T);
    q.pass();
    for (let i = 0; i < 50; i++) q.request({ jobName: `j${i}`, workflowId: `j${i}`, ranks: 1 }, T);
    assert.throws(() => q.carried(), /unwritten queue changes/);
    syncAll(q, store);
    const carried = q.carried();
    assert.equal(carried.format, 3);
    assert.equal(carried.scheduler.queue.length, 3, 'only the window crosses continue-as-new');
    assert.equal(carried.queue.length, 50);
    const next = PoolQueue.resume(JSON.parse(JSON.stringify(carried)) as typeof carried, 3, T);
    release(next.scheduler, 'holder');
    const grants = next.pass().grants;
    assert.deepEqual(
      grants.map((g) => g.id),
      ['j0'],
    );
  });

  it('migrates a legacy (format 1) state: the whole queue is written, the window trimmed, order kept', () => {
    const legacy: LegacyPoolCarriedState = { scheduler: emptyScheduler(), hosts: {}, jobs: {}, version: 7 };
    addHost(legacy.scheduler, 'h0', 1);
    for (let i = 0; i < 30; i++) {
      enqueue(legacy.scheduler, `j${i}`, 1);
      legacy.jobs[`j${i}`] = { workflowId: `j${i}`, ranks: 1, state: 'QUEUED', enqueuedAt: T };
    }
    schedule(legacy.scheduler); // j0 holds the host
    const store = new MemoryQueueStore();
    const q = PoolQueue.resume(legacy, 5, T);
    assert.equal(q.version, 7);
    assert.equal(q.window.length, 5);
    syncAll(q, store);
    assert.equal(store.rows.size, 29);
    assertWindowIsHead(q, store);
    assert.equal(store.snapshots, 1, 'the capacity is written with the migration');
  });

  it('recovers from its snapshot and the stored queue, keeping allocations and order', () => {
    const store = new MemoryQueueStore();
    const q = pool(2, 2, 3);
    for (let i = 0; i < 8; i++) q.request({ jobName: `j${i}`, workflowId: `j${i}`, ranks: 2 }, T);
    q.pass();
    syncAll(q, store);
    const snapshot = JSON.parse(JSON.stringify(q.recoverySnapshot())) as ReturnType<PoolQueue['recoverySnapshot']>;
    const sorted = store.sorted();
    const back = PoolQueue.recover(
      snapshot,
      { length: sorted.length, ranks: 12, maxRanks: 2, maxSeq: sorted.at(-1)?.seq ?? 0, rows: sorted.slice(0, 3) },
      q.version,
      3,
    );
    assert.deepEqual(Object.keys(back.scheduler.allocations).sort(), ['j0', 'j1']);
    assert.equal(back.length, 6);
    back.release('j0');
    const grants = back.pass().grants;
    assert.deepEqual(
      grants.map((g) => g.id),
      ['j2'],
    );
    // New requests continue the sequence after the stored ones.
    back.request({ jobName: 'late', workflowId: 'late', ranks: 2 }, T);
    syncAll(back, store);
    assert.equal(store.sorted().at(-1)?.jobName, 'late');
  });

  it('keeps a request’s avoided hosts in the window, in its row, past the window, across continue-as-new and in recovery', () => {
    const store = new MemoryQueueStore();
    const q = pool(2, 1, 2);
    q.request({ jobName: 'holder', workflowId: 'holder', ranks: 2 }, T);
    q.pass();
    q.request({ jobName: 'near', workflowId: 'near', ranks: 1, avoidHosts: ['h0', 'h0', ''] }, T);
    q.request({ jobName: 'plain', workflowId: 'plain', ranks: 1 }, T);
    q.request({ jobName: 'far', workflowId: 'far', ranks: 1, avoidHosts: ['h1'] }, T);
    syncAll(q, store);
    assert.deepEqual(q.window, [
      { id: 'near', ranks: 1, seq: 2, avoidHosts: ['h0'] },
      { id: 'plain', ranks: 1, seq: 3 },
    ]);
    assert.deepEqual(store.rows.get('near')?.avoidHosts, ['h0'], 'written with its row');
    assert.equal(Object.hasOwn(store.rows.get('plain') ?? {}, 'avoidHosts'), false, 'a request that avoids nothing has no list');
    assert.deepEqual(store.rows.get('far')?.avoidHosts, ['h1'], 'past the window, only the store has it');

    // Across continue-as-new (a JSON payload) and from the store after a restart, the lists come back.
    const carried = JSON.parse(JSON.stringify(q.carried())) as ReturnType<PoolQueue['carried']>;
    assert.deepEqual(PoolQueue.resume(carried, 2, T).window[0]?.avoidHosts, ['h0']);
    const sorted = store.sorted();
    const snapshot = JSON.parse(JSON.stringify(q.recoverySnapshot())) as ReturnType<PoolQueue['recoverySnapshot']>;
    const back = PoolQueue.recover(snapshot, { length: sorted.length, ranks: 3, maxRanks: 1, maxSeq: 4, rows: sorted.slice(0, 2) }, q.version, 2);
    assert.deepEqual(back.window[0], { id: 'near', ranks: 1, seq: 2, avoidHosts: ['h0'] });

    // The holder ends: near avoids h0 and takes h1, plain takes h0; far, refilled from the store, waits for h0.
    back.release('holder');
    const grants = back.pass().grants;
    assert.deepEqual(grants.map((g) => [g.id, g.hosts.map((h) => h.host)]), [
      ['near', ['h1']],
      ['plain', ['h0']],
    ]);
    syncAll(back, store);
    assert.deepEqual(back.window, [{ id: 'far', ranks: 1, seq: 4, avoidHosts: ['h1'] }]);
    back.release('plain');
    assert.deepEqual(back.pass().grants.map((g) => [g.id, g.hosts.map((h) => h.host)]), [['far', ['h0']]]);
  });

  it('takes a request of higher priority into a full window at once, ahead of the rest, and gives back its last request, which returns later', () => {
    const store = new MemoryQueueStore();
    const q = pool(1, 1, 3);
    q.request({ jobName: 'holder', workflowId: 'holder', ranks: 1 }, T);
    q.pass();
    for (let i = 0; i < 10; i++) q.request({ jobName: `j${i}`, workflowId: `j${i}`, ranks: 1 }, T);
    syncAll(q, store);
    assert.deepEqual(q.window.map((r) => r.id), ['j0', 'j1', 'j2']);
    q.request({ jobName: 'urgent', workflowId: 'urgent', ranks: 1, priority: 50, account: 'a', preemptible: true, maxRunMs: 1000 }, T);
    assert.deepEqual(q.window.map((r) => r.id), ['urgent', 'j0', 'j1'], 'in the window before any sync');
    assert.deepEqual(q.window[0], { id: 'urgent', ranks: 1, seq: 12, priority: 50, account: 'a', preemptible: true, maxRunMs: 1000 });
    syncAll(q, store);
    assertWindowIsHead(q, store);
    assert.deepEqual(store.rows.get('urgent')?.priority, 50, 'its terms are written with its row');
    // A request of lower priority than the boundary stays in the store.
    q.request({ jobName: 'later', workflowId: 'later', ranks: 1, priority: -1 }, T);
    syncAll(q, store);
    assertWindowIsHead(q, store);
    const order: string[] = [];
    for (let i = 0; i < 20 && q.length > 0; i++) {
      q.release(Object.keys(q.scheduler.allocations)[0] ?? '');
      order.push(...q.pass().grants.map((g) => g.id));
      syncAll(q, store);
      assertWindowIsHead(q, store);
    }
    assert.deepEqual(order, ['urgent', ...Array.from({ length: 10 }, (_, i) => `j${i}`), 'later']);
  });

  it('resumes the carried state of a seq-ordered window (format 2) with its boundary, and whether it held everything', () => {
    const store = new MemoryQueueStore();
    const q = pool(1, 1, 2);
    q.request({ jobName: 'holder', workflowId: 'holder', ranks: 1 }, T);
    q.pass();
    for (let i = 0; i < 5; i++) q.request({ jobName: `j${i}`, workflowId: `j${i}`, ranks: 1 }, T);
    syncAll(q, store);
    const { loadedPriority: _p, loadedAll: _a, ...seqCounters } = q.carried().queue;
    const v2 = { ...q.carried(), format: 2 as const, queue: seqCounters };
    const back = PoolQueue.resume(JSON.parse(JSON.stringify(v2)) as typeof v2, 2, T);
    assert.equal(back.carried().format, 3);
    assert.deepEqual([back.counts().loadedPriority, back.counts().loadedAll, back.counts().loadedThrough], [0, false, 3]);
    back.request({ jobName: 'urgent', workflowId: 'urgent', ranks: 1, priority: 1 }, T);
    assert.deepEqual(back.window.map((r) => r.id), ['urgent', 'j0']);
    const all = { ...v2, queue: { ...seqCounters, loadedThrough: seqCounters.lastSeq } };
    assert.equal(PoolQueue.resume(all, 2, T).counts().loadedAll, true, 'a window that reached lastSeq held everything');
  });

  it('property: one-rank jobs start in priority then arrival order, none is lost or left in the store, and the window is always the head', () => {
    type Op = { kind: 'request'; job: number; priority: number } | { kind: 'release'; job: number } | { kind: 'pass' } | { kind: 'sync' } | { kind: 'end'; n: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('request' as const), job: fc.integer({ min: 0, max: 40 }), priority: fc.constantFrom(0, 0, 0, -5, 1, 1000) }),
      fc.record({ kind: fc.constant('release' as const), job: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ kind: fc.constant('pass' as const) }),
      fc.record({ kind: fc.constant('sync' as const) }),
      fc.record({ kind: fc.constant('end' as const), n: fc.integer({ min: 0, max: 3 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 6 }), fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 150 }), (window, slots, ops) => {
        const store = new MemoryQueueStore();
        const q = pool(1, slots, window);
        const arrival: string[] = [];
        const withdrawn = new Set<string>();
        const granted: string[] = [];
        const priorities = new Map<string, number>();
        const passAndSync = () => {
          // The workflow's order: a pass, then its sync, before anything else is acted on.
          // Queued now: in the window or the store, less what withdrew (its row leaves the store at the next sync).
          const waiting = [...store.rows.values(), ...q.window.map((r) => ({ jobName: r.id, seq: r.seq, priority: r.priority }))].filter((w) => !withdrawn.has(w.jobName));
          const grants = q.pass().grants.map((a) => a.id);
          for (const id of grants) {
            const p = priorities.get(id) ?? 0;
            const better = waiting.find((w) => !grants.includes(w.jobName) && (w.priority ?? 0) > p);
            assert.equal(better, undefined, `${id} (priority ${p}) started while ${better?.jobName} of priority ${better?.priority} waited`);
          }
          granted.push(...grants);
          syncAll(q, store);
          assertWindowIsHead(q, store);
        };
        for (const o of ops) {
          if (o.kind === 'request') {
            const name = `j${o.job}`;
            if (arrival.includes(name)) continue; // a job asks once
            q.request({ jobName: name, workflowId: name, ranks: 1, priority: o.priority }, T);
            priorities.set(name, o.priority);
            arrival.push(name);
          } else if (o.kind === 'release') {
            const name = `j${o.job}`;
            if (!granted.includes(name) && arrival.includes(name)) withdrawn.add(name);
            q.release(name);
          } else if (o.kind === 'end') {
            for (const id of Object.keys(q.scheduler.allocations).slice(0, o.n)) q.release(id);
          } else if (o.kind === 'sync') {
            syncAll(q, store);
            assertWindowIsHead(q, store);
          } else passAndSync();
        }
        for (let i = 0; i < 500 && (q.length > 0 || q.needsSync()); i++) {
          for (const id of Object.keys(q.scheduler.allocations)) q.release(id);
          passAndSync();
        }
        const expected = arrival.filter((n) => !withdrawn.has(n));
        assert.deepEqual([...granted].sort(), [...expected].sort(), 'every job that did not withdraw started, once');
        if (new Set(priorities.values()).size === 1) assert.deepEqual(granted, expected, 'jobs of one priority start in arrival order');
        assert.equal(q.length, 0);
        assert.equal(store.rows.size, 0, 'nothing left behind in the store');
      }),
      { numRuns: 300 },
    );
  });
});
