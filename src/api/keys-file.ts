/**
 * API keys from a file (API_KEYS_FILE): a JSON array of entries, or `{"keys": [...]}`, each
 *
 *   {"key": "<at least 16 visible ASCII characters>", "account": "acme", "email": "ann@acme.dev"}
 *   {"keySha256": "<SHA-256 of the key, 64 hex digits>", "account": "acme", "email": "bob@acme.dev"}
 *
 * The file is read at start (a file that does not load stops the service), again on SIGHUP, and
 * whenever its modification time, size or inode changes (checked every API_KEYS_RELOAD_MS). A file
 * that does not load on reload leaves the previous keys in force and logs why.
 *
 * Nothing here ever puts a key, raw or hashed, into an error message or a log line: problems name the
 * entry and the field (`keys[2].key: must be at least 16 characters`), never the value, and JSON syntax
 * errors give a line and column instead of the parser's message, which quotes the text around them.
 */
import { readFileSync } from 'node:fs';
import { type Logger } from 'pino';
import { z } from 'zod';
import { ConfigError } from '../config';
import { fileSignature } from '../file-signature';
import { ID_PATTERN, ID_RULE } from '../domain/names';
import { type KeyEntry, type KeyRing, sha256 } from './auth';

export const MIN_KEY_LENGTH = 16;
/** The name of the file's keys in the key ring (and in conflict messages). */
export const KEYS_FILE_SOURCE = 'API_KEYS_FILE';

export class KeysFileError extends ConfigError {}

const ENTRY_FIELDS = ['key', 'keySha256', 'account', 'email'] as const;

/** A message for a missing field or a wrong value, never quoting the value. */
const required =
  (what: string) =>
  (issue: { input?: unknown }): string =>
    issue.input === undefined ? `is required: ${what}` : `must be ${what}`;

const entrySchema = z
  .strictObject(
    {
      key: z
        .string({ error: 'must be a string' })
        .min(MIN_KEY_LENGTH, `must be at least ${MIN_KEY_LENGTH} characters`)
        .regex(/^[\x21-\x7e]+$/, 'must consist of visible ASCII characters only (no spaces), as it is sent in an Authorization header')
        .optional(),
      keySha256: z
        .string({ error: 'must be a string' })
        .regex(/^[0-9a-fA-F]{64}$/, 'must be the SHA-256 digest of the key as 64 hexadecimal digits (e.g. printf %s "$KEY" | sha256sum)')
        .optional(),
      account: z.string({ error: required('the account the key belongs to, a string') }).regex(ID_PATTERN, `must be an account id: ${ID_RULE}`),
      email: z.email({ error: required('the email of the user the key belongs to, e.g. ann@example.com') }),
    },
    { error: `must be an object with the fields ${ENTRY_FIELDS.join(', ')}` },
  )
  .superRefine((entry, ctx) => {
    if ((entry.key === undefined) === (entry.keySha256 === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'must have exactly one of "key" and "keySha256"' });
    }
  });

/** What is wrong with one zod issue, in words that never quote the input. */
function describeIssue(issue: z.core.$ZodIssue, prefix: string): string {
  const path = prefix + issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  if (issue.code === 'unrecognized_keys') {
    // A field name is shown only when it is too short to be a key (keys have at least 16 characters).
    const names = issue.keys.map((k) => (k.length < MIN_KEY_LENGTH ? `"${k}"` : 'a long field name'));
    return `${path}: unknown field ${names.join(', ')}; the fields are ${ENTRY_FIELDS.join(', ')}`;
  }
  return `${path}: ${issue.message}`;
}

/** Line and column of a character offset, for JSON syntax errors. */
function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `line ${line}, column ${offset - before.lastIndexOf('\n')}`;
}

/**
 * The key entries of a keys file's text. Throws KeysFileError naming every problem (entry and field,
 * never a value). `source` names the file in messages.
 */
