/**
 * One workflow per environment (id = its name): the Environment resource, its snapshots (a snapshot
 * belongs to exactly one environment) and the batch jobs admitted with it. Every change is an update
 * with a synchronous validator; handlers that read or change shared state run one at a time (`lock`),
 * so a job's admission and a delete can never interleave. A reporter loop writes each change to the
 * read model (environment and snapshot rows) in version order; each update returns once its own
 * change has landed there.
 *
 * No interactive session is ever connected here, so an environment stays DISCONNECTED from creation
 * to DELETING. There is no container runtime either: a snapshot records the image the environment uses.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  DISCONNECTED_MESSAGE,
  type Environment,
  type EnvironmentSpec,
  environmentSpecChanged,
  environmentSpecOf,
  mayUseEnvironment,
  withEnvironmentSpec,
} from '../src/domain/environment-model';
import { isValidId, resourceName } from '../src/domain/names';
import { okStatus } from '../src/domain/node-pool-model';
import { type Snapshot } from '../src/domain/snapshot-model';
import {
  createSnapshotUpdate,
  deleteEnvironmentUpdate,
  deleteSnapshotUpdate,
  type EnvironmentCarriedState,
  type EnvironmentInput,
  type EnvironmentUseGrant,
  type EnvironmentUseRequest,
  getEnvironmentQuery,
  updateEnvironmentUpdate,
  useEnvironmentUpdate,
} from './messages';
import { control } from './control';
import { apiFailure } from './failures';
import { BatchdAccount } from './search-attributes';


/** Handlers woken together by a freed lock take it one at a time (test/workflows/environment.test.ts). */
export const ENVIRONMENT_LOCK_PATCH = 'environment-lock-one-holder';

/** Below this many remembered jobs, ended ones are only pruned when a delete asks about them. */
const PRUNE_MIN = 64;

function now(): string {
  return new Date().toISOString();
}


function listNames(names: string[]): string {
  const shown = names.slice(0, 5).map((n) => `"${n.split('/').pop() ?? n}"`);
  return names.length > 5 ? `${shown.join(', ')} and ${names.length - 5} more` : shown.join(', ');
}

