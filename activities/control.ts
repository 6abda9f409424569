/**
 * Control activities, run by the control worker as local activities of the job and pool workflows:
 * validation (the same schema and admission rules as the API), status reporting into the read model,
 * and purging what a deleted job leaves behind.
 *
 * Validation is also where a job started by another workflow meets the API's rules: anyone who can
 * start workflows in batchd's Temporal namespace can name any account, so the job's `createdBy` must
 * be a user that account's API keys name (or `workflow:<id>`, a parent acting for no user), and the
 * account's limits apply as they do at the API.
 */
import { Context } from '@temporalio/activity';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { type Config } from '../src/config';
import { type AccountLimits } from '../src/control/account-limits';
import { admitDependencies, admitJob } from '../src/control/admission';
import { poolSharingPolicy, type SharingConfig } from '../src/domain/sharing-config';
import { temporalEnvironmentRegistrar } from './environment-registrar';
import { liveJobs } from '../src/control/live-jobs';
import { purgeJob } from '../src/control/purge';
import { type BatchJob, type BatchJobState, batchJobCreateSchema } from '../src/domain/batch-job';
import { ApiError } from '../src/domain/errors';
import { parseOrThrow } from '../src/domain/validation';
import { type LogStore } from '../src/store/log-store';
import { type ReadModel } from '../src/store/read-model';
import { type ControlActivities, type JobStepInput, type JobStepResult } from './contracts';
import { type PoolStore } from '../src/store/pool-store';
import { closedJobs } from '../src/control/closed-jobs';
import { admitExecutor } from '../src/control/executor-admission';
import { capacityGrantedSignal, dependencyEndedSignal, getHostFactsQuery, preemptSignal, sendPoolSignal, watchEndSignal } from '../workflows/messages';
import { missedPoolSignals } from './missed-signals';
import { type CapacityGrant, claimCapacity, closeForRequest, giveBackCapacity } from '../src/domain/capacity-claim';
import { type PoolSignal } from '../src/domain/control-model';
import { poolOrphans } from './pool-recovery';

export interface ControlDeps {
  store: ReadModel;
  logs: LogStore;
  config: Pick<
    Config,
    'dataDir' | 'HOST_HEARTBEAT_TIMEOUT_MS' | 'HOST_START_TIMEOUT_MS' | 'RANK_STOP_GRACE_MS' | 'POOL_TASK_QUEUE' | 'POOL_QUEUE_WINDOW' | 'POOL_RECONCILE_MS' | 'HOST_PROBE_MS'
  >;
  /** For updates to environment workflows and job liveness; the worker's own client when absent. */
  client?: Client;
  /** Whether a user belongs to an account (the API's keys); every user is accepted when absent (tests). */
  knowsUser?: (account: string, email: string) => boolean;
  /** The account limits, checked for jobs of parent workflows (the API checks its own). */
  limits?: AccountLimits;
  /** The operator's sharing file: who may use a pool, and the quotas and fair share its passes apply. */
  sharing?: () => SharingConfig;
}

/**
 * A job's step: each signal in order, through the pool's store where it takes it, else to the pool's
 * workflow; then the record. (The workflow testbed runs the same with its store in memory.)
 */
export async function runJobStep(
  step: JobStepInput,
  deps: { store: Pick<PoolStore, 'amendPoolSnapshot'>; signalPool: ControlActivities['signalPool']; report: ControlActivities['report'] },
): Promise<JobStepResult> {
  const delivered: boolean[] = [];
  const granted: Array<CapacityGrant | null> = [];
  for (const { pool, signal, claim } of step.signals) {
    const taken = await viaStore(deps.store, pool, signal, claim === true);
    granted.push(taken?.grant ?? null);
    delivered.push(taken ? true : (await deps.signalPool({ pool, signal })).delivered);
  }
  if (step.report) await deps.report(step.report);
  return { delivered, ...(granted.some((g) => g !== null) ? { granted } : {}) };
}

