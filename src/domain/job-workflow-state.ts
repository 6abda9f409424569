/**
 * A batch job as its workflow keeps it: the job resource and its version, the version its reporter
 * has written, what visibility's `BatchJobState` says, the stop asked for (cancel or delete, and by
 * whom), the pool's answer to the current attempt's request (a grant or a refusal), a preemption,
 * where the current attempt's ranks run, the jobs waiting on this one and how the jobs it depends on
 * ended. Pure and deterministic, with no Temporal in it: the workflow (workflows/batch-job.ts) feeds it
 * signals, updates and results, and carries out what it says (write visibility, report, send to the
 * pool, start and stop ranks). Unit tests drive it directly (test/unit/job-workflow-state.test.ts).
 *
 * The rules of which message counts live here: the first stop wins and a delete outranks a cancel;
 * a cancel of a job that can no longer be cancelled is ignored; the first grant or refusal of an
 * attempt is its answer; only an attempt that holds capacity can be preempted, once; a dependency's
 * first reported end is the one kept.
 *
 * Versions: every change to the job increments `version`; the reporter writes the job at that
 * version and says so (`reportedThrough`). A PATCH has landed when `reported` reaches the version it
 * made.
 *
 * Time comes in as an ISO string argument; nothing here reads a clock. Schema-free, like every module
 * workflow code loads (docs/performance.md §7).
 */
import { type BatchJob, type BatchJobState } from './batch-job-model';
import { apply, isCancellable, type LifecycleEvent } from './batch-job-lifecycle';
import { applyBatchJobPatch, type BatchJobPatch, patchProblem } from './batch-job-patch';
import { ApiError } from './errors';

/** Where each rank of the current attempt runs (the query's `placement`). */
export interface JobPlacement {
  masterAddr: string;
  masterPort: number;
  ranks: Array<{ rank: number; host: string; slot: number }>;
}

/** Who asked for a stop: a signal's `requestedBy` when it names someone, else an operator. */
export function requesterOf(request: { requestedBy?: unknown } | undefined): string {
  return typeof request?.requestedBy === 'string' && request.requestedBy ? request.requestedBy : 'an operator';
}

export interface JobWorkflowStateInit {
  job: BatchJob;
  /** The version already in the read model (1 when the API wrote the job's CREATING record, else 0). */
  reported: number;
}

/** A stop's outcome: taken, or why it changed nothing. */
export type StopAnswer = 'taken' | 'already-stopping' | 'not-cancellable';

export class JobWorkflowState<Grant> {
  private current: BatchJob;
  private versionNow = 1;
  private reportedNow: number;
  /** What visibility's BatchJobState says; the job's own state until `indexedAs` says otherwise. */
  private indexedNow: string;
  private cancelAsker: string | undefined;
  private deleteAsker: string | undefined;
  private grantNow: Grant | undefined;
  private refusalNow: string | undefined;
  private preemptionNow: { by: string; reason?: string } | undefined;
  private placementNow: JobPlacement | undefined;
  private readonly watcherSet = new Set<string>();
  private readonly dependencyEndMap = new Map<string, BatchJobState | null>();

  constructor(init: JobWorkflowStateInit) {
    this.current = init.job;
    this.reportedNow = init.reported;
    this.indexedNow = init.job.state;
  }

  /** What visibility says at the start, as the workflow's start (or its own first upsert) set it. */
  indexedAs(state: string): void {
    this.indexedNow = state;
  }

  get job(): BatchJob {
    return this.current;
  }

  get state(): BatchJobState {
    return this.current.state;
  }

  get version(): number {
    return this.versionNow;
  }

  get reported(): number {
    return this.reportedNow;
  }

  /** A change not yet written to the read model. */
  get unreported(): boolean {
    return this.versionNow > this.reportedNow;
  }

  /** The reporter wrote the job at `version`. */
  reportedThrough(version: number): void {
    if (version > this.reportedNow) this.reportedNow = version;
  }

  /** The query's answer: the job, its version and, once granted, where its ranks run. */
  view(): { job: BatchJob; version: number; placement?: JobPlacement } {
    return { job: this.current, version: this.versionNow, ...(this.placementNow ? { placement: this.placementNow } : {}) };
  }

  /**
   * Moves the job through its lifecycle (`apply`: the transition is checked, timestamps set). Returns
   * the state visibility must now say, or undefined when it already says it; PENDING (usually
   * milliseconds) is never written there.
   */
  transition(event: LifecycleEvent, time: string): BatchJobState | undefined {
    this.current = apply(this.current, event, time);
    this.versionNow++;
    if (this.current.state === this.indexedNow || this.current.state === 'PENDING') return undefined;
    this.indexedNow = this.current.state;
    return this.current.state;
  }

  /** The attempt the job is on, in its record (a job that may retry shows it from the first). */
  setAttempt(attempt: number): void {
    this.current = { ...this.current, attempt };
  }

  // ---- stops ---------------------------------------------------------------------------------

