/**
 * Log shipping for agents on other machines: every line is appended to a local spool file first (so a
 * crash loses nothing already read from a rank), then sent in batches to the API's ingest endpoint,
 * retried with backoff until accepted. The server stores entries idempotently by (job, rank, seq), so
 * a batch sent twice is stored once. The spool is emptied whenever everything has been delivered.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Logger } from 'pino';
import { type LogEntry, type LogSink } from '../store/log-store';

const BATCH = 1000;

export class HttpLogSink implements LogSink {
  private queue: LogEntry[] = [];
  private shipping: Promise<void> | undefined;
  private readonly spool: string;

  constructor(
    private readonly apiUrl: string,
    private readonly token: string,
    spoolDir: string,
    private readonly logger: Logger,
  ) {
    mkdirSync(spoolDir, { recursive: true });
    this.spool = join(spoolDir, 'pending.jsonl');
    if (existsSync(this.spool)) {
      for (const line of readFileSync(this.spool, 'utf8').split('\n')) {
        if (!line) continue;
        try {
          this.queue.push(JSON.parse(line) as LogEntry);
        } catch {
          // a torn last line from a crash: the rest is still shipped
        }
      }
      if (this.queue.length > 0) this.kick();
    }
  }

  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    appendFileSync(this.spool, entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
    this.queue.push(...entries);
    this.kick();
  }

  /** Resolves once everything appended so far has been delivered (or the attempt limit is reached). */
  async drain(): Promise<void> {
    while (this.queue.length > 0 && this.shipping) await this.shipping;
  }

  private kick(): void {
    this.shipping ??= this.ship().finally(() => {
      this.shipping = undefined;
      if (this.queue.length > 0) setTimeout(() => this.kick(), 1000).unref();
    });
  }

  private async ship(): Promise<void> {
    let delay = 250;
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, BATCH);
      try {
        const res = await fetch(`${this.apiUrl}/internal/v1/logs:ingest`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
          body: JSON.stringify({ entries: batch }),
          signal: AbortSignal.timeout(10_000),
        });
        if (!res.ok) throw new Error(`ingest answered ${res.status}`);
        this.queue.splice(0, batch.length);
        if (this.queue.length === 0) writeFileSync(this.spool, '');
        delay = 250;
      } catch (err) {
        this.logger.warn({ err: String(err), pending: this.queue.length }, 'log shipping failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
        if (delay >= 10_000) return; // kick() tries again shortly; the spool keeps everything meanwhile
      }
    }
  }
}