/**
 * What the pool's store takes without its workflow (src/domain/capacity-claim.ts): a claimed request
 * placed in an open snapshot (or already held there) answers its grant; a release of what the job
 * holds there is given back. Undefined: the pool's workflow is signalled as before.
 */
async function viaStore(store: Pick<PoolStore, 'amendPoolSnapshot'>, pool: string, signal: PoolSignal, claim: boolean): Promise<{ grant?: CapacityGrant } | undefined> {
  if (signal.name === 'requestCapacity' && claim) {
    return store.amendPoolSnapshot(pool, (state) => {
      const answer = claimCapacity(state, { ...signal.args, attempt: signal.args.attempt ?? 1 }, Date.now());
      // Asking the pool: an open snapshot is closed first, so no claim overtakes the request.
      if (answer.kind === 'ask-pool') return { answer: undefined, ...(answer.close ? { write: answer.close } : {}) };
      return { answer: { grant: answer.grant }, ...(answer.kind === 'claimed' ? { write: answer.state } : {}) };
    });
  }
  if (signal.name === 'requestCapacity') {
    const jobName = signal.args.jobName;
    return store.amendPoolSnapshot(pool, (state) => {
      const close = closeForRequest(state, jobName);
      return { answer: undefined, ...(close ? { write: close } : {}) };
    });
  }
  if (signal.name === 'releaseCapacity') {
    return store.amendPoolSnapshot(pool, (state) => {
      const write = giveBackCapacity(state, signal.args.jobName);
      return write ? { answer: {}, write } : { answer: undefined };
    });
  }
  return undefined;
}

/** Whom a parent workflow acting for no user names as the job's creator (workflows/child.ts). */
const WORKFLOW_CREATOR = /^workflow:.+$/;

