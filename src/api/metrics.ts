/**
 * `GET /metrics` in the Prometheus text format, through prom-client: request counters and latency
 * histograms kept in memory, the process and event-loop metrics prom-client collects
 * (`process_*`, `nodejs_*`), and everything about jobs, queues and capacity read at scrape time from
 * where it lives (the read model, each pool's workflow, the log store), so those numbers are never a
 * second copy to drift.
 *
 * Each service gets its own registry rather than prom-client's global one: tests run several services
 * in one process, and a global registry would mix their counters (and refuse the second set of names).
 */
import { type Client } from '@temporalio/client';
import { type Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Metric, Registry } from 'prom-client';
import { PEAK_MEMORY_BUCKETS, rankUsageTotals } from '../agent/usage-metrics';
import { type NodePool } from '../domain/node-pool';
import { type PoolUsage } from '../domain/pool-usage';
import { logLossTotals, type LogStore } from '../store/log-store';
import { type ReadModel, type StoredResource } from '../store/read-model';
import { readPoolUsage } from './usage-sampler';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** The log store's size is a file-size sum; scrapes closer together than this reuse the last figure. */
const LOG_BYTES_TTL_MS = 15_000;

export interface MetricsSources {
  store: ReadModel;
  client: Client;
  logs: LogStore;
  logger: Logger;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly errors: Counter<'route' | 'method' | 'status'>;
  private readonly latency: Histogram<'route' | 'method'>;
  private readonly jobs: Gauge<'account' | 'node_pool' | 'state'>;
  private readonly queueLength: Gauge<'pool'>;
  private readonly oldestWait: Gauge<'pool'>;
  private readonly inUse: Gauge<'pool'>;
  private readonly capacity: Gauge<'pool'>;
  private readonly hosts: Gauge<'pool' | 'status'>;
  private readonly logBytes: Gauge;
  private logBytesRead: { value: number; at: number } | undefined;

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'batchd_api_requests_total', help: 'API requests by route, method and HTTP status.', labelNames: ['route', 'method', 'status'], registers });
    this.errors = new Counter({
      name: 'batchd_api_errors_total',
      help: 'API requests that ended with an HTTP status of 400 or more, by route and status.',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.latency = new Histogram({ name: 'batchd_api_request_duration_seconds', help: 'API request latency by route and method.', labelNames: ['route', 'method'], buckets: BUCKETS, registers });
    this.jobs = new Gauge({ name: 'batchd_batch_jobs', help: 'Batch jobs by account, node pool and state (read model).', labelNames: ['account', 'node_pool', 'state'], registers });
    this.queueLength = new Gauge({ name: 'batchd_queue_length', help: 'Jobs waiting in a node pool’s queue.', labelNames: ['pool'], registers });
    this.oldestWait = new Gauge({ name: 'batchd_queue_oldest_wait_seconds', help: 'How long the oldest job in a node pool’s queue has waited.', labelNames: ['pool'], registers });
    this.inUse = new Gauge({ name: 'batchd_ranks_in_use', help: 'Rank slots (GPUs, or hosts on CPU pools) held by jobs.', labelNames: ['pool'], registers });
    this.capacity = new Gauge({ name: 'batchd_rank_capacity', help: 'Rank slots on the pool’s hosts that take work.', labelNames: ['pool'], registers });
    this.hosts = new Gauge({ name: 'batchd_hosts', help: 'Hosts of a node pool by status (ready, draining, unreachable).', labelNames: ['pool', 'status'], registers });
    this.logBytes = new Gauge({ name: 'batchd_log_bytes_stored', help: 'Bytes of rank log text in the log store.', registers });
    registerProcessTotals(this.registry);
    collectDefaultMetrics({ register: this.registry });
  }

  /** The Content-Type of `render()`'s text (the Prometheus text format, version 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Called once per finished HTTP request. */
  observe(route: string, method: string, status: number, seconds: number): void {
    const labels = { route, method, status: String(status) };
    this.requests.inc(labels);
    if (status >= 400) this.errors.inc(labels);
    this.latency.observe({ route, method }, seconds);
  }

  async render(): Promise<string> {
    await this.readSources();
    return this.registry.metrics();
  }

  /** Sets every scrape-time gauge from its source; a pool that does not answer is left out of this scrape. */
  private async readSources(): Promise<void> {
    const counts = await this.sources.store.jobCounts();
    this.jobs.reset();
    for (const c of counts) this.jobs.set({ account: c.account, node_pool: c.nodePoolId, state: c.state }, c.count);

    const pools = await this.sources.store.listAll<NodePool & StoredResource>('nodePools');
    const usages = await Promise.all(
      pools.map(async (pool): Promise<[string, PoolUsage] | undefined> => {
        try {
          return [pool.name, await readPoolUsage(this.sources.client, this.sources.store, pool.name)];
        } catch (err) {
          this.sources.logger.debug({ pool: pool.name, err: String(err) }, 'pool internals unavailable for metrics');
          return undefined;
        }
      }),
    );
    for (const g of [this.queueLength, this.oldestWait, this.inUse, this.capacity, this.hosts]) g.reset();
    for (const entry of usages) {
      if (!entry) continue;
      const [pool, usage] = entry;
      this.queueLength.set({ pool }, usage.queueLength);
      this.oldestWait.set({ pool }, usage.oldestWaitSeconds);
      this.inUse.set({ pool }, usage.ranksInUse);
      this.capacity.set({ pool }, usage.rankCapacity);
      for (const status of ['ready', 'draining', 'unreachable'] as const) this.hosts.set({ pool, status }, usage.hosts.filter((h) => h.status === status).length);
    }

    const now = Date.now();
    if (!this.logBytesRead || now - this.logBytesRead.at > LOG_BYTES_TTL_MS) this.logBytesRead = { value: await this.sources.logs.storedBytes(), at: now };
    this.logBytes.set(this.logBytesRead.value);
  }
}

