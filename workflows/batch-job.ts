/**
 * One workflow per batch job (types `batchJobWorkflowV3`, which the API and parent workflows start, and
 * `batchJobWorkflowV2`, which they started before: V3 claims capacity in the pool's store first); its state is the job. It queues for capacity
 * at the node pool's workflow, starts each host's ranks through that host's agent, watches them, and on
 * any ending (success, failure, cancel, delete, a lost host) stops what still runs, releases the
 * capacity once, and reports the final job before it completes.
 *
 * Cancel and delete arrive as signals (or as Temporal's own cancellation, treated as cancel); a PATCH
 * arrives as an update; `getBatchJob` answers the current job at any time. The job's state and the
 * rules of which message counts are JobWorkflowState (src/domain/job-workflow-state.ts), and an
 * attempt's from its grant to its end AttemptWatch (src/domain/job-attempt.ts): this file feeds them
 * messages and results and carries out the flow, the reports and the activities.
 *
 * V2 is V1 (workflows/batch-job-v1.ts, frozen) with every patch of V1 in force and none of their
 * markers: a job is short-lived, so a new type for new starts is cheaper than a patch marker (and the
 * search-attribute upsert that sdk-core adds to each) in every job's history. V2 also leaves out what
 * nothing needs: the report of CREATING that the API already wrote, and the PENDING search attribute
 * (visibility's BatchJobState goes QUEUED → RUNNING → the end; the read model and the API have
 * PENDING). From here on, a change of V2's command order goes behind `patched()` as anywhere else.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  allHandlersFinished,
  condition,
  isCancellation,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { AgentActivities, HostRunInput, PoolBinding, PoolSignal, ValidateJobResult } from '../activities/contracts';
import { type BatchJob, type BatchJobState as JobState, creatingStatus, executorOf, isTerminal, type JobDependency } from '../src/domain/batch-job-model';
import { type LifecycleEvent } from '../src/domain/batch-job-lifecycle';
import { type BatchJobPatch } from '../src/domain/batch-job-patch';
import { attemptEnd, type AttemptStep, AttemptWatch, describeProblem, type HostResult, ranksOnHosts, summariseHosts } from '../src/domain/job-attempt';
import { type AttemptEnd, dependencyVerdict, durationMs, formatDuration, retryDecision } from '../src/domain/job-policy';
import { JobWorkflowState, requesterOf } from '../src/domain/job-workflow-state';
import { requestTermsOf } from '../src/domain/sharing';
import { numberRanks, rankEnvironment } from '../src/domain/ranks';
import {
  type BatchJobInput,
  type BatchJobResult,
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
  updateBatchJobUpdate,
  watchEndSignal,
} from './messages';
import { controlInOrder as control } from './control';
import { now } from './clock';
import { rule } from './failures';
import { BatchdAccount, BatchJobDisplayName, BatchJobState, jobMemo, jobSearchAttributes } from './search-attributes';


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
    // As the API wrote it (version 1) for a job it admitted.
    status: creatingStatus(input.admitted !== undefined, input.spec.nodePoolId),
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

/** Jobs the API started before claims (and children that parents started before them): every request goes to the pool's workflow. */
export async function batchJobWorkflowV2(input: BatchJobInput): Promise<BatchJobResult> {
  return runBatchJob(input, false);
}

/**
 * V2 whose request is first claimed in the pool's store (src/domain/capacity-claim.ts): on a pool with
 * nothing waiting, the first step's local activity answers the grant, and the job starts its ranks in
 * the same task with no signal to or from the pool. A new type, not a patch: the claim's grant is data
 * that V2 code would ignore, so a V2 worker must never run a history that has one.
 */
export async function batchJobWorkflowV3(input: BatchJobInput): Promise<BatchJobResult> {
  return runBatchJob(input, true);
}

