/**
 * The read model's tables, shared by every backend (SQLite, PostgreSQL): one table per resource kind,
 * each with the full resource JSON in `body` and a typed column per filterable or orderable field, and
 * the mapping from a resource to its column values. Only the SQL that spells these differs per backend.
 *
 * Timestamps are fixed-width UTC text (`YYYY-MM-DDTHH:MM:SS.sssZ`) on every backend, so text order is
 * time order and an absent optional timestamp can sort as '' (first ascending) in orders and cursors.
 */
import { normalizeTimestamp } from '../domain/filter';
import { type ResourceKind, type StoredResource } from './read-model';

export type ColumnType = 'text' | 'timestamp' | 'int' | 'bool';

export interface ColumnSpec {
  field: string;
  column: string;
  type: ColumnType;
  /** Absent values stay NULL (only for timestamps a resource may lack, such as startTime). */
  optional?: true;
}

export interface TableSpec {
  table: string;
  columns: readonly ColumnSpec[];
  /** Column lists of the secondary indexes; every one starts with account, as every query does. */
  indexes: readonly string[];
}

const col = (field: string, column: string, type: ColumnType, optional?: true): ColumnSpec => (optional ? { field, column, type, optional } : { field, column, type });

const COMMON_COLUMNS: readonly ColumnSpec[] = [
  col('state', 'state', 'text'),
  col('createTime', 'create_time', 'timestamp'),
  col('updateTime', 'update_time', 'timestamp'),
];

export const TABLES: Record<ResourceKind, TableSpec> = {
  batchJobs: {
    table: 'batch_jobs',
    columns: [
      ...COMMON_COLUMNS,
      col('nodePoolId', 'node_pool_id', 'text'),
      col('displayName', 'display_name', 'text'),
      col('createdBy', 'created_by', 'text'),
      col('startTime', 'start_time', 'timestamp', true),
      col('endTime', 'end_time', 'timestamp', true),
      col('numRanks', 'num_ranks', 'int'),
      col('shared', 'shared', 'bool'),
    ],
    indexes: ['account, create_time DESC, name', 'account, state', 'account, node_pool_id, state'],
  },
  nodePools: {
    table: 'node_pools',
    columns: [...COMMON_COLUMNS, col('displayName', 'display_name', 'text')],
    indexes: ['account, name'],
  },
  environments: {
    table: 'environments',
    columns: [...COMMON_COLUMNS, col('displayName', 'display_name', 'text'), col('createdBy', 'created_by', 'text')],
    indexes: ['account, name'],
  },
  snapshots: {
    table: 'snapshots',
    columns: [...COMMON_COLUMNS],
    indexes: ['account, create_time, name'],
  },
};

/** Jobs per account, pool and state: the same SQL on both backends (metrics). */
export const JOB_COUNTS_SQL = `SELECT account, node_pool_id AS "nodePoolId", state, CAST(COUNT(*) AS INTEGER) AS count FROM ${TABLES.batchJobs.table} GROUP BY account, node_pool_id, state ORDER BY account, node_pool_id, state`;

export const RESOURCE_KINDS = Object.keys(TABLES) as ResourceKind[];

/** Field → SQL expression for filters: the raw column, so a comparison with an absent timestamp (NULL) is false. */
export function filterColumns(kind: ResourceKind): Record<string, string> {
  return Object.fromEntries([['name', 'name'], ...TABLES[kind].columns.map((c) => [c.field, c.column])]) as Record<string, string>;
}

/** Field → SQL expression for ORDER BY and cursors: absent values sort as '' (first ascending). */
export function orderColumns(kind: ResourceKind): Record<string, string> {
  return Object.fromEntries([
    ['name', 'name'],
    ...TABLES[kind].columns.map((c) => [c.field, c.optional ? `COALESCE(${c.column}, '')` : c.column]),
  ]) as Record<string, string>;
}

export const FILTER_COLUMNS = Object.fromEntries(RESOURCE_KINDS.map((k) => [k, filterColumns(k)])) as Record<ResourceKind, Record<string, string>>;
export const ORDER_COLUMNS = Object.fromEntries(RESOURCE_KINDS.map((k) => [k, orderColumns(k)])) as Record<ResourceKind, Record<string, string>>;

/** Every column of a kind's table, in the order rowOf returns their values. */
export function columnNames({ columns }: TableSpec): string[] {
  return ['name', 'account', 'version', 'body', ...columns.map((c) => c.column)];
}

/** The columns an accepted newer version overwrites (all but the key). */
export function updatedColumns(spec: TableSpec): string[] {
  return columnNames(spec).filter((n) => n !== 'name');
}

/** A stable name for a secondary index, e.g. batch_jobs_by_account_create_time_desc_name. */
export function indexName(table: string, index: string): string {
  return `${table}_by_${index.replace(/ DESC/g, '_desc').replace(/, /g, '_')}`;
}

/** A column value; booleans stay booleans here, and a backend without them (SQLite) maps them to 0/1. */
export type ColumnValue = string | number | boolean | null;

/**
 * The row of a resource, in columnNames' order: name, account, version, body JSON, then each typed
 * column. Throws when the version is not an integer, the name is not in the account, or a field does
 * not fit its column.
 */
export function rowOf(kind: ResourceKind, account: string, resource: StoredResource, version: number): ColumnValue[] {
  if (!Number.isSafeInteger(version)) throw new Error(`version must be an integer, got ${String(version)}`);
  // Names embed the account; a mismatch would show the resource in another account's lists.
  if (typeof resource.name !== 'string' || !resource.name.startsWith(`accounts/${account}/`)) {
    throw new Error(`resource ${String(resource.name)} does not belong to account ${account}`);
  }
  const values = TABLES[kind].columns.map((c) => columnValue(c, fieldOf(resource, c.field)));
  return [resource.name, account, version, JSON.stringify(resource), ...values];
}

/** The column value of a resource field; absent text is '', absent numbers 0 and absent booleans false, as proto3 reads them. */
function columnValue(spec: ColumnSpec, value: unknown): ColumnValue {
  const absent = value === undefined || value === null;
  switch (spec.type) {
    case 'text':
      if (absent) return '';
      if (typeof value !== 'string') throw new Error(`${spec.field} must be a string`);
      return value;
    case 'timestamp': {
      if (absent && spec.optional) return null;
      const ts = typeof value === 'string' ? normalizeTimestamp(value) : undefined;
      if (ts === undefined) throw new Error(`${spec.field} must be an RFC 3339 timestamp, got ${JSON.stringify(value)}`);
      return ts;
    }
    case 'int':
      if (absent) return 0;
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new Error(`${spec.field} must be an integer`);
      return value;
    case 'bool':
      if (absent) return false;
      if (typeof value !== 'boolean') throw new Error(`${spec.field} must be a boolean`);
      return value;
  }
}

function fieldOf(resource: object, field: string): unknown {
  return Object.hasOwn(resource, field) ? (resource as Record<string, unknown>)[field] : undefined;
}
