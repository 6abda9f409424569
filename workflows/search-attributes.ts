/**
 * Search attributes our workflows carry, for operators in the Temporal UI and CLI
 * (`temporal workflow list --query "BatchJobState='RUNNING' AND BatchdAccount='default'"`).
 * SQLite visibility allows 10 Keyword and 3 of each other type per namespace; we use 6 Keyword and 1 Int.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const BatchdAccount = defineSearchAttributeKey('BatchdAccount', SearchAttributeType.KEYWORD);
export const BatchJobState = defineSearchAttributeKey('BatchJobState', SearchAttributeType.KEYWORD);
export const BatchJobNodePool = defineSearchAttributeKey('BatchJobNodePool', SearchAttributeType.KEYWORD);
export const BatchJobCreatedBy = defineSearchAttributeKey('BatchJobCreatedBy', SearchAttributeType.KEYWORD);
export const BatchJobDisplayName = defineSearchAttributeKey('BatchJobDisplayName', SearchAttributeType.KEYWORD);
export const BatchJobNumRanks = defineSearchAttributeKey('BatchJobNumRanks', SearchAttributeType.INT);
export const NodePoolState = defineSearchAttributeKey('NodePoolState', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [
  BatchdAccount,
  BatchJobState,
  BatchJobNodePool,
  BatchJobCreatedBy,
  BatchJobDisplayName,
  BatchJobNumRanks,
  NodePoolState,
] as const;

/** A job's search attributes (as it starts, and when a starter set none) and the memo operators read. */
export function jobSearchAttributes(account: string, job: { nodePoolId: string; displayName?: string; numRanks: number; createdBy: string; state: string }) {
  return [
    { key: BatchdAccount, value: account },
    { key: BatchJobState, value: job.state },
    { key: BatchJobNodePool, value: job.nodePoolId },
    { key: BatchJobCreatedBy, value: job.createdBy },
    { key: BatchJobDisplayName, value: job.displayName ?? '' },
    { key: BatchJobNumRanks, value: job.numRanks },
  ];
}

/**
 * The state visibility says as the API starts a job's workflow: QUEUED, not CREATING. The API admitted
 * the job before starting it, and the job's first task asks its pool for capacity (or waits for its
 * dependencies, also QUEUED), so CREATING would last one task and cost every job an upsert, a billable
 * Action, to leave it. The workflow writes visibility's state only where it differs from what its
 * start said (`indexed` in workflows/batch-job.ts), so a job started with CREATING, as before this,
 * still writes QUEUED. The API's record says CREATING until the job's first step writes QUEUED. A
 * parent workflow's child jobs still start CREATING (workflows/child.ts): their first task validates
 * them, which the API did for its own.
 */
export const JOB_STARTS_VISIBLE_AS = 'QUEUED';

export function jobMemo(job: { nodePoolId: string; displayName?: string; numRanks: number; createdBy: string }): Record<string, unknown> {
  return { displayName: job.displayName ?? null, numRanks: job.numRanks, nodePoolId: job.nodePoolId, createdBy: job.createdBy };
}
