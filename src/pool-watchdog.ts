/**
 * The pool watchdog: a node pool's workflow must never stay closed while its pool exists. If one is
 * terminated, fails or times out (an operator's `temporal workflow terminate`, a bug, a payload limit),
 * the watchdog starts it again with `recover`, and it resumes from the pool store: its queue, its
 * allocations, and the jobs that were waiting (docs/architecture.md, "A pool that cannot die").
 *
 * It runs in every control worker; two watchdogs racing to restart one pool are harmless (the
 * workflow id admits one run, the loser sees it running).
 */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { type Logger } from 'pino';
import { type NodePool } from './domain/node-pool';
import { type NodePoolService } from './api/node-pool-service';
import { type ReadModel, type StoredResource } from './store/read-model';

export interface PoolWatchdogDeps {
  store: ReadModel;
  client: Client;
  pools: NodePoolService;
  intervalMs: number;
  logger: Logger;
}

/** Close statuses that mean the pool's workflow ended without being deleted. */
const UNEXPECTED = new Set(['TERMINATED', 'FAILED', 'TIMED_OUT', 'CANCELLED']);

export class PoolWatchdog {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly d: PoolWatchdogDeps) {}

  start(): void {
    const tick = () => {
      this.running = this.check()
        .then(
          () => undefined,
          (err: unknown) => this.d.logger.warn({ err: String(err) }, 'pool watchdog check failed; trying again next round'),
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.d.intervalMs);
        });
    };
    this.timer = setTimeout(tick, Math.min(this.d.intervalMs, 1000));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One round: every pool whose workflow closed unexpectedly is started again. Returns their names. */
  async check(): Promise<string[]> {
    const restarted: string[] = [];
    for (const pool of await this.d.store.listAll<NodePool & StoredResource>('nodePools')) {
      const closed = await this.closedHow(pool.name);
      if (!closed || this.stopped) continue;
      // Re-read: a pool deleted meanwhile has no record, and its version must be current.
      const row = await this.d.store.get<NodePool & StoredResource>('nodePools', pool.name);
      if (!row) continue;
      const reason = `its workflow ${closed}`;
      if (await this.d.pools.recoverPool(row.resource, row.version, reason)) {
        this.d.logger.warn({ pool: pool.name, reason }, 'node pool workflow was closed; restarted it from the pool store');
        restarted.push(pool.name);
      }
    }
    return restarted;
  }

  /** How the pool's workflow closed, when it closed without being deleted; undefined while it runs. */
  private async closedHow(name: string): Promise<string | undefined> {
    try {
      const status = (await this.d.client.workflow.getHandle(name).describe()).status.name;
      return UNEXPECTED.has(status) ? `was ${status.toLowerCase().replaceAll('_', ' ')}` : undefined;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return 'no longer exists';
      throw err;
    }
  }
}
