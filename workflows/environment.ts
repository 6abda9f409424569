/**
 * One workflow per environment (id = its name): the Environment resource, its snapshots (a snapshot
 * belongs to exactly one environment) and the batch jobs admitted with it. Every change is an update
 * with a synchronous validator; handlers that read or change shared state run one at a time (`lock`),
 * so a job's admission and a delete can never interleave. A reporter loop writes each change to the
 * read model (environment and snapshot rows) in version order; each update returns once its own
 * change has landed there.
 *
 * The state and its rules (checks, transitions, versions, what to report, the carried state, pruning)
 * are EnvironmentState (src/domain/environment-state.ts), unit-tested without Temporal. This is the
 * shell around it: the handlers, the lock, the reporter, the main loop and the activities; the
 * domain's refusals (ApiError) become the API failures update callers see.
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
import { type EnvironmentSpec } from '../src/domain/environment-model';
import { EnvironmentState } from '../src/domain/environment-state';
import {
  createSnapshotUpdate,
  deleteEnvironmentUpdate,
  deleteSnapshotUpdate,
  type EnvironmentInput,
  type EnvironmentUseRequest,
  getEnvironmentQuery,
  updateEnvironmentUpdate,
  useEnvironmentUpdate,
} from './messages';
import { control } from './control';
import { now } from './clock';
import { rule } from './failures';
import { BatchdAccount } from './search-attributes';


/** Handlers woken together by a freed lock take it one at a time (test/workflows/environment.test.ts). */
export const ENVIRONMENT_LOCK_PATCH = 'environment-lock-one-holder';


export async function environmentWorkflow(input: EnvironmentInput): Promise<void> {
  const state = new EnvironmentState({ account: input.account, environmentId: input.environmentId, environment: input.environment, carried: input.carried });
  let locked = false;
  upsertSearchAttributes([{ key: BatchdAccount, value: input.account }]);

  // ---- helpers -------------------------------------------------------------------------------------
  /** Waits until the read model has every change made so far. */
  const landed = async () => {
    const mine = state.version;
    await condition(() => state.reported >= mine);
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
  /** Asks which of `names` are still live, forgets the ended ones, and returns the live ones. */
  const stillLive = async (names: string[]): Promise<string[]> => {
    if (names.length === 0) return [];
    const { live } = await control.liveJobs({ names });
    state.forgetEnded(names, live);
    return live;
  };

  // ---- job admission -------------------------------------------------------------------------------
  setHandler(
    useEnvironmentUpdate,
    (req: EnvironmentUseRequest) =>
      // Checked again under the lock: a delete may have run since the validator accepted.
      exclusive(() => Promise.resolve(rule(() => state.admit(req)))),
    {
      validator: (req: EnvironmentUseRequest) => {
        rule(() => state.checkUse(req));
      },
      description: 'Admit a batch job with this environment (and snapshot); it then cannot be deleted while the job lives.',
    },
  );

  // ---- queries -------------------------------------------------------------------------------------
  setHandler(getEnvironmentQuery, () => state.view(), {
    description: 'The environment, its snapshots, and the jobs admitted with it that were not yet seen to end.',
  });

  // ---- the environment resource --------------------------------------------------------------------
  setHandler(
    updateEnvironmentUpdate,
    ({ spec }: { spec: EnvironmentSpec; requestedBy?: string }) =>
      exclusive(async () => {
        if (rule(() => state.updateSpec(spec, now()))) await landed();
        return state.environment;
      }),
    {
      validator: ({ requestedBy }: { spec: EnvironmentSpec; requestedBy?: string }) => rule(() => state.checkUpdate(requestedBy)),
      description: 'Change the environment (PATCH): displayName, baseImageRef, shared, annotations. imageRef never changes.',
    },
  );
  setHandler(
    deleteEnvironmentUpdate,
    async ({ requestedBy }: { requestedBy?: string }) => {
      await exclusive(async () => {
        if (state.deleting) return;
        const live = await stillLive(state.jobNames());
        rule(() => state.beginDelete(live, requestedBy, now()));
      });
      await landed();
      return state.environment;
    },
    {
      validator: ({ requestedBy }: { requestedBy?: string }) => rule(() => state.checkDelete(requestedBy)),
      description: 'Delete the environment and its snapshots; refused while a live batch job uses it.',
    },
  );

  // ---- snapshots -----------------------------------------------------------------------------------
  setHandler(
    createSnapshotUpdate,
    ({ snapshotId }: { snapshotId: string; requestedBy?: string }) =>
      exclusive(async () => {
        const snapshot = rule(() => state.beginSnapshot(snapshotId, now()));
        await landed();
        state.finishSnapshot(snapshot, now());
        await landed();
        return { ...snapshot };
      }),
    {
      validator: ({ snapshotId, requestedBy }: { snapshotId: string; requestedBy?: string }) => rule(() => state.checkCreateSnapshot(snapshotId, requestedBy)),
      description: 'Take a snapshot: CREATING, then READY recording the environment\'s imageRef (FAILED when it has none).',
    },
  );
  setHandler(
    deleteSnapshotUpdate,
    ({ snapshotId, requestedBy }: { snapshotId: string; requestedBy?: string }) =>
      exclusive(async () => {
        const live = await stillLive(rule(() => state.snapshotUsers(snapshotId)));
        const snapshot = rule(() => state.beginSnapshotDelete(snapshotId, live, requestedBy, now()));
        await landed();
        state.removeSnapshot(snapshot);
        await control.removeResource({ kind: 'snapshots', name: snapshot.name });
        state.refreshSnapshotImageRef(now());
        await landed();
        return { ...snapshot };
      }),
    {
      validator: ({ snapshotId, requestedBy }: { snapshotId: string; requestedBy?: string }) => rule(() => state.checkDeleteSnapshot(snapshotId, requestedBy)),
      description: 'Delete a snapshot; refused while a live batch job uses it.',
    },
  );

  // ---- the read model ------------------------------------------------------------------------------
  const reporter = (async () => {
    for (;;) {
      await condition(() => state.hasUnreported);
      const next = state.takeReport();
      if (next.environment) await control.report({ kind: 'environments', account: input.account, resource: { ...state.environment }, version: next.version });
      for (const n of next.snapshots) {
        const s = state.snapshotNamed(n);
        if (s) await control.report({ kind: 'snapshots', account: input.account, resource: { ...s }, version: next.version });
      }
      state.reportedThrough(next.version);
    }
  })();
  void reporter;

  // ---- the main loop -------------------------------------------------------------------------------
  const continueAsNewAt = input.continueAsNewEvents ?? 4000;
  for (;;) {
    setCurrentDetails(state.summary());
    await condition(
      () =>
        (state.deleting && state.allReported) ||
        (!locked && state.needsPrune) ||
        workflowInfo().historyLength > continueAsNewAt ||
        workflowInfo().continueAsNewSuggested,
    );
    if (state.deleting) {
      await condition(() => allHandlersFinished() && state.allReported);
      for (const s of state.snapshots) await control.removeResource({ kind: 'snapshots', name: s.name });
      await control.removeResource({ kind: 'environments', name: input.name });
      return;
    }
    if (state.needsPrune) {
      // Bounded state: forget the jobs that have ended.
      await exclusive(() => stillLive(state.jobNames()));
      state.rearmPrune();
      continue;
    }
    // History grew large: start afresh with the same state.
    await condition(() => allHandlersFinished() && state.allReported && !locked);
    await continueAsNew<typeof environmentWorkflow>({ ...input, environment: state.environment, carried: state.carried() });
  }
}
