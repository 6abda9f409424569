/**
 * Log shipping for agents on other machines: every line is appended to a local spool file first (so a
 * crash loses nothing already read from a rank), then sent in batches to the API's ingest endpoint,
 * retried with backoff until accepted. The server stores entries idempotently by (job, attempt, rank,
 * seq), so a batch sent twice is stored once. Spool lines of an agent from before retries carry no
 * attempt: the API stores them as attempt 1.
 *
 * Nothing here can wedge the shipper or fill the disk:
 * - a batch is one host's lines of one job, at most `maxBatchBytes` of JSON (MAX_BODY_BYTES, under the
 *   ingest limit of four times it) and 5000 entries; a line over MAX_LOG_LINE_BYTES is cut with a marker;
 * - a batch the API refuses as too large (413) is split, down to single entries; one it refuses for
 *   good (400 malformed, 403 not this host's job, 413 for a single entry) is dropped, counted and logged,
 *   so later lines still flow;
 * - the spool holds at most `spoolMaxBytes` (LOG_SPOOL_MAX_BYTES): past it the oldest lines go, and one
 *   marker per rank says how many; delivered lines are compacted out of the file as it grows.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Logger } from 'pino';
import { headWithinBytes, oldestToDrop, spoolDropMarker, truncateLine } from '../domain/log-limits';
import { attemptOf } from '../domain/log-query';
import { type HostLogSinks, type LogEntry, logLossTotals, type LogSink } from '../store/log-store';

/** Most entries the ingest endpoint takes in one batch. */
const MAX_ENTRIES = 5000;
/** Past the cap, the spool is cut to this share of it, so it is not rewritten on every append. */
const SPOOL_LOW_WATER = 0.9;

interface Pending {
  host: string;
  entry: LogEntry;
  /** Bytes of the entry's JSON in a batch (its spool line less the host). */
  size: number;
  /** For a marker of dropped lines: how many lines it stands for (it is counted again if it is dropped in turn). */
  stands?: number;
}

export interface HttpLogSinkOptions {
  apiUrl: string;
  token: string;
  spoolDir: string;
  logger: Logger;
  /** Most bytes of JSON in one batch (MAX_BODY_BYTES; the ingest endpoint takes four times it). */
  maxBatchBytes: number;
  /** Most bytes of undelivered lines kept on disk (LOG_SPOOL_MAX_BYTES). */
  spoolMaxBytes: number;
}

function pendingOf(host: string, entry: LogEntry): Pending {
  return { host, entry, size: Buffer.byteLength(JSON.stringify(entry), 'utf8') + 1 };
}

const spoolLine = (p: Pending) => `${JSON.stringify({ host: p.host, entry: p.entry })}\n`;

export class HttpLogSink implements HostLogSinks {
  private queue: Pending[] = [];
  private queueBytes = 0;
  /** Bytes in the spool file, delivered lines included (compacted once they dominate). */
  private spoolBytes = 0;
  private shipping: Promise<void> | undefined;
  private readonly spool: string;
  /** The batch being sent now. */
  private inFlight = new Set<Pending>();
  /** Entries per batch: halved on a 413, grown back after each accepted batch. */
  private entriesPerBatch = MAX_ENTRIES;

  constructor(private readonly o: HttpLogSinkOptions) {
    mkdirSync(o.spoolDir, { recursive: true });
    this.spool = join(o.spoolDir, 'pending.jsonl');
    if (existsSync(this.spool)) this.recover();
  }

  /** The sink of one host's agent: its lines are sent as that host's, which the API checks against the job's placement. */
  forHost(host: string): LogSink {
    return { append: (entries) => this.appendFor(host, entries) };
  }

  /** Resolves once everything appended so far has been delivered (or the attempt limit is reached). */
  async drain(): Promise<void> {
    while (this.queue.length > 0 && this.shipping) await this.shipping;
  }

  /** Lines waiting to be delivered (tests, metrics). */
  get pending(): number {
    return this.queue.length;
  }

  private appendFor(host: string, entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    const items = entries.map((e) => {
      const { message, cutBytes } = truncateLine(e.message);
      return pendingOf(host, cutBytes > 0 ? { ...e, message } : e);
    });
    const text = items.map(spoolLine).join('');
    try {
      appendFileSync(this.spool, text);
      this.spoolBytes += Buffer.byteLength(text, 'utf8');
    } catch (err) {
      // A full disk must not stop the job or lose lines that can still be sent: they stay in memory.
      this.o.logger.warn({ err: String(err), lines: items.length }, 'could not write the log spool; the lines are kept in memory only');
    }
    for (const item of items) this.queueBytes += item.size;
    this.queue.push(...items);
    this.enforceCap();
    this.kick();
  }