/**
 * Totals this process keeps outside prom-client (agents record what their ranks used, log writers what
 * they dropped), read at scrape time. The counters are set from the totals on each collect; the peak
 * memory histogram is already bucketed by its recorder, so it is registered as prom-client's metric
 * interface (a `get()` returning its values) rather than a Histogram that would bucket it again.
 */
function registerProcessTotals(registry: Registry): void {
  new Counter({
    name: 'batchd_log_lines_dropped_total',
    help: 'Rank log lines not stored, by reason (budget: over LOG_BUDGET_BYTES_PER_JOB; write_failed: the store or the shipper failed).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ reason: 'budget' }, logLossTotals.budgetLines);
      this.inc({ reason: 'write_failed' }, logLossTotals.failedLines);
    },
  });
  new Counter({
    name: 'batchd_rank_cpu_seconds_total',
    help: 'CPU seconds used by ended ranks (isolated ranks of agents in this process), by account and pool.',
    labelNames: ['account', 'pool'],
    registers: [registry],
    collect() {
      this.reset();
      for (const u of rankUsageTotals()) this.inc({ account: u.account, pool: u.pool }, u.cpuSeconds);
    },
  });
  new Counter({
    name: 'batchd_rank_oom_kills_total',
    help: 'Processes of ranks killed for exceeding their memory limit, by account and pool.',
    labelNames: ['account', 'pool'],
    registers: [registry],
    collect() {
      this.reset();
      for (const u of rankUsageTotals()) this.inc({ account: u.account, pool: u.pool }, u.oomKills);
    },
  });
  const name = 'batchd_rank_peak_memory_bytes';
  const help = 'Peak memory of ended ranks, by account and pool.';
  type Value = { metricName: string; labels: Record<string, string | number>; value: number };
  const peak = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Value[] }> {
      const values: Value[] = [];
      for (const u of rankUsageTotals()) {
        const labels = { account: u.account, pool: u.pool };
        PEAK_MEMORY_BUCKETS.forEach((b, i) => values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: b }, value: u.peakBuckets[i] ?? 0 }));
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: u.peakCount });
        values.push({ metricName: `${name}_sum`, labels, value: u.peakSum });
        values.push({ metricName: `${name}_count`, labels, value: u.peakCount });
      }
      return Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values });
    },
  };
  // prom-client's typings give `type` as an enum, but its registry writes the string it is given (as its own metrics do).
  registry.registerMetric(peak as unknown as Metric);
}
