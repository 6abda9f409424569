/**
 * The batch job state machine (contract, "State machine"):
 *
 *   CREATING ─validated→ QUEUED ─granted→ PENDING ─all ranks started→ RUNNING ─all exit 0→ COMPLETED
 *      │                   │                 │                          └─any rank fails→ FAILED
 *      └─invalid→ FAILED   └──── cancel ─────┴────── cancel ──────→ CANCELLING ─→ CANCELLED
 *   any state ─delete→ DELETING ─→ gone
 *
 * A job with a retryPolicy whose attempt failed goes back to QUEUED (PENDING or RUNNING ─requeued→
 * QUEUED): the whole gang waits for capacity again, as Slurm's requeue and AWS Batch's RUNNABLE do.
 * Its `attempt` and `status` say which attempt it is on and why the last one ended.
 *
 * `apply` is the only way the workflow changes a job: it checks the transition, sets the timestamps
 * the contract ties to states, and always leaves a `status` that says why the job is where it is.
 */
import { type BatchJob, type BatchJobState, isTerminal } from './batch-job-model';

export type LifecycleEvent =
  | { type: 'validated'; status: string }
  | { type: 'invalid'; status: string }
  | { type: 'granted'; status: string }
  | { type: 'started'; status: string }
  | { type: 'succeeded'; status: string }
  | { type: 'failed'; status: string }
  | { type: 'cancel-requested'; status: string }
  | { type: 'cancelled'; status: string }
  | { type: 'delete-requested'; status: string }
  | { type: 'requeued'; status: string }
  | { type: 'status'; status: string };

const TARGET: Record<Exclude<LifecycleEvent['type'], 'status'>, BatchJobState> = {
  validated: 'QUEUED',
  invalid: 'FAILED',
  granted: 'PENDING',
  started: 'RUNNING',
  succeeded: 'COMPLETED',
  failed: 'FAILED',
  'cancel-requested': 'CANCELLING',
  cancelled: 'CANCELLED',
  'delete-requested': 'DELETING',
  requeued: 'QUEUED',
};

const ALLOWED: Record<BatchJobState, readonly BatchJobState[]> = {
  CREATING: ['QUEUED', 'FAILED', 'CANCELLING', 'DELETING'],
  QUEUED: ['PENDING', 'FAILED', 'CANCELLING', 'DELETING'],
  PENDING: ['RUNNING', 'FAILED', 'CANCELLING', 'DELETING', 'QUEUED'],
  RUNNING: ['COMPLETED', 'FAILED', 'CANCELLING', 'DELETING', 'QUEUED'],
  // A host lost while its ranks are being stopped cannot confirm they are gone: FAILED says so.
  CANCELLING: ['CANCELLED', 'FAILED', 'DELETING'],
  COMPLETED: ['DELETING'],
  FAILED: ['DELETING'],
  CANCELLED: ['DELETING'],
  DELETING: [],
};

export function canTransition(from: BatchJobState, to: BatchJobState): boolean {
  return ALLOWED[from].includes(to);
}

/** States from which cancel is accepted (contract: CREATING, QUEUED, PENDING, RUNNING). */
export function isCancellable(state: BatchJobState): boolean {
  return state === 'CREATING' || state === 'QUEUED' || state === 'PENDING' || state === 'RUNNING';
}

/** Jobs that hold or wait for capacity or processes: everything not terminal and not already deleting. */
export function isLive(state: BatchJobState): boolean {
  return !isTerminal(state) && state !== 'DELETING';
}

export class IllegalTransition extends Error {
  constructor(
    readonly from: BatchJobState,
    readonly event: LifecycleEvent['type'],
  ) {
    super(`a ${from} job cannot take the event ${event}`);
  }
}

/** Returns the job after the event, or throws IllegalTransition. Never mutates its input. */
export function apply(job: BatchJob, event: LifecycleEvent, now: string): BatchJob {
  const next: BatchJob = { ...job, status: event.status, updateTime: now };
  if (event.type === 'status') {
    if (isTerminal(job.state)) throw new IllegalTransition(job.state, event.type);
    return next;
  }
  const to = TARGET[event.type];
  if (!canTransition(job.state, to)) throw new IllegalTransition(job.state, event.type);
  // Back to QUEUED only by a retry, and into QUEUED from CREATING only by validation.
  if (to === 'QUEUED' && (event.type === 'requeued') === (job.state === 'CREATING')) throw new IllegalTransition(job.state, event.type);
  next.state = to;
  if (to === 'RUNNING') next.startTime = now;
  if (isTerminal(to)) next.endTime = now;
  return next;
}
