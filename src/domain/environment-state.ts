/**
 * An environment as its workflow keeps it: the Environment resource, its snapshots (in creation
 * order), the batch jobs admitted with it, and the version bookkeeping of its reports to the read
 * model. Pure and deterministic, with no Temporal in it: the workflow (workflows/environment.ts) feeds
 * it requests and activity results, carries out what it decides (ask which jobs live, report, remove
 * rows) and turns its refusals (ApiError) into the update failures API clients see. Unit tests drive
 * it directly (test/unit/environment-state.test.ts).
 *
 * Versions: every change increments `version` and marks what changed (the environment, or a snapshot
 * by name); the reporter takes the marks (`takeReport`), writes those resources at that version, and
 * says so (`reportedThrough`). A handler's change has landed when `reported` reaches the version it
 * made.
 *
 * Time comes in as an ISO string argument; nothing here reads a clock.
 *
 * Schema-free, like every module workflow code loads (docs/performance.md §7).
 */
import { DISCONNECTED_MESSAGE, type Environment, type EnvironmentSpec, environmentSpecChanged, environmentSpecOf, mayUseEnvironment, withEnvironmentSpec } from './environment-model';
import { type EnvironmentUseGrant, type EnvironmentUseRequest } from './control-model';
import { ApiError } from './errors';
import { isValidId, resourceName } from './names';
import { okStatus } from './node-pool-model';
import { type Snapshot } from './snapshot-model';

/** Below this many remembered jobs, ended ones are only pruned when a delete asks about them. */
export const ENVIRONMENT_PRUNE_MIN = 64;

/**
 * What the environment's workflow carries across continue-as-new. Unversioned on purpose: it is the
 * shape every run so far has written, and a run continued as new by older code resumes from it.
 */
export interface EnvironmentCarriedState {
  /** In creation order. */
  snapshots: Snapshot[];
  /** Batch jobs admitted with this environment (by name), with the snapshot each uses. */
  jobs: Record<string, { snapshotId?: string }>;
  version: number;
}

/** The environment workflow's query answer. */
export interface EnvironmentView {
  environment: Environment;
  snapshots: Snapshot[];
  /** Names of the jobs admitted with the environment that were not yet found to have ended. */
  jobs: string[];
  version: number;
}

/** What the reporter writes next: the environment and/or some snapshots (by name), all at `version`. */
export interface EnvironmentReport {
  version: number;
  environment: boolean;
  snapshots: string[];
}

/** Up to five names (their last segment, quoted), then how many more. */
export function listNames(names: string[]): string {
  const shown = names.slice(0, 5).map((n) => `"${n.split('/').pop() ?? n}"`);
  return names.length > 5 ? `${shown.join(', ')} and ${names.length - 5} more` : shown.join(', ');
}

export interface EnvironmentStateInit {
  account: string;
  environmentId: string;
  environment: Environment;
  /** Absent on the first run. */
  carried?: EnvironmentCarriedState | undefined;
}

export class EnvironmentState {
  readonly account: string;
  readonly id: string;
  private env: Environment;
  private readonly snapshotList: Snapshot[];
  private readonly jobs: Record<string, { snapshotId?: string }>;
  private versionNow: number;
  private reportedNow: number;
  private envDirty = false;
  private readonly dirtySnapshots: Record<string, true> = {};
  private deletingNow: boolean;
  private pruneAt: number;

  /**
   * A first run (no carried state) leaves CREATING for DISCONNECTED and reports the environment at
   * version 1; a continued run resumes with everything reported through its carried version.
   */
  constructor(init: EnvironmentStateInit) {
    this.account = init.account;
    this.id = init.environmentId;
    this.env = init.environment;
    const carried = init.carried;
    this.snapshotList = carried ? carried.snapshots.map((s) => ({ ...s })) : [];
    this.jobs = carried ? { ...carried.jobs } : {};
    this.versionNow = carried ? carried.version : 0;
    this.reportedNow = this.versionNow;
    this.deletingNow = this.env.state === 'DELETING';
    this.pruneAt = this.pruneThreshold();
    if (!carried) {
      if (this.env.state === 'CREATING') this.env = { ...this.env, state: 'DISCONNECTED', status: okStatus(DISCONNECTED_MESSAGE) };
      this.versionNow = 1;
      this.reportedNow = 0;
      this.envDirty = true;
    }
  }

