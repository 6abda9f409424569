/**
 * API keys. A key belongs to one account and one user (an email). Keys are held only as SHA-256
 * digests and compared in constant time against every entry; a key is never logged or echoed.
 *
 * The ring holds keys from several sources (the bootstrap key, the API_KEYS_FILE), each replaced as a
 * whole when it reloads; `authenticate` is the one place a presented key is checked.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../config';

export interface Principal {
  account: string;
  email: string;
  /** A short, non-reversible id of the key for logs. */
  keyId: string;
}

export interface KeyEntry {
  keySha256: Buffer;
  account: string;
  email: string;
}

/** Two sources hold the same key for different users; the message names sources and entries, never the key. */
export class KeyConflictError extends ConfigError {}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export function keyEntry(key: string, account: string, email: string): KeyEntry {
  return { keySha256: sha256(key), account, email };
}

const samePrincipal = (a: KeyEntry, b: KeyEntry) => a.account === b.account && a.email === b.email;

export class KeyRing {
  private readonly sources = new Map<string, KeyEntry[]>();
  private entries: KeyEntry[] = [];

  constructor(entries: KeyEntry[] = []) {
    if (entries.length > 0) this.set('static keys', entries);
  }

  /** Replaces the static keys (those given to the constructor). */
  replace(entries: KeyEntry[]): void {
    this.set('static keys', entries);
  }

  /**
   * Replaces every key of one source (e.g. "the bootstrap key", "API_KEYS_FILE"). Throws
   * KeyConflictError, changing nothing, when one of its keys is a key of another source for another
   * user: which of the two would authenticate would otherwise depend on load order.
   */
  set(source: string, entries: readonly KeyEntry[]): void {
    for (const [other, held] of this.sources) {
      if (other === source) continue;
      entries.forEach((e, i) => {
        if (held.some((h) => h.keySha256.equals(e.keySha256) && !samePrincipal(h, e))) {
          throw new KeyConflictError(`key ${i + 1} of ${source} (${e.email}, account "${e.account}") is already a key of ${other} for another user; every key must be unique`);
        }
      });
    }
    this.sources.set(source, [...entries]);
    this.entries = [...this.sources.values()].flat();
  }

  get size(): number {
    return this.entries.length;
  }

  /** Whether some key of the ring belongs to this user of this account (who may own a job). */
  knowsUser(account: string, email: string): boolean {
    return this.entries.some((e) => e.account === account && e.email === email);
  }

  /** The principal of a presented key, or undefined. Looks at every entry, whatever matches. */
  authenticate(key: string): Principal | undefined {
    const digest = sha256(key);
    let found: KeyEntry | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(digest, e.keySha256) && !found) found = e;
    }
    if (!found) return undefined;
    return { account: found.account, email: found.email, keyId: digest.toString('hex').slice(0, 8) };
  }
}

/** Extracts the key from `Authorization: Bearer <key>`; undefined when absent or malformed. */
export function bearerKey(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