export function parseKeysFile(text: string, source: string): KeyEntry[] {
  const fail = (problems: string[]): never => {
    throw new KeysFileError(`API_KEYS_FILE ${source} was not loaded: ${problems.join('; ')}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the text near the error, which may be a key: report only where it is.
    const at = /position (\d+)/.exec(err instanceof Error ? err.message : '');
    fail([`is not valid JSON${at?.[1] ? ` (at ${lineAndColumn(text, Number(at[1]))})` : ''}`]);
  }
  let list: unknown[];
  let prefix: string;
  if (Array.isArray(json)) {
    list = json;
    prefix = '';
  } else if (typeof json === 'object' && json !== null && Object.keys(json).length === 1 && Array.isArray((json as { keys?: unknown }).keys)) {
    list = (json as { keys: unknown[] }).keys;
    prefix = 'keys';
  } else {
    return fail(['must be a JSON array of key entries, or an object {"keys": [...]} holding one']);
  }

  const problems: string[] = [];
  const entries: KeyEntry[] = [];
  const seen = new Map<string, string>();
  list.forEach((raw, i) => {
    const here = `${prefix}[${i}]`;
    const result = entrySchema.safeParse(raw);
    if (!result.success) {
      for (const issue of result.error.issues) problems.push(describeIssue(issue, here));
      return;
    }
    const { key, keySha256, account, email } = result.data;
    const digest = key !== undefined ? sha256(key) : Buffer.from(keySha256 ?? '', 'hex');
    const hex = digest.toString('hex');
    const first = seen.get(hex);
    if (first !== undefined) {
      problems.push(`${here}: has the same key as ${first}; every key must be unique`);
      return;
    }
    seen.set(hex, here);
    entries.push({ keySha256: digest, account, email });
  });
  if (problems.length > 0) fail(problems);
  return entries;
}

/** Reads and parses a keys file; KeysFileError when it cannot be read or is not valid. */
export function readKeysFile(path: string): KeyEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KeysFileError(`API_KEYS_FILE ${path} could not be read (${code ?? 'error'}): ${code === 'ENOENT' ? 'no such file' : 'check that it exists and is readable'}`);
  }
  return parseKeysFile(text, path);
}


export interface KeysFileOptions {
  path: string;
  /** How often the file's modification time is checked. */
  reloadMs: number;
  logger: Logger;
  /** The signal that reloads the file (default SIGHUP); null for none. */
  signal?: NodeJS.Signals | null;
}

/** Keeps the ring's API_KEYS_FILE keys in step with the file. */
export class KeysFileWatcher {
  private signature: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly signal: NodeJS.Signals | null;
  private readonly onSignal = (): void => {
    this.reload(`${this.signal ?? 'signal'} received`);
  };

  constructor(
    private readonly ring: KeyRing,
    private readonly options: KeysFileOptions,
  ) {
    this.signal = options.signal === undefined ? 'SIGHUP' : options.signal;
  }

  /** Loads the file (throwing KeysFileError if it does not load), then watches it. */
  start(): this {
    const entries = this.load();
    this.options.logger.info({ file: this.options.path, ...summary(entries) }, 'API keys loaded');
    this.timer = setInterval(() => this.poll(), this.options.reloadMs);
    this.timer.unref();
    if (this.signal) process.on(this.signal, this.onSignal);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.signal) process.off(this.signal, this.onSignal);
  }

  /** Reloads when the file's modification time, size or inode changed since the last load. */
  poll(): void {
    if (fileSignature(this.options.path) !== this.signature) this.reload('the file changed');
  }

  /** Loads the file again; on failure the previous keys stay in force. Returns whether it loaded. */
  reload(reason: string): boolean {
    try {
      const entries = this.load();
      this.options.logger.info({ file: this.options.path, reason, ...summary(entries) }, 'API keys reloaded');
      return true;
    } catch (err) {
      // Our own errors never hold a key; anything else is reduced to its class name to be sure.
      const problem = err instanceof ConfigError ? err.message : `unexpected ${err instanceof Error ? err.name : 'error'}`;
      this.options.logger.error({ file: this.options.path, reason, problem }, 'API keys file not reloaded; the previous keys stay in force');
      return false;
    }
  }

  private load(): KeyEntry[] {
    // The signature is taken first: a write during the read shows up as a change at the next poll.
    // A failed load records it too, so a bad file is reported once, not at every poll.
    this.signature = fileSignature(this.options.path);
    const entries = readKeysFile(this.options.path);
    this.ring.set(KEYS_FILE_SOURCE, entries);
    return entries;
  }
}

function summary(entries: KeyEntry[]): { keys: number; accounts: number } {
  return { keys: entries.length, accounts: new Set(entries.map((e) => e.account)).size };
}

/** Loads API_KEYS_FILE into the ring and keeps it current; throws KeysFileError when it does not load. */
export function watchKeysFile(ring: KeyRing, options: KeysFileOptions): KeysFileWatcher {
  return new KeysFileWatcher(ring, options).start();
}