  // ---- reading ---------------------------------------------------------------------------------

  get environment(): Environment {
    return this.env;
  }

  /** In creation order. */
  get snapshots(): readonly Snapshot[] {
    return this.snapshotList;
  }

  get version(): number {
    return this.versionNow;
  }

  /** The highest version the read model has. */
  get reported(): number {
    return this.reportedNow;
  }

  get deleting(): boolean {
    return this.deletingNow;
  }

  /** Every change so far is in the read model. */
  get allReported(): boolean {
    return this.reportedNow >= this.versionNow;
  }

  /** The names of the admitted jobs not yet seen to end, in admission order. */
  jobNames(): string[] {
    return Object.keys(this.jobs);
  }

  snapshot(snapshotId: string): Snapshot | undefined {
    const name = resourceName(this.account, 'snapshots', snapshotId);
    return this.snapshotList.find((s) => s.name === name);
  }

  view(): EnvironmentView {
    return { environment: this.env, snapshots: this.snapshotList, jobs: Object.keys(this.jobs), version: this.versionNow };
  }

  /** What continue-as-new carries (the shape older runs wrote: snapshots, jobs, version). */
  carried(): EnvironmentCarriedState {
    return { snapshots: this.snapshotList, jobs: this.jobs, version: this.versionNow };
  }

  /** The workflow's current details (Markdown). */
  summary(): string {
    return [
      `**${this.env.state}** · image ${this.env.imageRef ?? '(none)'} · ${this.snapshotList.length} snapshot(s)`,
      `${Object.keys(this.jobs).length} job(s) admitted and not yet seen to end`,
    ].join('\n');
  }

  // ---- the read model --------------------------------------------------------------------------

  /** A change is waiting to be reported. */
  get hasUnreported(): boolean {
    return this.versionNow > this.reportedNow;
  }

  /**
   * Takes what changed since the last report: the environment first, then the snapshots in the order
   * they changed, all to be written at the current version. The marks are cleared now; a snapshot
   * gone by the time its turn comes is skipped (`snapshotNamed` answers undefined).
   */
  takeReport(): EnvironmentReport {
    const report: EnvironmentReport = { version: this.versionNow, environment: this.envDirty, snapshots: Object.keys(this.dirtySnapshots) };
    this.envDirty = false;
    for (const n of report.snapshots) delete this.dirtySnapshots[n];
    return report;
  }

  snapshotNamed(name: string): Snapshot | undefined {
    return this.snapshotList.find((s) => s.name === name);
  }

  /** The read model has everything through `version`. */
  reportedThrough(version: number): void {
    this.reportedNow = version;
  }

  // ---- checks ----------------------------------------------------------------------------------

  private mayChange(requestedBy: string | undefined): void {
    if (!mayUseEnvironment(this.env, requestedBy)) {
      throw new ApiError('PERMISSION_DENIED', `environment "${this.id}" belongs to ${this.env.createdBy} and is not shared; only its creator may change or use it`);
    }
  }

  private notDeleting(): void {
    if (this.deletingNow) throw new ApiError('FAILED_PRECONDITION', `environment "${this.id}" is being deleted`);
  }

  /** Whether `req` may use the environment (and its snapshot), and with which image. */
  checkUse(req: EnvironmentUseRequest): EnvironmentUseGrant {
    if (this.deletingNow) throw new ApiError('NOT_FOUND', `environmentId: environment "${this.id}" is being deleted`);
    if (!mayUseEnvironment(this.env, req.createdBy)) {
      throw new ApiError(
        'PERMISSION_DENIED',
        `environmentId: environment "${this.id}" belongs to ${this.env.createdBy} and is not shared; only its creator may use it in a job (or share it: shared=true)`,
      );
    }
    if (req.snapshotId === undefined) return this.env.imageRef !== undefined ? { imageRef: this.env.imageRef } : {};
    const snapshot = this.snapshot(req.snapshotId);
    if (!snapshot) throw new ApiError('NOT_FOUND', `snapshotId: snapshot "${req.snapshotId}" not found in environment "${this.id}"`);
    if (snapshot.state !== 'READY') {
      throw new ApiError('FAILED_PRECONDITION', `snapshotId: snapshot "${req.snapshotId}" is ${snapshot.state}, not READY: ${snapshot.status.message}`);
    }
    return snapshot.imageRef !== undefined ? { imageRef: snapshot.imageRef } : {};
  }

