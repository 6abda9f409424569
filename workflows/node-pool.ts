/**
 * One workflow per node pool: the pool resource, its hosts, and its gang scheduler. Jobs ask for
 * capacity by signal and get a grant by signal; every release arrives by signal and is applied once.
 *
 * The queue lives in the pool store (src/store/pool-store.ts), written only by this workflow through
 * the `syncPool` local activity; the workflow keeps the head of it in memory (PoolQueue's window), so
 * its carried state is bounded by its hosts and its window, never by how many jobs wait. The capacity
 * snapshot is written in the same step, before any grant goes out, so a pool whose workflow is
 * terminated can be restarted from the store (`recover`, by the pool watchdog) without losing a grant.
 *
 * Pools run on their own task queue (PoolSettings.taskQueue), so a flood of job workflow tasks never
 * delays a pool's.
 *
 * Versioning: histories that began before the `pool-queue-in-store` patch replay the frozen first
 * version (node-pool-v1.ts), which migrates itself at its next live turn.
 */
import {
  ActivityFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  getExternalWorkflowHandle,
  log,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  TimeoutFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { AgentActivities, HostProbeAnswer } from '../activities/contracts';
import { type BatchJobState, isTerminal } from '../src/domain/batch-job-model';
import { fakeHostAddress, fakeHostId, fakeHostIndex, hostTaskQueue } from '../src/domain/hosts';
import { applyNodePoolSpec, capacityRefusal, type NodePool, type NodePoolSpec, isGpuPool, okStatus, poolCapacityLimit, ranksPerNodeOf } from '../src/domain/node-pool-model';
import { type HostFacts, type PoolInbound } from '../src/domain/control-model';
import { poolRankMemoryLimit } from '../src/domain/isolation';
import { hostFactsOf, PoolQueue, type PoolRecoverySnapshot } from '../src/domain/pool-queue';
import { type CapacityGrant, type GrantTerms, grantOf as grantFor } from '../src/domain/capacity-claim';
import { addHost, type Allocation, allocationsOnHost, setHostStatus, standing } from '../src/domain/scheduler';
import { priorityOf, shareStanding } from '../src/domain/sharing';
import { type PoolSharingPolicy } from '../src/domain/sharing-config';
import {
  capacityGrantedSignal,
  capacityRefusedSignal,
  checkJobsSignal,
  deleteNodePoolUpdate,
  getHostFactsQuery,
  getNodePoolInternalsQuery,
  getNodePoolQuery,
  type HostRegistration,
  hostLostSignal,
  joinHostUpdate,
  jobStateSignal,
  type NodePoolInput,
  type PoolSettings,
  queueStandingQuery,
  releaseCapacitySignal,
  requestCapacitySignal,
  updateNodePoolUpdate,
} from './messages';
import { control } from './control';
import { apiFailure } from './failures';
import { now } from './clock';
import { nodePoolWorkflowV1 } from './node-pool-v1';
import { BatchdAccount, NodePoolState } from './search-attributes';

/** New runs of pool workflows use the queue in the pool store; histories from before it replay node-pool-v1. */
export const POOL_QUEUE_IN_STORE_PATCH = 'pool-queue-in-store';
/**
 * Grants go out from the step that writes them (the syncPool local activity), not as workflow commands
 * whose delivery events would cost the pool a workflow task per grant.
 */
export const POOL_GRANTS_BY_ACTIVITY_PATCH = 'pool-grants-by-activity';
/**
 * A host declared lost comes back by itself: while it is unreachable the pool keeps a probe activity
 * waiting on the host's task queue, and takes the host back once its agent answers with no ranks of a
 * job the pool no longer places there. The pool's status names its unreachable hosts. Histories from
 * before neither probe nor say so (their hosts came back only when their agents joined again).
 */
export const POOL_LOST_HOSTS_RETURN_PATCH = 'pool-lost-hosts-return';

/**
 * Passes share the pool (src/domain/sharing.ts): the queue in priority order, a head that cannot be
 * placed preempts lower-priority preemptible jobs (asked to stop by the sync step that writes it), and
 * jobs that declare maxRunDuration backfill into the head's free reserved slots when they end before
 * it could start. Runs from before it pass first come first served (their requests have no terms).
 */
export const POOL_SHARED_SCHEDULING_PATCH = 'pool-shared-scheduling';

/**
 * A shared run's first pass waits for the sharing terms (quotas, fair share) its first store step
 * reads, so that no pass of a run ignores them. Shared runs from before it (histories of development
 * builds) made their first pass without that step.
 */
export const POOL_SHARING_TERMS_FIRST_PATCH = 'pool-reads-sharing-terms-first';

/**
 * Before it continues as new, a run syncs until nothing is unwritten, not once: a request whose
 * handler ran in the activation that resolved that sync is pending again, and the state carried must
 * hold no unwritten change. Runs from before it synced once; a closed one of those whose second
 * check would have found work replays with its single sync.
 */
export const POOL_SYNCS_UNTIL_WRITTEN_PATCH = 'pool-syncs-until-written';

/**
 * Each step says which stored snapshot it follows, and the store refuses one that follows an older
 * snapshot than the stored one: a step of a workflow task that was never kept (its worker died after
 * the step, or the task outlived its timeout) wrote that, and may have sent its grants. The run then
 * takes its own pass back, takes the lost step's allocations as given, sends their grants again and
 * passes again (PoolQueue.followLostStep). Runs from before it never check.
 */
export const POOL_STEPS_CHECKED_PATCH = 'pool-steps-follow-the-stored-one';

/**
 * While nothing waits, the pool lends its free slots: the snapshot it writes is open, and jobs claim
 * placements in it and give them back there without a signal (src/domain/capacity-claim.ts); the
 * pool's next step is refused and takes them as given. Runs from before it never open their snapshot.
 */
export const POOL_LENDS_PATCH = 'pool-lends-idle-slots';

/**
 * The jobs a lending pool waits on before it opens again (they closed its snapshot to ask, and their
 * requests have not arrived) are kept: carried across continue-as-new, written in its snapshot and read
 * back by a recovered run, so no claim overtakes a request on its way; and while it waits on any, the
 * pool checks now and then that their workflows still live, so one terminated on the way does not keep
 * it closed. Runs from before it forgot them at continue-as-new and recovery, and never checked.
 */
export const POOL_KEEPS_ASKING_PATCH = 'pool-keeps-asking-jobs';

/**
 * A pool whose sharing file sets quotas for it lends too: its snapshot carries the quotas and a claim
 * stays within its account's (capacity-claim.ts); a job past it asks the pool, whose passes hold it back
 * as before. Runs from before it never lend while quotas are set. Fair share still never lends: its
 * order and decayed usage are decisions over a queue that claims would bypass.
 */
export const POOL_LENDS_UNDER_QUOTAS_PATCH = 'pool-lends-under-quotas';

/** How long a probe waits on an unreachable host's task queue, for settings carried from before hostProbeMs. */
const DEFAULT_HOST_PROBE_MS = 600_000;
/** Missed signals read per local activity: a page's result is one marker in the history. */
const MISSED_SIGNALS_PAGE = 2000;

/** An agent that answers with ranks of jobs that left the host stops them at its next heartbeat: ask again soon. */
const PROBE_AGAIN_MS = 3_000;

type Preemption = { victim: string; by: string };

const failedPrecondition = (message: string) => apiFailure('FAILED_PRECONDITION', message);

export async function nodePoolWorkflow(input: NodePoolInput): Promise<void> {
  if (!patched(POOL_QUEUE_IN_STORE_PATCH)) return nodePoolWorkflowV1(input);

  const grantsByActivity = patched(POOL_GRANTS_BY_ACTIVITY_PATCH);
  // Preemptions go out by the sync step, as grants do on runs with grants by activity.
  const shared = grantsByActivity && patched(POOL_SHARED_SCHEDULING_PATCH);
  // Only grants sent by the step can be held back by it.
  const stepsChecked = grantsByActivity && patched(POOL_STEPS_CHECKED_PATCH);
  // A claim is safe only against steps that name the snapshot they follow.
  const lends = stepsChecked && shared && patched(POOL_LENDS_PATCH);
  const keepsAsking = lends && patched(POOL_KEEPS_ASKING_PATCH);
  const lendsUnderQuotas = keepsAsking && patched(POOL_LENDS_UNDER_QUOTAS_PATCH);
  /** A delete waits for the snapshot to close before it counts the pool's live jobs. */
  let closingForDelete = false;
  /** The quotas and fair share the operator's sharing file sets for this pool, as the last sync read them. */
  let sharing: PoolSharingPolicy | undefined;
  let sharingRead = false;
  const settings: PoolSettings = input.settings ?? (await control.poolSettings());
  let pool: NodePool = input.pool;
  const state = await initialState(input, settings);
  if (stepsChecked) state.checkSteps();
  if (keepsAsking) state.keepAsking();
  const sched = state.scheduler;
  /** Grants and preemptions of a lost step, or of a refused one, to send with the next step that is written. */
  let resend: { grants: Allocation[]; preempt: Preemption[] } = { grants: [], preempt: [] };
  let reported = input.carried ? state.version : 0;
  let dirty = true;
  let deleting = pool.state === 'DELETING';
  let reconcileDue = false;
  /** Holders an agent says may have ended behind the pool's back. */
  const toCheck = new Set<string>();
  const slotsPerHost = ranksPerNodeOf(pool);
  const gpu = isGpuPool(pool);

  const registerHost = (id: string, address: string) => {
    state.hosts[id] = { address, taskQueue: hostTaskQueue(input.name, id) };
  };

  /** A fake pool's hosts follow fakeNodePool.numNodes; hosts beyond it drain and leave when idle. */
  const reconcileFakeHosts = () => {
    const fake = pool.fakeNodePool;
    if (!fake) return;
    for (let i = 0; i < fake.numNodes; i++) {
      const id = fakeHostId(i);
      if (!state.hosts[id]) registerHost(id, fakeHostAddress(input.name, i));
      const existing = sched.hosts.find((h) => h.id === id);
      if (!existing) addHost(sched, id, slotsPerHost);
      else if (existing.status === 'draining') existing.status = 'ready';
    }
    for (const h of sched.hosts) {
      const index = fakeHostIndex(h.id);
      if (index !== undefined && index >= fake.numNodes && h.status !== 'draining') setHostStatus(sched, h.id, 'draining');
    }
    state.touchCapacity();
  };

  const stats = (): NodePool['nodePoolStats'] => {
    const batchJobCount: Record<string, number> = {};
    const batchJobRanks: Record<string, number> = {};
    const count = (s: BatchJobState, jobs: number, ranks: number) => {
      if (jobs === 0) return;
      batchJobCount[s] = (batchJobCount[s] ?? 0) + jobs;
      batchJobRanks[s] = (batchJobRanks[s] ?? 0) + ranks;
    };
    count('QUEUED', state.length, state.queuedRanks);
    // A grant not yet written is still counted QUEUED (the queue's length drops once it is written).
    const unwritten = state.unwrittenGrants();
    for (const a of Object.values(sched.allocations)) if (!unwritten.has(a.id)) count(state.jobs[a.id]?.state ?? 'PENDING', 1, a.ranks);
    const unreachable = sched.hosts.filter((h) => h.status === 'unreachable').length;
    return {
      nodeCount: sched.hosts.filter((h) => h.status === 'ready').length,
      ...(unreachable > 0 ? { unreachableNodeCount: unreachable } : {}),
      ranksPerNode: slotsPerHost,
      environmentCount: 0,
      environmentRanks: 0,
      batchJobCount,
      batchJobRanks,
    };
  };

  const view = (): NodePool => ({ ...pool, nodePoolStats: stats() });

  const factsOf = (host: string): HostFacts => hostFactsOf(state.hosts[host]);

  /** What every grant of this pool says beyond its allocation. */
  const grantTerms = (): GrantTerms => {
    const limit = poolRankMemoryLimit(pool.annotations);
    return { pool: input.name, gpu, ...(limit === null || typeof limit === 'number' ? { rankMemoryLimitBytes: limit } : {}) };
  };
  /**
   * Lends while it may: a lending run, not being deleted, past its first read of the sharing terms,
   * and with none that a claim cannot apply (fair share is a decision over a queue; quotas a claim
   * applies itself, on runs with POOL_LENDS_UNDER_QUOTAS_PATCH).
   */
  const lendNow = (): void => {
    const quotas = sharing?.quotas;
    const may = lends && !deleting && !closingForDelete && sharingRead && sharing?.fairShare === undefined && (quotas === undefined || lendsUnderQuotas);
    state.lendWith(may ? grantTerms() : undefined, may ? quotas : undefined);
  };

  const changed = () => {
    state.version++;
    pool = { ...pool, updateTime: now() };
  };

  const describe = () =>
    [
      `**${pool.state}** · ${sched.hosts.length} host(s) × ${slotsPerHost} ${gpu ? 'GPU' : 'CPU'} slot(s)`,
      `${Object.keys(sched.allocations).length} job(s) running, ${state.length} queued (${state.window.length} in memory)`,
      ...sched.hosts.map((h) => `- ${h.id} (${h.status}): ${h.used.filter((u) => u !== null).length}/${h.slots} used`),
    ].join('\n');

  const liveJobs = () => state.length + Object.keys(sched.allocations).length;

  /**
   * The pool's status says when some of its hosts run ranks without isolation (their agents are not
   * root) and, on runs with POOL_LOST_HOSTS_RETURN_PATCH (`withLost`), which of its hosts are unreachable.
   */
  const sayStatus = (withLost: boolean) => {
    if (pool.state !== 'READY') return;
    const open = sched.hosts.filter((h) => h.status !== 'draining' && state.hosts[h.id]?.isolation !== undefined && state.hosts[h.id]?.isolation !== 'isolated');
    const parts: string[] = [];
    if (open.length) parts.push(`ranks on ${open.map((h) => h.id).join(', ')} are not isolated: their agents do not run as root, so ranks run as the agent's user (docs/security.md)`);
    const lost = withLost ? sched.hosts.filter((h) => h.status === 'unreachable').map((h) => h.id) : [];
    if (lost.length === 1) parts.push(`host ${lost[0]} is unreachable: its agent stopped answering; it is ready again as soon as its agent answers`);
    if (lost.length > 1) parts.push(`hosts ${lost.join(', ')} are unreachable: their agents stopped answering; each is ready again as soon as its agent answers`);
    const message = parts.join('; ');
    if (pool.status.message === message) return;
    pool = { ...pool, status: okStatus(message) };
    changed();
  };

  /** Unreachable hosts being probed (one probe loop each). */
  const probing = new Set<string>();
  const hostProbeMs = settings.hostProbeMs ?? DEFAULT_HOST_PROBE_MS;
  const isUnreachable = (host: string) => sched.hosts.find((h) => h.id === host)?.status === 'unreachable';

  /** Asks an unreachable host's agent whether it is back: its answer, or why there is none. */
  async function probe(host: string): Promise<HostProbeAnswer | 'no-answer' | 'failed'> {
    const agent = proxyActivities<AgentActivities>({
      taskQueue: state.hosts[host]?.taskQueue ?? hostTaskQueue(input.name, host),
      // It waits on the host's task queue until the agent polls, and is sent again after this long.
      scheduleToStartTimeout: hostProbeMs,
      startToCloseTimeout: '30 seconds',
      retry: { maximumAttempts: 1 },
      summary: `is host ${host} back?`,
    });
    try {
      return await agent.probeHost({ host });
    } catch (err) {
      // Not picked up in time, or picked up by an agent that froze before it answered: ask again.
      if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) return 'no-answer';
      log.warn('probe of an unreachable host failed', { host, error: String(err) });
      return 'failed';
    }
  }

  /**
   * Probes an unreachable host until its agent answers with no ranks of jobs the pool no longer places
   * there, then takes it back (ready, or draining if a shrink left it beyond a fake pool's size). Ends
   * early when the host is back some other way (its agent joined again) or leaves the pool.
   */
  const probeUntilBack = (host: string): void => {
    if (probing.has(host)) return;
    probing.add(host);
    void CancellationScope.nonCancellable(async () => {
      try {
        while (!deleting && isUnreachable(host)) {
          const answer = await probe(host);
          if (answer === 'no-answer') continue;
          if (answer === 'failed') {
            await sleep(hostProbeMs);
            continue;
          }
          if (!isUnreachable(host)) return;
          const placedHere = new Set(allocationsOnHost(sched, host));
          const leftover = answer.activeJobs.filter((j) => !placedHere.has(j));
          if (leftover.length > 0) {
            log.info('unreachable host answered, but still runs ranks of jobs that left it; asking again', { host, jobs: leftover });
            await sleep(PROBE_AGAIN_MS);
            continue;
          }
          const index = fakeHostIndex(host);
          const beyond = pool.fakeNodePool !== undefined && (index === undefined || index >= pool.fakeNodePool.numNodes);
          setHostStatus(sched, host, beyond ? 'draining' : 'ready');
          log.info('unreachable host is back: its agent answered', { host });
          state.touchCapacity();
          sayStatus(true);
          dirty = true;
          return;
        }
      } finally {
        probing.delete(host);
      }
    });
  };

  if (!input.carried && !input.recover) {
    reconcileFakeHosts();
    if (pool.state === 'CREATING') pool = { ...pool, state: 'READY', status: okStatus() };
    state.version = 1;
  } else if (input.recover) {
    // Report above both the snapshot's version and the record's (initialState took the larger).
    state.version++;
    reconcileFakeHosts();
    log.warn('node pool recovered from its store', { reason: input.recover.reason, queued: state.length, running: Object.keys(sched.allocations).length });
  }
  upsertSearchAttributes([
    { key: BatchdAccount, value: input.account },
    { key: NodePoolState, value: pool.state },
  ]);

  // ---- queries -----------------------------------------------------------------------------------
  // Queries answer what is written: a pass's grants only once its step has written them.
  const written = (): Allocation[] => {
    const unwritten = state.unwrittenGrants();
    return Object.values(sched.allocations).filter((a) => !unwritten.has(a.id));
  };
  setHandler(
    getNodePoolQuery,
    () => ({
      pool: view(),
      version: state.version,
      allocated: written().map((a) => ({ jobName: a.id, ranks: a.ranks, state: state.jobs[a.id]?.state ?? 'PENDING' })),
    }),
    { description: "The node pool resource with live nodePoolStats (a job holding capacity counted in the state the pool knows; the API counts it in its record's), and the jobs holding capacity." },
  );
  setHandler(getNodePoolInternalsQuery, () => {
    // A grant not yet written is shown where it was: at the head of the queue, holding no slot.
    const granting = state.unwrittenRequests();
    const unwritten = new Set(granting.map((r) => r.id));
    return {
      hosts: sched.hosts.map((h) => ({
        host: h.id,
        address: state.hosts[h.id]?.address ?? '',
        taskQueue: state.hosts[h.id]?.taskQueue ?? '',
        slots: h.slots,
        status: h.status,
        used: h.used.map((u) => (u !== null && unwritten.has(u) ? null : u)),
        ...factsOf(h.id),
      })),
      queue: [...granting, ...sched.queue].map((r, i) => {
        const enqueuedAt = state.jobs[r.id]?.enqueuedAt;
        return {
          jobName: r.id,
          ranks: r.ranks,
          position: i + 1,
          ...(enqueuedAt ? { enqueuedAt } : {}),
          ...(r.avoidHosts ? { avoidHosts: r.avoidHosts } : {}),
          ...(r.priority !== undefined ? { priority: r.priority } : {}),
          ...(r.account !== undefined ? { account: r.account } : {}),
        };
      }),
      queueSummary: { length: state.length, ranks: state.queuedRanks, window: settings.queueWindow },
      reservation: state.writtenReservation(),
      allocations: Object.fromEntries(
        Object.values(sched.allocations)
          .filter((a) => !unwritten.has(a.id))
          .map((a) => [
          a.id,
          {
            ranks: a.ranks,
            state: state.jobs[a.id]?.state ?? 'PENDING',
            hosts: a.hosts.map((h) => h.host),
            ...(a.priority !== undefined ? { priority: a.priority } : {}),
            ...(a.preemptible ? { preemptible: true } : {}),
            ...(a.account !== undefined ? { account: a.account } : {}),
          },
        ]),
      ),
    };
  }, { description: 'Hosts with their slot owners, the head of the queue in order (queueSummary counts all), the head reservation, and allocations, as written (a grant once its step wrote it; until then it is at the head of the queue).' });
  setHandler(getHostFactsQuery, () => sched.hosts.map((h) => ({ host: h.id, status: h.status, ...factsOf(h.id) })), {
    description: 'Each host, its status, and what its agent reported when it joined (executors, python, isolation).',
  });
  setHandler(
    queueStandingQuery,
    (names: string[]) => {
      const out: Record<string, NonNullable<ReturnType<typeof standing>>> = {};
      for (const n of names) {
        const s = standing(sched, n);
        if (s) out[n] = { ...s, queueLength: state.length, ...shareStanding(sched, n, sharing) };
      }
      return out;
    },
    { description: 'Queue position and what each named job waits for (jobs in the head of the queue; the API reads the others from the pool store).' },
  );

  // ---- capacity ------------------------------------------------------------------------------------
  /** What each pool signal does; the handlers below and the signals a last run missed both come here. */
  async function onSignal(signal: PoolInbound): Promise<void> {
    switch (signal.name) {
      case 'requestCapacity': {
        const req = signal.args;
        const refusal = capacityRefusal(pool, req.ranks, deleting);
        if (refusal !== undefined) {
          await refuse(req.workflowId, refusal);
          return;
        }
        if (state.request(req, now()) !== 'duplicate') dirty = true;
        return;
      }
      case 'releaseCapacity':
        state.release(signal.args.jobName);
        dirty = true;
        return;
      case 'jobState': {
        const j = state.jobs[signal.args.jobName];
        if (j && !isTerminal(signal.args.state)) j.state = signal.args.state;
        return;
      }
      case 'checkJobs':
        // While the snapshot is open, a job may hold a claim this state has not taken yet: checked too.
        for (const name of signal.args.jobNames) if (sched.allocations[name] || (lends && state.mayBeClaimed())) toCheck.add(name);
        return;
      case 'hostLost': {
        const { host, reason } = signal.args;
        log.warn('host lost', { host, reason });
        setHostStatus(sched, host, 'unreachable');
        state.touchCapacity();
        dirty = true;
        if (patched(POOL_LOST_HOSTS_RETURN_PATCH)) {
          probeUntilBack(host);
          sayStatus(true);
        }
        return;
      }
    }
  }
  /** Pool signals this run has handled, in history order: continue-as-new carries the count ("Signals a run missed"). */
  let signalsHandled = 0;
  const handled = (signal: PoolInbound): Promise<void> => {
    signalsHandled++;
    return onSignal(signal);
  };
  setHandler(requestCapacitySignal, (args) => handled({ name: 'requestCapacity', args }));
  setHandler(releaseCapacitySignal, (args) => handled({ name: 'releaseCapacity', args }));
  setHandler(jobStateSignal, (args) => handled({ name: 'jobState', args }));
  setHandler(checkJobsSignal, (args) => handled({ name: 'checkJobs', args }));
  setHandler(hostLostSignal, (args) => handled({ name: 'hostLost', args }));
  setHandler(
    joinHostUpdate,
    (reg: HostRegistration) => {
      if (!state.hosts[reg.host]) registerHost(reg.host, reg.address);
      const facts: HostFacts = {
        ...(reg.executors ? { executors: reg.executors } : {}),
        ...(reg.python ? { python: reg.python } : {}),
        ...(reg.isolation ? { isolation: reg.isolation } : {}),
      };
      state.hosts[reg.host] = { address: reg.address, taskQueue: hostTaskQueue(input.name, reg.host), ...facts };
      addHost(sched, reg.host, reg.slots);
      state.touchCapacity();
      sayStatus(patched(POOL_LOST_HOSTS_RETURN_PATCH));
      dirty = true;
      return { taskQueue: hostTaskQueue(input.name, reg.host) };
    },
    {
      validator: (reg: HostRegistration) => {
        if (deleting) throw failedPrecondition(`node pool ${pool.name} is being deleted`);
        if (reg.slots !== slotsPerHost) {
          throw failedPrecondition(`host ${reg.host} offers ${reg.slots} rank slot(s), but hosts of this pool have ${slotsPerHost}`);
        }
        if (pool.fakeNodePool) {
          const index = fakeHostIndex(reg.host);
          if (index === undefined || index >= pool.fakeNodePool.numNodes) {
            throw failedPrecondition(`host ${reg.host} is not one of the ${pool.fakeNodePool.numNodes} hosts of fake pool ${pool.name}`);
          }
        } else if (!state.hosts[reg.host] && sched.hosts.filter((h) => h.status !== 'draining').length >= pool.maxNodeCount) {
          throw failedPrecondition(`node pool ${pool.name} already has maxNodeCount=${pool.maxNodeCount} hosts`);
        }
      },
      description: 'A host agent joins (or rejoins) the pool.',
    },
  );

  // ---- the pool resource ---------------------------------------------------------------------------
  setHandler(
    updateNodePoolUpdate,
    async ({ spec }: { spec: NodePoolSpec }) => {
      pool = applyNodePoolSpec(pool, spec, now());
      reconcileFakeHosts();
      // Its annotations may change what grants say (the rank memory limit).
      lendNow();
      changed();
      dirty = true;
      const mine = state.version;
      await condition(() => reported >= mine);
      return view();
    },
    {
      validator: ({ spec }: { spec: NodePoolSpec }) => {
        if (deleting) throw failedPrecondition(`node pool ${pool.name} is being deleted`);
        const newLimit = poolCapacityLimit({ ...pool, ...spec });
        const largest = state.largestJob();
        if (newLimit < largest) {
          throw failedPrecondition(
            `the pool would hold at most ${newLimit} ranks, but a live job needs ${largest}; shrink it after that job ends (running ranks are never killed by a resize)`,
          );
        }
      },
      description: 'Change the pool (PATCH). Shrinking drains hosts: they take no new ranks and leave once idle.',
    },
  );
  setHandler(
    deleteNodePoolUpdate,
    async (_request: { requestedBy?: string }) => {
      if (lends) {
        // Claims made in the store count too: close the snapshot (its step takes them as given), then count again.
        closingForDelete = true;
        lendNow();
        await condition(() => !state.mayBeClaimed());
        closingForDelete = false;
        const live = liveJobs();
        if (live > 0) {
          lendNow();
          throw failedPrecondition(`node pool ${pool.name} still has ${live} live batch job(s); cancel or delete them first`);
        }
      }
      deleting = true;
      pool = { ...pool, state: 'DELETING', status: okStatus('being deleted') };
      changed();
      upsertSearchAttributes([{ key: NodePoolState, value: 'DELETING' }]);
      const mine = state.version;
      await condition(() => reported >= mine);
      return view();
    },
    {
      validator: (_request: { requestedBy?: string }) => {
        // While the snapshot is open, jobs may have given back what this state still holds: the handler counts after closing it.
        if (lends && state.mayBeClaimed()) return;
        const live = liveJobs();
        if (live > 0) throw failedPrecondition(`node pool ${pool.name} still has ${live} live batch job(s); cancel or delete them first`);
      },
      description: 'Delete the pool; refused while it has live jobs.',
    },
  );

  async function refuse(workflowId: string, reason: string): Promise<void> {
    try {
      await getExternalWorkflowHandle(workflowId).signal(capacityRefusedSignal, { reason });
    } catch {
      // the job is gone already
    }
  }

  /**
   * Writes what changed (and reads more of the queue when the window runs low) before anything is
   * acted on. On lean runs it also carries `allocations`' grants, sent by the step once written.
   */
  async function sync(allocations: Allocation[] = [], preempt: Preemption[] = []): Promise<void> {
    const step = state.takeSync();
    // Those a refused step left to send, while they still stand (a job ignores a second grant or stop).
    const sending = [...resend.grants.filter((a) => sched.allocations[a.id] === a && !allocations.includes(a)), ...allocations];
    const stopping = [...resend.preempt.filter((p) => sched.preemptions?.[p.victim] === p.by && !preempt.some((q) => q.victim === p.victim)), ...preempt];
    const grants = sending.map((a) => ({ jobName: a.id, workflowId: state.jobs[a.id]?.workflowId ?? a.id, grant: grantOf(a) }));
    const preempts = stopping.map(({ victim, by }) => ({ jobName: victim, workflowId: state.jobs[victim]?.workflowId ?? victim, by, reason: preemptionReason(victim, by) }));
    const outcome = await control.syncPool({ pool: input.name, ...step, ...(grants.length > 0 ? { grants } : {}), ...(preempts.length > 0 ? { preempts } : {}) });
    if (shared) {
      sharing = outcome.sharing;
      sharingRead = true;
    }
    if (outcome.lost) {
      // Nothing of this step was written or sent. What it meant to send and what the lost step sent go with the next.
      const adopted = state.followLostStep(step, outcome.lost);
      resend = { grants: [...sending, ...adopted.grants], preempt: [...stopping, ...adopted.preempt] };
      for (const name of adopted.unknown) toCheck.add(name);
      dirty = true;
      // Jobs claimed, gave back or asked in the store while its snapshot was open: the expected refusal.
      if (adopted.byJobs && adopted.grants.length === 0 && adopted.unknown.length === 0 && adopted.unplaced.length === 0 && adopted.preempt.length === 0) return;
      log.warn('a step of a workflow task that was not kept wrote after the snapshot this step followed: took its allocations as given, deciding again', {
        storedStep: outcome.lost.step,
        adopted: adopted.grants.map((a) => a.id),
        ...(adopted.unplaced.length > 0 ? { unplaced: adopted.unplaced } : {}),
        ...(adopted.claims.length > 0 ? { claims: adopted.claims } : {}),
      });
      return;
    }
    resend = { grants: [], preempt: [] };
    state.applySync(step, outcome);
    if (outcome.rows.length > 0) dirty = true;
    // Results recorded before grants went by activity have no undeliverable list.
    const undeliverable = outcome.undeliverable ?? [];
    if (undeliverable.length > 0) await forgetClosed(undeliverable);
  }

  /** Why a running job is asked to stop, in words its status can carry. */
  function preemptionReason(victim: string, by: string): string {
    const head = sched.queue.find((r) => r.id === by);
    return `priority ${priorityOf(head ?? {})} over its ${priorityOf(sched.allocations[victim] ?? {})}, on node pool ${pool.name.split('/').pop() ?? pool.name}`;
  }

  function grantOf(allocation: Allocation): CapacityGrant {
    return grantFor(allocation, state.hosts, grantTerms());
  }

  /** Sends one pass's grants together (as commands, on runs from before grants-by-activity). */
  async function grant(allocations: Allocation[]): Promise<void> {
    if (grantsByActivity) {
      if (allocations.length > 0) await sync(allocations);
      return;
    }
    const undeliverable: string[] = [];
    await Promise.all(
      allocations.map(async (allocation) => {
        const job = state.jobs[allocation.id];
        try {
          await getExternalWorkflowHandle(job?.workflowId ?? allocation.id).signal(capacityGrantedSignal, grantOf(allocation));
        } catch (err) {
          log.info('grant undeliverable; releasing', { job: allocation.id, error: String(err) });
          undeliverable.push(allocation.id);
        }
      }),
    );
    if (undeliverable.length > 0) await forgetClosed(undeliverable);
  }

  /**
   * Signals a run missed. The server refuses a task that continues as new while signals arrive; the
   * task that follows may take the state to carry before their handlers run (sdk-dotnet#427), and
   * the run closes without them: requests lost, found by the queue figure. So each run carries the
   * number of signals it had handled when it took that state, and the next run reads the ones after
   * those from its history and handles them first. A repeat changes nothing (a known request, a
   * release, a job state); one that arrived after its job ended is found by the pool's holder checks.
   */
  async function handleMissedSignals(lastRun: NonNullable<NodePoolInput['lastRun']>): Promise<void> {
    let missed = 0;
    for (let more = true; more; ) {
      const page = await control.missedPoolSignals({ workflowId: workflowInfo().workflowId, runId: lastRun.runId, skip: lastRun.signalsHandled + missed, limit: MISSED_SIGNALS_PAGE });
      for (const signal of page.signals) await onSignal(signal);
      missed += page.signals.length;
      more = page.more && page.signals.length > 0;
    }
    if (missed > 0) log.warn('handled the signals the last run received after it took the state it carried', { signals: missed, lastRun: lastRun.runId });
  }

  /** Jobs whose workflows closed: their end is recorded (control.closedJobs) and their capacity freed. */
  async function forgetClosed(names: string[]): Promise<void> {
    const { closed } = await control.closedJobs({ names });
    for (const name of closed) state.release(name);
    if (closed.length > 0) dirty = true;
  }

  // The pool's state must survive any cancellation: `temporal workflow cancel` on a pool is ignored
  // (pools are deleted through the API, which refuses while jobs live), so every loop is non-cancellable.
  CancellationScope.current().cancelRequested.catch(() => log.warn('cancellation of a node pool workflow ignored; delete the pool through the API'));
  void CancellationScope.nonCancellable(async () => {
    for (;;) {
      await condition(() => state.version > reported);
      const v = state.version;
      await control.report({ kind: 'nodePools', account: input.account, resource: { ...pool }, version: v });
      reported = v;
    }
  });

  // While jobs wait behind capacity that is held, check now and then that its holders still live: a job
  // terminated by an operator never says it ended. One timer per period, and only while blocked (or,
  // with POOL_KEEPS_ASKING_PATCH, while the pool waits on a job's request to open again).
  void CancellationScope.nonCancellable(async () => {
    for (;;) {
      await condition(() => (state.length > 0 && Object.keys(sched.allocations).length > 0) || (keepsAsking && state.awaiting().length > 0));
      await sleep(settings.reconcileMs);
      reconcileDue = true;
      await condition(() => !reconcileDue);
    }
  });

  // ---- the scheduling loop -------------------------------------------------------------------------
  await CancellationScope.nonCancellable(async () => {
    if (input.lastRun) await handleMissedSignals(input.lastRun);
    if (input.recover) {
      // Grants the last run wrote may not have reached their jobs: send them again (a job ignores a
      // second grant; one that ended gives its capacity back). Requests the last run received but never
      // wrote are queued again, oldest first (a job whose own request arrives too is queued once).
      await grant(Object.values(sched.allocations));
      const found = await control.poolOrphans({ pool: input.name, account: input.account, poolId: input.poolId, known: Object.keys(sched.allocations) });
      for (const [name, s] of Object.entries(found.states)) {
        const job = state.jobs[name];
        if (job && (s === 'RUNNING' || s === 'PENDING')) job.state = s;
      }
      const limit = poolCapacityLimit(pool);
      // Orphans found by activities from before sharing have no terms.
      for (const o of found.orphans) if (o.ranks <= limit) state.request({ jobName: o.jobName, workflowId: o.jobName, ranks: o.ranks, ...o.terms }, o.createTime);
      if (found.orphans.length > 0) log.warn('queued again the requests the closed run never wrote', { jobs: found.orphans.length });
      dirty = true;
    }
    // Hosts this run starts with unreachable (carried, or recovered from the store) are probed too.
    const unreachable = sched.hosts.filter((h) => h.status === 'unreachable').map((h) => h.id);
    if (unreachable.length > 0 && patched(POOL_LOST_HOSTS_RETURN_PATCH)) {
      for (const host of unreachable) probeUntilBack(host);
      sayStatus(true);
    }
    const continueAsNewAt = input.continueAsNewEvents ?? 4000;
    for (;;) {
      lendNow();
      setCurrentDetails(describe());
      await condition(
        () =>
          dirty ||
          reconcileDue ||
          toCheck.size > 0 ||
          state.needsSync() ||
          (deleting && reported >= state.version) ||
          workflowInfo().historyLength > continueAsNewAt ||
          workflowInfo().continueAsNewSuggested,
      );
      if (reconcileDue || toCheck.size > 0) {
        const names = reconcileDue ? [...Object.keys(sched.allocations), ...(keepsAsking ? state.awaiting() : [])] : [...toCheck];
        reconcileDue = false;
        toCheck.clear();
        await forgetClosed(names);
        continue;
      }
      if (dirty || state.needsSync()) {
        dirty = false;
        // A run's first pass waits for the sharing terms the store step reads.
        if (shared && !sharingRead && patched(POOL_SHARING_TERMS_FIRST_PATCH)) await sync();
        const { grants, preempt } = state.pass(shared ? { now: Date.now(), ...sharing } : undefined);
        // The snapshot with these allocations (and preemptions) is written before any grant or stop goes out.
        if (grantsByActivity) {
          if (grants.length > 0 || preempt.length > 0 || state.needsSync()) await sync(grants, preempt);
        } else {
          if (state.needsSync()) await sync();
          await grant(grants);
        }
        continue;
      }
      if (deleting) {
        await condition(allHandlersFinished);
        await control.removeResource({ kind: 'nodePools', name: input.name });
        return;
      }
      // History grew large: start afresh with the same state, on the pools' task queue.
      await condition(allHandlersFinished);
      await condition(() => reported >= state.version);
      // Until nothing is unwritten (POOL_SYNCS_UNTIL_WRITTEN_PATCH); runs from before it synced once.
      if (patched(POOL_SYNCS_UNTIL_WRITTEN_PATCH)) {
        while (state.needsSync()) await sync();
      } else if (state.needsSync()) await sync();
      await makeContinueAsNewFunc<typeof nodePoolWorkflow>({ taskQueue: settings.taskQueue })({
        ...input,
        pool,
        settings,
        carried: state.carried(),
        recover: undefined,
        lastRun: { runId: workflowInfo().runId, signalsHandled },
      });
    }
  });
}

/** The pool's state at the start of a run: carried across continue-as-new, recovered from the store, or new. */
async function initialState(input: NodePoolInput, settings: PoolSettings): Promise<PoolQueue> {
  if (input.carried) return PoolQueue.resume(input.carried, settings.queueWindow, now());
  if (input.recover) {
    const loaded = await control.loadPool({ pool: input.name, windowSize: settings.queueWindow });
    const snapshot = loaded.snapshot?.state as PoolRecoverySnapshot | undefined;
    // Without a snapshot (it closed before its first sync) it has no capacity to recover, only its queue.
    const version = Math.max(loaded.snapshot?.version ?? 0, input.recover.version);
    return PoolQueue.recover(snapshot ?? PoolQueue.fresh(settings.queueWindow).recoverySnapshot(), loaded, version, settings.queueWindow);
  }
  return PoolQueue.fresh(settings.queueWindow);
}
