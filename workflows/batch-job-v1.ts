/**
 * FROZEN: the first job workflow type, `batchJobWorkflow`, kept only so that jobs started before
 * `batchJobWorkflowV2` (workflows/batch-job.ts) run to their end, and so their histories replay. New
 * jobs start as V2. Do not change what this file does: a change here is a change to running histories.
 *
 * One workflow per batch job; its state is the job. It validates the job, queues for capacity at the
 * node pool's workflow, starts each host's ranks through that host's agent, watches them, and on any
 * ending (success, failure, cancel, delete, a lost host) stops what still runs, releases the capacity
 * once, and reports the final job before it completes.
 *
 * Cancel and delete arrive as signals (or as Temporal's own cancellation, treated as cancel); a PATCH
 * arrives as an update; `getBatchJob` answers the current job at any time.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  allHandlersFinished,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { AgentActivities, HostOutcome, HostRunInput, PoolBinding, PoolSignal, ValidateJobResult } from '../activities/contracts';
import { type BatchJob, type BatchJobState as JobState, executorOf, isTerminal, type JobDependency } from '../src/domain/batch-job-model';
import { apply, isCancellable, type LifecycleEvent } from '../src/domain/batch-job-lifecycle';
import { applyBatchJobPatch, type BatchJobPatch, patchProblem } from '../src/domain/batch-job-patch';
import { usageSummary } from '../src/domain/isolation';
import { type AttemptEnd, dependencyVerdict, durationMs, formatDuration, retryDecision } from '../src/domain/job-policy';
import { requestTermsOf } from '../src/domain/sharing';
import { numberRanks, rankEnvironment } from '../src/domain/ranks';
import {
  type BatchJobInput,
  type BatchJobResult,
  type BatchJobView,
  cancelSignal,
  type CapacityGrant,
  capacityGrantedSignal,
  capacityRefusedSignal,
  deleteSignal,
  dependencyEndedSignal,
  preemptSignal,
  getBatchJobQuery,
  type GrantedHost,
  type JobSettings,
  ranksStartedSignal,
  type StopRequest,
  sendPoolSignal,
  updateBatchJobUpdate,
  watchEndSignal,
} from './messages';
import { control } from './control';
import { now } from './clock';
import { apiFailure } from './failures';
import { BatchdAccount, BatchJobDisplayName, BatchJobState, jobMemo, jobSearchAttributes } from './search-attributes';


/** What became of one host's ranks. */
type HostResult = HostOutcome | { outcome: 'lost'; message: string } | { outcome: 'error'; message: string };

/**
 * A job whose capacity request cannot reach its pool (the pool's workflow is closed) waits for the pool
 * watchdog to restart it, instead of failing; before this patch it failed as if the pool were gone.
 */
export const JOB_WAITS_FOR_POOL_PATCH = 'job-waits-for-pool-recovery';

/**
 * Jobs send their pool signals (request, release, state, host lost) through a local activity instead
 * of a workflow command: a command's delivery comes back as an event that costs the job another
 * workflow task (a round trip through a busy task queue) before it can even say QUEUED. Receivers are
 * idempotent, so the activity's at-least-once delivery is enough.
 */
export const JOB_SIGNALS_BY_ACTIVITY_PATCH = 'job-signals-by-activity';

/**
 * A deleted job's rank folders are removed by each host its ranks ran on (an activity on that host's
 * queue), before its record goes; before this patch the control worker removed them on its own machine
 * only.
 */
export const JOB_PURGES_ON_HOSTS_PATCH = 'job-purges-on-hosts';
/**
 * A queue limit that is hit wins over a grant that arrives in the same workflow task. The job's end
 * (release, FAILED report) runs as local activities in the task that decides it; if a grant arrives
 * meanwhile, the server refuses the task's completion and it runs again with both the grant and the
 * limit, and a job that then took the grant ran on capacity its pool had already been given back.
 * Histories from before it keep the old choice (the grant).
 */
export const JOB_QUEUE_LIMIT_WINS_PATCH = 'job-queue-limit-wins';

/** How long a deleted job waits for its hosts to remove its folders before its record goes anyway. */
const HOST_PURGE_WINDOW = '1 hour';

function agentOn(host: GrantedHost, settings: JobSettings) {
  return proxyActivities<AgentActivities>({
    taskQueue: host.taskQueue,
    scheduleToStartTimeout: settings.hostStartTimeoutMs,
    startToCloseTimeout: '3650 days',
    heartbeatTimeout: settings.heartbeatTimeoutMs,
    // A rank never runs twice: losing a host ends the job instead of re-running its ranks elsewhere.
    retry: { maximumAttempts: 1 },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    summary: `ranks of ${host.host}`,
  });
}