  /** An update's validator: not being deleted, and the requester may change it. */
  checkUpdate(requestedBy: string | undefined): void {
    this.notDeleting();
    this.mayChange(requestedBy);
  }

  /** A delete's validator: the requester may change it (a second delete of a deleting one is accepted). */
  checkDelete(requestedBy: string | undefined): void {
    this.mayChange(requestedBy);
  }

  private checkNewSnapshotId(snapshotId: string): void {
    this.notDeleting();
    if (!isValidId(snapshotId)) throw new ApiError('INVALID_ARGUMENT', `snapshot id "${snapshotId}" is not a valid id`);
    if (this.snapshot(snapshotId)) throw new ApiError('ALREADY_EXISTS', `snapshot "${snapshotId}" already exists`);
  }

  /** A snapshot create's validator. */
  checkCreateSnapshot(snapshotId: string, requestedBy: string | undefined): void {
    this.checkNewSnapshotId(snapshotId);
    this.mayChange(requestedBy);
  }

  private existingSnapshot(snapshotId: string): Snapshot {
    this.notDeleting();
    const snapshot = this.snapshot(snapshotId);
    if (!snapshot) throw new ApiError('NOT_FOUND', `snapshot "${snapshotId}" not found`);
    return snapshot;
  }

  /** A snapshot delete's validator. */
  checkDeleteSnapshot(snapshotId: string, requestedBy: string | undefined): void {
    this.existingSnapshot(snapshotId);
    this.mayChange(requestedBy);
  }

  // ---- transitions -----------------------------------------------------------------------------

  private envChanged(): void {
    this.versionNow++;
    this.envDirty = true;
  }

  /** Changes a snapshot in place (the list keeps creation order) and marks it for the read model. */
  private changeSnapshot(s: Snapshot, patch: Partial<Snapshot>): void {
    Object.assign(s, patch);
    this.versionNow++;
    this.dirtySnapshots[s.name] = true;
  }

  /** snapshotImageRef follows the latest READY snapshot; updateTime moves only when it changes. */
  refreshSnapshotImageRef(time: string): void {
    const latest = [...this.snapshotList].reverse().find((s) => s.state === 'READY' && s.imageRef !== undefined)?.imageRef;
    if (latest === this.env.snapshotImageRef) return;
    const next: Environment = { ...this.env, updateTime: time };
    if (latest === undefined) delete next.snapshotImageRef;
    else next.snapshotImageRef = latest;
    this.env = next;
    this.envChanged();
  }

  /** Admits a job (checked again: a delete may have run since its validator accepted). */
  admit(req: EnvironmentUseRequest): EnvironmentUseGrant {
    const grant = this.checkUse(req);
    this.jobs[req.jobName] = req.snapshotId !== undefined ? { snapshotId: req.snapshotId } : {};
    return grant;
  }

  /** Applies a PATCH; whether it changed anything (updateTime moves only then). */
  updateSpec(spec: EnvironmentSpec, time: string): boolean {
    this.notDeleting();
    if (!environmentSpecChanged(environmentSpecOf(this.env), spec)) return false;
    this.env = withEnvironmentSpec(this.env, spec, time);
    this.envChanged();
    return true;
  }

  /** Forgets the jobs among `asked` that are not `live` (an activity's answer about them). */
  forgetEnded(asked: string[], live: string[]): void {
    for (const n of asked) if (!live.includes(n)) delete this.jobs[n];
  }

