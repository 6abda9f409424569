/**
 * Opaque list page tokens (AIP-158): the cursor of the last item plus a fingerprint of the query it
 * belongs to, signed with HMAC-SHA256 so a client can neither forge a cursor nor reuse a token with
 * other parameters.
 *
 * Format: base64url(JSON {q, after}) "." base64url(HMAC-SHA256(secret, first part)).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { ApiError } from '../domain/errors';

export interface PageTokenPayload {
  /** queryFingerprint of the list call that issued the token. */
  q: string;
  /** The order-field values of the last item returned. */
  after: unknown[];
}

/** Far above any real token; bounds the work a hostile token can cause. */
const MAX_TOKEN_LENGTH = 8192;

export function encodePageToken(secret: Buffer, payload: PageTokenPayload): string {
  const body = Buffer.from(JSON.stringify({ q: payload.q, after: payload.after }), 'utf8').toString('base64url');
  return `${body}.${sign(secret, body).toString('base64url')}`;
}

/** Returns the cursor of a token this server issued for the query `expectedQ`; 400 otherwise. */
export function decodePageToken(secret: Buffer, token: string, expectedQ: string): unknown[] {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) throw tokenError('is not a page token this server issued');
  const parts = token.split('.');
  const [body, signature] = parts;
  if (parts.length !== 2 || !body || !signature || !/^[A-Za-z0-9_-]+$/.test(body) || !/^[A-Za-z0-9_-]+$/.test(signature)) {
    throw tokenError('is malformed; pass the nextPageToken of the previous response unchanged');
  }
  const expected = sign(secret, body);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw tokenError('is not a page token this server issued; pass the nextPageToken of the previous response unchanged');
  }
  const payload = parsePayload(body);
  if (payload.q !== expectedQ) {
    throw tokenError('was issued for a different query; filter, orderBy and the other list parameters (except pageSize) must match the call that returned it');
  }
  return payload.after;
}

/**
 * A stable hash of everything that must match between pages (account, filter, orderBy, …; never
 * pageSize). Key order does not matter; an absent, undefined or empty part are the same.
 */
export function queryFingerprint(parts: Record<string, string | undefined>): string {
  const canonical = Object.keys(parts)
    .sort()
    .filter((k) => (parts[k] ?? '') !== '')
    .map((k) => [k, parts[k]]);
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url').slice(0, 22);
}

function sign(secret: Buffer, body: string): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

function parsePayload(body: string): PageTokenPayload {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    throw tokenError('is malformed; pass the nextPageToken of the previous response unchanged');
  }
  if (typeof value === 'object' && value !== null && 'q' in value && 'after' in value && typeof value.q === 'string' && Array.isArray(value.after)) {
    return { q: value.q, after: value.after as unknown[] };
  }
  throw tokenError('is malformed; pass the nextPageToken of the previous response unchanged');
}

function tokenError(description: string): ApiError {
  return ApiError.invalidField('pageToken', description);
}
