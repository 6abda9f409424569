/**
 * A store that cannot be reached right now (PostgreSQL restarting, its connections cut, a pool that
 * cannot connect) is a service that is briefly unavailable, not an internal error: the API answers
 * 503 UNAVAILABLE with Retry-After, as it does while Temporal is away. Found by the cluster suite,
 * where a restarted PostgreSQL made get and list answer 500.
 */
import { ApiError } from '../domain/errors';

/** Node's socket errors, and PostgreSQL's connection-exception and operator-intervention classes. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  '08000', // connection_exception
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08003', // connection_does_not_exist
  '08004', // sqlserver_rejected_establishment_of_sqlconnection
  '08006', // connection_failure
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down)
  '53300', // too_many_connections
]);

/** node-postgres says these in words only. */
const UNAVAILABLE_MESSAGES = [/^Connection terminated/, /timeout exceeded when trying to connect/, /Client has encountered a connection error/, /^Connection refused/];

/** The store's trouble as a 503 for the API, or undefined when the error is something else. */
export function storeUnavailable(err: unknown): ApiError | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  const known = typeof code === 'string' && UNAVAILABLE_CODES.has(code);
  if (!known && !UNAVAILABLE_MESSAGES.some((m) => m.test(err.message))) return undefined;
  const error = new ApiError('UNAVAILABLE', `the database does not answer (${typeof code === 'string' ? code : 'connection lost'}); retry with backoff`);
  return Object.assign(error, { retryAfterSeconds: 2 });
}