async function runBatchJob(input: BatchJobInput, claims: boolean): Promise<BatchJobResult> {
  // The API wrote the CREATING record (version 1's content) when it admitted the job; a job started
  // otherwise (a parent workflow) reports it here.
  const s = new JobWorkflowState<CapacityGrant>({ job: initialJob(input), reported: input.admitted ? 1 : 0 });
  let finished = false;
  /** The current attempt's hosts, from its grant to its end. */
  let watch: AttemptWatch | undefined;
  /** Every host any attempt's ranks were handed to: a delete removes their folders there. */
  const ranOn = new Map<string, GrantedHost>();
  let attempt = 1;

  setHandler(getBatchJobQuery, () => s.view(), {
    description: 'The batch job resource as the API returns it, its version, and where its ranks run.',
  });
  setHandler(
    cancelSignal,
    (request) => {
      if (s.askCancel(requesterOf(request)) === 'not-cancellable') log.info('cancel ignored', { state: s.state });
    },
    { description: 'Cancel the job: stop its ranks, release its capacity, end CANCELLED. Payload: {"requestedBy": "<who>"} (optional).' },
  );
  setHandler(
    deleteSignal,
    (request) => {
      s.askDelete(requesterOf(request));
    },
    { description: 'Delete the job: stop it if it runs, release its capacity, then remove it and its logs.' },
  );
  setHandler(capacityGrantedSignal, (g) => {
    s.granted(g);
  });
  setHandler(capacityRefusedSignal, ({ reason }) => {
    s.refused(reason);
  });
  setHandler(ranksStartedSignal, ({ host }) => {
    watch?.hostStarted(host);
  });
  setHandler(preemptSignal, ({ by, reason }) => {
    s.preempt(by, reason);
  });
  setHandler(watchEndSignal, ({ watcher }) => {
    s.addWatcher(watcher);
  });
  setHandler(dependencyEndedSignal, ({ batchJob, state }) => {
    s.dependencyEnded(batchJob, state);
  });
  setHandler(
    updateBatchJobUpdate,
    async (patch: BatchJobPatch) => {
      const mine = s.applyPatch(patch, now());
      upsertSearchAttributes([{ key: BatchJobDisplayName, value: s.job.displayName ?? '' }]);
      upsertMemo({ displayName: s.job.displayName ?? null });
      await condition(() => s.reported >= mine);
      return s.job;
    },
    {
      validator: (patch: BatchJobPatch) => rule(() => s.checkPatch(patch)),
      description: 'Change displayName, annotations or shared; returns the job once the change is visible to list.',
    },
  );

  // Temporal's own cancellation (`temporal workflow cancel`) is a cancel request like any other.
  CancellationScope.current().cancelRequested.catch(() => {
    const parent = workflowInfo().parent;
    s.askCancel(parent ? `its parent workflow ${parent.workflowId}` : 'an operator (workflow cancellation)');
  });

  if (workflowInfo().typedSearchAttributes.get(BatchdAccount) === undefined) {
    // Started without our attributes (e.g. by a parent workflow that set none): add them now.
    upsertSearchAttributes(jobSearchAttributes(input.account, s.job));
    upsertMemo(jobMemo(s.job));
  }
  // What visibility's BatchJobState says starts as the job's start (or the upsert above) said (the API
  // starts jobs QUEUED: JOB_STARTS_VISIBLE_AS), so the same history always takes the same path.
  s.indexedAs(workflowInfo().typedSearchAttributes.get(BatchJobState) ?? s.state);
  const transition = (event: LifecycleEvent): void => {
    const visible = s.transition(event, now());
    if (visible !== undefined) upsertSearchAttributes([{ key: BatchJobState, value: visible }]);
    setCurrentDetails(s.summary());
  };

  setCurrentDetails(s.summary());

  /** What a pool signal's step answers: whether it reached the pool, and a claimed request's grant. */
  type Sent = { delivered: boolean; grant?: CapacityGrant };
  /** Pool signals for the reporter's next step, each with whoever waits to know if it was delivered. */
  const outbox: Array<{ pool: string; signal: PoolSignal; claim: boolean; answer: (sent: Sent) => void }> = [];
  /** Signals queued or in a step not yet completed. */
  let unsent = 0;
  const toPoolOf = (pool: string, signal: PoolSignal, claim = false): Promise<Sent> =>
    new Promise((answer) => {
      unsent++;
      outbox.push({ pool, signal, claim, answer });
    });

  // Every change reaches the read model in order; a PATCH waits for its own version to land. The pool
  // signals queued since the last step go in the same local activity, before the record (`jobStep`):
  // one round trip where there were two or three, and a release still reaches the pool before the
  // final record is written. Like the job's body, the reporter ignores cancellation: a cancelled job
  // still reports how it ended.
  const reporter = CancellationScope.nonCancellable(async () => {
    for (;;) {
      await condition(() => s.unreported || outbox.length > 0 || finished);
      if (!s.unreported && outbox.length === 0) return;
      const v = s.version;
      const report = s.unreported;
      const sending = outbox.splice(0);
      const { delivered, granted } = await control.jobStep({
        signals: sending.map(({ pool, signal, claim }) => ({ pool, signal, ...(claim ? { claim: true as const } : {}) })),
        ...(report ? { report: { kind: 'batchJobs' as const, account: input.account, resource: s.job, version: v } } : {}),
      });
      s.reportedThrough(v);
      unsent -= sending.length;
      sending.forEach((out, i) => {
        const grant = granted?.[i];
        out.answer({ delivered: delivered[i] === true, ...(grant ? { grant } : {}) });
      });
    }
  });
  /** Everything changed and sent so far has landed. */
  const settled = () => !s.unreported && unsent === 0;

  const finish = async (deleted: boolean): Promise<BatchJobResult> => {
    await condition(settled);
    if (deleted && ranOn.size > 0) {
      const hosts = [...ranOn.values()];
      transition({ type: 'status', status: `${s.job.status}; removing its ranks' folders on ${hosts.map((h) => h.host).join(', ')}` });
      await Promise.all(
        hosts.map((h) =>
          purgerOn(h)
            .purgeRanks({ jobName: input.name, account: input.account, jobId: input.jobId })
            .catch((err: unknown) => log.warn(`host ${h.host} did not remove the job's folders within ${HOST_PURGE_WINDOW}; they stay there`, { err: String(err) })),
        ),
      );
      await condition(settled);
    }
    if (deleted) await control.purgeJob({ account: input.account, name: input.name, jobId: input.jobId });
    // After the final record is written: a job that asks later reads it there (control.watchJobs).
    const watchers = s.watchers;
    if (watchers.length > 0) await control.notifyJobEnded({ job: input.name, state: deleted ? null : s.state, watchers: [...watchers] });
    await condition(allHandlersFinished);
    finished = true;
    await reporter;
    return { job: s.job, deleted };
  };

  return CancellationScope.nonCancellable(async (): Promise<BatchJobResult> => {
    // ---- CREATING: validate, find the pool ---------------------------------------------------
    // Admitted once: by the API when it started this workflow, else (parent workflows) here.
    const given = input.settings;
    const admitted = input.spec.environmentId === undefined ? input.admitted : undefined;
    const validation: ValidateJobResult =
      admitted && given
        ? { ok: true, spec: input.spec, pool: admitted.pool, settings: given, ...(admitted.imageRef !== undefined ? { imageRef: admitted.imageRef } : {}) }
        : await control.validateJob({ name: input.name, account: input.account, spec: input.spec, createdBy: input.createdBy });
    if (!validation.ok) {
      if (s.deleteBy !== undefined) {
        transition({ type: 'delete-requested', status: `being deleted by ${s.deleteBy}` });
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
    const unit = poolBinding.gpu ? 'GPU' : 'host';
    const runtimeNote =
      imageRef !== undefined
        ? `; the local runtime runs ranks directly on the host (image ${imageRef} is exposed as BATCH_JOB_IMAGE_REF, not pulled)`
        : '';
    if (policy && s.job.attempt === undefined) s.setAttempt(attempt);
    /** "attempt 2 of 3: " on a job that may retry; nothing on one that runs once. */
    const attemptPrefix = () => (maxAttempts > 1 ? `attempt ${attempt} of ${maxAttempts}: ` : '');

    /** Sends a signal to the pool with the reporter's next step; not delivered when its workflow is not running. */
    const toPool = (signal: PoolSignal, claim = false): Promise<Sent> => toPoolOf(poolBinding.workflowId, signal, claim);

    // Sent, not awaited: it goes with the next step, before the record of whatever the job does next.
    let released = false;
    const releaseCapacity = (): void => {
      if (released) return;
      released = true;
      void toPool({ name: 'releaseCapacity', args: { jobName: input.name } }).then(({ delivered }) => {
        if (!delivered) log.warn('node pool not running while releasing capacity; it finds the job ended when it checks its holders');
      });
    };

    // Ends a job that holds no ranks (yet): withdraw from the queue and settle the stop request.
    const stopBeforeRunning = async (): Promise<BatchJobResult> => {
      if (s.deleteBy !== undefined) {
        transition({ type: 'delete-requested', status: `being deleted by ${s.deleteBy}` });
        releaseCapacity();
        return finish(true);
      }
      transition({ type: 'cancel-requested', status: `cancelling at the request of ${s.cancelBy ?? 'an operator'}` });
      releaseCapacity();
      transition({ type: 'cancelled', status: `cancelled by ${s.cancelBy ?? 'an operator'} before it started` });
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
        if (stay === queueStay && s.state === 'QUEUED') queueLimitHit = true;
      });
    };
    /** Into QUEUED (or a new reason while there): the first time, validation's transition, and the queue clock starts. */
    const queuedBecause = (status: string): void => {
      if (s.state === 'CREATING') {
        transition({ type: 'validated', status });
        startQueueClock();
      } else if (status !== s.job.status) {
        transition({ type: 'status', status });
      }
    };
    const failQueueLimit = async (waitingFor: string): Promise<BatchJobResult> => {
      releaseCapacity();
      transition({ type: 'failed', status: `${attemptPrefix()}waited longer than its maxQueueDuration (${spec.maxQueueDuration}) ${waitingFor}; it ended without running` });
      return deleteAfterEnd();
    };

    if (s.stopWanted) return stopBeforeRunning();

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
      s.nextAttempt(attempt);
      transition({
        type: 'requeued',
        status: `attempt ${ended} of ${maxAttempts} failed: ${outcome.message}; retrying because ${outcome.why}, as attempt ${attempt} in ${formatDuration(outcome.delayMs)}`,
      });
      startQueueClock();
      await condition(() => s.stopWanted || queueLimitHit, outcome.delayMs);
      if (s.dropGrant() !== undefined) {
        // A grant that came while nothing was asked (a pool recovering from before the release): give it back.
        released = false;
        releaseCapacity();
      }
      watch = undefined;
      s.clearPlacement();
      released = true; // the failed attempt's capacity went back before the retry was announced
      if (s.stopWanted) return stopBeforeRunning();
      if (queueLimitHit) return failQueueLimit('before its retry could queue');
      released = false;
    }

    type AttemptOutcome = { kind: 'ended'; result: BatchJobResult } | { kind: 'retry'; delayMs: number; why: string; message: string; avoid: string[] };

    async function runAttempt(): Promise<AttemptOutcome> {
      const ended = (result: BatchJobResult): AttemptOutcome => ({ kind: 'ended', result });
      /** After a failed attempt has stopped and released: the retry its policy grants, or FAILED saying why not. */
      const retryOrFail = async (end: AttemptEnd, message: string, avoidNext: string[]): Promise<AttemptOutcome> => {
        const decision = retryDecision(policy, attempt, end);
        if (!decision.retry || s.stopWanted) {
          const why = decision.retry ? `a ${s.deleteBy !== undefined ? 'delete' : 'cancel'} was asked for` : decision.why;
          transition({ type: 'failed', status: `${attemptPrefix()}${message}; not retried: ${why}` });
          return ended(await deleteAfterEnd());
        }
        return { kind: 'retry', delayMs: decision.delayMs, why: decision.why, message, avoid: avoidNext };
      };
      // ---- QUEUED: wait for the pool's grant ------------------------------------------------
      const request = {
        jobName: input.name,
        workflowId: workflowInfo().workflowId,
        ranks: s.job.numRanks,
        ...(avoid.size > 0 ? { avoidHosts: [...avoid] } : {}),
        // Data in the request only: pools from before sharing ignore it.
        ...requestTermsOf(input.account, spec, attempt),
        // A claim is this attempt's (capacity-claim.ts): its step run again gets the same grant, a retry never the last one's.
        ...(claims ? { attempt } : {}),
      };
      const wanted = `${s.job.numRanks} ${unit}${s.job.numRanks === 1 ? '' : 's'}`;
      // QUEUED as the request goes out, so that both take one step: a request almost always lands, and
      // the rare one that does not is said right after.
      queuedBecause(`${attemptPrefix()}queued in node pool ${s.job.nodePoolId}: waiting for ${wanted}`);
      // V3 claims first: on a pool with nothing waiting, the step answers the grant itself.
      const sent = await toPool({ name: 'requestCapacity', args: request }, claims);
      if (sent.grant) s.granted(sent.grant);
      const delivered = sent.delivered;
      if (!delivered) {
        // A pool that still exists only has its workflow closed: the watchdog restarts it, and the
        // recovered pool queues this job from its QUEUED record (pool-recovery.ts).
        if (!(await control.poolExists({ pool: poolBinding.workflowId }))) {
          transition({ type: 'invalid', status: `node pool ${s.job.nodePoolId} no longer exists` });
          return ended(await deleteAfterEnd());
        }
        queuedBecause(`${attemptPrefix()}queued: waiting for node pool ${s.job.nodePoolId} to be restarted (its workflow is not running), then for ${wanted}`);
      }
      // Undelivered, it also asks again now and then, in case the recovered pool's scan came too early.
      const answered = () => s.grant !== undefined || s.refusal !== undefined || s.stopWanted || queueLimitHit;
      if (delivered) await condition(answered);
      else {
        while (!(await condition(answered, '30 seconds'))) {
          if ((await toPool({ name: 'requestCapacity', args: request })).delivered) break;
          log.warn('node pool still not running; waiting for it to be restarted');
        }
        await condition(answered);
      }
      const refusal = s.refusal;
      if (!s.grant && refusal !== undefined) {
        released = true; // a refused request holds nothing
        transition({ type: 'failed', status: refusal });
        return ended(await deleteAfterEnd());
      }
      // The limit wins over a grant that came in the same task: the end (release, FAILED report) may
      // already have run in a task the server refused, and a retried task must decide the same.
      if (queueLimitHit && !s.stopWanted) return ended(await failQueueLimit(`in node pool ${s.job.nodePoolId}'s queue`));
      const g = s.grant;
      if (!g || s.stopWanted) return ended(await stopBeforeRunning());

      // ---- PENDING: hand each host its ranks ------------------------------------------------
      const hostRanks = numberRanks(g.hosts.map((h) => ({ host: h.host, slots: h.slots })));
      const master = g.hosts[0];
      if (!master) throw ApplicationFailure.nonRetryable('a grant without hosts');
      s.placed({
        masterAddr: master.address,
        masterPort: g.masterPort,
        ranks: hostRanks.flatMap((h) => h.ranks.map((r) => ({ rank: r.rank, host: h.host, slot: r.slot }))),
      });
      transition({ type: 'granted', status: `${attemptPrefix()}starting ${ranksOnHosts(s.job.numRanks, g.hosts.length)}: ${summariseHosts(g.hosts)}` });
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
                worldSize: s.job.numRanks,
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
      const w = new AttemptWatch(g.hosts.map((h) => h.host));
      watch = w;
      const hostScope = new CancellationScope();
      const runs = launches.map(({ host, input: hostInput }) =>
        hostScope
          .run(() => agentOn(host, settings).runRanks(hostInput))
          .then(
            (outcome) => w.hostEnded(host.host, outcome),
            (err: unknown) => w.hostEnded(host.host, hostFailure(host.host, err, settings)),
          ),
      );

      let runLimitHit = false;
      const stopHosts = async (): Promise<void> => {
        const unfinished = new Set(w.beginStop());
        const stops = g.hosts
          .filter((h) => unfinished.has(h.host))
          .map((h) =>
            stopperOn(h, settings)
              .stopRanks({ jobName: input.name, graceMs: settings.stopGraceMs, ...(policy ? { attempt } : {}) })
              .catch(() => undefined),
          );
        hostScope.cancel();
        await Promise.all([...runs, ...stops]);
      };
      /** Stops what still runs, tells the pool which hosts were lost, and gives the capacity back. */
      const wind = async (): Promise<void> => {
        await stopHosts();
        // A pool that is not running has no host to mark.
        for (const { host, reason } of w.lostHosts()) void toPool({ name: 'hostLost', args: { host, reason } });
        releaseCapacity();
      };

      // ---- RUNNING until every rank ends, one fails, the run limit passes, or a stop is asked for
      for (;;) {
        let step: AttemptStep | undefined;
        await condition(() => (step = w.next({ pending: s.state === 'PENDING', stopWanted: s.stopWanted, preempted: s.preemption !== undefined, runLimitHit })) !== undefined);
        switch (step?.kind) {
          case 'started': {
            transition({ type: 'started', status: `${attemptPrefix()}running ${ranksOnHosts(s.job.numRanks, g.hosts.length)}: ${summariseHosts(g.hosts)}${runtimeNote}` });
            if (runLimitMs !== undefined) {
              const running = attempt;
              void sleep(runLimitMs).then(() => {
                if (running === attempt && s.state === 'RUNNING') runLimitHit = true;
              });
            }
            // The pool is not told (V1 sent it a jobState signal): the API counts this job in its record's state.
            continue;
          }
          case 'succeeded': {
            await Promise.all(runs);
            releaseCapacity();
            const used = w.usage();
            transition({ type: 'succeeded', status: `${attemptPrefix()}all ${s.job.numRanks} rank${s.job.numRanks === 1 ? '' : 's'} exited with code 0${used ? `; ${used}` : ''}` });
            return ended(await deleteAfterEnd());
          }
          case 'failed': {
            // The first failure decides the status; everything else is stopped before capacity is released.
            await wind();
            const message = describeProblem(step.host, step.result);
            if (!policy) {
              transition({ type: 'failed', status: message });
              return ended(await deleteAfterEnd());
            }
            return retryOrFail(attemptEnd(step.host, step.result), message, [...new Set([step.host, ...w.failedHosts()])]);
          }
          case 'preempted': {
            const by = s.preemption ?? { by: 'its pool' };
            await wind();
            const message = `preempted by batch job ${by.by.split('/').pop() ?? by.by}${by.reason ? ` (${by.reason})` : ''}: its ranks were stopped`;
            return retryOrFail({ kind: 'preempted', message }, message, []);
          }
          case 'run-limit': {
            await wind();
            transition({
              type: 'failed',
              status: `${attemptPrefix()}ran longer than its maxRunDuration (${spec.maxRunDuration}): its ranks were stopped (SIGTERM, then SIGKILL after ${settings.stopGraceMs / 1000}s)`,
            });
            return ended(await deleteAfterEnd());
          }
          default: {
            // A stop was asked for.
            if (s.deleteBy !== undefined) {
              transition({ type: 'delete-requested', status: `being deleted by ${s.deleteBy}: stopping its ranks` });
            } else {
              transition({ type: 'cancel-requested', status: `cancelling at the request of ${s.cancelBy ?? 'an operator'}: stopping its ranks` });
            }
            await wind();
            if (s.deleteBy !== undefined) return ended(await finish(true));
            const lost = w.unconfirmedStop();
            if (lost) transition({ type: 'failed', status: `cancel could not confirm every rank stopped: ${describeProblem(lost[0], lost[1])}` });
            else transition({ type: 'cancelled', status: `cancelled by ${s.cancelBy ?? 'an operator'}` });
            return ended(await deleteAfterEnd());
          }
        }
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
      if (state === null || isTerminal(state)) s.dependencyEnded(name, state);
    }
    const id = (name: string) => name.split('/').pop() ?? name;
    for (;;) {
      const waiting: string[] = [];
      for (const d of deps) {
        const end = s.dependencyEnds.get(d.batchJob);
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
      const known = s.dependencyEnds.size;
      await condition(() => s.dependencyEnds.size > known || s.stopWanted || queueLimitHit());
      if (s.stopWanted) return 'stop';
      if (s.dependencyEnds.size === known && queueLimitHit()) return 'queue-limit';
    }
  }

  /** A job that ended may still be deleted before the workflow closes (a delete racing the end). */
  async function deleteAfterEnd(): Promise<BatchJobResult> {
    if (s.deleteBy !== undefined) {
      transition({ type: 'delete-requested', status: `being deleted by ${s.deleteBy}` });
      return finish(true);
    }
    return finish(false);
  }
}
