/**
 * `GET /metrics` in the Prometheus text format. Request counters and latency histograms are kept in
 * memory; everything about jobs, queues and capacity is read at scrape time from where it lives (the
 * read model, each pool's workflow, the log store), so the numbers are never a second copy to drift.
 */
import { type Client } from '@temporalio/client';
import { type Logger } from 'pino';
import { getNodePoolInternalsQuery, type NodePoolInternals } from '../../workflows/messages';
import { PEAK_MEMORY_BUCKETS, rankUsageTotals } from '../agent/usage-metrics';
import { type NodePool } from '../domain/node-pool';
import { logLossTotals, type LogStore } from '../store/log-store';
import { type ReadModel, type StoredResource } from '../store/read-model';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Family {
  readonly lines: string[] = [];
  constructor(
    readonly name: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    readonly help: string,
  ) {}
  sample(labels: Labels, value: number, suffix = ''): void {
    this.lines.push(`${this.name}${suffix}${labelText(labels)} ${Number.isFinite(value) ? value : 0}`);
  }
  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...this.lines].join('\n');
  }
}

interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

export interface MetricsSources {
  store: ReadModel;
  client: Client;
  logs: LogStore;
  logger: Logger;
}

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly durations = new Map<string, Histogram>();
  private logBytes: { value: number; at: number } | undefined;

  constructor(private readonly sources: MetricsSources) {}

  /** Called once per finished HTTP request. */
  observe(route: string, method: string, status: number, seconds: number): void {
    const key = JSON.stringify([route, method, String(status)]);
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    const hKey = JSON.stringify([route, method]);
    const h = this.durations.get(hKey) ?? { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 };
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) h.buckets[i] = (h.buckets[i] ?? 0) + 1;
    });
    h.sum += seconds;
    h.count += 1;
    this.durations.set(hKey, h);
  }

  async render(): Promise<string> {
    const requests = new Family('batchd_api_requests_total', 'counter', 'API requests by route, method and HTTP status.');
    const errors = new Family('batchd_api_errors_total', 'counter', 'API requests that ended with an HTTP status of 400 or more, by route and status.');
    for (const [key, n] of this.requests) {
      const [route, method, status] = JSON.parse(key) as [string, string, string];
      requests.sample({ route, method, status }, n);
      if (Number(status) >= 400) errors.sample({ route, method, status }, n);
    }
    const latency = new Family('batchd_api_request_duration_seconds', 'histogram', 'API request latency by route and method.');
    for (const [key, h] of this.durations) {
      const [route, method] = JSON.parse(key) as [string, string];
      BUCKETS.forEach((b, i) => latency.sample({ route, method, le: String(b) }, h.buckets[i] ?? 0, '_bucket'));
      latency.sample({ route, method, le: '+Inf' }, h.count, '_bucket');
      latency.sample({ route, method }, h.sum, '_sum');
      latency.sample({ route, method }, h.count, '_count');
    }

    const jobs = new Family('batchd_batch_jobs', 'gauge', 'Batch jobs by account, node pool and state (read model).');
    for (const c of await this.sources.store.jobCounts()) jobs.sample({ account: c.account, node_pool: c.nodePoolId, state: c.state }, c.count);

    const queueLength = new Family('batchd_queue_length', 'gauge', 'Jobs waiting in a node pool’s queue.');
    const oldestWait = new Family('batchd_queue_oldest_wait_seconds', 'gauge', 'How long the oldest job in a node pool’s queue has waited.');
    const inUse = new Family('batchd_ranks_in_use', 'gauge', 'Rank slots (GPUs, or hosts on CPU pools) held by jobs.');
    const capacity = new Family('batchd_rank_capacity', 'gauge', 'Rank slots on the pool’s hosts that take work.');
    const hosts = new Family('batchd_hosts', 'gauge', 'Hosts of a node pool by status (ready, draining, unreachable).');
    const pools = await this.sources.store.listAll<NodePool & StoredResource>('nodePools');
    const now = Date.now();
    await Promise.all(
      pools.map(async (pool) => {
        const labels = { pool: pool.name };
        let internals: NodePoolInternals;
        try {
          internals = await this.sources.client.withDeadline(Date.now() + 2000, () =>
            this.sources.client.workflow.getHandle(pool.name).query(getNodePoolInternalsQuery),
          );
        } catch (err) {
          this.sources.logger.debug({ pool: pool.name, err: String(err) }, 'pool internals unavailable for metrics');
          return;
        }
        queueLength.sample(labels, internals.queueSummary?.length ?? internals.queue.length);
        const oldest = internals.queue.reduce<number | undefined>((min, q) => {
          const t = q.enqueuedAt ? Date.parse(q.enqueuedAt) : undefined;
          return t === undefined ? min : min === undefined ? t : Math.min(min, t);
        }, undefined);
        oldestWait.sample(labels, oldest === undefined ? 0 : Math.max(0, (now - oldest) / 1000));
        inUse.sample(labels, internals.hosts.reduce((n, h) => n + h.used.filter((u) => u !== null).length, 0));
        capacity.sample(labels, internals.hosts.filter((h) => h.status === 'ready').reduce((n, h) => n + h.slots, 0));
        for (const status of ['ready', 'draining', 'unreachable'] as const) hosts.sample({ ...labels, status }, internals.hosts.filter((h) => h.status === status).length);
      }),
    );

    // What isolated ranks of this process's agents used.
    const cpu = new Family('batchd_rank_cpu_seconds_total', 'counter', 'CPU seconds used by ended ranks (isolated ranks of agents in this process), by account and pool.');
    const oom = new Family('batchd_rank_oom_kills_total', 'counter', 'Processes of ranks killed for exceeding their memory limit, by account and pool.');
    const peak = new Family('batchd_rank_peak_memory_bytes', 'histogram', 'Peak memory of ended ranks, by account and pool.');
    for (const u of rankUsageTotals()) {
      const labels = { account: u.account, pool: u.pool };
      cpu.sample(labels, u.cpuSeconds);
      oom.sample(labels, u.oomKills);
      PEAK_MEMORY_BUCKETS.forEach((b, i) => peak.sample({ ...labels, le: String(b) }, u.peakBuckets[i] ?? 0, '_bucket'));
      peak.sample({ ...labels, le: '+Inf' }, u.peakCount, '_bucket');
      peak.sample(labels, u.peakSum, '_sum');
      peak.sample(labels, u.peakCount, '_count');
    }

    const logBytes = new Family('batchd_log_bytes_stored', 'gauge', 'Bytes of rank log text in the log store.');
    if (!this.logBytes || now - this.logBytes.at > 15_000) this.logBytes = { value: this.sources.logs.storedBytes(), at: now };
    logBytes.sample({}, this.logBytes.value);

    // Lines of agents in this process that never reached the store: over a job's budget, or lost to a failed write.
    const dropped = new Family('batchd_log_lines_dropped_total', 'counter', 'Rank log lines not stored, by reason (budget: over LOG_BUDGET_BYTES_PER_JOB; write_failed: the store or the shipper failed).');
    dropped.sample({ reason: 'budget' }, logLossTotals.budgetLines);
    dropped.sample({ reason: 'write_failed' }, logLossTotals.failedLines);

    return `${[requests, errors, latency, jobs, queueLength, oldestWait, inUse, capacity, hosts, logBytes, dropped].map((f) => f.render()).join('\n')}\n`;
  }
}
