/**
 * The per-account limits (src/domain/account-limits.ts), counted from the read model: the API checks
 * them before it creates a job, node pool, environment or snapshot, and the validation activity before
 * a parent workflow's job. A refused call creates nothing.
 *
 * The count and the create are not one transaction: creates of one account that run at the same
 * moment may each see room for one more and pass the limit by at most how many ran together. That is
 * the price of not serializing every account's creates, and a limit against abuse can pay it.
 */
import { type Config } from '../config';
import { type AccountLimitName, type AccountLimitValues, limitRefusal } from '../domain/account-limits';
import { BATCH_JOB_STATES, isTerminal } from '../domain/batch-job-model';
import { type FilterExpr } from '../domain/filter';
import { DEFAULT_ORDER } from '../domain/list-fields';
import { type NodePool } from '../domain/node-pool';
import { type ReadModel, type StoredResource } from '../store/read-model';

type LimitConfig = Pick<
  Config,
  | 'MAX_LIVE_JOBS_PER_ACCOUNT'
  | 'MAX_QUEUED_JOBS_PER_ACCOUNT'
  | 'MAX_NODE_POOLS_PER_ACCOUNT'
  | 'MAX_FAKE_HOSTS_PER_ACCOUNT'
  | 'MAX_ENVIRONMENTS_PER_ACCOUNT'
  | 'MAX_SNAPSHOTS_PER_ACCOUNT'
>;

export function accountLimitsOf(config: LimitConfig): AccountLimitValues {
  return {
    liveJobs: config.MAX_LIVE_JOBS_PER_ACCOUNT,
    queuedJobs: config.MAX_QUEUED_JOBS_PER_ACCOUNT,
    nodePools: config.MAX_NODE_POOLS_PER_ACCOUNT,
    fakeHosts: config.MAX_FAKE_HOSTS_PER_ACCOUNT,
    environments: config.MAX_ENVIRONMENTS_PER_ACCOUNT,
    snapshots: config.MAX_SNAPSHOTS_PER_ACCOUNT,
  };
}

const stateIs = (op: '=', value: string): FilterExpr => ({ kind: 'cmp', field: 'state', op, value });
// Equalities, not `!=`: the (account, state) index then answers both counts without a scan of the account's archive.
const LIVE_JOB: FilterExpr = { kind: 'or', items: BATCH_JOB_STATES.filter((s) => !isTerminal(s)).map((s) => stateIs('=', s)) };
const WAITING_JOB: FilterExpr = { kind: 'or', items: ['CREATING', 'QUEUED'].map((s) => stateIs('=', s)) };

export class AccountLimits {
  constructor(
    private readonly store: ReadModel,
    readonly values: AccountLimitValues,
  ) {}

  /** A new batch job: one more live job, and one more waiting to start. */
  async checkJob(account: string): Promise<void> {
    const [live, waiting] = await Promise.all([this.store.count('batchJobs', account, LIVE_JOB), this.store.count('batchJobs', account, WAITING_JOB)]);
    this.refuse('liveJobs', account, live);
    this.refuse('queuedJobs', account, waiting);
  }

  /** A new node pool, with `fakeHosts` hosts when it is a fake pool. */
  async checkNodePool(account: string, fakeHosts: number): Promise<void> {
    this.refuse('nodePools', account, await this.store.count('nodePools', account));
    if (fakeHosts > 0) this.refuse('fakeHosts', account, await this.fakeHosts(account), fakeHosts);
  }

  /** A fake pool growing to `numNodes` hosts. */
  async checkFakePoolSize(account: string, poolName: string, numNodes: number): Promise<void> {
    this.refuse('fakeHosts', account, await this.fakeHosts(account, poolName), numNodes);
  }

  async checkEnvironment(account: string): Promise<void> {
    this.refuse('environments', account, await this.store.count('environments', account));
  }

  async checkSnapshot(account: string): Promise<void> {
    this.refuse('snapshots', account, await this.store.count('snapshots', account));
  }

  private refuse(name: AccountLimitName, account: string, current: number, adding = 1): void {
    const refusal = limitRefusal(name, account, this.values[name], current, adding);
    if (refusal) throw refusal;
  }

  /** Hosts of the account's fake pools, but the one named `except`. Pools are few (MAX_NODE_POOLS_PER_ACCOUNT). */
  private async fakeHosts(account: string, except?: string): Promise<number> {
    let total = 0;
    let after: unknown[] | undefined;
    do {
      const page = await this.store.list<NodePool & StoredResource>('nodePools', {
        account,
        orderBy: [...DEFAULT_ORDER.nodePools],
        pageSize: 200,
        ...(after ? { after } : {}),
      });
      for (const pool of page.items) if (pool.name !== except) total += pool.fakeNodePool?.numNodes ?? 0;
      after = page.nextAfter;
    } while (after);
    return total;
  }
}