export function createControlActivities({ store, logs, config, client, knowsUser, limits, sharing }: ControlDeps): ControlActivities {
  const clientOf = (): Client => client ?? Context.current().client;
  const report: ControlActivities['report'] = async ({ kind, account, resource, version }) => {
    await store.put(kind, account, resource, version);
  };
  const signalPool: ControlActivities['signalPool'] = async ({ pool, signal }) => {
    try {
      await sendPoolSignal(clientOf().workflow.getHandle(pool), signal);
      return { delivered: true };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { delivered: false };
      throw err;
    }
  };
  return {
    async validateJob({ name, account, spec, createdBy, mustBeNew }) {
      try {
        // A job the API created had its dependencies checked there (one may be deleted by now); a parent workflow's job has them checked here.
        const parsed = await admitDependencies(store, account, name, parseOrThrow(batchJobCreateSchema, spec), mustBeNew === true);
        if (knowsUser && !WORKFLOW_CREATOR.test(createdBy) && !knowsUser(account, createdBy)) {
          throw ApiError.permissionDenied(
            `createdBy "${createdBy}" is not a user of account "${account}": a job acts for a user whom the account's API keys name ` +
              `(API_KEYS_FILE or the bootstrap user), or for "workflow:<parent id>"; the job was not started`,
          );
        }
        if (mustBeNew && (await store.get('batchJobs', name))) throw new ApiError('ALREADY_EXISTS', `batch job "${name.split('/').pop()}" already exists`);
        // A job the API created was counted there; a parent workflow's job is counted here.
        if (mustBeNew) await limits?.checkJob(account);
        const use = { jobName: name, register: temporalEnvironmentRegistrar(clientOf) };
        const admission = await admitJob(store, { account, email: createdBy }, parsed, use, sharing?.());
        await admitExecutor(parsed, parsed.nodePoolId, {
          stored: async () => (await store.poolSnapshot(admission.pool.workflowId))?.state,
          live: () => clientOf().withDeadline(Date.now() + 2000, () => clientOf().workflow.getHandle(admission.pool.workflowId).query(getHostFactsQuery)),
        });
        return {
          ok: true,
          spec: parsed,
          pool: admission.pool,
          settings: {
            heartbeatTimeoutMs: config.HOST_HEARTBEAT_TIMEOUT_MS,
            hostStartTimeoutMs: config.HOST_START_TIMEOUT_MS,
            stopGraceMs: config.RANK_STOP_GRACE_MS,
          },
          ...(admission.imageRef !== undefined ? { imageRef: admission.imageRef } : {}),
        };
      } catch (err) {
        // A rule the job breaks is an answer, not an activity failure; anything else is retried.
        if (err instanceof ApiError) {
          const fieldViolations = err.details.flatMap((d) => d.fieldViolations ?? []);
          return { ok: false, message: err.message, code: err.code, ...(fieldViolations.length > 0 ? { fieldViolations } : {}) };
        }
        throw err;
      }
    },

    report,

    jobStep(step) {
      return runJobStep(step, { store, signalPool, report });
    },

    async removeResource({ kind, name }) {
      // A deleted pool's queue and snapshot go with it, before its record: a pool of the same name starts empty.
      if (kind === 'nodePools') await store.dropPool(name);
      await store.remove(kind, name);
    },

    async watchJobs({ watcher, jobs }) {
      const states: Record<string, BatchJobState | null> = {};
      for (const job of jobs) {
        // Ask first, then read: a job that ends after the read has the ask in its history before its end is written.
        try {
          await clientOf().workflow.getHandle(job).signal(watchEndSignal, { watcher });
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
        const row = await store.get<BatchJob>('batchJobs', job);
        states[job] = row ? row.resource.state : null;
      }
      return { states };
    },

    async notifyJobEnded({ job, state, watchers }) {
      for (const watcher of watchers) {
        try {
          await clientOf().workflow.getHandle(watcher).signal(dependencyEndedSignal, { batchJob: job, state });
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
      }
    },

    async purgeJob({ account, name, jobId }) {
      await purgeJob({ store, logs, dataDir: config.dataDir }, account, name, jobId);
    },

    async liveJobs({ names }) {
      return { live: await liveJobs(store, clientOf(), names) };
    },

    poolSettings() {
      return Promise.resolve({ taskQueue: config.POOL_TASK_QUEUE, queueWindow: config.POOL_QUEUE_WINDOW, reconcileMs: config.POOL_RECONCILE_MS, hostProbeMs: config.HOST_PROBE_MS });
    },

    async syncPool({ grants, preempts, ...step }) {
      const result = await store.syncPool(step);
      // The pool's sharing terms as the file says now: the pass after this step applies them.
      const policy = sharing ? poolSharingPolicy(sharing(), step.pool) : undefined;
      // A step of a task that was never kept wrote after the one this step follows: the pool decides again first.
      if (result.lost) return { ...result, undeliverable: [], ...(policy ? { sharing: policy } : {}) };
      const undeliverable: string[] = [];
      const send = async (jobName: string, deliver: () => Promise<void>) => {
        try {
          await deliver();
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
          undeliverable.push(jobName);
        }
      };
      // Written first, then sent: a grant or a preemption never reaches a job before the pool's store holds it.
      await Promise.all([
        ...(grants ?? []).map((g) => send(g.jobName, () => clientOf().workflow.getHandle(g.workflowId).signal(capacityGrantedSignal, g.grant))),
        ...(preempts ?? []).map((p) => send(p.jobName, () => clientOf().workflow.getHandle(p.workflowId).signal(preemptSignal, { by: p.by, reason: p.reason }))),
      ]);
      return { ...result, undeliverable, ...(policy ? { sharing: policy } : {}) };
    },

    signalPool,

    loadPool({ pool, windowSize }) {
      return store.loadPool(pool, windowSize);
    },

    async closedJobs({ names }) {
      return { closed: await closedJobs(store, clientOf(), names) };
    },

    poolOrphans(input) {
      // Accounts the pool is shared with queue their jobs on it too.
      const sharedWith = Object.keys(sharing?.().pools[input.pool]?.accounts ?? {});
      return poolOrphans(store, { ...input, sharedWith });
    },

    async poolExists({ pool }) {
      return (await store.get('nodePools', pool)) !== undefined;
    },

    missedPoolSignals(input) {
      return missedPoolSignals(clientOf(), input);
    },
  };
}
