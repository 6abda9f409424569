/**
 * A pool's internals as the service answers them: its workflow's view (hosts and slot owners, the head
 * of the queue, the reservation, allocations), with the claims and returns its store holds that the
 * workflow has not taken yet (src/domain/capacity-claim.ts). Every reader of a pool's slots (the
 * internals and usage endpoints, a dry run, the metrics) reads them here, so none of them misses a job
 * that claimed its capacity or counts one that gave it back.
 */
import { type Client } from '@temporalio/client';
import { internalsWithClaims, type StoredClaims, storedClaims } from '../domain/capacity-claim';
import { type PoolStore } from '../store/pool-store';
import { getNodePoolInternalsQuery, type NodePoolInternals } from '../../workflows/messages';

/** The store's claims and returns for a pool; none when the store cannot say (the workflow's view stands). */
export async function poolClaims(store: Pick<PoolStore, 'poolSnapshot'>, pool: string, warn?: (err: unknown) => void): Promise<StoredClaims> {
  try {
    return storedClaims((await store.poolSnapshot(pool))?.state);
  } catch (err) {
    warn?.(err);
    return storedClaims(undefined);
  }
}

/** The pool's internals within `timeoutMs` (the query's failure is the caller's to answer), with its store's claims. */
export async function readPoolInternals(client: Client, store: Pick<PoolStore, 'poolSnapshot'>, pool: string, timeoutMs: number, warn?: (err: unknown) => void): Promise<NodePoolInternals> {
  const internals = await client.withDeadline(Date.now() + timeoutMs, () => client.workflow.getHandle(pool).query(getNodePoolInternalsQuery));
  return internalsWithClaims(internals, await poolClaims(store, pool, warn));
}
