/**
 * The list parameters every collection shares (AIP-132/158/160): pageSize, pageToken, filter, orderBy,
 * readMask. Everything is parsed and checked before the store is touched; a page token only works for
 * the account and query that produced it.
 */
import { ApiError } from '../domain/errors';
import { type FilterExpr, parseFilter } from '../domain/filter';
import { FILTER_FIELDS, type ListKind, orderSpecOf } from '../domain/list-fields';
import { parsePageSize } from '../domain/list-params';
import { type OrderTerm, parseOrderBy } from '../domain/order-by';
import { decodePageToken, encodePageToken, queryFingerprint } from './page-token';

export interface ListRequest {
  filter?: FilterExpr;
  orderBy: OrderTerm[];
  pageSize: number;
  after?: unknown[];
  fingerprint: string;
  readMask?: string;
}

type Query = Record<string, unknown>;

/** A query parameter given at most once, as a string. */
export function singleParam(query: Query, name: string): string | undefined {
  const v = query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw ApiError.invalidField(name, 'must be given once, as a string');
  return v;
}

export function parseListRequest(kind: ListKind, account: string, query: Query, secret: Buffer): ListRequest {
  const filterText = singleParam(query, 'filter');
  const orderText = singleParam(query, 'orderBy') ?? singleParam(query, 'order_by');
  const token = singleParam(query, 'pageToken') ?? singleParam(query, 'page_token');
  const readMask = singleParam(query, 'readMask') ?? singleParam(query, 'read_mask');
  const pageSize = parsePageSize(singleParam(query, 'pageSize') ?? singleParam(query, 'page_size'));
  const filter = filterText === undefined ? undefined : parseFilter(filterText, FILTER_FIELDS[kind]);
  const orderBy = parseOrderBy(orderText, orderSpecOf(kind));
  const fingerprint = queryFingerprint({ kind, account, filter: filterText?.trim(), orderBy: JSON.stringify(orderBy) });
  const after = token ? decodePageToken(secret, token, fingerprint) : undefined;
  return {
    orderBy,
    pageSize,
    fingerprint,
    ...(filter ? { filter } : {}),
    ...(after ? { after } : {}),
    ...(readMask !== undefined ? { readMask } : {}),
  };
}

export function nextPageToken(secret: Buffer, request: ListRequest, nextAfter: unknown[] | undefined): string {
  return nextAfter ? encodePageToken(secret, { q: request.fingerprint, after: nextAfter }) : '';
}

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Keeps only the fields a readMask names (`*` or empty: all). Paths may be nested (`pythonExecutor.target`). */
export function applyReadMask<T extends object>(resource: T, readMask: string | undefined, known: readonly string[]): Partial<T> {
  const mask = readMask?.trim();
  if (!mask || mask === '*') return resource;
  const out: Record<string, unknown> = {};
  for (const raw of mask.split(',')) {
    const path = raw.trim().split('.').map(camel);
    const [top] = path;
    if (!top) continue;
    if (!known.includes(top)) throw ApiError.invalidField('readMask', `unknown field "${raw.trim()}"; known fields: ${known.join(', ')}`);
    let src: unknown = resource;
    let dst: Record<string, unknown> = out;
    for (let i = 0; i < path.length; i++) {
      const key = path[i] as string;
      if (src === null || typeof src !== 'object' || !(key in src)) break;
      const value = (src as Record<string, unknown>)[key];
      if (i === path.length - 1) dst[key] = value;
      else {
        dst[key] ??= {};
        dst = dst[key] as Record<string, unknown>;
        src = value;
      }
    }
  }
  return out as Partial<T>;
}