  /** Reads the spool a previous run left: every line still to be delivered. */
  private recover(): void {
    const text = readFileSync(this.spool, 'utf8');
    let hostless = 0;
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const parsed = JSON.parse(line) as { host?: unknown; entry?: LogEntry };
        if (typeof parsed.host === 'string' && parsed.entry) {
          const item = pendingOf(parsed.host, parsed.entry);
          this.queue.push(item);
          this.queueBytes += item.size;
        } else hostless += 1;
      } catch {
        // a torn last line from a crash: the rest is still shipped
      }
    }
    if (hostless > 0) {
      // A spool of an older agent, whose lines do not say their host: the API would refuse them.
      logLossTotals.failedLines += hostless;
      this.o.logger.warn({ lines: hostless }, 'the log spool holds lines without a host (an older agent wrote them); they are dropped');
    }
    this.spoolBytes = Buffer.byteLength(text, 'utf8');
    this.enforceCap();
    if (this.queue.length > 0) this.kick();
  }

  /** Over the cap, drops the oldest lines (one marker per rank says how many) and rewrites the spool. */
  private enforceCap(): void {
    if (this.queueBytes <= this.o.spoolMaxBytes) {
      if (this.spoolBytes > 2 * this.queueBytes + 1024 * 1024) this.rewriteSpool();
      return;
    }
    // A batch in flight may yet be delivered: it is not dropped (nor counted as lost).
    const candidates = this.queue.filter((p) => !this.inFlight.has(p));
    const inFlightBytes = this.queueBytes - candidates.reduce((sum, p) => sum + p.size, 0);
    const n = oldestToDrop(
      candidates.map((p) => p.size),
      Math.max(0, Math.floor(this.o.spoolMaxBytes * SPOOL_LOW_WATER) - inFlightBytes),
    );
    const dropped = candidates.slice(0, n);
    const droppedSet = new Set(dropped);
    this.queue = this.queue.filter((p) => !droppedSet.has(p));
    // The marker of a rank (of one attempt) takes the place (and seq) of its newest dropped line, which is never stored.
    const byRank = new Map<string, { newest: Pending; count: number }>();
    for (const p of dropped) {
      const key = `${p.entry.job}#${attemptOf(p.entry.attempt)}#${p.entry.rank}`;
      byRank.set(key, { newest: p, count: (byRank.get(key)?.count ?? 0) + (p.stands ?? 1) });
    }
    const markers = [...byRank.values()].map(({ newest, count }) => ({
      ...pendingOf(newest.host, { ...newest.entry, stream: 'stderr' as const, message: spoolDropMarker(count, this.o.spoolMaxBytes) }),
      stands: count,
    }));
    this.queue.unshift(...markers);
    this.queueBytes = this.queue.reduce((sum, p) => sum + p.size, 0);
    const lost = dropped.filter((p) => p.stands === undefined).length;
    logLossTotals.failedLines += lost;
    this.o.logger.warn({ dropped: lost, spoolMaxBytes: this.o.spoolMaxBytes }, 'log spool full: dropped the oldest undelivered lines');
    this.rewriteSpool();
  }

  private rewriteSpool(): void {
    const text = this.queue.map(spoolLine).join('');
    try {
      writeFileSync(this.spool, text);
      this.spoolBytes = Buffer.byteLength(text, 'utf8');
    } catch (err) {
      this.o.logger.warn({ err: String(err) }, 'could not rewrite the log spool');
    }
  }

  private kick(): void {
    this.shipping ??= this.ship().finally(() => {
      this.shipping = undefined;
      if (this.queue.length > 0) setTimeout(() => this.kick(), 1000).unref();
    });
  }

  /** The head of the queue that goes in one request: one host, one job, within the byte and entry caps. */
  private nextBatch(): Pending[] {
    const head = this.queue[0];
    if (!head) return [];
    let same = 0;
    while (same < this.queue.length && this.queue[same]?.host === head.host && this.queue[same]?.entry.job === head.entry.job) same += 1;
    const sizes = this.queue.slice(0, same).map((p) => p.size);
    return this.queue.slice(0, headWithinBytes(sizes, this.o.maxBatchBytes, this.entriesPerBatch));
  }

  /**
   * Removes the batch from the queue (delivered, or refused for good). By identity, not by position:
   * while it was in flight the spool cap may have dropped lines from the head and put markers there.
   */
  private settle(batch: Pending[]): void {
    const sent = new Set(batch);
    const before = this.queue.length;
    this.queue = this.queue.filter((p) => !sent.has(p));
    if (this.queue.length !== before) for (const p of batch) this.queueBytes -= p.size;
    if (this.queue.length === 0) {
      this.queueBytes = 0;
      this.rewriteSpool();
    } else if (this.spoolBytes > 2 * this.queueBytes + 1024 * 1024) this.rewriteSpool();
  }

  private async ship(): Promise<void> {
    let delay = 250;
    while (this.queue.length > 0) {
      const batch = this.nextBatch();
      const head = batch[0];
      if (!head) return;
      let status: number;
      this.inFlight = new Set(batch);
      try {
        const res = await fetch(`${this.o.apiUrl}/internal/v1/logs:ingest`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${this.o.token}` },
          body: JSON.stringify({ host: head.host, entries: batch.map((p) => p.entry) }),
          signal: AbortSignal.timeout(10_000),
        });
        status = res.status;
        await res.arrayBuffer().catch(() => undefined);
      } catch (err) {
        status = 0;
        this.o.logger.warn({ err: String(err), pending: this.queue.length }, 'log shipping failed; retrying');
      } finally {
        this.inFlight = new Set();
      }
      if (status >= 200 && status < 300) {
        this.settle(batch);
        this.entriesPerBatch = Math.min(MAX_ENTRIES, this.entriesPerBatch * 2);
        delay = 250;
        continue;
      }
      if (status === 413 && batch.length > 1) {
        this.entriesPerBatch = Math.max(1, Math.floor(batch.length / 2));
        continue;
      }
      if (status === 400 || status === 403 || status === 413) {
        // Refused for good: sending it again would be refused again and hold back every later line.
        this.settle(batch);
        logLossTotals.failedLines += batch.length;
        this.o.logger.warn({ status, job: head.entry.job, host: head.host, lines: batch.length }, 'the API refused a batch of log lines for good; dropped it');
        continue;
      }
      if (status !== 0) this.o.logger.warn({ status, pending: this.queue.length }, 'log shipping failed; retrying');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
      if (delay >= 10_000) return; // kick() tries again shortly; the spool keeps everything meanwhile
    }
  }
}
