/**
 * The read model: a projection of every resource, written by the workflows' report activities and
 * read by list (filter, orderBy, stable cursors, totalSize) and, as a fallback, by get. It is never
 * the source of truth for a live job; Temporal is. For a job that has ended, the record written by
 * its workflow's last report is the job's archive (see docs/architecture.md, "Where state lives").
 *
 * Writes are idempotent and ordered by `version`: a write with a version not above the stored one is
 * ignored, so a retried or late report can never move a resource backwards.
 */
import { type BatchJob } from '../domain/batch-job';
import { type FilterExpr } from '../domain/filter';
import { type OrderTerm } from '../domain/order-by';
import { type PoolStore } from './pool-store';

export type ResourceKind = 'batchJobs' | 'nodePools' | 'environments' | 'snapshots';

/** Any resource the read model stores: its wire form plus the columns list queries use. */
export interface StoredResource {
  name: string;
  createTime: string;
  updateTime: string;
}

export interface ListQuery {
  account: string;
  filter?: FilterExpr;
  orderBy: OrderTerm[];
  pageSize: number;
  /** Values of the order fields (then name) of the last item of the previous page. */
  after?: unknown[];
}

export interface ListPage<T> {
  items: T[];
  totalSize: number;
  /** Cursor values of the last item when more items follow; undefined on the last page. */
  nextAfter?: unknown[];
}

/**
 * The read model, and in the same database the pools' durable queue and capacity snapshots
 * (pool-store.ts), which are not a projection: see there.
 */
export interface ReadModel extends PoolStore {
  /** Writes a resource when `version` is newer than what is stored. Returns whether it was written. */
  put(kind: ResourceKind, account: string, resource: StoredResource, version: number): Promise<boolean>;
  /** Writes only when no record of that name exists (the API's read-your-writes insert at create). */
  putIfAbsent(kind: ResourceKind, account: string, resource: StoredResource, version: number): Promise<boolean>;
  get<T extends StoredResource>(kind: ResourceKind, name: string): Promise<{ resource: T; version: number } | undefined>;
  remove(kind: ResourceKind, name: string): Promise<boolean>;
  list<T extends StoredResource>(kind: ResourceKind, query: ListQuery): Promise<ListPage<T>>;
  /** Every resource of a kind in every account (the fleet's view of fake pools). Small collections only. */
  listAll<T extends StoredResource>(kind: ResourceKind): Promise<T[]>;
  /** Counts by a column's value, e.g. live jobs per state in a pool; used by metrics and guards. */
  count(kind: ResourceKind, account: string, filter?: FilterExpr): Promise<number>;
  /** Batch jobs per account, node pool and state, across all accounts (metrics). */
  jobCounts(): Promise<JobCount[]>;
  close(): Promise<void>;
}

export interface JobCount {
  account: string;
  nodePoolId: string;
  state: string;
  count: number;
}

export type BatchJobRecord = BatchJob & StoredResource;