  /**
   * Starts the delete once the workflow asked which admitted jobs live (`live`): refused while any
   * does; else the environment and every snapshot go DELETING.
   */
  beginDelete(live: string[], requestedBy: string | undefined, time: string): void {
    if (live.length > 0) {
      throw new ApiError('FAILED_PRECONDITION', `environment "${this.id}" is used by live batch job(s) ${listNames(live)}; delete it after they end (or cancel them)`);
    }
    this.deletingNow = true;
    this.env = { ...this.env, state: 'DELETING', status: okStatus(`being deleted${requestedBy ? ` by ${requestedBy}` : ''}`), updateTime: time };
    this.envChanged();
    for (const s of this.snapshotList) this.changeSnapshot(s, { state: 'DELETING', status: okStatus(`environment "${this.id}" is being deleted`), updateTime: time });
  }

  /** Records a new snapshot, CREATING (checked again under the workflow's lock). */
  beginSnapshot(snapshotId: string, time: string): Snapshot {
    this.checkNewSnapshotId(snapshotId);
    const snapshot: Snapshot = {
      name: resourceName(this.account, 'snapshots', snapshotId),
      environmentId: this.id,
      createTime: time,
      updateTime: time,
      state: 'CREATING',
      status: okStatus(`recording the image of environment "${this.id}"`),
    };
    this.snapshotList.push(snapshot);
    this.changeSnapshot(snapshot, {});
    return snapshot;
  }

  /**
   * Ends a snapshot's creation: READY recording the environment's image (there is no container
   * runtime: a snapshot is the record of the image the environment uses), FAILED when it has none;
   * then snapshotImageRef follows.
   */
  finishSnapshot(snapshot: Snapshot, time: string): Snapshot {
    const imageRef = this.env.imageRef;
    if (imageRef !== undefined) {
      this.changeSnapshot(snapshot, {
        state: 'READY',
        imageRef,
        updateTime: time,
        status: okStatus(
          `records image ${imageRef}, the image of environment "${this.id}"; this service has no container runtime, so a snapshot captures no container filesystem, only the image reference a job with this snapshotId runs with`,
        ),
      });
    } else {
      this.changeSnapshot(snapshot, {
        state: 'FAILED',
        updateTime: time,
        status: {
          code: 'FAILED_PRECONDITION',
          message: `environment "${this.id}" has no image to record: it was created without baseImageRef, and this service has no container runtime to capture one`,
        },
      });
    }
    this.refreshSnapshotImageRef(time);
    return snapshot;
  }

  /** The admitted jobs that use a snapshot, to ask whether they live before it is deleted. */
  snapshotUsers(snapshotId: string): string[] {
    this.existingSnapshot(snapshotId);
    return Object.entries(this.jobs)
      .filter(([, j]) => j.snapshotId === snapshotId)
      .map(([n]) => n);
  }

  /** Starts a snapshot's delete once its users were asked about (`live`): refused while any lives. */
  beginSnapshotDelete(snapshotId: string, live: string[], requestedBy: string | undefined, time: string): Snapshot {
    const snapshot = this.existingSnapshot(snapshotId);
    if (live.length > 0) {
      throw new ApiError('FAILED_PRECONDITION', `snapshot "${snapshotId}" is used by live batch job(s) ${listNames(live)}; delete it after they end (or cancel them)`);
    }
    this.changeSnapshot(snapshot, { state: 'DELETING', status: okStatus(`being deleted${requestedBy ? ` by ${requestedBy}` : ''}`), updateTime: time });
    return snapshot;
  }

  /** Drops a deleted snapshot (its DELETING state reported); no report of it follows. */
  removeSnapshot(snapshot: Snapshot): void {
    const at = this.snapshotList.indexOf(snapshot);
    if (at >= 0) this.snapshotList.splice(at, 1);
    delete this.dirtySnapshots[snapshot.name];
  }

  // ---- bounded state ---------------------------------------------------------------------------

  private pruneThreshold(): number {
    return Math.max(ENVIRONMENT_PRUNE_MIN, 2 * Object.keys(this.jobs).length);
  }

  /** Enough jobs are remembered that the ended ones should be found and forgotten. */
  get needsPrune(): boolean {
    return Object.keys(this.jobs).length >= this.pruneAt;
  }

  /** After a prune: the next one when the jobs still remembered have doubled (at least ENVIRONMENT_PRUNE_MIN). */
  rearmPrune(): void {
    this.pruneAt = this.pruneThreshold();
  }
}
