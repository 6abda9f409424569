/**
 * What each list can filter and order on, so the API parses `filter` and `orderBy` before it touches
 * the store, and the store keeps a column for every field named here.
 */
import { BATCH_JOB_STATES } from './batch-job';
import { type FilterField } from './filter';
import { type OrderSpec, type OrderTerm } from './order-by';

/** The listable collections; the same strings as the store's ResourceKind. */
export type ListKind = 'batchJobs' | 'nodePools' | 'environments' | 'snapshots';

export const NODE_POOL_STATES = ['CREATING', 'READY', 'DELETING', 'FAILED'] as const;
export const ENVIRONMENT_STATES = ['CREATING', 'DISCONNECTED', 'CONNECTING', 'CONNECTED', 'DISCONNECTING', 'RECONNECTING', 'DELETING'] as const;
export const SNAPSHOT_STATES = ['CREATING', 'READY', 'FAILED', 'DELETING'] as const;

const str = (name: string): FilterField => ({ name, type: 'string' });
const ts = (name: string): FilterField => ({ name, type: 'timestamp' });
const state = (values: readonly string[]): FilterField => ({ name: 'state', type: 'enum', enumValues: values });

export const FILTER_FIELDS: Record<ListKind, readonly FilterField[]> = {
  batchJobs: [
    str('name'),
    state(BATCH_JOB_STATES),
    str('nodePoolId'),
    str('displayName'),
    str('createdBy'),
    ts('createTime'),
    ts('updateTime'),
    ts('startTime'),
    ts('endTime'),
    { name: 'numRanks', type: 'int' },
    { name: 'shared', type: 'bool' },
  ],
  nodePools: [str('name'), state(NODE_POOL_STATES), str('displayName'), ts('createTime'), ts('updateTime')],
  environments: [str('name'), state(ENVIRONMENT_STATES), str('displayName'), str('createdBy'), ts('createTime'), ts('updateTime')],
  // A snapshot has no displayName (upstream gatewaySnapshot), so filtering on it would silently match nothing.
  snapshots: [str('name'), state(SNAPSHOT_STATES), ts('createTime'), ts('updateTime')],
};

export const ORDER_FIELDS: Record<ListKind, readonly string[]> = {
  batchJobs: ['createTime', 'updateTime', 'startTime', 'endTime', 'displayName', 'state', 'name', 'numRanks'],
  nodePools: ['name', 'state', 'displayName', 'createTime', 'updateTime'],
  environments: ['name', 'state', 'displayName', 'createdBy', 'createTime', 'updateTime'],
  snapshots: ['name', 'state', 'createTime', 'updateTime'],
};

/** Upstream defaults: batch jobs `create_time desc`, node pools and environments `name`, snapshots `create_time`. */
export const DEFAULT_ORDER: Record<ListKind, readonly OrderTerm[]> = {
  batchJobs: [{ field: 'createTime', desc: true }],
  nodePools: [{ field: 'name', desc: false }],
  environments: [{ field: 'name', desc: false }],
  snapshots: [{ field: 'createTime', desc: false }],
};

/** The spec parseOrderBy takes, per collection. */
export function orderSpecOf(kind: ListKind): OrderSpec {
  return { fields: ORDER_FIELDS[kind], default: DEFAULT_ORDER[kind] };
}
