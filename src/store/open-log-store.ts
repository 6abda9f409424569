/**
 * Picks the log store backend as the read model picks its own: PostgreSQL when a database URL is
 * configured (DATABASE_URL), so every API replica serves the same logs; else the SQLite file under
 * DATA_DIR. The URL is checked before anything connects, and no error message carries its password.
 */
import { checkDatabaseUrl, maskPassword } from './open-read-model';
import { type LogStore } from './log-store';
import { PostgresLogStore, type PostgresLogStoreOptions } from './postgres-log-store';
import { SqliteLogStore } from './sqlite-log-store';

export interface OpenLogStoreOptions {
  /** A postgres:// or postgresql:// URL; unset or empty means SQLite. */
  databaseUrl?: string;
  /** The SQLite file used when there is no databaseUrl. */
  sqliteFile: string;
  postgres?: PostgresLogStoreOptions;
}

export async function openLogStore(options: OpenLogStoreOptions): Promise<LogStore> {
  const url = options.databaseUrl?.trim();
  if (!url) return new SqliteLogStore(options.sqliteFile);
  checkDatabaseUrl(url);
  try {
    return await PostgresLogStore.connect(url, options.postgres);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot open the log store at DATABASE_URL ${maskPassword(url)}: ${reason}`, { cause: error });
  }
}