function stopperOn(host: GrantedHost, settings: JobSettings) {
  return proxyActivities<AgentActivities>({
    taskQueue: host.taskQueue,
    scheduleToCloseTimeout: settings.stopGraceMs + settings.heartbeatTimeoutMs + 10_000,
    retry: { maximumAttempts: 2, initialInterval: '1 second' },
    summary: `stop ranks on ${host.host}`,
  });
}

function purgerOn(host: GrantedHost) {
  return proxyActivities<AgentActivities>({
    taskQueue: host.taskQueue,
    scheduleToCloseTimeout: HOST_PURGE_WINDOW,
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '1 minute', backoffCoefficient: 2 },
    summary: `remove folders on ${host.host}`,
  });
}

function initialJob(input: BatchJobInput): BatchJob {
  return {
    ...input.spec,
    name: input.name,
    createTime: input.createTime,
    updateTime: input.createTime,
    createdBy: input.createdBy,
    state: 'CREATING',
    status: 'validating the job',
  };
}

function hostFailure(host: string, err: unknown, settings: JobSettings): HostResult {
  if (isCancellation(err)) return { outcome: 'stopped' };
  if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) {
    const t = err.cause.timeoutType;
    if (t === TimeoutType.HEARTBEAT) {
      return { outcome: 'lost', message: `host ${host} was lost: its agent sent no heartbeat for ${settings.heartbeatTimeoutMs / 1000}s` };
    }
    if (t === TimeoutType.SCHEDULE_TO_START) {
      return { outcome: 'lost', message: `host ${host} did not pick up its ranks within ${settings.hostStartTimeoutMs / 1000}s (is its agent running?)` };
    }
    return { outcome: 'error', message: `host ${host} timed out (${t ?? 'unknown timeout'})` };
  }
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  const message = cause instanceof Error ? cause.message : String(cause);
  return { outcome: 'error', message: `host ${host} could not run its ranks: ${message}` };
}

/** How an attempt ended, for its retry policy. An agent that stopped ranks by itself went away with its host. */
function attemptEnd(host: string, r: HostResult): AttemptEnd {
  switch (r.outcome) {
    case 'failed':
      return { kind: 'exit', exitCode: r.exitCode, signal: r.signal, outOfMemory: r.outOfMemory === true, message: r.message };
    case 'lost':
      return { kind: 'host-lost', host, message: r.message };
    case 'stopped':
      return { kind: 'host-lost', host, message: `the agent of host ${host} stopped its ranks (it shut down)` };
    case 'error':
      return { kind: 'error', message: r.message };
    case 'succeeded':
      return { kind: 'error', message: `host ${host} succeeded` };
  }
}

function summariseHosts(grant: CapacityGrant): string {
  return grant.hosts.map((h) => `${h.host} (${h.slots.length})`).join(', ');
}

