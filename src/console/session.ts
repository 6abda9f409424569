/**
 * The signed-in session: the API key and account, kept in sessionStorage only (gone when the tab
 * closes; never in localStorage or a cookie), and the one typed client built from them. The console
 * talks to the API of the origin that served it.
 */
import { BatchdApiError, BatchdClient } from '../client/batchd-client';

const STORAGE_KEY = 'batchd.console.session';

export interface Session {
  account: string;
  apiKey: string;
}

export function loadSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return undefined;
    const s = JSON.parse(raw) as Partial<Session>;
    return typeof s.account === 'string' && typeof s.apiKey === 'string' ? { account: s.account, apiKey: s.apiKey } : undefined;
  } catch {
    return undefined;
  }
}

export function saveSession(s: Session): void {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(s));
}

export function clearSession(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

export function clientFor(s: Session): BatchdClient {
  return new BatchdClient({ apiUrl: window.location.origin, apiKey: s.apiKey, account: s.account });
}

/** Checks a key against the API (one small list call); resolves with the problem, or undefined when it works. */
export async function checkSession(s: Session): Promise<string | undefined> {
  try {
    await clientFor(s).listBatchJobs({ pageSize: 1 });
    return undefined;
  } catch (err) {
    if (err instanceof BatchdApiError && err.code === 'UNAUTHENTICATED') return 'This API key is not valid.';
    return errorText(err);
  }
}

/** What went wrong, in one line for people: the API's own message, or why it could not be reached. */
export function errorText(err: unknown): string {
  if (err instanceof BatchdApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}
