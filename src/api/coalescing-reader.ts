/**
 * Reads that many requests make of one source at the same time, coalesced per key: at most one read
 * of a key is in flight, and the requests that arrive while it runs wait for the next one, which
 * starts as it ends and asks for all their names at once. Every answer comes from a read that started
 * after its request arrived, so none is older than a read of its own would have been; nothing is
 * cached beyond that.
 *
 * The API uses it for the queue standing of QUEUED jobs: one query of the pool's workflow per key
 * (the pool) at a time, however many clients poll its jobs. Each query is a billable Action and
 * runs on the pool's workflow thread, between its scheduling steps.
 */
interface Batch<T> {
  names: Set<string>;
  waiters: Array<{ resolve: (answer: Record<string, T>) => void; reject: (err: unknown) => void }>;
}

interface KeyState<T> {
  /** The batch gathering requests for the next read. */
  next: Batch<T> | undefined;
  running: boolean;
}

export class CoalescingReader<T> {
  private readonly keys = new Map<string, KeyState<T>>();

  constructor(private readonly read: (key: string, names: string[]) => Promise<Record<string, T>>) {}

  /** The answers for `names` (those the source knows), from a read that starts after this call. */
  async get(key: string, names: readonly string[]): Promise<Record<string, T>> {
    let state = this.keys.get(key);
    if (!state) {
      state = { next: undefined, running: false };
      this.keys.set(key, state);
    }
    const batch = (state.next ??= { names: new Set(), waiters: [] });
    for (const name of names) batch.names.add(name);
    const answer = new Promise<Record<string, T>>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    if (!state.running) {
      state.running = true;
      // Requests of the same tick join this read.
      queueMicrotask(() => this.start(key));
    }
    const all = await answer;
    const mine: Record<string, T> = {};
    for (const name of names) if (Object.hasOwn(all, name)) mine[name] = all[name] as T;
    return mine;
  }

  /** Keys with a read in flight (for tests and metrics). */
  get inFlight(): number {
    return this.keys.size;
  }

  private start(key: string): void {
    const state = this.keys.get(key);
    const batch = state?.next;
    if (!state || !batch) {
      this.keys.delete(key);
      return;
    }
    state.next = undefined;
    // A read that throws before it returns a promise fails its batch as one that rejects does.
    new Promise<Record<string, T>>((resolve) => resolve(this.read(key, [...batch.names])))
      .then(
        (answer) => batch.waiters.forEach((w) => w.resolve(answer)),
        (err: unknown) => batch.waiters.forEach((w) => w.reject(err)),
      )
      .finally(() => this.start(key));
  }
}
