/**
 * API keys. A key belongs to one account and one user (an email). Keys are held only as SHA-256
 * digests and compared in constant time against every entry; a key is never logged or echoed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

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

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export function keyEntry(key: string, account: string, email: string): KeyEntry {
  return { keySha256: sha256(key), account, email };
}

export class KeyRing {
  private entries: KeyEntry[];

  constructor(entries: KeyEntry[] = []) {
    this.entries = entries;
  }

  replace(entries: KeyEntry[]): void {
    this.entries = entries;
  }

  get size(): number {
    return this.entries.length;
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
