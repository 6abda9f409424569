/**
 * Per-account limits on what an account may hold at once: the rule, its configuration variable, and
 * the words a refusal is given in (429 RESOURCE_EXHAUSTED naming the limit). Counting is the caller's
 * (from the read model); deciding and wording is here, so every path that creates something refuses
 * it the same way.
 */
import { ApiError } from './errors';

export const ACCOUNT_LIMITS = {
  liveJobs: { variable: 'MAX_LIVE_JOBS_PER_ACCOUNT', what: 'live batch jobs (not COMPLETED, FAILED or CANCELLED)', fix: 'wait for some to end, or cancel some' },
  queuedJobs: { variable: 'MAX_QUEUED_JOBS_PER_ACCOUNT', what: 'batch jobs waiting to start (CREATING or QUEUED)', fix: 'wait for some to start, or cancel some' },
  nodePools: { variable: 'MAX_NODE_POOLS_PER_ACCOUNT', what: 'node pools', fix: 'delete one first' },
  fakeHosts: { variable: 'MAX_FAKE_HOSTS_PER_ACCOUNT', what: 'fake hosts (numNodes of its fake node pools together)', fix: 'use fewer nodes, or shrink or delete another fake pool' },
  environments: { variable: 'MAX_ENVIRONMENTS_PER_ACCOUNT', what: 'environments', fix: 'delete one first' },
  snapshots: { variable: 'MAX_SNAPSHOTS_PER_ACCOUNT', what: 'snapshots', fix: 'delete one first' },
} as const;

export type AccountLimitName = keyof typeof ACCOUNT_LIMITS;

export type AccountLimitValues = Record<AccountLimitName, number>;

/**
 * The refusal when `adding` more would take the account from `current` past `limit`, or undefined
 * when it fits. A count already past the limit (the limit was lowered) refuses any addition.
 */
export function limitRefusal(name: AccountLimitName, account: string, limit: number, current: number, adding = 1): ApiError | undefined {
  if (current + adding <= limit) return undefined;
  const rule = ACCOUNT_LIMITS[name];
  const wants = adding === 1 ? '' : ` and this request adds ${adding}`;
  return new ApiError(
    'RESOURCE_EXHAUSTED',
    `limit ${rule.variable} reached: account "${account}" has ${current} ${rule.what}${wants}; the limit is ${limit}. Nothing was created; ${rule.fix}`,
  );
}
