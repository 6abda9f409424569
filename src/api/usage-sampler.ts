/**
 * The pool usage sampler: every `USAGE_SAMPLE_MS` (30 s by default) the API process reads each node
 * pool's hosts and queue length and keeps the totals — slots in use, capacity, queue length — in an
 * in-memory ring buffer of one hour per pool (src/domain/pool-usage.ts). It reads them from the pool
 * store (the snapshot the pool's last step wrote, and the queue's kept length), not from the pool's
 * workflow: a sample costs no billable query and no activation of the pool, and a snapshot a step
 * behind the pool is exact enough for a chart of 30-second points; a pool with no snapshot yet is
 * asked. The samples are what `:getUsageHistory` and the console's chart show. They are deliberately
 * not durable: they are a view of the last hour for people, lost on restart, and each API replica
 * keeps its own; Prometheus (`/metrics`) is the place for long-term history.
 */
import { type Client } from '@temporalio/client';
import { type Logger } from 'pino';
import { type NodePool } from '../domain/node-pool';
import { snapshotHosts } from '../domain/pool-queue';
import { type PoolUsage, samplesForWindow, summarizePoolUsage, UsageHistory, type UsageSample, usageSampleOf } from '../domain/pool-usage';
import { type ReadModel, type StoredResource } from '../store/read-model';
import { type PoolStore } from '../store/pool-store';
import { readPoolInternals } from './pool-internals';

export const USAGE_WINDOW_MS = 60 * 60 * 1000;

/** A pool's usage now, from its workflow (which holds hosts, slots and the head of the queue) and its store's claims. */
export async function readPoolUsage(client: Client, store: Pick<PoolStore, 'poolSnapshot'>, poolName: string, timeoutMs = 2000): Promise<PoolUsage> {
  return summarizePoolUsage(await readPoolInternals(client, store, poolName, timeoutMs), new Date());
}

/**
 * A pool's usage as its store holds it: the hosts of its last snapshot and the queue's length (no
 * oldest wait: the store keeps no head in memory). Undefined when the pool has written no snapshot.
 */
export async function storedPoolUsage(store: ReadModel, poolName: string): Promise<PoolUsage | undefined> {
  const hosts = snapshotHosts((await store.poolSnapshot(poolName))?.state);
  if (!hosts) return undefined;
  const { length } = await store.queuePositions(poolName, []);
  return summarizePoolUsage({ hosts, queue: [], queueSummary: { length } }, new Date());
}

export interface UsageSamplerDeps {
  client: Client;
  store: ReadModel;
  logger: Logger;
  intervalMs: number;
}

export class UsageSampler {
  private readonly histories = new Map<string, UsageHistory>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly d: UsageSamplerDeps) {}

  start(): void {
    const tick = () => {
      this.running = this.sampleOnce()
        .catch((err: unknown) => this.d.logger.warn({ err: String(err) }, 'pool usage sampling failed'))
        .finally(() => {
          this.running = undefined;
          if (this.timer) this.timer = setTimeout(tick, this.d.intervalMs).unref();
        });
    };
    // The first sample at once, so a chart has a point as soon as the service is up.
    this.timer = setTimeout(tick, 0).unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One round: every pool in the read model; a pool that does not answer is skipped this round. */
  async sampleOnce(): Promise<void> {
    const pools = await this.d.store.listAll<NodePool & StoredResource>('nodePools');
    const live = new Set(pools.map((p) => p.name));
    for (const name of this.histories.keys()) if (!live.has(name)) this.histories.delete(name);
    await Promise.all(
      pools.map(async (pool) => {
        let usage: PoolUsage;
        try {
          usage = (await storedPoolUsage(this.d.store, pool.name)) ?? (await readPoolUsage(this.d.client, this.d.store, pool.name));
        } catch (err) {
          this.d.logger.debug({ pool: pool.name, err: String(err) }, 'pool usage unavailable to the sampler');
          return;
        }
        this.historyOf(pool.name).add(usageSampleOf(usage));
      }),
    );
  }

  /** The pool's samples of the last hour, oldest first (empty for a pool not sampled yet). */
  samples(poolName: string, now = new Date()): UsageSample[] {
    return this.histories.get(poolName)?.samples(now) ?? [];
  }

  get intervalMs(): number {
    return this.d.intervalMs;
  }

  private historyOf(poolName: string): UsageHistory {
    let h = this.histories.get(poolName);
    if (!h) {
      h = new UsageHistory(USAGE_WINDOW_MS, samplesForWindow(USAGE_WINDOW_MS, this.d.intervalMs));
      this.histories.set(poolName, h);
    }
    return h;
  }
}