export async function environmentWorkflow(input: EnvironmentInput): Promise<void> {
  const id = input.environmentId;
  let env: Environment = input.environment;
  const carried: EnvironmentCarriedState = input.carried ?? { snapshots: [], jobs: {}, version: 0 };
  const snapshots: Snapshot[] = carried.snapshots;
  const jobs = carried.jobs;
  let version = carried.version;
  let reported = version;
  let envDirty = false;
  const dirtySnapshots: Record<string, true> = {};
  let deleting = env.state === 'DELETING';
  let locked = false;
  let pruneAt = Math.max(PRUNE_MIN, 2 * Object.keys(jobs).length);

  if (!input.carried) {
    if (env.state === 'CREATING') env = { ...env, state: 'DISCONNECTED', status: okStatus(DISCONNECTED_MESSAGE) };
    version = 1;
    reported = 0;
    envDirty = true;
  }
  upsertSearchAttributes([{ key: BatchdAccount, value: input.account }]);

  // ---- state helpers -------------------------------------------------------------------------------
  const envChanged = () => {
    version++;
    envDirty = true;
  };
  /** Changes a snapshot in place (the array keeps creation order) and marks it for the read model. */
  const changeSnapshot = (s: Snapshot, patch: Partial<Snapshot>) => {
    Object.assign(s, patch);
    version++;
    dirtySnapshots[s.name] = true;
  };
  const landed = async () => {
    const mine = version;
    await condition(() => reported >= mine);
  };
  /** Runs `fn` alone among the handlers that take the lock. */
  const exclusive = async <T>(fn: () => Promise<T>): Promise<T> => {
    await condition(() => !locked);
    // Every handler waiting when the lock is freed is woken in the same activation, and each saw it
    // free: the first to run took it, the others wait again. Before the patch they ran together (a
    // delete and an admission could both succeed); histories from then replay as they ran.
    while (locked && patched(ENVIRONMENT_LOCK_PATCH)) await condition(() => !locked);
    locked = true;
    try {
      return await fn();
    } finally {
      locked = false;
    }
  };
  const snapshotOf = (snapshotId: string) => snapshots.find((s) => s.name === resourceName(input.account, 'snapshots', snapshotId));
  /** snapshotImageRef follows the latest READY snapshot; updateTime moves only when it changes. */
  const refreshSnapshotImageRef = () => {
    const latest = [...snapshots].reverse().find((s) => s.state === 'READY' && s.imageRef !== undefined)?.imageRef;
    if (latest === env.snapshotImageRef) return;
    const next: Environment = { ...env, updateTime: now() };
    if (latest === undefined) delete next.snapshotImageRef;
    else next.snapshotImageRef = latest;
    env = next;
    envChanged();
  };
  const mayChange = (requestedBy: string | undefined) => {
    if (!mayUseEnvironment(env, requestedBy)) {
      throw apiFailure('PERMISSION_DENIED', `environment "${id}" belongs to ${env.createdBy} and is not shared; only its creator may change or use it`);
    }
  };
  const notDeleting = () => {
    if (deleting) throw apiFailure('FAILED_PRECONDITION', `environment "${id}" is being deleted`);
  };
  /** Asks which of `names` are still live, forgets the ended ones, and returns the live ones. */
  const stillLive = async (names: string[]): Promise<string[]> => {
    if (names.length === 0) return [];
    const { live } = await control.liveJobs({ names });
    for (const n of names) if (!live.includes(n)) delete jobs[n];
    return live;
  };

  // ---- job admission -------------------------------------------------------------------------------
  const checkUse = (req: EnvironmentUseRequest): EnvironmentUseGrant => {
    if (deleting) throw apiFailure('NOT_FOUND', `environmentId: environment "${id}" is being deleted`);
    if (!mayUseEnvironment(env, req.createdBy)) {
      throw apiFailure(
        'PERMISSION_DENIED',
        `environmentId: environment "${id}" belongs to ${env.createdBy} and is not shared; only its creator may use it in a job (or share it: shared=true)`,
      );
    }
    if (req.snapshotId === undefined) return env.imageRef !== undefined ? { imageRef: env.imageRef } : {};
    const snapshot = snapshotOf(req.snapshotId);
    if (!snapshot) throw apiFailure('NOT_FOUND', `snapshotId: snapshot "${req.snapshotId}" not found in environment "${id}"`);
    if (snapshot.state !== 'READY') {
      throw apiFailure('FAILED_PRECONDITION', `snapshotId: snapshot "${req.snapshotId}" is ${snapshot.state}, not READY: ${snapshot.status.message}`);
    }
    return snapshot.imageRef !== undefined ? { imageRef: snapshot.imageRef } : {};
  };
  setHandler(
    useEnvironmentUpdate,
    (req: EnvironmentUseRequest) =>
      exclusive(() => {
        // Checked again under the lock: a delete may have run since the validator accepted.
        const grant = checkUse(req);
        jobs[req.jobName] = req.snapshotId !== undefined ? { snapshotId: req.snapshotId } : {};
        return Promise.resolve(grant);
      }),
    {
      validator: (req: EnvironmentUseRequest) => {
        checkUse(req);
      },
      description: 'Admit a batch job with this environment (and snapshot); it then cannot be deleted while the job lives.',
    },
  );

  // ---- queries -------------------------------------------------------------------------------------
  setHandler(getEnvironmentQuery, () => ({ environment: env, snapshots, jobs: Object.keys(jobs), version }), {
    description: 'The environment, its snapshots, and the jobs admitted with it that were not yet seen to end.',
  });

  // ---- the environment resource --------------------------------------------------------------------
  setHandler(
    updateEnvironmentUpdate,
    ({ spec }: { spec: EnvironmentSpec; requestedBy?: string }) =>
      exclusive(async () => {
        notDeleting();
        if (environmentSpecChanged(environmentSpecOf(env), spec)) {
          env = withEnvironmentSpec(env, spec, now());
          envChanged();
          await landed();
        }
        return env;
      }),
    {
      validator: ({ requestedBy }: { spec: EnvironmentSpec; requestedBy?: string }) => {
        notDeleting();
        mayChange(requestedBy);
      },
      description: 'Change the environment (PATCH): displayName, baseImageRef, shared, annotations. imageRef never changes.',
    },
  );
  setHandler(
    deleteEnvironmentUpdate,
    async ({ requestedBy }: { requestedBy?: string }) => {
      await exclusive(async () => {
        if (deleting) return;
        const live = await stillLive(Object.keys(jobs));
        if (live.length > 0) {
          throw apiFailure(
            'FAILED_PRECONDITION',
            `environment "${id}" is used by live batch job(s) ${listNames(live)}; delete it after they end (or cancel them)`,
          );
        }
        deleting = true;
        const time = now();
        env = { ...env, state: 'DELETING', status: okStatus(`being deleted${requestedBy ? ` by ${requestedBy}` : ''}`), updateTime: time };
        envChanged();
        for (const s of snapshots) changeSnapshot(s, { state: 'DELETING', status: okStatus(`environment "${id}" is being deleted`), updateTime: time });
      });
      await landed();
      return env;
    },
    {
      validator: ({ requestedBy }: { requestedBy?: string }) => mayChange(requestedBy),
      description: 'Delete the environment and its snapshots; refused while a live batch job uses it.',
    },
  );

  // ---- snapshots -----------------------------------------------------------------------------------
  const checkNewSnapshot = (snapshotId: string) => {
    notDeleting();
    if (!isValidId(snapshotId)) throw apiFailure('INVALID_ARGUMENT', `snapshot id "${snapshotId}" is not a valid id`);
    if (snapshotOf(snapshotId)) throw apiFailure('ALREADY_EXISTS', `snapshot "${snapshotId}" already exists`);
  };
  setHandler(
    createSnapshotUpdate,
    ({ snapshotId }: { snapshotId: string; requestedBy?: string }) =>
      exclusive(async () => {
        checkNewSnapshot(snapshotId);
        const created = now();
        const snapshot: Snapshot = {
          name: resourceName(input.account, 'snapshots', snapshotId),
          environmentId: id,
          createTime: created,
          updateTime: created,
          state: 'CREATING',
          status: okStatus(`recording the image of environment "${id}"`),
        };
        snapshots.push(snapshot);
        changeSnapshot(snapshot, {});
        await landed();
        // No container runtime: the snapshot is the record of the image the environment uses.
        const imageRef = env.imageRef;
        if (imageRef !== undefined) {
          changeSnapshot(snapshot, {
            state: 'READY',
            imageRef,
            updateTime: now(),
            status: okStatus(
              `records image ${imageRef}, the image of environment "${id}"; this service has no container runtime, so a snapshot captures no container filesystem, only the image reference a job with this snapshotId runs with`,
            ),
          });
        } else {
          changeSnapshot(snapshot, {
            state: 'FAILED',
            updateTime: now(),
            status: {
              code: 'FAILED_PRECONDITION',
              message: `environment "${id}" has no image to record: it was created without baseImageRef, and this service has no container runtime to capture one`,
            },
          });
        }
        refreshSnapshotImageRef();
        await landed();
        return { ...snapshot };
      }),
    {
      validator: ({ snapshotId, requestedBy }: { snapshotId: string; requestedBy?: string }) => {
        checkNewSnapshot(snapshotId);
        mayChange(requestedBy);
      },
      description: 'Take a snapshot: CREATING, then READY recording the environment\'s imageRef (FAILED when it has none).',
    },
  );
  setHandler(
    deleteSnapshotUpdate,
    ({ snapshotId, requestedBy }: { snapshotId: string; requestedBy?: string }) =>
      exclusive(async () => {
        notDeleting();
        const snapshot = snapshotOf(snapshotId);
        if (!snapshot) throw apiFailure('NOT_FOUND', `snapshot "${snapshotId}" not found`);
        const users = Object.entries(jobs)
          .filter(([, j]) => j.snapshotId === snapshotId)
          .map(([n]) => n);
        const live = await stillLive(users);
        if (live.length > 0) {
          throw apiFailure('FAILED_PRECONDITION', `snapshot "${snapshotId}" is used by live batch job(s) ${listNames(live)}; delete it after they end (or cancel them)`);
        }
        changeSnapshot(snapshot, { state: 'DELETING', status: okStatus(`being deleted${requestedBy ? ` by ${requestedBy}` : ''}`), updateTime: now() });
        await landed();
        snapshots.splice(snapshots.indexOf(snapshot), 1);
        delete dirtySnapshots[snapshot.name];
        await control.removeResource({ kind: 'snapshots', name: snapshot.name });
        refreshSnapshotImageRef();
        await landed();
        return { ...snapshot };
      }),
    {
      validator: ({ snapshotId, requestedBy }: { snapshotId: string; requestedBy?: string }) => {
        notDeleting();
        if (!snapshotOf(snapshotId)) throw apiFailure('NOT_FOUND', `snapshot "${snapshotId}" not found`);
        mayChange(requestedBy);
      },
      description: 'Delete a snapshot; refused while a live batch job uses it.',
    },
  );

  // ---- the read model ------------------------------------------------------------------------------
  const reporter = (async () => {
    for (;;) {
      await condition(() => version > reported);
      const v = version;
      const reportEnv = envDirty;
      envDirty = false;
      const names = Object.keys(dirtySnapshots);
      for (const n of names) delete dirtySnapshots[n];
      if (reportEnv) await control.report({ kind: 'environments', account: input.account, resource: { ...env }, version: v });
      for (const n of names) {
        const s = snapshots.find((x) => x.name === n);
        if (s) await control.report({ kind: 'snapshots', account: input.account, resource: { ...s }, version: v });
      }
      reported = v;
    }
  })();
  void reporter;

  const describe = () =>
    [
      `**${env.state}** · image ${env.imageRef ?? '(none)'} · ${snapshots.length} snapshot(s)`,
      `${Object.keys(jobs).length} job(s) admitted and not yet seen to end`,
    ].join('\n');

  // ---- the main loop -------------------------------------------------------------------------------
  const continueAsNewAt = input.continueAsNewEvents ?? 4000;
  for (;;) {
    setCurrentDetails(describe());
    await condition(
      () =>
        (deleting && reported >= version) ||
        (!locked && Object.keys(jobs).length >= pruneAt) ||
        workflowInfo().historyLength > continueAsNewAt ||
        workflowInfo().continueAsNewSuggested,
    );
    if (deleting) {
      await condition(() => allHandlersFinished() && reported >= version);
      for (const s of snapshots) await control.removeResource({ kind: 'snapshots', name: s.name });
      await control.removeResource({ kind: 'environments', name: input.name });
      return;
    }
    if (Object.keys(jobs).length >= pruneAt) {
      // Bounded state: forget the jobs that have ended.
      await exclusive(() => stillLive(Object.keys(jobs)));
      pruneAt = Math.max(PRUNE_MIN, 2 * Object.keys(jobs).length);
      continue;
    }
    // History grew large: start afresh with the same state.
    await condition(() => allHandlersFinished() && reported >= version && !locked);
    await continueAsNew<typeof environmentWorkflow>({ ...input, environment: env, carried: { snapshots, jobs, version } });
  }
}
