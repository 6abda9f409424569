/**
 * After a node pool's recovery, the jobs whose requests its closed run received but never wrote.
 */
import { type FilterExpr } from '../src/domain/filter';
import { requestTermsOf } from '../src/domain/sharing';
import { type BatchJobRecord, type ReadModel } from '../src/store/read-model';

const WAITING: FilterExpr = {
  kind: 'or',
  items: [
    { kind: 'cmp', field: 'state', op: '=', value: 'CREATING' },
    { kind: 'cmp', field: 'state', op: '=', value: 'QUEUED' },
  ],
};

export interface PoolOrphan {
  jobName: string;
  ranks: number;
  createTime: string;
  /** What its request told the pool beyond its size (sharing.ts requestTermsOf). */
  terms: ReturnType<typeof requestTermsOf>;
}

/**
 * After a pool's recovery: the jobs of the pool that may still wait for capacity (CREATING or QUEUED
 * in the read model), that hold nothing (`known`) and are not in its stored queue, oldest first within
 * each account (the pool's own, then those it is shared with, `sharedWith`). Their
 * requests reached the closed run but were never written; the recovered pool queues them again in this
 * order (a job that is queued twice is queued once). Also answers the recorded states of the `known`
 * jobs (those holding capacity), which the snapshot does not follow.
 */
export async function poolOrphans(
  store: ReadModel,
  input: { pool: string; account: string; poolId: string; known: readonly string[]; sharedWith?: readonly string[] },
): Promise<{ orphans: PoolOrphan[]; states: Record<string, string> }> {
  const known = new Set(input.known);
  const states: Record<string, string> = {};
  for (const name of known) {
    const row = await store.get<BatchJobRecord>('batchJobs', name);
    if (row) states[name] = row.resource.state;
  }
  const orphans: PoolOrphan[] = [];
  // The owner's jobs name the pool by id or in full; other accounts' jobs in full.
  const byName: FilterExpr = { kind: 'cmp', field: 'nodePoolId', op: '=', value: input.pool };
  const ownFilter: FilterExpr = { kind: 'and', items: [{ kind: 'or', items: [{ kind: 'cmp', field: 'nodePoolId', op: '=', value: input.poolId }, byName] }, WAITING] };
  const sharedFilter: FilterExpr = { kind: 'and', items: [byName, WAITING] };
  for (const account of [input.account, ...(input.sharedWith ?? []).filter((a) => a !== input.account)]) {
    await collect(store, input.pool, account, account === input.account ? ownFilter : sharedFilter, known, orphans);
  }
  return { orphans, states };
}

async function collect(store: ReadModel, pool: string, account: string, filter: FilterExpr, known: ReadonlySet<string>, orphans: PoolOrphan[]): Promise<void> {
  let after: unknown[] | undefined;
  for (let page = 0; page < 10_000; page++) {
    const result = await store.list<BatchJobRecord>('batchJobs', {
      account,
      filter,
      orderBy: [
        { field: 'createTime', desc: false },
        { field: 'name', desc: false },
      ],
      pageSize: 500,
      ...(after ? { after } : {}),
    });
    const candidates = result.items.filter((j) => !known.has(j.name));
    const queued = new Set(Object.keys((await store.queuePositions(pool, candidates.map((j) => j.name))).positions));
    for (const j of candidates) {
      if (!queued.has(j.name)) orphans.push({ jobName: j.name, ranks: j.numRanks, createTime: j.createTime, terms: requestTermsOf(account, j, j.attempt ?? 1) });
    }
    if (!result.nextAfter) break;
    after = result.nextAfter;
  }
}
