/**
 * The operator's sharing file (SHARING_FILE): which accounts besides its owner may run jobs on a pool,
 * each account's quota of the pool's slots, and fair share between them. Pure: parsing and lookups;
 * src/control/sharing-file.ts reads and reloads the file.
 *
 *   {
 *     "pools": {
 *       "accounts/acme/nodePools/big": {
 *         "accounts": { "acme": { "quota": 16, "weight": 2 }, "beta": { "quota": 8 } },
 *         "fairShareHalfLife": "3600s"
 *       }
 *     }
 *   }
 *
 * - A pool not listed is its owner's alone, first come first served within priorities.
 * - `accounts`: every account named may run jobs on the pool (its owner always may), naming it in full
 *   (`nodePoolId: "accounts/acme/nodePools/big"`). `quota`: the most slots (GPUs, or hosts on a CPU
 *   pool) the account's jobs hold on the pool at once; absent, no limit. `weight`: its relative share
 *   (default 1), used when fair share is on.
 * - `fairShareHalfLife` (a duration): fair share is on. Accounts waiting at one priority are served
 *   furthest-below-their-share first, where an account's share counts the slots it holds and the
 *   slots it held before, decayed by half every half-life (sharing.ts).
 */
import { z } from 'zod';
import { durationMs, durationProblem } from './job-policy';
import { ID_PATTERN, ID_RULE, parseResourceName } from './names';
import { type FairShareConfig } from './sharing';

export interface PoolShareTerms {
  quota?: number;
  weight?: number;
}

export interface PoolSharingEntry {
  accounts: Record<string, PoolShareTerms>;
  fairShareHalfLife?: string;
}

export interface SharingConfig {
  pools: Record<string, PoolSharingEntry>;
}

/** What a pool's workflow applies in its passes: the configured quotas and fair share, both optional. */
export interface PoolSharingPolicy {
  quotas?: Record<string, number>;
  fairShare?: FairShareConfig;
}

export const EMPTY_SHARING: SharingConfig = { pools: {} };

const termsSchema = z.strictObject({
  quota: z.int({ error: 'must be a whole number of slots' }).min(0, 'must be 0 or more').max(1_000_000, 'must be at most 1000000').optional(),
  weight: z.number({ error: 'must be a number' }).positive('must be more than 0').max(1_000_000, 'must be at most 1000000').optional(),
});

const entrySchema = z.strictObject({
  accounts: z.record(z.string().regex(ID_PATTERN), termsSchema),
  fairShareHalfLife: z
    .string({ error: 'must be a duration such as "3600s"' })
    .refine((s) => durationProblem(s) === undefined, { error: (issue) => durationProblem(String(issue.input)) ?? 'must be a duration' })
    .optional(),
});

const fileSchema = z.strictObject({
  pools: z.record(
    z.string().refine((name) => parseResourceName(name)?.collection === 'nodePools'),
    entrySchema,
  ),
});

/** A record's key that is not valid (zod says only "Invalid key in record"): what it must be. */
function keyProblem(path: readonly PropertyKey[]): string {
  return path.length <= 2 ? 'each key must be a node pool name: accounts/{account}/nodePools/{id}' : `each account must be an account id: ${ID_RULE}`;
}

/** The sharing config of a file's text; throws an Error naming every problem (path and message). */
export function parseSharingConfig(text: string, source: string): SharingConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`SHARING_FILE ${source} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const result = fileSchema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.map(String).join('.') || '(top level)'}: ${i.code === 'invalid_key' ? keyProblem(i.path) : i.message}`);
    throw new Error(`SHARING_FILE ${source} was not loaded: ${problems.join('; ')}`);
  }
  return result.data;
}

/** May jobs of `account` run on the pool? Its owner always may; others when the pool lists them. */
export function mayUsePool(config: SharingConfig, account: string, poolName: string): boolean {
  if (parseResourceName(poolName)?.account === account) return true;
  return Object.hasOwn(config.pools[poolName]?.accounts ?? {}, account);
}

/** What the pool's passes apply, or undefined when the file says nothing about the pool. */
export function poolSharingPolicy(config: SharingConfig, poolName: string): PoolSharingPolicy | undefined {
  const entry = config.pools[poolName];
  if (!entry) return undefined;
  const quotas: Record<string, number> = {};
  const weights: Record<string, number> = {};
  for (const [account, terms] of Object.entries(entry.accounts)) {
    if (terms.quota !== undefined) quotas[account] = terms.quota;
    if (terms.weight !== undefined) weights[account] = terms.weight;
  }
  const policy: PoolSharingPolicy = {};
  if (Object.keys(quotas).length > 0) policy.quotas = quotas;
  const halfLifeMs = entry.fairShareHalfLife === undefined ? undefined : durationMs(entry.fairShareHalfLife);
  if (halfLifeMs !== undefined) policy.fairShare = { halfLifeMs, weights };
  return policy;
}

/**
 * The pool a job's `nodePoolId` names: an id is a pool of the job's own account; a full name
 * (accounts/{account}/nodePools/{id}) is any account's, usable when the sharing file allows it.
 */
export function poolNameOf(account: string, nodePoolId: string): string {
  return nodePoolId.includes('/') ? nodePoolId : `accounts/${account}/nodePools/${nodePoolId}`;
}
