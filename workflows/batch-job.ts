/**
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
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { AgentActivities, HostOutcome, HostRunInput, PoolBinding, PoolSignal } from '../activities/contracts';
import { type BatchJob, executorOf } from '../src/domain/batch-job-model';
import { apply, isCancellable, type LifecycleEvent } from '../src/domain/batch-job-lifecycle';
import { applyBatchJobPatch, type BatchJobPatch, patchProblem } from '../src/domain/batch-job-patch';
import { usageSummary } from '../src/domain/isolation';
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
  getBatchJobQuery,
  type GrantedHost,
  type JobSettings,
  ranksStartedSignal,
  type StopRequest,
  sendPoolSignal,
  updateBatchJobUpdate,
} from './messages';
import { control } from './control';
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

function now(): string {
  return new Date().toISOString();
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
    if (deleted) await control.purgeJob({ account: input.account, name: input.name, jobId: input.jobId });
    await condition(allHandlersFinished);
    finished = true;
    await reporter;
    return { job, deleted };
  };

  return CancellationScope.nonCancellable(async (): Promise<BatchJobResult> => {
    const lean = patched(JOB_SIGNALS_BY_ACTIVITY_PATCH);
    // ---- CREATING: validate, find the pool ---------------------------------------------------
    const validation = await control.validateJob({ name: input.name, account: input.account, spec: input.spec, createdBy: input.createdBy });
    if (!validation.ok) {
      if (deleteBy !== undefined) {
        transition({ type: 'delete-requested', status: `being deleted by ${deleteBy}` });
        return finish(true);
      }
      transition({ type: 'invalid', status: `invalid job: ${validation.message}` });
      return deleteAfterEnd();
    }
    const settings = input.settings ?? validation.settings;
    const poolBinding: PoolBinding = validation.pool;
    const pool = getExternalWorkflowHandle(poolBinding.workflowId);
    const unit = poolBinding.gpu ? 'GPU' : 'host';
    const runtimeNote =
      validation.imageRef !== undefined
        ? `; the local runtime runs ranks directly on the host (image ${validation.imageRef} is exposed as BATCH_JOB_IMAGE_REF, not pulled)`
        : '';

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

    if (stopWanted()) return stopBeforeRunning();

    // ---- QUEUED: wait for the pool's grant --------------------------------------------------
    const request = { jobName: input.name, workflowId: workflowInfo().workflowId, ranks: job.numRanks };
    const delivered = await toPool({ name: 'requestCapacity', args: request });
    if (!delivered) {
      // A pool that still exists only has its workflow closed: the watchdog restarts it, and the
      // recovered pool queues this job from its QUEUED record (pool-recovery.ts).
      if (!patched(JOB_WAITS_FOR_POOL_PATCH) || !(await control.poolExists({ pool: poolBinding.workflowId }))) {
        transition({ type: 'invalid', status: `node pool ${job.nodePoolId} no longer exists` });
        return deleteAfterEnd();
      }
    }
    transition({
      type: 'validated',
      status: delivered
        ? `queued in node pool ${job.nodePoolId}: waiting for ${job.numRanks} ${unit}${job.numRanks === 1 ? '' : 's'}`
        : `queued: waiting for node pool ${job.nodePoolId} to be restarted (its workflow is not running), then for ${job.numRanks} ${unit}${job.numRanks === 1 ? '' : 's'}`,
    });
    // Undelivered, it also asks again now and then, in case the recovered pool's scan came too early.
    const answered = () => grant !== undefined || refusal !== undefined || stopWanted();
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
      return deleteAfterEnd();
    }
    if (!grant || stopWanted()) return stopBeforeRunning();
    const g: CapacityGrant = grant;

    // ---- PENDING: hand each host its ranks --------------------------------------------------
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
      status: `starting ${job.numRanks} rank${job.numRanks === 1 ? '' : 's'} on ${g.hosts.length} host${g.hosts.length === 1 ? '' : 's'}: ${summariseHosts(g)}`,
    });
    const executor = executorOf(validation.spec);
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
              ...(validation.imageRef !== undefined ? { imageRef: validation.imageRef } : {}),
              userEnv: validation.spec.envVars,
            }),
          })),
        },
      };
    });

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
    const firstProblem = (): [string, HostResult] | undefined =>
      [...results.entries()].find(([, r]) => r.outcome !== 'succeeded' && (r.outcome !== 'stopped' || !stopping));
    const allSucceeded = () => results.size === g.hosts.length && [...results.values()].every((r) => r.outcome === 'succeeded');
    const allStarted = () => g.hosts.every((h) => startedHosts.has(h.host) || results.get(h.host)?.outcome === 'succeeded');

    const stopHosts = async (): Promise<void> => {
      stopping = true;
      const unfinished = g.hosts.filter((h) => !results.has(h.host));
      const stops = unfinished.map((h) =>
        stopperOn(h, settings)
          .stopRanks({ jobName: input.name, graceMs: settings.stopGraceMs })
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

    // ---- RUNNING until every rank ends, one fails, or a stop is asked for ----------------------
    for (;;) {
      await condition(() => (job.state === 'PENDING' && allStarted()) || allSucceeded() || firstProblem() !== undefined || stopWanted());
      if (job.state === 'PENDING' && allStarted()) {
        transition({
          type: 'started',
          status: `running ${job.numRanks} rank${job.numRanks === 1 ? '' : 's'} on ${g.hosts.length} host${g.hosts.length === 1 ? '' : 's'}: ${summariseHosts(g)}${runtimeNote}`,
        });
        await tellPool('RUNNING');
        continue;
      }
      if (allSucceeded()) {
        await Promise.all(runs);
        await releaseCapacity();
        const used = usageSummary([...results.values()].flatMap((r) => (r.outcome === 'succeeded' ? (r.usage ?? []) : [])));
        transition({ type: 'succeeded', status: `all ${job.numRanks} rank${job.numRanks === 1 ? '' : 's'} exited with code 0${used ? `; ${used}` : ''}` });
        return deleteAfterEnd();
      }
      const problem = firstProblem();
      if (problem && !stopWanted()) {
        // The first failure decides the status; everything else is stopped before capacity is released.
        await stopHosts();
        await reportLostHosts();
        await releaseCapacity();
        transition({ type: 'failed', status: describeProblem(problem[0], problem[1]) });
        return deleteAfterEnd();
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
      if (deleteBy !== undefined) return finish(true);
      const lost = [...results.entries()].find(([, r]) => r.outcome === 'lost' || r.outcome === 'error');
      if (lost) transition({ type: 'failed', status: `cancel could not confirm every rank stopped: ${describeProblem(lost[0], lost[1])}` });
      else transition({ type: 'cancelled', status: `cancelled by ${cancelBy ?? 'an operator'}` });
      return deleteAfterEnd();
    }
  });

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
