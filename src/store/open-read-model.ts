/**
 * Picks the read model backend: PostgreSQL when a database URL is configured (DATABASE_URL), else the
 * embedded SQLite file. The URL's shape is checked before anything connects, and no error message
 * ever carries its password.
 */
import { PostgresReadModel, type PostgresReadModelOptions } from './postgres-read-model';
import { type ReadModel } from './read-model';
import { SqliteReadModel } from './sqlite-read-model';

export interface OpenReadModelOptions {
  /** A postgres:// or postgresql:// URL; unset or empty means SQLite. */
  databaseUrl?: string;
  /** The SQLite file used when there is no databaseUrl. */
  sqliteFile: string;
  postgres?: PostgresReadModelOptions;
}

export async function openReadModel(options: OpenReadModelOptions): Promise<ReadModel> {
  const url = options.databaseUrl?.trim();
  if (!url) return new SqliteReadModel(options.sqliteFile);
  checkDatabaseUrl(url);
  try {
    return await PostgresReadModel.connect(url, options.postgres);
  } catch (error) {
    // node-postgres's messages (refused, unknown host, authentication failed for user …) carry no password.
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot open the read model at DATABASE_URL ${maskPassword(url)}: ${reason}`, { cause: error });
  }
}

/** Throws a clear error, with the password masked, unless `url` is a usable PostgreSQL connection URL. */
export function checkDatabaseUrl(url: string): void {
  const fail = (shown: string, why: string): never => {
    throw new Error(`DATABASE_URL ${shown} is not a PostgreSQL URL: ${why}; expected e.g. postgresql://user:password@host:5432/batchd`);
  };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail('(value not shown)', 'it does not parse as a URL (percent-encode reserved characters such as @, : or / in the user name or password)');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    return fail(maskPassword(url), `the scheme is ${JSON.stringify(parsed.protocol.replace(/:$/, ''))}, not postgres or postgresql`);
  }
  // A Unix socket directory may come as ?host=/path instead of in the authority.
  if (!parsed.hostname && !parsed.searchParams.get('host')) return fail(maskPassword(url), 'it names no host');
}

/**
 * The URL with its password (in the authority or a `password` query parameter) replaced by ****.
 * A string that does not parse as a URL is not shown at all: it may be a keyword/value connection
 * string (`host=… password=…`) whose secret no pattern can be trusted to find.
 */
export function maskPassword(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(value not shown: it does not parse as a URL)';
  }
  if (parsed.password) parsed.password = '****';
  if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '****');
  return parsed.toString();
}
