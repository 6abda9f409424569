/**
 * Whether this process reaches its Temporal server, known at all times without waiting: a probe
 * (`GetSystemInfo`, bounded) every few seconds, faster while the server is away. The API refuses
 * requests with 503 while it is away instead of letting each wait out its deadlines; agents hold a
 * ranks' outcome until it is back (an activity's completion is retried for only about 10 s). Each
 * change is one log line: `the Temporal server does not answer` (warn) and `the Temporal server
 * answers again` (info, with how long it was away).
 */
import { type Client } from '@temporalio/client';
import { type Logger } from 'pino';
import { GrpcCode } from '../domain/errors';
import { withoutRetries } from './connection';
import { describeError, grpcStatusOf } from './errors';

/** Probes out of time in a row that count as the server away. */
const SLOW_PROBES_AWAY = 3;

export interface TemporalMonitorOptions {
  client: Client;
  logger: Logger;
  /** Between probes while the server answers. */
  intervalMs?: number;
  /** Between probes while it does not. */
  downIntervalMs?: number;
  /** How long one probe waits for the answer. */
  probeTimeoutMs?: number;
}

export class TemporalMonitor {
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private stopped = false;
  private downSince: number | undefined;
  private slowProbes = 0;
  private readonly intervalMs: number;
  private readonly downIntervalMs: number;
  private readonly probeTimeoutMs: number;

  constructor(private readonly o: TemporalMonitorOptions) {
    this.intervalMs = o.intervalMs ?? 2000;
    this.downIntervalMs = o.downIntervalMs ?? 1000;
    this.probeTimeoutMs = o.probeTimeoutMs ?? 3000;
  }

  start(): void {
    this.schedule(this.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.probing;
  }

  /** Why Temporal is unusable now, in words for an API client; undefined while it answers. */
  problem(): string | undefined {
    if (this.downSince === undefined) return undefined;
    const seconds = Math.max(1, Math.round((Date.now() - this.downSince) / 1000));
    return `the Temporal server does not answer (for ${seconds} s); retry with backoff`;
  }

  /**
   * The problem as a probe finds it now (one probe for all who ask at once): for a caller that must
   * not act on a state up to a probe interval old — whose own call just failed, or who is about to
   * hand the server something it must not lose.
   */
  async check(): Promise<string | undefined> {
    await this.probe();
    return this.problem();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.probe().finally(() => this.schedule(this.downSince === undefined ? this.intervalMs : this.downIntervalMs));
    }, ms);
  }

  private probe(): Promise<void> {
    this.probing ??= this.probeOnce().finally(() => {
      this.probing = undefined;
    });
    return this.probing;
  }

  private async probeOnce(): Promise<void> {
    const { client, logger } = this.o;
    const startedAt = Date.now();
    try {
      await withoutRetries(() => client.withDeadline(Date.now() + this.probeTimeoutMs, () => client.workflowService.getSystemInfo({})));
      this.slowProbes = 0;
      if (this.downSince !== undefined) {
        logger.info({ awayMs: Date.now() - this.downSince }, 'the Temporal server answers again');
        this.downSince = undefined;
      }
    } catch (err) {
      // A refused connection is the server away; a probe out of time may be a busy server (or a busy
      // machine: the dev server shares its cores), so it takes SLOW_PROBES_AWAY in a row.
      const refused = grpcStatusOf(err)?.code === GrpcCode.UNAVAILABLE;
      this.slowProbes = refused ? 0 : this.slowProbes + 1;
      if (this.downSince === undefined && !this.stopped && (refused || this.slowProbes >= SLOW_PROBES_AWAY)) {
        this.downSince = startedAt;
        logger.warn({ reason: describeError(err) }, 'the Temporal server does not answer; waiting for it (the API answers 503 UNAVAILABLE meanwhile)');
      }
    }
  }
}
