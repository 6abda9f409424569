/**
 * One pool's store in memory, with the pool store's step semantics (src/store/pool-store.ts): queue
 * rows, the capacity snapshot with its step number, a checked step refused when a later snapshot is
 * stored, and jobs' amendments (claims, returns) that count the step up. And the pool workflow's loop
 * run against it to a written step. For the pure tests of PoolQueue and capacity claims.
 */
import assert from 'node:assert/strict';
import { compareKeys, keyOf, type LostStep, type PoolQueue, type PoolSyncOutcome, type PoolSyncStep, type QueueEntry } from '../../src/domain/pool-queue';
import { type Allocation } from '../../src/domain/scheduler';
import { type SharingPolicy } from '../../src/domain/sharing';

export class SteppedStore {
  rows = new Map<string, QueueEntry>();
  snapshot: LostStep | undefined;

  sync(step: PoolSyncStep): PoolSyncOutcome & { lost?: LostStep } {
    const stored = this.snapshot?.step ?? 0;
    if (step.expectStep !== undefined && stored > step.expectStep) return { ...this.totals(), rows: [], step: stored, lost: structuredClone(this.snapshot) };
    for (const r of step.inserts) if (!this.rows.has(r.jobName)) this.rows.set(r.jobName, r);
    for (const name of step.removes) this.rows.delete(name);
    if (step.snapshot) this.snapshot = { step: stored + 1, version: step.snapshot.version, state: structuredClone(step.snapshot.state) };
    const after = step.read && { priority: step.read.afterPriority ?? 0, seq: step.read.afterSeq };
    const rows = step.read && after ? this.sorted().filter((r) => compareKeys(keyOf(r), after) > 0).slice(0, step.read.limit) : [];
    return { ...this.totals(), rows, step: this.snapshot?.step ?? 0 };
  }

  /** A job's amendment of the stored snapshot (pool-store.ts amendPoolSnapshot): written one step on, the version kept. */
  amend(state: unknown): void {
    const s = this.snapshot as LostStep;
    this.snapshot = { step: s.step + 1, version: s.version, state: structuredClone(state) };
  }

  sorted(): QueueEntry[] {
    return [...this.rows.values()].sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
  }

  private totals() {
    const sorted = this.sorted();
    return { length: sorted.length, ranks: sorted.reduce((n, r) => n + r.ranks, 0), maxRanks: Math.max(0, ...sorted.map((r) => r.ranks)) };
  }
}

/** What the workflow's loop does: a pass, then a step with its grants; a refused step is followed and the pass made again. Returns the grants sent. */
export function passAndSync(q: PoolQueue, store: SteppedStore, policy: SharingPolicy): Allocation[] {
  const sent: Allocation[] = [];
  let resend: Allocation[] = [];
  for (let i = 0; i < 20; i++) {
    const { grants } = q.pass(policy);
    const step = q.takeSync();
    const outcome = store.sync(step);
    if (outcome.lost) {
      resend = [...resend, ...grants, ...q.followLostStep(step, outcome.lost).grants];
      continue;
    }
    q.applySync(step, outcome);
    sent.push(...resend.filter((a) => q.scheduler.allocations[a.id] === a), ...grants);
    resend = [];
    if (!q.needsSync()) return sent;
  }
  assert.fail('the pool did not settle');
}