  get cancelBy(): string | undefined {
    return this.cancelAsker;
  }

  get deleteBy(): string | undefined {
    return this.deleteAsker;
  }

  get stopWanted(): boolean {
    return this.cancelAsker !== undefined || this.deleteAsker !== undefined;
  }

  /** A cancel: ignored once any stop was asked for, and for a job past where a cancel applies. */
  askCancel(by: string): StopAnswer {
    if (this.stopWanted) return 'already-stopping';
    if (!isCancellable(this.current.state)) return 'not-cancellable';
    this.cancelAsker = by;
    return 'taken';
  }

  /** A delete: taken in any state (it outranks a cancel already asked for); the first asker is kept. */
  askDelete(by: string): StopAnswer {
    if (this.deleteAsker !== undefined) return 'already-stopping';
    this.deleteAsker = by;
    return 'taken';
  }

  // ---- the pool's answer to the current attempt ----------------------------------------------

  get grant(): Grant | undefined {
    return this.grantNow;
  }

  get refusal(): string | undefined {
    return this.refusalNow;
  }

  /** The first grant of an attempt is kept; a duplicate changes nothing. */
  granted(grant: Grant): void {
    this.grantNow ??= grant;
  }

  refused(reason: string): void {
    this.refusalNow ??= reason;
  }

  /** A grant that came while nothing was asked (between attempts): forgotten, and the caller gives it back. */
  dropGrant(): Grant | undefined {
    const g = this.grantNow;
    this.grantNow = undefined;
    return g;
  }

  get preemption(): { by: string; reason?: string } | undefined {
    return this.preemptionNow;
  }

  /** Only an attempt that holds capacity (PENDING or RUNNING) can be preempted; the first request wins. */
  preempt(by: unknown, reason: unknown): boolean {
    if (this.preemptionNow !== undefined || (this.current.state !== 'PENDING' && this.current.state !== 'RUNNING') || typeof by !== 'string') return false;
    this.preemptionNow = { by, ...(typeof reason === 'string' ? { reason } : {}) };
    return true;
  }

  get placement(): JobPlacement | undefined {
    return this.placementNow;
  }

  placed(placement: JobPlacement): void {
    this.placementNow = placement;
  }

  /** The failed attempt's hosts are no longer the job's (kept visible through the retry's delay). */
  clearPlacement(): void {
    this.placementNow = undefined;
  }

  /** A new attempt: its number in the record; the last attempt's grant, refusal and preemption forgotten. */
  nextAttempt(attempt: number): void {
    this.setAttempt(attempt);
    this.grantNow = undefined;
    this.refusalNow = undefined;
    this.preemptionNow = undefined;
  }

  // ---- PATCH -----------------------------------------------------------------------------------

  /** Why a PATCH is refused (an ApiError), before anything changes: a job being deleted, or a bad patch. */
  checkPatch(patch: unknown): void {
    if (this.current.state === 'DELETING' || this.deleteAsker !== undefined) {
      throw new ApiError('FAILED_PRECONDITION', 'the job is being deleted');
    }
    const problem = patchProblem(patch);
    if (problem) throw new ApiError('INVALID_ARGUMENT', problem);
  }

  /** Applies a checked PATCH; returns the version that must be reported before it is answered. */
  applyPatch(patch: BatchJobPatch, time: string): number {
    this.current = applyBatchJobPatch(this.current, patch, time);
    return ++this.versionNow;
  }

  // ---- jobs waiting on this one, and this one's dependencies -----------------------------------

  get watchers(): readonly string[] {
    return [...this.watcherSet];
  }

  addWatcher(watcher: unknown): void {
    if (typeof watcher === 'string' && watcher) this.watcherSet.add(watcher);
  }

  /** How the jobs this one depends on ended, as first heard (null: deleted). */
  get dependencyEnds(): ReadonlyMap<string, BatchJobState | null> {
    return this.dependencyEndMap;
  }

  /** A dependency's end, told by it or read from the read model; the first one heard is kept. */
  dependencyEnded(job: unknown, state: BatchJobState | null | undefined): void {
    if (typeof job === 'string' && !this.dependencyEndMap.has(job)) this.dependencyEndMap.set(job, state ?? null);
  }

  /** What the Temporal UI shows as the workflow's current details. */
  summary(): string {
    const job = this.current;
    const lines = [`**${job.state}** · ${job.status}`, '', `${job.numRanks} rank(s) on node pool \`${job.nodePoolId}\`, created by ${job.createdBy}`];
    if (this.placementNow) {
      const byHost = new Map<string, number[]>();
      for (const r of this.placementNow.ranks) byHost.set(r.host, [...(byHost.get(r.host) ?? []), r.rank]);
      lines.push('', `master ${this.placementNow.masterAddr}:${this.placementNow.masterPort}`, '');
      for (const [host, ranks] of byHost) lines.push(`- ${host}: ranks ${ranks.join(', ')}`);
    }
    return lines.join('\n');
  }
}
