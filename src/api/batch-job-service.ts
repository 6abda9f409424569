/**
 * Batch jobs as the API sees them: create starts a workflow, get asks it (falling back to the read
 * model), list reads the read model, cancel and delete are signals, update is a workflow update (or,
 * once the job has ended and its workflow closed, a versioned write of the archived record). Every
 * operation is scoped to the caller's account by construction: names are built from it.
 *
 * Sharing: every user of the account reads its jobs; update, cancel and delete of a job whose `shared`
 * is false are for its creator only (`canChange`).
 */
import { type Client, WorkflowClient, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { type Logger } from 'pino';
import {
  type BatchJobInput,
  type BatchJobView,
  cancelSignal,
  deleteSignal,
  getBatchJobQuery,
  getHostFactsQuery,
  type NodePoolInternals,
  queueStandingQuery,
  updateBatchJobUpdate,
} from '../../workflows/messages';
import type { batchJobWorkflowV3 } from '../../workflows/batch-job';
import { JOB_STARTS_VISIBLE_AS, jobMemo, jobSearchAttributes } from '../../workflows/search-attributes';
import { type Config } from '../config';
import { type AccountLimits } from '../control/account-limits';
import { type Admission, admitDependencies, admitJob } from '../control/admission';
import { closedJobs } from '../control/closed-jobs';
import { admitExecutor } from '../control/executor-admission';
import { purgeJob } from '../control/purge';
import { type BatchJob, batchJobCreateSchema, type BatchJobPlacement, type BatchJobSpec, creatingStatus, isTerminal } from '../domain/batch-job';
import { isCancellable } from '../domain/batch-job-lifecycle';
import { applyBatchJobPatch, deepEqual, planBatchJobUpdate } from '../domain/batch-job-update';
import { type DryRun, dryRun, type JobTiming } from '../domain/dry-run';
import { ApiError } from '../domain/errors';
import { generateId, ID_RULE, isValidId, resourceName } from '../domain/names';
import { type NodePool, isGpuPool } from '../domain/node-pool';
import { queuedBehindWindowStatus, queuedStatus } from '../domain/queue-status';
import { type QueueStanding } from '../domain/scheduler';
import { parseOrThrow } from '../domain/validation';
import { type LogStore } from '../store/log-store';
import { type BatchJobRecord, type ListQuery, type ReadModel } from '../store/read-model';
import { type Principal } from './auth';
import { poolNameOf, poolSharingPolicy, type SharingConfig } from '../domain/sharing-config';
import { checkNames } from './batch-delete';
import { CoalescingReader } from './coalescing-reader';
import { fromTemporal } from './errors';
import { readPoolInternals } from './pool-internals';

export interface BatchJobServiceDeps {
  client: Client;
  store: ReadModel;
  logs: LogStore;
  config: Pick<Config, 'TASK_QUEUE' | 'HOST_HEARTBEAT_TIMEOUT_MS' | 'HOST_START_TIMEOUT_MS' | 'RANK_STOP_GRACE_MS' | 'dataDir' | 'POOL_QUEUE_WINDOW'>;
  logger: Logger;
  random?: () => number;
  /** How long get waits for a workflow query before answering from the read model. */
  queryTimeoutMs?: number;
  /** The account's limits on live and waiting jobs; none when absent (unit tests). */
  limits?: AccountLimits;
  /** Why the Temporal server is away, probed now (src/temporal/monitor.ts); undefined while it answers. */
  temporalProblem?: () => Promise<string | undefined>;
  /** The operator's sharing file (pools shared between accounts); every pool its owner's alone when absent. */
  sharing?: () => SharingConfig;
}

type StoredPool = NodePool & { name: string; createTime: string; updateTime: string };

export class BatchJobService {
  private anyStateQueries: WorkflowClient | undefined;
  /** QUEUED jobs' standing: one query per pool in flight, shared by the requests that wait for it. */
  private readonly standings: CoalescingReader<QueueStanding>;

  constructor(private readonly d: BatchJobServiceDeps) {
    this.standings = new CoalescingReader((poolName, names) =>
      this.d.client.withDeadline(Date.now() + 2000, () => this.d.client.workflow.getHandle(poolName).query(queueStandingQuery, names)),
    );
  }

  private name(account: string, id: string): string {
    return resourceName(account, 'batchJobs', id);
  }

  /**
   * Every check a create runs, in the same order and with the same errors; creates nothing. A dry run
   * (`validateOnly`) and a create share it, so the two cannot answer differently.
   */
  private async admitCreate(caller: Principal, body: unknown, batchJobId: string | undefined): Promise<{ id: string; name: string; spec: BatchJobSpec; admission: Admission }> {
    const parsed = parseOrThrow(batchJobCreateSchema, body);
    if (batchJobId !== undefined && !isValidId(batchJobId)) {
      throw ApiError.invalidField('batchJobId', `"${batchJobId}" is not a valid id: ${ID_RULE}`);
    }
    const id = batchJobId ?? generateId(this.d.random ?? Math.random);
    const name = this.name(caller.account, id);
    const spec = await admitDependencies(this.d.store, caller.account, name, parsed, true);
    const admission = await admitJob(this.d.store, caller, spec, undefined, this.d.sharing?.());
    await admitExecutor(spec, spec.nodePoolId, {
      stored: async () => (await this.d.store.poolSnapshot(admission.pool.workflowId))?.state,
      live: () => this.d.client.withDeadline(Date.now() + 2000, () => this.d.client.workflow.getHandle(admission.pool.workflowId).query(getHostFactsQuery)),
    });
    if (await this.d.store.get('batchJobs', name)) throw new ApiError('ALREADY_EXISTS', `batch job "${id}" already exists`);
    await this.d.limits?.checkJob(caller.account);
    return { id, name, spec, admission };
  }

  async create(caller: Principal, body: unknown, batchJobId: string | undefined): Promise<BatchJob> {
    const { id, name, spec, admission } = await this.admitCreate(caller, body, batchJobId);

    const createTime = new Date().toISOString();
    const input: BatchJobInput = {
      name,
      account: caller.account,
      jobId: id,
      spec,
      createdBy: caller.email,
      createTime,
      settings: {
        heartbeatTimeoutMs: this.d.config.HOST_HEARTBEAT_TIMEOUT_MS,
        hostStartTimeoutMs: this.d.config.HOST_START_TIMEOUT_MS,
        stopGraceMs: this.d.config.RANK_STOP_GRACE_MS,
      },
      // Admitted here, once: the workflow does not run its validation again (unless an environment must register the job).
      admitted: { pool: admission.pool, ...(admission.imageRef !== undefined ? { imageRef: admission.imageRef } : {}) },
    };
    try {
      await this.d.client.workflow.start<typeof batchJobWorkflowV3>('batchJobWorkflowV3', {
        workflowId: name,
        taskQueue: this.d.config.TASK_QUEUE,
        args: [input],
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        typedSearchAttributes: jobSearchAttributes(caller.account, { ...spec, createdBy: caller.email, state: JOB_STARTS_VISIBLE_AS }),
        memo: jobMemo({ ...spec, createdBy: caller.email }),
        staticSummary: `batch job ${id}: ${spec.numRanks} rank(s) on node pool ${spec.nodePoolId}`,
        staticDetails: `Created by ${caller.email} through the API.${admission.imageRef ? ` Image: ${admission.imageRef}.` : ''}`,
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new ApiError('ALREADY_EXISTS', `batch job "${id}" already exists`);
      throw fromTemporal(err) ?? err;
    }
    const job: BatchJob = { ...spec, name, createTime, updateTime: createTime, createdBy: caller.email, state: 'CREATING', status: creatingStatus(true, spec.nodePoolId) };
    // Read-your-writes for list; the workflow's own first report lands here too if this process dies now.
    await this.d.store.putIfAbsent('batchJobs', caller.account, job, 0);
    return job;
  }

  /**
   * `validateOnly=true` (AIP-163): every check of create, then what would happen, without creating
   * anything. The pool's state is read by its workflow's query (a read: nothing is written), and the
   * answer is computed by the pool's own scheduler code (src/domain/dry-run.ts).
   */
  async dryRunCreate(caller: Principal, body: unknown, batchJobId: string | undefined): Promise<BatchJob & { dryRun: DryRun }> {
    const { id, name, spec, admission } = await this.admitCreate(caller, body, batchJobId);
    // Create's start would also refuse a job whose workflow runs but has no record yet (a parent workflow's, just started).
    if (batchJobId !== undefined && (await this.workflowRunning(name))) throw new ApiError('ALREADY_EXISTS', `batch job "${id}" already exists`);

    let internals: NodePoolInternals;
    try {
      internals = await readPoolInternals(this.d.client, this.d.store, admission.pool.workflowId, this.d.queryTimeoutMs ?? 3000);
    } catch (err) {
      this.d.logger.warn({ pool: admission.pool.workflowId, err: String(err) }, 'node pool query failed; no dry run');
      throw new ApiError('UNAVAILABLE', `node pool "${spec.nodePoolId}" did not answer, so what would happen to the job is unknown; nothing was created; try again`);
    }
    const read = async (jobName: string) => (await this.d.store.get<BatchJobRecord>('batchJobs', jobName))?.resource;
    const known = [...new Set([...Object.keys(internals.allocations), ...internals.queue.map((q) => q.jobName)])];
    const jobs: Record<string, JobTiming | undefined> = {};
    await Promise.all(
      known.map(async (jobName) => {
        const j = await read(jobName);
        jobs[jobName] = j && { state: j.state, ...(j.startTime ? { startTime: j.startTime } : {}), ...(j.maxRunDuration ? { maxRunDuration: j.maxRunDuration } : {}) };
      }),
    );
    const dependencies = await Promise.all(
      (spec.dependsOn ?? []).map(async (d) => {
        const state = (await read(d.batchJob))?.state;
        return { ...d, ...(state ? { state } : {}) };
      }),
    );
    const now = new Date().toISOString();
    const dry = dryRun({
      pool: {
        id: spec.nodePoolId,
        gpu: admission.pool.gpu,
        hosts: internals.hosts,
        queue: internals.queue,
        queueLength: internals.queueSummary?.length ?? internals.queue.length,
        window: internals.queueSummary?.window ?? this.d.config.POOL_QUEUE_WINDOW,
        reservation: internals.reservation,
        allocations: internals.allocations,
      },
      job: {
        name,
        ranks: spec.numRanks,
        ...(spec.maxQueueDuration ? { maxQueueDuration: spec.maxQueueDuration } : {}),
        ...(spec.maxRunDuration ? { maxRunDuration: spec.maxRunDuration } : {}),
        ...(spec.priority ? { priority: spec.priority } : {}),
        account: caller.account,
      },
      ...sharingOf(this.d.sharing?.(), admission.pool.workflowId),
      jobs,
      ...(dependencies.length > 0 ? { dependencies } : {}),
      now,
    });
    const status = 'validate only: nothing was created; dryRun says what would happen';
    return { ...spec, name, createTime: now, updateTime: now, createdBy: caller.email, state: 'CREATING', status, dryRun: dry };
  }

  private async workflowRunning(name: string): Promise<boolean> {
    try {
      return (await this.d.client.workflow.getHandle(name).describe()).status.name === 'RUNNING';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw fromTemporal(err) ?? err;
    }
  }

  /** The current job, from the read model: its workflow's last report, or its archived record. */
  async get(caller: Principal, id: string): Promise<BatchJob> {
    const job = await this.current(this.name(caller.account, id), id);
    const [enriched] = await this.enrichQueued(caller.account, [job]);
    return enriched ?? job;
  }

  private async current(name: string, id: string): Promise<BatchJob> {
    const row = await this.d.store.get<BatchJobRecord>('batchJobs', name);
    if (!row) throw ApiError.notFound(`batch job "${id}"`);
    if (isTerminal(row.resource.state)) return row.resource;
    return this.live(row.resource);
  }

  /**
   * A live job is answered from its record, not by a query of its workflow. The workflow writes every
   * change there within the workflow task that made it (its reporter's local activity runs before the
   * task completes), so the record is the workflow's state as of its last completed task, the same
   * one list shows. A query would be a billable Action on every GET (and clients poll), and it waits
   * for a worker: behind a backlog of created jobs, or with no control worker running, it would wait
   * its deadline out. The server's describe (no worker involved, not billed) still tells a running
   * workflow from one that closed without its final report, and a server that does not answer from
   * one that does.
   */
  private async live(job: BatchJob): Promise<BatchJob> {
    const ended = await this.endedWithoutReport(job);
    if (typeof ended === 'object') return ended;
    if (ended === 'unknown') {
      // A server that is away is said (503), not hidden behind a record that may be behind.
      const away = await this.d.temporalProblem?.();
      if (away) throw new ApiError('UNAVAILABLE', away);
    }
    return job;
  }

  /**
   * Which host runs each rank of a job (log ingest's check), or undefined for a job that does not
   * exist, was deleted, or is not placed yet.
   */
  async rankHosts(name: string): Promise<ReadonlyMap<number, string> | undefined> {
    if (!(await this.d.store.get('batchJobs', name))) return undefined;
    try {
      // A job's last lines may arrive after its workflow closed, so this query is answered for closed
      // workflows too (the service's client refuses those, to spare get a replay); placements are cached by the caller.
      this.anyStateQueries ??= new WorkflowClient({ connection: this.d.client.connection, namespace: this.d.client.options.namespace, queryRejectCondition: 'NONE' });
      const handle = this.anyStateQueries.getHandle(name);
      const view = await this.d.client.withDeadline(Date.now() + 8000, () => handle.query(getBatchJobQuery));
      return view.placement ? new Map(view.placement.ranks.map((r) => [r.rank, r.host])) : undefined;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  private query(name: string): Promise<BatchJobView> {
    const handle = this.d.client.workflow.getHandle(name);
    return this.d.client.withDeadline(Date.now() + (this.d.queryTimeoutMs ?? 3000), () => handle.query(getBatchJobQuery));
  }

  /**
   * A job whose workflow closed without a final report (an operator terminated it) is shown FAILED,
   * saying so. Reads never write: its pool records that end and frees its capacity when it next checks
   * its holders (control.closedJobs), the one path by which such an end is written. 'running' when its
   * workflow still runs, 'unknown' when the server did not say.
   */
  private async endedWithoutReport(job: BatchJob): Promise<BatchJob | 'running' | 'unknown'> {
    let status: string;
    try {
      const d = await this.d.client.workflow.getHandle(job.name).describe();
      if (d.status.name === 'RUNNING') return 'running';
      if (d.status.name === 'COMPLETED') {
        // It ended normally just now: its final report is in the read model.
        return (await this.d.store.get<BatchJobRecord>('batchJobs', job.name))?.resource ?? 'unknown';
      }
      status = `its workflow ${d.status.name.toLowerCase().replaceAll('_', ' ')}`;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) return 'unknown';
      status = 'its workflow no longer exists';
    }
    const at = job.updateTime;
    return { ...job, state: 'FAILED', status: `the job's workflow ended without finishing the job (${status})`, updateTime: at, endTime: at };
  }

  async list(caller: Principal, query: Omit<ListQuery, 'account'>): Promise<{ jobs: BatchJob[]; totalSize: number; nextAfter?: unknown[] }> {
    const page = await this.d.store.list<BatchJobRecord>('batchJobs', { ...query, account: caller.account });
    const jobs = await this.enrichQueued(caller.account, page.items);
    return { jobs, totalSize: page.totalSize, ...(page.nextAfter ? { nextAfter: page.nextAfter } : {}) };
  }

  /**
   * QUEUED jobs say where they stand: their place from the pool store (any depth of queue), and what
   * they wait for from the pool's workflow (one query per pool on the page; it knows the head of its
   * queue). Requests that arrive while a pool's query runs share its next one (CoalescingReader), so
   * clients polling many QUEUED jobs of a pool make one query at a time. A pool that does not answer
   * still leaves the places.
   */
  private async enrichQueued(account: string, jobs: BatchJob[]): Promise<BatchJob[]> {
    const byPool = new Map<string, BatchJob[]>();
    for (const j of jobs) if (j.state === 'QUEUED') byPool.set(j.nodePoolId, [...(byPool.get(j.nodePoolId) ?? []), j]);
    if (byPool.size === 0) return jobs;
    const statuses = new Map<string, string>();
    await Promise.all(
      [...byPool].map(async ([poolId, queued]) => {
        const poolName = poolNameOf(account, poolId);
        const names = queued.map((j) => j.name);
        const pool = await this.d.store.get<StoredPool>('nodePools', poolName);
        const gpu = pool ? isGpuPool(pool.resource) : true;
        const places = await this.d.store.queuePositions(poolName, names);
        let standings: Record<string, QueueStanding> = {};
        try {
          standings = await this.standings.get(poolName, names);
        } catch (err) {
          this.d.logger.debug({ pool: poolName, err: String(err) }, 'queue standing unavailable');
        }
        for (const j of queued) {
          const s = standings[j.name];
          const position = places.positions[j.name];
          if (s) statuses.set(j.name, queuedStatus(poolId, gpu, { ...s, queueLength: Math.max(places.length, s.queueLength) }));
          else if (position !== undefined) {
            statuses.set(j.name, queuedBehindWindowStatus(poolId, gpu, { ranks: j.numRanks, position, queueLength: places.length, window: this.d.config.POOL_QUEUE_WINDOW }));
          }
        }
      }),
    );
    return jobs.map((j) => (statuses.has(j.name) ? { ...j, status: statuses.get(j.name) ?? j.status } : j));
  }

  /** Update, cancel and delete of a job that is not shared are for its creator only. */
  private canChange(caller: Principal, job: BatchJob): void {
    if (!job.shared && job.createdBy !== caller.email) {
      throw ApiError.permissionDenied(
        `only ${job.createdBy}, who created batch job "${job.name.split('/').pop()}", may update, cancel or delete it: ` +
          `it is not shared (its creator can set shared: true to open it to every user of the account)`,
      );
    }
  }

  /**
   * PATCH (AIP-134): planBatchJobUpdate decides what the request writes. A live job changes in its
   * workflow, whose update returns once the read model holds the change (get and list agree at once);
   * an ended job, whose workflow has closed, changes in the read model. Nothing changes while DELETING.
   */
  async update(caller: Principal, id: string, body: unknown, updateMask: string | undefined): Promise<BatchJob> {
    const name = this.name(caller.account, id);
    const job = await this.current(name, id);
    this.canChange(caller, job);
    const patch = planBatchJobUpdate(job, body, updateMask);
    if (!isTerminal(job.state)) {
      try {
        const updated = await this.d.client.workflow.getHandle(name).executeUpdate(updateBatchJobUpdate, { args: [patch] });
        const [enriched] = await this.enrichQueued(caller.account, [updated]);
        return enriched ?? updated;
      } catch (err) {
        // The workflow's own answer (e.g. FAILED_PRECONDITION: being deleted) stands. Otherwise, a
        // workflow that closed in between means the job has ended: update it as an ended job.
        const answer = fromTemporal(err);
        const transient = answer === undefined || answer.code === 'UNAVAILABLE' || answer.code === 'RESOURCE_EXHAUSTED';
        if (!(err instanceof WorkflowNotFoundError) && !(transient && (await this.workflowClosed(name)))) throw answer ?? err;
      }
    }
    return this.updateEnded(caller, name, id, body, updateMask);
  }

  private async workflowClosed(name: string): Promise<boolean> {
    try {
      return (await this.d.client.workflow.getHandle(name).describe()).status.name !== 'RUNNING';
    } catch (err) {
      return err instanceof WorkflowNotFoundError;
    }
  }

  /**
   * An ended job: its record is the job. The patch is planned against the stored record and written at
   * version + 1 only if nothing wrote the record meanwhile (else planned again); nothing is written,
   * and updateTime does not move, when the request changes nothing.
   */
  private async updateEnded(caller: Principal, name: string, id: string, body: unknown, updateMask: string | undefined): Promise<BatchJob> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const row = await this.d.store.get<BatchJobRecord>('batchJobs', name);
      if (!row) throw ApiError.notFound(`batch job "${id}"`);
      const job = row.resource;
      if (!isTerminal(job.state) && job.state !== 'DELETING') {
        // Its workflow closed without a final report (an operator terminated it): record that end, then read again.
        if ((await closedJobs(this.d.store, this.d.client, [name])).length === 0) {
          throw new ApiError('UNAVAILABLE', `batch job "${id}" is changing state; retry the update`);
        }
        continue;
      }
      this.canChange(caller, job);
      const patch = planBatchJobUpdate(job, body, updateMask);
      const next = applyBatchJobPatch(job, patch, new Date().toISOString());
      if (deepEqual(next, job)) return job;
      if (await this.d.store.put('batchJobs', caller.account, next, row.version + 1)) return next;
    }
    throw new ApiError('ABORTED', `batch job "${id}" was changed by other requests meanwhile; retry the update`);
  }

  async cancel(caller: Principal, id: string): Promise<void> {
    const name = this.name(caller.account, id);
    const job = await this.current(name, id);
    this.canChange(caller, job);
    if (job.state === 'CANCELLING') return;
    if (!isCancellable(job.state)) {
      throw ApiError.failedPrecondition(`batch job "${id}" is ${job.state}; only CREATING, QUEUED, PENDING or RUNNING jobs can be cancelled`);
    }
    try {
      await this.d.client.workflow.getHandle(name).signal(cancelSignal, { requestedBy: caller.email });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw ApiError.failedPrecondition(`batch job "${id}" has already ended`);
      throw fromTemporal(err) ?? err;
    }
  }

  async delete(caller: Principal, id: string): Promise<void> {
    const name = this.name(caller.account, id);
    const job = await this.current(name, id);
    this.canChange(caller, job);
    if (job.state === 'DELETING') return;
    if (!isTerminal(job.state)) {
      try {
        await this.d.client.workflow.getHandle(name).signal(deleteSignal, { requestedBy: caller.email });
        return;
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw fromTemporal(err) ?? err;
        // The workflow closed in between: the job has ended, so delete it as an ended job.
      }
    }
    await this.purge(caller.account, name, id);
  }

  /**
   * `:batchDelete`: checks every name first, in order (a batch job name, of the caller's account, of
   * a job that exists and that the caller may delete), and fails with the first bad name's error,
   * deleting none. Only then deletes each job once (duplicates are allowed). A job that someone else
   * deleted between the check and its deletion is already where the caller wants it.
   */
  async deleteMany(caller: Principal, body: unknown): Promise<void> {
    const ids = await checkNames(body, caller.account, 'batchJobs', async (id) => {
      this.canChange(caller, await this.current(this.name(caller.account, id), id));
    });
    for (const id of ids) {
      try {
        await this.delete(caller, id);
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'NOT_FOUND')) throw err;
      }
    }
  }

  private purge(account: string, name: string, id: string): Promise<void> {
    return purgeJob({ store: this.d.store, logs: this.d.logs, dataDir: this.d.config.dataDir }, account, name, id);
  }

  /**
   * Where a live job's ranks run, from its workflow (which holds the grant). The public job body has no
   * placement (it is the upstream resource), so this is a read of its own; an ended job has none.
   */
  async placement(caller: Principal, id: string): Promise<BatchJobPlacement> {
    const job = await this.exists(caller, id);
    if (isTerminal(job.state)) return { ranks: [] };
    let view: BatchJobView;
    try {
      view = await this.query(job.name);
    } catch {
      throw new ApiError('UNAVAILABLE', `batch job "${id}" did not answer; try again`);
    }
    const p = view.placement;
    if (!p || isTerminal(view.job.state)) return { ranks: [] };
    return { ranks: p.ranks.map((r) => ({ rank: r.rank, host: r.host, slot: r.slot })), masterAddr: p.masterAddr, masterPort: p.masterPort };
  }

  async exists(caller: Principal, id: string): Promise<BatchJob> {
    const row = await this.d.store.get<BatchJobRecord>('batchJobs', this.name(caller.account, id));
    if (!row) throw ApiError.notFound(`batch job "${id}"`);
    return row.resource;
  }
}

/** The pool's sharing terms for a dry run, as the file says now (none without a file or for a pool it does not list). */
function sharingOf(config: SharingConfig | undefined, poolName: string): { sharing?: NonNullable<ReturnType<typeof poolSharingPolicy>> } {
  const policy = config ? poolSharingPolicy(config, poolName) : undefined;
  return policy ? { sharing: policy } : {};
}
