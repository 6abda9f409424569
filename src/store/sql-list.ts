/**
 * Compiles parsed list parameters (filter, order, cursor) into SQL fragments for SQLite or
 * PostgreSQL. Field names reach SQL only through the caller's column map; every value is a bound
 * parameter, never SQL text.
 *
 * Filter semantics are two-valued: a comparison against an absent (NULL) column is false, its NOT is
 * true, and `a != x` is exactly `NOT a = x`.
 *
 * On SQLite, LIKE is case-insensitive unless the connection sets `PRAGMA case_sensitive_like = ON`;
 * the read model does, so wildcards match case as `=` does.
 */
import { ApiError } from '../domain/errors';
import { type FilterExpr } from '../domain/filter';
import { type OrderTerm, withTiebreak } from '../domain/order-by';
import { type ListPage, type ListQuery } from './read-model';

export type SqlDialect = 'sqlite' | 'postgres';

export interface SqlFragment {
  sql: string;
  params: unknown[];
}

/** Hands out placeholders in order: `?` on SQLite, `$n` (from `first`) on PostgreSQL. */
class Params {
  readonly values: unknown[] = [];

  constructor(
    private readonly dialect: SqlDialect,
    private readonly first: number,
  ) {}

  bind(value: unknown): string {
    this.values.push(value);
    return this.dialect === 'sqlite' ? '?' : `$${this.first + this.values.length - 1}`;
  }
}

export function compileFilter(expr: FilterExpr, columns: Record<string, string>, dialect: SqlDialect, firstParam = 1): SqlFragment {
  const params = new Params(dialect, firstParam);
  const sql = compileExpr(expr, columns, dialect, params);
  return { sql, params: params.values };
}

function compileExpr(expr: FilterExpr, columns: Record<string, string>, dialect: SqlDialect, params: Params): string {
  switch (expr.kind) {
    case 'and':
      return expr.items.length === 0 ? '(1 = 1)' : `(${expr.items.map((e) => compileExpr(e, columns, dialect, params)).join(' AND ')})`;
    case 'or':
      return expr.items.length === 0 ? '(1 = 0)' : `(${expr.items.map((e) => compileExpr(e, columns, dialect, params)).join(' OR ')})`;
    case 'not':
      // NULL (a comparison against an absent column) counts as false before it is negated.
      return `(NOT COALESCE(${compileExpr(expr.item, columns, dialect, params)}, FALSE))`;
    case 'cmp':
      return compileComparison(expr, columnOf(columns, expr.field), dialect, params);
  }
}

function compileComparison(cmp: Extract<FilterExpr, { kind: 'cmp' }>, column: string, dialect: SqlDialect, params: Params): string {
  if (cmp.wildcard) {
    if (typeof cmp.value !== 'string' || (cmp.op !== '=' && cmp.op !== '!=')) {
      throw new Error(`a wildcard needs a string value and = or != (field ${cmp.field})`);
    }
    const like = `${column} LIKE ${params.bind(likePattern(cmp.value))} ESCAPE '\\'`;
    return cmp.op === '=' ? `(${like})` : `(${column} IS NULL OR NOT (${like}))`;
  }
  const value = bindable(cmp.value, dialect);
  if (cmp.op === '!=') {
    return dialect === 'sqlite' ? `(${column} IS NOT ${params.bind(value)})` : `(${column} IS DISTINCT FROM ${params.bind(value)})`;
  }
  return `(${column} ${cmp.op} ${params.bind(value)})`;
}

/** Turns a filter pattern (`*` any run, `\*` and `\\` literal) into a LIKE pattern with `\` as escape. */
export function likePattern(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      i++;
      out += escapeLike(pattern[i] ?? '\\');
    } else {
      out += c === '*' ? '%' : escapeLike(c);
    }
  }
  return out;
}

function escapeLike(c: string): string {
  return c === '%' || c === '_' || c === '\\' ? `\\${c}` : c;
}

/** better-sqlite3 binds no booleans; PostgreSQL wants real ones. */
function bindable(value: string | number | boolean, dialect: SqlDialect): string | number | boolean {
  if (typeof value === 'boolean' && dialect === 'sqlite') return value ? 1 : 0;
  return value;
}

export function compileOrder(terms: readonly OrderTerm[], columns: Record<string, string>): string {
  if (terms.length === 0) throw new Error('an order needs at least one term');
  return `ORDER BY ${terms.map((t) => `${columnOf(columns, t.field)} ${t.desc ? 'DESC' : 'ASC'}`).join(', ')}`;
}

