/**
 * What a node pool is doing right now, and an hour of it: the per-host picture of slots in use, the
 * pool's totals (slots in use against capacity, queue length, oldest wait), and the bounded history
 * of totals the service samples for the console's chart. Pure: the caller reads the pool's workflow
 * and supplies the time, so the same inputs always give the same answer.
 */

export type HostStatus = 'ready' | 'draining' | 'unreachable';

/** The part of a pool's internals this module reads (the node-pool workflow's `getNodePoolInternals`). */
export interface PoolInternalsInput {
  hosts: ReadonlyArray<{ host: string; status: HostStatus; slots: number; used: ReadonlyArray<string | null> }>;
  /** The head of the queue as the workflow holds it, oldest first. */
  queue: ReadonlyArray<{ enqueuedAt?: string }>;
  /** Counts every queued job, beyond the workflow's window; absent on pools from before the pool store. */
  queueSummary?: { length: number };
}

export interface HostUsage {
  host: string;
  status: HostStatus;
  slots: number;
  slotsInUse: number;
  /** Slot index → the id of the job holding it, or null when free. */
  slotJobs: Array<string | null>;
}

export interface PoolUsage {
  sampleTime: string;
  hosts: HostUsage[];
  /** Slots (GPUs, or hosts on a CPU pool) held by jobs, on every host. */
  ranksInUse: number;
  /** Slots on hosts that take work (ready). */
  rankCapacity: number;
  queueLength: number;
  /** How long the oldest queued job has waited; 0 with an empty queue. */
  oldestWaitSeconds: number;
}

/** One point of the usage chart. */
export interface UsageSample {
  sampleTime: string;
  ranksInUse: number;
  rankCapacity: number;
  queueLength: number;
}

/** The last segment of a resource name (`accounts/a/batchJobs/x` → `x`). */
function idOf(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

export function summarizePoolUsage(internals: PoolInternalsInput, now: Date): PoolUsage {
  const hosts = internals.hosts.map<HostUsage>((h) => {
    const slotJobs = Array.from({ length: h.slots }, (_, i) => {
      const job = h.used[i];
      return job ? idOf(job) : null;
    });
    return { host: h.host, status: h.status, slots: h.slots, slotsInUse: slotJobs.filter((j) => j !== null).length, slotJobs };
  });
  let oldest: number | undefined;
  for (const q of internals.queue) {
    const t = q.enqueuedAt === undefined ? NaN : Date.parse(q.enqueuedAt);
    if (!Number.isNaN(t) && (oldest === undefined || t < oldest)) oldest = t;
  }
  return {
    sampleTime: now.toISOString(),
    hosts,
    ranksInUse: hosts.reduce((n, h) => n + h.slotsInUse, 0),
    rankCapacity: hosts.filter((h) => h.status === 'ready').reduce((n, h) => n + h.slots, 0),
    queueLength: Math.max(internals.queueSummary?.length ?? 0, internals.queue.length),
    oldestWaitSeconds: oldest === undefined ? 0 : Math.max(0, (now.getTime() - oldest) / 1000),
  };
}

export function usageSampleOf(usage: PoolUsage): UsageSample {
  return { sampleTime: usage.sampleTime, ranksInUse: usage.ranksInUse, rankCapacity: usage.rankCapacity, queueLength: usage.queueLength };
}

/**
 * A ring buffer of samples covering `windowMs` (an hour by default): memory is bounded by
 * `maxSamples` whatever the sampling rate, and samples older than the window are never returned.
 */
export class UsageHistory {
  private readonly ring: Array<UsageSample | undefined>;
  private next = 0;
  private size = 0;

  constructor(
    readonly windowMs: number,
    readonly maxSamples: number,
  ) {
    if (!(maxSamples >= 1)) throw new Error('a usage history holds at least one sample');
    this.ring = new Array<UsageSample | undefined>(maxSamples);
  }

  add(sample: UsageSample): void {
    this.ring[this.next] = sample;
    this.next = (this.next + 1) % this.maxSamples;
    this.size = Math.min(this.size + 1, this.maxSamples);
  }

  /** The samples of the last `windowMs` before `now`, oldest first. */
  samples(now: Date): UsageSample[] {
    const from = now.getTime() - this.windowMs;
    const out: UsageSample[] = [];
    for (let i = 0; i < this.size; i++) {
      const s = this.ring[(this.next - this.size + i + this.maxSamples) % this.maxSamples];
      if (s && Date.parse(s.sampleTime) >= from) out.push(s);
    }
    return out;
  }
}

/** Slots a ring needs to cover the window at the given sampling interval (one more for the edge). */
export function samplesForWindow(windowMs: number, intervalMs: number): number {
  return Math.max(1, Math.ceil(windowMs / intervalMs) + 1);
}
