/**
 * Where the command line finds the API, its key and the account, first match wins: flags
 * (`--api-url`, `--api-key`, `--account`), the environment (`BATCHD_API_URL`, `BATCHD_API_KEY`,
 * `BATCHD_ACCOUNT`), then the config file — `--config`, `BATCHD_CONFIG`, or
 * `$XDG_CONFIG_HOME/batchd/config.json` (default `~/.config/batchd/config.json`):
 *
 *   {"apiUrl": "http://127.0.0.1:8080", "apiKey": "bd_...", "account": "default"}
 *
 * A file named on purpose must exist; the default one may be absent. Defaults: the API of `npm start`
 * (http://127.0.0.1:8080) and account `default`; there is no default key.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './arguments';

export interface Settings {
  apiUrl: string;
  apiKey: string;
  account: string;
}

const FILE_FIELDS = ['apiUrl', 'apiKey', 'account'] as const;

export function defaultConfigPath(env: Record<string, string | undefined>): string {
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'batchd', 'config.json');
}

/** The config file's settings; `{}` when the default file is absent. */
export function readConfigFile(path: string, named: boolean): Partial<Settings> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (!named && (err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`cannot read the config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`the config file ${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new UsageError(`the config file ${path} must hold a JSON object`);
  const out: Partial<Settings> = {};
  for (const [key, value] of Object.entries(data)) {
    if (!(FILE_FIELDS as readonly string[]).includes(key)) throw new UsageError(`the config file ${path} has an unknown field "${key}" (fields: ${FILE_FIELDS.join(', ')})`);
    if (typeof value !== 'string' || value === '') throw new UsageError(`the config file ${path}: "${key}" must be a non-empty string`);
    out[key as (typeof FILE_FIELDS)[number]] = value;
  }
  return out;
}

export function resolveSettings(flags: { apiUrl?: string; apiKey?: string; account?: string; config?: string }, env: Record<string, string | undefined>): Settings {
  const named = flags.config ?? (env.BATCHD_CONFIG || undefined);
  const path = named ?? defaultConfigPath(env);
  const file = readConfigFile(path, named !== undefined);
  const apiUrl = flags.apiUrl ?? (env.BATCHD_API_URL || undefined) ?? file.apiUrl ?? 'http://127.0.0.1:8080';
  const apiKey = flags.apiKey ?? (env.BATCHD_API_KEY || undefined) ?? file.apiKey;
  const account = flags.account ?? (env.BATCHD_ACCOUNT || undefined) ?? file.account ?? 'default';
  if (!apiKey) throw new UsageError(`no API key: pass --api-key, set BATCHD_API_KEY, or put "apiKey" in ${path}`);
  if (!/^https?:\/\/[^/]/.test(apiUrl)) throw new UsageError(`the API URL must start with http:// or https://, got "${apiUrl}"`);
  return { apiUrl, apiKey, account };
}