/**
 * Selects rows strictly after the cursor `after` (one value per term) in the order `terms`:
 * (c1 > v1) OR (c1 = v1 AND c2 > v2) OR …, with < for descending terms. A redundant leading bound on
 * the first column lets an index range scan do the work. `terms` must end with a unique field.
 */
export function compileKeyset(
  terms: readonly OrderTerm[],
  columns: Record<string, string>,
  afterValues: readonly unknown[],
  dialect: SqlDialect,
  firstParam = 1,
): SqlFragment {
  if (terms.length === 0) throw new Error('an order needs at least one term');
  if (afterValues.length !== terms.length) throw cursorError();
  const values = afterValues.map(cursorValue);
  const cols = terms.map((t) => columnOf(columns, t.field));
  const params = new Params(dialect, firstParam);
  // PostgreSQL can refer to one parameter many times; SQLite's `?` needs each use bound anew.
  const pgRefs = dialect === 'postgres' ? values.map((v) => params.bind(v)) : [];
  const ref = (i: number): string => (dialect === 'postgres' ? pgRefs[i]! : params.bind(values[i]));
  const strict = (i: number): string => `${cols[i]} ${terms[i]!.desc ? '<' : '>'} ${ref(i)}`;

  const lead = `${cols[0]} ${terms[0]!.desc ? '<=' : '>='} ${ref(0)}`;
  const branches: string[] = [];
  for (let i = 0; i < terms.length; i++) {
    const equal = cols.slice(0, i).map((c, j) => `${c} = ${ref(j)}`);
    branches.push(`(${[...equal, strict(i)].join(' AND ')})`);
  }
  return { sql: `(${lead} AND (${branches.join(' OR ')}))`, params: params.values };
}

function cursorValue(value: unknown): string | number {
  if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) return value;
  throw cursorError();
}

function cursorError(): ApiError {
  return ApiError.invalidField('pageToken', 'does not fit this query; start again without a pageToken');
}

function columnOf(columns: Record<string, string>, field: string): string {
  // hasOwn: a field such as "constructor" must not resolve through the prototype.
  if (!Object.hasOwn(columns, field)) throw new Error(`no column for field ${field}`);
  return columns[field]!;
}

/** A list page's two statements: the page itself and its totalSize, to run in one snapshot. */
export interface ListStatements {
  /** The order, ending with the unique tiebreak; the page selects each term's value as k0, k1, …. */
  terms: OrderTerm[];
  /** One row more than the page size, so that the caller knows whether another page follows. */
  page: SqlFragment;
  count: SqlFragment;
}

/**
 * The statements of one page of `query` from `table`, restricted to the rows `scope` selects (the
 * caller's account and filter): keyset pagination after `query.after`, ordered by `query.orderBy`
 * and the tiebreak.
 */
export function compileListPage(table: string, orderCols: Record<string, string>, scope: SqlFragment, query: ListQuery, dialect: SqlDialect): ListStatements {
  const { pageSize } = query;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) throw ApiError.invalidField('pageSize', 'must be a positive integer');
  const terms = withTiebreak(query.orderBy);
  const where = [scope.sql];
  const params = [...scope.params];
  if (query.after) {
    const keyset = compileKeyset(terms, orderCols, query.after, dialect, params.length + 1);
    where.push(keyset.sql);
    params.push(...keyset.params);
  }
  const keys = terms.map((t, i) => `${columnOf(orderCols, t.field)} AS k${i}`);
  const limit = dialect === 'sqlite' ? '?' : `$${params.length + 1}`;
  return {
    terms,
    page: { sql: `SELECT body, ${keys.join(', ')} FROM ${table} WHERE ${where.join(' AND ')} ${compileOrder(terms, orderCols)} LIMIT ${limit}`, params: [...params, pageSize + 1] },
    count: { sql: `SELECT COUNT(*) AS n FROM ${table} WHERE ${scope.sql}`, params: scope.params },
  };
}

/** The page from the rows of `ListStatements.page`: its items, and the cursor when more follow. */
export function listPageOf<T>(rows: readonly Record<string, unknown>[], totalSize: number, statements: ListStatements, pageSize: number, bodyOf: (row: Record<string, unknown>) => T): ListPage<T> {
  const page = rows.slice(0, pageSize);
  const last = page[page.length - 1];
  const result: ListPage<T> = { items: page.map(bodyOf), totalSize };
  if (rows.length > pageSize && last) result.nextAfter = statements.terms.map((_t, i) => last[`k${i}`]);
  return result;
}