export async function batchJobWorkflow(input: BatchJobInput): Promise<BatchJobResult> {
  let job = initialJob(input);
  let version = 1;
  let reported = 0;
  let finished = false;
  let placement: BatchJobView['placement'];
  let cancelBy: string | undefined;
  let deleteBy: string | undefined;
  let grant: CapacityGrant | undefined;
  let refusal: string | undefined;
  const startedHosts = new Set<string>();
  const results = new Map<string, HostResult>();
  /** Every host any attempt's ranks were handed to: a delete removes their folders there. */
  const ranOn = new Map<string, GrantedHost>();
  let attempt = 1;
  /** Who preempted the current attempt (its pool asked for its capacity back), and why. */
  let preemption: { by: string; reason?: string } | undefined;
  /** Jobs waiting on this one (their dependsOn), told when it ends. */
  const watchers = new Set<string>();
  /** How the jobs this one depends on ended, as they told it (null: deleted). */
  const dependencyEnds = new Map<string, JobState | null>();

  const requester = (r: StopRequest | undefined) => (typeof r?.requestedBy === 'string' && r.requestedBy ? r.requestedBy : 'an operator');
  const stopWanted = () => cancelBy !== undefined || deleteBy !== undefined;

  setHandler(getBatchJobQuery, () => ({ job, version, ...(placement ? { placement } : {}) }), {
    description: 'The batch job resource as the API returns it, its version, and where its ranks run.',
  });
  setHandler(
    cancelSignal,
    (request) => {
      if (cancelBy !== undefined || deleteBy !== undefined) return;
      if (!isCancellable(job.state)) {
        log.info('cancel ignored', { state: job.state });
        return;
      }
      cancelBy = requester(request);
    },
    { description: 'Cancel the job: stop its ranks, release its capacity, end CANCELLED. Payload: {"requestedBy": "<who>"} (optional).' },
  );
  setHandler(
    deleteSignal,
    (request) => {
      if (deleteBy === undefined) deleteBy = requester(request);
    },
    { description: 'Delete the job: stop it if it runs, release its capacity, then remove it and its logs.' },
  );
  setHandler(capacityGrantedSignal, (g) => {
    if (!grant) grant = g;
  });
  setHandler(capacityRefusedSignal, ({ reason }) => {
    refusal ??= reason;
  });
  setHandler(ranksStartedSignal, ({ host }) => {
    startedHosts.add(host);
  });
  setHandler(preemptSignal, ({ by, reason }) => {
    // Only an attempt that holds capacity can be preempted; the first request wins.
    if (preemption === undefined && (job.state === 'PENDING' || job.state === 'RUNNING') && typeof by === 'string') {
      preemption = { by, ...(typeof reason === 'string' ? { reason } : {}) };
    }
  });
  setHandler(watchEndSignal, ({ watcher }) => {
    if (typeof watcher === 'string' && watcher) watchers.add(watcher);
  });
  setHandler(dependencyEndedSignal, ({ batchJob, state }) => {
    if (typeof batchJob === 'string' && !dependencyEnds.has(batchJob)) dependencyEnds.set(batchJob, state ?? null);
  });
  setHandler(
    updateBatchJobUpdate,
    async (patch: BatchJobPatch) => {
      job = applyBatchJobPatch(job, patch, now());
      version++;
      upsertSearchAttributes([{ key: BatchJobDisplayName, value: job.displayName ?? '' }]);
      upsertMemo({ displayName: job.displayName ?? null });
      const mine = version;
      await condition(() => reported >= mine);
      return job;
    },
    {
      validator: (patch: BatchJobPatch) => {
        if (job.state === 'DELETING' || deleteBy !== undefined) {
          throw apiFailure('FAILED_PRECONDITION', 'the job is being deleted');
        }
        const problem = patchProblem(patch);
        if (problem) throw apiFailure('INVALID_ARGUMENT', problem);
      },
      description: 'Change displayName, annotations or shared; returns the job once the change is visible to list.',
    },
  );

  // Temporal's own cancellation (`temporal workflow cancel`) is a cancel request like any other.
  CancellationScope.current().cancelRequested.catch(() => {
    const parent = workflowInfo().parent;
    if (cancelBy === undefined && deleteBy === undefined && isCancellable(job.state)) {
      cancelBy = parent ? `its parent workflow ${parent.workflowId}` : 'an operator (workflow cancellation)';
    }
  });

  const describe = (): string => {
    const lines = [`**${job.state}** · ${job.status}`, '', `${job.numRanks} rank(s) on node pool \`${job.nodePoolId}\`, created by ${job.createdBy}`];
    if (placement) {
      const byHost = new Map<string, number[]>();
      for (const r of placement.ranks) byHost.set(r.host, [...(byHost.get(r.host) ?? []), r.rank]);
      lines.push('', `master ${placement.masterAddr}:${placement.masterPort}`, '');
      for (const [host, ranks] of byHost) lines.push(`- ${host}: ranks ${ranks.join(', ')}`);
    }
    return lines.join('\n');
  };

  const transition = (event: LifecycleEvent): void => {
    const before = job.state;
    job = apply(job, event, now());
    version++;
    if (job.state !== before) upsertSearchAttributes([{ key: BatchJobState, value: job.state }]);
    setCurrentDetails(describe());
  };

  if (workflowInfo().typedSearchAttributes.get(BatchdAccount) === undefined) {
    // Started without our attributes (e.g. by a parent workflow that set none): add them now.
    upsertSearchAttributes(jobSearchAttributes(input.account, job));
    upsertMemo(jobMemo(job));
  }
  setCurrentDetails(describe());

  // Every change reaches the read model in order; a PATCH waits for its own version to land. Like the
  // job's body, the reporter ignores cancellation: a cancelled job still reports how it ended.
  const reporter = CancellationScope.nonCancellable(async () => {
    for (;;) {
      await condition(() => version > reported || finished);
      if (version <= reported) return;
      const v = version;
      await control.report({ kind: 'batchJobs', account: input.account, resource: job, version: v });
      reported = v;
    }
  });

  const finish = async (deleted: boolean): Promise<BatchJobResult> => {
    await condition(() => reported >= version);
    if (deleted && ranOn.size > 0 && patched(JOB_PURGES_ON_HOSTS_PATCH)) {
      const hosts = [...ranOn.values()];
      transition({ type: 'status', status: `${job.status}; removing its ranks' folders on ${hosts.map((h) => h.host).join(', ')}` });
      await Promise.all(
        hosts.map((h) =>
          purgerOn(h)
            .purgeRanks({ jobName: input.name, account: input.account, jobId: input.jobId })
            .catch((err: unknown) => log.warn(`host ${h.host} did not remove the job's folders within ${HOST_PURGE_WINDOW}; they stay there`, { err: String(err) })),
        ),
      );
      await condition(() => reported >= version);
    }
    if (deleted) await control.purgeJob({ account: input.account, name: input.name, jobId: input.jobId });
    // After the final record is written: a job that asks later reads it there (control.watchJobs).
    if (watchers.size > 0) await control.notifyJobEnded({ job: input.name, state: deleted ? null : job.state, watchers: [...watchers] });
    await condition(allHandlersFinished);
    finished = true;
    await reporter;
    return { job, deleted };
  };

  return CancellationScope.nonCancellable(async (): Promise<BatchJobResult> => {
    const lean = patched(JOB_SIGNALS_BY_ACTIVITY_PATCH);
    // ---- CREATING: validate, find the pool ---------------------------------------------------
    // Admitted once: by the API when it started this workflow, else (parent workflows) here.
    const given = input.settings;
    const admitted = input.spec.environmentId === undefined ? input.admitted : undefined;
    const validation: ValidateJobResult =
      admitted && given
        ? { ok: true, spec: input.spec, pool: admitted.pool, settings: given, ...(admitted.imageRef !== undefined ? { imageRef: admitted.imageRef } : {}) }
        : await control.validateJob({ name: input.name, account: input.account, spec: input.spec, createdBy: input.createdBy });
    if (!validation.ok) {
      if (deleteBy !== undefined) {
        transition({ type: 'delete-requested', status: `being deleted by ${deleteBy}` });
        return finish(true);
      }
      transition({ type: 'invalid', status: `invalid job: ${validation.message}` });
      return deleteAfterEnd();
    }
    const settings = input.settings ?? validation.settings;
    const spec = validation.spec;
    const imageRef = validation.imageRef;
    const policy = spec.retryPolicy;
    const maxAttempts = policy?.maxAttempts ?? 1;
    const queueLimitMs = spec.maxQueueDuration !== undefined ? durationMs(spec.maxQueueDuration) : undefined;
    const runLimitMs = spec.maxRunDuration !== undefined ? durationMs(spec.maxRunDuration) : undefined;
    const poolBinding: PoolBinding = validation.pool;
    const pool = getExternalWorkflowHandle(poolBinding.workflowId);
    const unit = poolBinding.gpu ? 'GPU' : 'host';
    const runtimeNote =
      imageRef !== undefined
        ? `; the local runtime runs ranks directly on the host (image ${imageRef} is exposed as BATCH_JOB_IMAGE_REF, not pulled)`
        : '';
    if (policy && job.attempt === undefined) job = { ...job, attempt };
    /** "attempt 2 of 3: " on a job that may retry; nothing on one that runs once. */
    const attemptPrefix = () => (maxAttempts > 1 ? `attempt ${attempt} of ${maxAttempts}: ` : '');

    /** Sends a signal to the pool; false when its workflow is not running. */
    const toPool = async (signal: PoolSignal): Promise<boolean> => {
      if (lean) return (await control.signalPool({ pool: poolBinding.workflowId, signal })).delivered;
      try {
        await sendPoolSignal(pool, signal);
        return true;
      } catch {
        return false;
      }
    };

    let released = false;
    const releaseCapacity = async (): Promise<void> => {
      if (released) return;
      released = true;
      if (!(await toPool({ name: 'releaseCapacity', args: { jobName: input.name } }))) {
        log.warn('node pool not running while releasing capacity; it finds the job ended when it checks its holders');
      }
    };
    // Stats only; a pool that is not running has no stats to keep.
    const tellPool = async (state: BatchJob['state']): Promise<void> => void (await toPool({ name: 'jobState', args: { jobName: input.name, state } }));

    // Ends a job that holds no ranks (yet): withdraw from the queue and settle the stop request.
    const stopBeforeRunning = async (): Promise<BatchJobResult> => {
      if (deleteBy !== undefined) {
        transition({ type: 'delete-requested', status: `being deleted by ${deleteBy}` });
        await releaseCapacity();
        return finish(true);
      }
      transition({ type: 'cancel-requested', status: `cancelling at the request of ${cancelBy ?? 'an operator'}` });
      await releaseCapacity();
      transition({ type: 'cancelled', status: `cancelled by ${cancelBy ?? 'an operator'} before it started` });
      return deleteAfterEnd();
    };

    // maxQueueDuration: a clock per stay in QUEUED (the first, and each retry's); only the current one counts.
    let queueStay = 0;
    let queueLimitHit = false;
    const startQueueClock = (): void => {
      if (queueLimitMs === undefined) return;
      const stay = ++queueStay;
      queueLimitHit = false;
      void sleep(queueLimitMs).then(() => {
        if (stay === queueStay && job.state === 'QUEUED') queueLimitHit = true;
      });
    };
    /** Into QUEUED (or a new reason while there): the first time, validation's transition, and the queue clock starts. */
    const queuedBecause = (status: string): void => {
      if (job.state === 'CREATING') {
        transition({ type: 'validated', status });
        startQueueClock();
      } else if (status !== job.status) {
        transition({ type: 'status', status });
      }
    };
    const failQueueLimit = async (waitingFor: string): Promise<BatchJobResult> => {
      await releaseCapacity();
      transition({ type: 'failed', status: `${attemptPrefix()}waited longer than its maxQueueDuration (${spec.maxQueueDuration}) ${waitingFor}; it ended without running` });
      return deleteAfterEnd();
    };

    if (stopWanted()) return stopBeforeRunning();

    // ---- QUEUED behind its dependencies ------------------------------------------------------
    if (spec.dependsOn && spec.dependsOn.length > 0) {
      const verdict = await awaitDependencies(spec.dependsOn, queuedBecause, () => queueLimitHit);
      if (verdict !== 'met') {
        released = true; // nothing was asked of the pool yet
        if (verdict === 'stop') return stopBeforeRunning();
        if (verdict === 'queue-limit') return failQueueLimit('for its dependencies');
        transition({ type: 'failed', status: verdict.impossible });
        return deleteAfterEnd();
      }
    }

    // ---- one attempt after another: QUEUED → PENDING → RUNNING, then an end or a retry ---------
    const avoid = new Set<string>();
    for (;;) {
      const outcome = await runAttempt();
      if (outcome.kind === 'ended') return outcome.result;
      for (const host of outcome.avoid) avoid.add(host);
      const ended = attempt;
      attempt++;
      job = { ...job, attempt };
      grant = undefined;
      refusal = undefined;
      preemption = undefined;
      transition({
        type: 'requeued',
        status: `attempt ${ended} of ${maxAttempts} failed: ${outcome.message}; retrying because ${outcome.why}, as attempt ${attempt} in ${formatDuration(outcome.delayMs)}`,
      });
      startQueueClock();
      await condition(() => stopWanted() || queueLimitHit, outcome.delayMs);
      if (grant !== undefined) {
        // A grant that came while nothing was asked (a pool recovering from before the release): give it back.
        grant = undefined;
        released = false;
        await releaseCapacity();
      }
      startedHosts.clear();
      results.clear();
      placement = undefined;
      released = true; // the failed attempt's capacity went back before the retry was announced
      if (stopWanted()) return stopBeforeRunning();
      if (queueLimitHit) return failQueueLimit('before its retry could queue');
      released = false;
    }

    type AttemptOutcome = { kind: 'ended'; result: BatchJobResult } | { kind: 'retry'; delayMs: number; why: string; message: string; avoid: string[] };

    async function runAttempt(): Promise<AttemptOutcome> {
      const ended = (result: BatchJobResult): AttemptOutcome => ({ kind: 'ended', result });
      /** After a failed attempt has stopped and released: the retry its policy grants, or FAILED saying why not. */
      const retryOrFail = async (end: AttemptEnd, message: string, avoidNext: string[]): Promise<AttemptOutcome> => {
        const decision = retryDecision(policy, attempt, end);
        if (!decision.retry || stopWanted()) {
          const why = decision.retry ? `a ${deleteBy !== undefined ? 'delete' : 'cancel'} was asked for` : decision.why;
          transition({ type: 'failed', status: `${attemptPrefix()}${message}; not retried: ${why}` });
          return ended(await deleteAfterEnd());
        }
        return { kind: 'retry', delayMs: decision.delayMs, why: decision.why, message, avoid: avoidNext };
      };
      // ---- QUEUED: wait for the pool's grant ------------------------------------------------
      const request = {
        jobName: input.name,
        workflowId: workflowInfo().workflowId,
        ranks: job.numRanks,
        ...(avoid.size > 0 ? { avoidHosts: [...avoid] } : {}),
        // Data in the request only: pools from before sharing ignore it.
        ...requestTermsOf(input.account, spec, attempt),
      };
      const delivered = await toPool({ name: 'requestCapacity', args: request });
      if (!delivered) {
        // A pool that still exists only has its workflow closed: the watchdog restarts it, and the
        // recovered pool queues this job from its QUEUED record (pool-recovery.ts).
        if (!patched(JOB_WAITS_FOR_POOL_PATCH) || !(await control.poolExists({ pool: poolBinding.workflowId }))) {
          transition({ type: 'invalid', status: `node pool ${job.nodePoolId} no longer exists` });
          return ended(await deleteAfterEnd());
        }
      }
      queuedBecause(
        attemptPrefix() +
          (delivered
            ? `queued in node pool ${job.nodePoolId}: waiting for ${job.numRanks} ${unit}${job.numRanks === 1 ? '' : 's'}`
            : `queued: waiting for node pool ${job.nodePoolId} to be restarted (its workflow is not running), then for ${job.numRanks} ${unit}${job.numRanks === 1 ? '' : 's'}`),
      );
      // Undelivered, it also asks again now and then, in case the recovered pool's scan came too early.
      const answered = () => grant !== undefined || refusal !== undefined || stopWanted() || queueLimitHit;
      if (delivered) await condition(answered);
      else {
        while (!(await condition(answered, '30 seconds'))) {
          if (await toPool({ name: 'requestCapacity', args: request })) break;
          log.warn('node pool still not running; waiting for it to be restarted');
        }
        await condition(answered);
      }
      if (!grant && refusal !== undefined) {
        released = true; // a refused request holds nothing
        transition({ type: 'failed', status: refusal });
        return ended(await deleteAfterEnd());
      }
      if (queueLimitHit && !stopWanted() && (!grant || patched(JOB_QUEUE_LIMIT_WINS_PATCH))) return ended(await failQueueLimit(`in node pool ${job.nodePoolId}'s queue`));
      if (!grant || stopWanted()) return ended(await stopBeforeRunning());
      const g: CapacityGrant = grant;

      // ---- PENDING: hand each host its ranks ------------------------------------------------
      const hostRanks = numberRanks(g.hosts.map((h) => ({ host: h.host, slots: h.slots })));
      const master = g.hosts[0];
      if (!master) throw ApplicationFailure.nonRetryable('a grant without hosts');
      placement = {
        masterAddr: master.address,
        masterPort: g.masterPort,
        ranks: hostRanks.flatMap((h) => h.ranks.map((r) => ({ rank: r.rank, host: h.host, slot: r.slot }))),
      };
      transition({
        type: 'granted',
        status: `${attemptPrefix()}starting ${job.numRanks} rank${job.numRanks === 1 ? '' : 's'} on ${g.hosts.length} host${g.hosts.length === 1 ? '' : 's'}: ${summariseHosts(g)}`,
      });
      const executor = executorOf(spec);
      const launches: Array<{ host: GrantedHost; input: HostRunInput }> = hostRanks.map((hr, i) => {
        const host = g.hosts[i];
        if (!host) throw ApplicationFailure.nonRetryable('placement and grant disagree');
        return {
          host,
          input: {
            jobName: input.name,
            jobId: input.jobId,
            account: input.account,
            workflowId: workflowInfo().workflowId,
            host: host.host,
            executor,
            stopGraceMs: settings.stopGraceMs,
            ...(g.rankMemoryLimitBytes !== undefined ? { rankMemoryLimitBytes: g.rankMemoryLimitBytes } : {}),
            ...(policy ? { attempt } : {}),
            ranks: hr.ranks.map((rank) => ({
              rank: rank.rank,
              env: rankEnvironment({
                jobName: input.name,
                jobId: input.jobId,
                worldSize: job.numRanks,
                nnodes: g.hosts.length,
                nodeRank: hr.nodeRank,
                localWorldSize: hr.ranks.length,
                rank,
                masterAddr: master.address,
                masterPort: g.masterPort,
                gpu: g.gpu,
                ...(imageRef !== undefined ? { imageRef } : {}),
                userEnv: spec.envVars,
                attempt,
              }),
            })),
          },
        };
      });

      for (const h of g.hosts) ranOn.set(h.host, h);
      const hostScope = new CancellationScope();
      const runs = launches.map(({ host, input: hostInput }) =>
        hostScope
          .run(() => agentOn(host, settings).runRanks(hostInput))
          .then(
            (outcome) => {
              results.set(host.host, outcome);
            },
            (err: unknown) => {
              results.set(host.host, hostFailure(host.host, err, settings));
            },
          ),
      );

      // 'stopped' is only expected once this job asked its hosts to stop; before that, an agent stopped
      // the ranks by itself (it shut down), which ends the job like any other host problem.
      let stopping = false;
      let runLimitHit = false;
      const firstProblem = (): [string, HostResult] | undefined =>
        [...results.entries()].find(([, r]) => r.outcome !== 'succeeded' && (r.outcome !== 'stopped' || !stopping));
      const allSucceeded = () => results.size === g.hosts.length && [...results.values()].every((r) => r.outcome === 'succeeded');
      const allStarted = () => g.hosts.every((h) => startedHosts.has(h.host) || results.get(h.host)?.outcome === 'succeeded');

      const stopHosts = async (): Promise<void> => {
        stopping = true;
        const unfinished = g.hosts.filter((h) => !results.has(h.host));
        const stops = unfinished.map((h) =>
          stopperOn(h, settings)
            .stopRanks({ jobName: input.name, graceMs: settings.stopGraceMs, ...(policy ? { attempt } : {}) })
            .catch(() => undefined),
        );
        hostScope.cancel();
        await Promise.all([...runs, ...stops]);
      };
      const reportLostHosts = async (): Promise<void> => {
        for (const [host, r] of results) {
          // A pool that is not running has no host to mark.
          if (r.outcome === 'lost') await toPool({ name: 'hostLost', args: { host, reason: r.message } });
        }
      };

      // ---- RUNNING until every rank ends, one fails, the run limit passes, or a stop is asked for
      for (;;) {
        await condition(
          () => (job.state === 'PENDING' && allStarted()) || allSucceeded() || firstProblem() !== undefined || stopWanted() || runLimitHit || preemption !== undefined,
        );
        if (job.state === 'PENDING' && allStarted()) {
          transition({
            type: 'started',
            status: `${attemptPrefix()}running ${job.numRanks} rank${job.numRanks === 1 ? '' : 's'} on ${g.hosts.length} host${g.hosts.length === 1 ? '' : 's'}: ${summariseHosts(g)}${runtimeNote}`,
          });
          if (runLimitMs !== undefined) {
            const running = attempt;
            void sleep(runLimitMs).then(() => {
              if (running === attempt && job.state === 'RUNNING') runLimitHit = true;
            });
          }
          await tellPool('RUNNING');
          continue;
        }
        if (allSucceeded()) {
          await Promise.all(runs);
          await releaseCapacity();
          const used = usageSummary([...results.values()].flatMap((r) => (r.outcome === 'succeeded' ? (r.usage ?? []) : [])));
          transition({
            type: 'succeeded',
            status: `${attemptPrefix()}all ${job.numRanks} rank${job.numRanks === 1 ? '' : 's'} exited with code 0${used ? `; ${used}` : ''}`,
          });
          return ended(await deleteAfterEnd());
        }
        const problem = firstProblem();
        if (problem && !stopWanted()) {
          // The first failure decides the status; everything else is stopped before capacity is released.
          await stopHosts();
          await reportLostHosts();
          await releaseCapacity();
          const message = describeProblem(problem[0], problem[1]);
          if (!policy) {
            transition({ type: 'failed', status: message });
            return ended(await deleteAfterEnd());
          }
          const failedHosts = [...results.entries()].filter(([, r]) => r.outcome !== 'succeeded' && r.outcome !== 'stopped').map(([h]) => h);
          return retryOrFail(attemptEnd(problem[0], problem[1]), message, [...new Set([problem[0], ...failedHosts])]);
        }
        if (preemption !== undefined && !stopWanted()) {
          const by = preemption;
          await stopHosts();
          await reportLostHosts();
          await releaseCapacity();
          const message = `preempted by batch job ${by.by.split('/').pop() ?? by.by}${by.reason ? ` (${by.reason})` : ''}: its ranks were stopped`;
          return retryOrFail({ kind: 'preempted', message }, message, []);
        }
        if (runLimitHit && !stopWanted()) {
          await stopHosts();
          await reportLostHosts();
          await releaseCapacity();
          transition({
            type: 'failed',
            status: `${attemptPrefix()}ran longer than its maxRunDuration (${spec.maxRunDuration}): its ranks were stopped (SIGTERM, then SIGKILL after ${settings.stopGraceMs / 1000}s)`,
          });
          return ended(await deleteAfterEnd());
        }
        // A stop was asked for.
        if (deleteBy !== undefined) {
          transition({ type: 'delete-requested', status: `being deleted by ${deleteBy}: stopping its ranks` });
        } else {
          transition({ type: 'cancel-requested', status: `cancelling at the request of ${cancelBy ?? 'an operator'}: stopping its ranks` });
        }
        await tellPool(job.state);
        await stopHosts();
        await reportLostHosts();
        await releaseCapacity();
        if (deleteBy !== undefined) return ended(await finish(true));
        const lost = [...results.entries()].find(([, r]) => r.outcome === 'lost' || r.outcome === 'error');
        if (lost) transition({ type: 'failed', status: `cancel could not confirm every rank stopped: ${describeProblem(lost[0], lost[1])}` });
        else transition({ type: 'cancelled', status: `cancelled by ${cancelBy ?? 'an operator'}` });
        return ended(await deleteAfterEnd());
      }
    }
  });

  /**
   * Waits QUEUED until every dependency is met. It asks each dependency to say when it ends, then reads
   * how far each has got; the status names what it still waits for. Ends early on a stop, on the
   * queue limit, or when a dependency can no longer be met.
   */
  async function awaitDependencies(
    deps: JobDependency[],
    queuedBecause: (status: string) => void,
    queueLimitHit: () => boolean,
  ): Promise<'met' | 'stop' | 'queue-limit' | { impossible: string }> {
    const { states } = await control.watchJobs({ watcher: workflowInfo().workflowId, jobs: deps.map((d) => d.batchJob) });
    const lastSeen = new Map<string, JobState | null>();
    for (const [name, state] of Object.entries(states)) {
      lastSeen.set(name, state);
      if (!dependencyEnds.has(name) && (state === null || isTerminal(state))) dependencyEnds.set(name, state);
    }
    const id = (name: string) => name.split('/').pop() ?? name;
    for (;;) {
      const waiting: string[] = [];
      for (const d of deps) {
        const end = dependencyEnds.get(d.batchJob);
        const verdict = end === undefined ? 'waiting' : dependencyVerdict(d.condition, end ?? undefined);
        if (verdict === 'impossible') {
          return { impossible: `dependency ${id(d.batchJob)} ${end === null ? 'was deleted' : `ended ${end}`}, and this job needed it to end ${d.condition}; it never ran` };
        }
        if (verdict === 'waiting') {
          const seen = lastSeen.get(d.batchJob);
          waiting.push(`${id(d.batchJob)} to end${d.condition === 'ENDED' ? '' : ` ${d.condition}`}${seen ? ` (${seen} when last seen)` : ''}`);
        }
      }
      if (waiting.length === 0) return 'met';
      queuedBecause(`waiting for its dependencies: batch job ${waiting.join(', batch job ')}`);
      const known = dependencyEnds.size;
      await condition(() => dependencyEnds.size > known || stopWanted() || queueLimitHit());
      if (stopWanted()) return 'stop';
      if (dependencyEnds.size === known && queueLimitHit()) return 'queue-limit';
    }
  }

  /** A job that ended may still be deleted before the workflow closes (a delete racing the end). */
  async function deleteAfterEnd(): Promise<BatchJobResult> {
    if (deleteBy !== undefined) {
      transition({ type: 'delete-requested', status: `being deleted by ${deleteBy}` });
      return finish(true);
    }
    return finish(false);
  }
}

function describeProblem(host: string, r: HostResult): string {
  switch (r.outcome) {
    case 'failed':
    case 'lost':
    case 'error':
      return r.message;
    case 'stopped':
      return `the agent of host ${host} stopped its ranks (it shut down)`;
    case 'succeeded':
      return `host ${host} succeeded`;
  }
}
