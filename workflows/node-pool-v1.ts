/**
 * The first node-pool workflow (format 1), kept to replay and then migrate the pools that were
 * running it: its whole queue lived in its state, which could not outgrow one continue-as-new payload.
 * Frozen: apart from the migration patch below, nothing here may change, or running histories stop
 * replaying. `nodePoolWorkflow` (node-pool.ts) runs this only for histories that began before the
 * `pool-queue-in-store` patch.
 *
 * Migration: at the first loop turn it runs live (not in replay), behind the `pool-v1-migrate` patch,
 * it writes its queue to the pool store and continues as new in format 2 on the pools' task queue.
 */
import {
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  makeContinueAsNewFunc,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { type BatchJobState, isTerminal } from '../src/domain/batch-job-model';
import { fakeHostAddress, fakeHostId, fakeHostIndex, hostTaskQueue } from '../src/domain/hosts';
import { applyNodePoolSpec, capacityRefusal, type NodePool, type NodePoolSpec, isGpuPool, okStatus, poolCapacityLimit, ranksPerNodeOf } from '../src/domain/node-pool-model';
import {
  addHost,
  emptyScheduler,
  enqueue,
  release,
  schedule,
  setHostStatus,
  standing,
  type SchedulerState,
} from '../src/domain/scheduler';
import {
  capacityGrantedSignal,
  capacityRefusedSignal,
  deleteNodePoolUpdate,
  getNodePoolInternalsQuery,
  getNodePoolQuery,
  type HostRegistration,
  hostLostSignal,
  joinHostUpdate,
  jobStateSignal,
  type NodePoolCarriedState,
  type NodePoolInput,
  queueStandingQuery,
  releaseCapacitySignal,
  requestCapacitySignal,
  updateNodePoolUpdate,
} from './messages';
import { control } from './control';
import { PoolQueue } from '../src/domain/pool-queue';
import { now } from './clock';
import type { nodePoolWorkflow } from './node-pool';

/** The patch behind which a format-1 pool migrates to format 2 (see the header). */
export const POOL_V1_MIGRATE_PATCH = 'pool-v1-migrate';
import { BatchdAccount, NodePoolState } from './search-attributes';


function failedPrecondition(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'ApiError:FAILED_PRECONDITION', message, nonRetryable: true });
}

export async function nodePoolWorkflowV1(input: NodePoolInput): Promise<void> {
  let pool: NodePool = input.pool;
  const carried: NodePoolCarriedState = input.carried ?? {
    scheduler: emptyScheduler(),
    hosts: {},
    jobs: {},
    version: 0,
  };
  const sched: SchedulerState = carried.scheduler;
  const hosts = carried.hosts;
  const jobs = carried.jobs;
  let version = carried.version;
  let reported = version;
  let dirty = true;
  let deleting = pool.state === 'DELETING';
  const slotsPerHost = ranksPerNodeOf(pool);
  const gpu = isGpuPool(pool);

  const registerHost = (id: string, address: string) => {
    hosts[id] = { address, taskQueue: hostTaskQueue(input.name, id) };
  };

  /** A fake pool's hosts follow fakeNodePool.numNodes; hosts beyond it drain and leave when idle. */
  const reconcileFakeHosts = () => {
    const fake = pool.fakeNodePool;
    if (!fake) return;
    for (let i = 0; i < fake.numNodes; i++) {
      const id = fakeHostId(i);
      if (!hosts[id]) registerHost(id, fakeHostAddress(input.name, i));
      const existing = sched.hosts.find((h) => h.id === id);
      if (!existing) addHost(sched, id, slotsPerHost);
      else if (existing.status === 'draining') existing.status = 'ready';
    }
    for (const h of sched.hosts) {
      const index = fakeHostIndex(h.id);
      if (index !== undefined && index >= fake.numNodes && h.status !== 'draining') setHostStatus(sched, h.id, 'draining');
    }
  };

  const stats = (): NodePool['nodePoolStats'] => {
    const batchJobCount: Record<string, number> = {};
    const batchJobRanks: Record<string, number> = {};
    const count = (state: BatchJobState, ranks: number) => {
      batchJobCount[state] = (batchJobCount[state] ?? 0) + 1;
      batchJobRanks[state] = (batchJobRanks[state] ?? 0) + ranks;
    };
    for (const r of sched.queue) count('QUEUED', r.ranks);
    for (const a of Object.values(sched.allocations)) count(jobs[a.id]?.state ?? 'PENDING', a.ranks);
    return {
      nodeCount: sched.hosts.filter((h) => h.status === 'ready').length,
      ranksPerNode: slotsPerHost,
      environmentCount: 0,
      environmentRanks: 0,
      batchJobCount,
      batchJobRanks,
    };
  };

  const view = (): NodePool => ({ ...pool, nodePoolStats: stats() });

  const changed = () => {
    version++;
    pool = { ...pool, updateTime: now() };
  };

  const describe = () =>
    [
      `**${pool.state}** · ${sched.hosts.length} host(s) × ${slotsPerHost} ${gpu ? 'GPU' : 'CPU'} slot(s)`,
      `${Object.keys(sched.allocations).length} job(s) running, ${sched.queue.length} queued`,
      ...sched.hosts.map((h) => `- ${h.id} (${h.status}): ${h.used.filter((u) => u !== null).length}/${h.slots} used`),
    ].join('\n');

  const liveJobs = () => sched.queue.length + Object.keys(sched.allocations).length;

  if (!input.carried) {
    reconcileFakeHosts();
    if (pool.state === 'CREATING') {
      pool = { ...pool, state: 'READY', status: okStatus() };
    }
    version = 1;
    reported = 0;
  }
  upsertSearchAttributes([
    { key: BatchdAccount, value: input.account },
    { key: NodePoolState, value: pool.state },
  ]);

  // ---- queries -----------------------------------------------------------------------------------
  setHandler(getNodePoolQuery, () => ({ pool: view(), version }), { description: 'The node pool resource with live nodePoolStats.' });
  setHandler(
    getNodePoolInternalsQuery,
    () => ({
      hosts: sched.hosts.map((h) => ({
        host: h.id,
        address: hosts[h.id]?.address ?? '',
        taskQueue: hosts[h.id]?.taskQueue ?? '',
        slots: h.slots,
        status: h.status,
        used: [...h.used],
      })),
      queue: sched.queue.map((r, i) => ({ jobName: r.id, ranks: r.ranks, position: i + 1, ...(jobs[r.id]?.enqueuedAt ? { enqueuedAt: jobs[r.id]?.enqueuedAt } : {}) })),
      reservation: sched.reservation,
      allocations: Object.fromEntries(
        Object.values(sched.allocations).map((a) => [a.id, { ranks: a.ranks, state: jobs[a.id]?.state ?? 'PENDING', hosts: a.hosts.map((h) => h.host) }]),
      ),
    }),
    { description: 'Hosts with their slot owners, the queue in order, the head reservation, and allocations.' },
  );
  setHandler(
    queueStandingQuery,
    (names: string[]) => {
      const out: Record<string, NonNullable<ReturnType<typeof standing>>> = {};
      for (const n of names) {
        const s = standing(sched, n);
        if (s) out[n] = s;
      }
      return out;
    },
    { description: 'Queue position and what each named job waits for.' },
  );

  // ---- capacity ------------------------------------------------------------------------------------
  setHandler(requestCapacitySignal, async (req) => {
    const refusal = capacityRefusal(pool, req.ranks, deleting);
    if (refusal !== undefined) {
      await refuse(req.workflowId, refusal);
      return;
    }
    if (enqueue(sched, req.jobName, req.ranks) === 'queued') {
      jobs[req.jobName] = { workflowId: req.workflowId, ranks: req.ranks, state: 'QUEUED', enqueuedAt: now() };
      dirty = true;
    }
  });
  setHandler(releaseCapacitySignal, ({ jobName }) => {
    const result = release(sched, jobName);
    delete jobs[jobName];
    if (result !== 'unknown') dirty = true;
  });
  setHandler(jobStateSignal, ({ jobName, state }) => {
    const j = jobs[jobName];
    if (j && !isTerminal(state)) j.state = state;
  });
  setHandler(hostLostSignal, ({ host, reason }) => {
    log.warn('host lost', { host, reason });
    setHostStatus(sched, host, 'unreachable');
    dirty = true;
  });
  setHandler(
    joinHostUpdate,
    (reg: HostRegistration) => {
      if (!hosts[reg.host]) registerHost(reg.host, reg.address);
      else hosts[reg.host] = { ...hosts[reg.host]!, address: reg.address };
      addHost(sched, reg.host, reg.slots);
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
        } else if (!hosts[reg.host] && sched.hosts.filter((h) => h.status !== 'draining').length >= pool.maxNodeCount) {
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
      changed();
      dirty = true;
      const mine = version;
      await condition(() => reported >= mine);
      return view();
    },
    {
      validator: ({ spec }: { spec: NodePoolSpec }) => {
        if (deleting) throw failedPrecondition(`node pool ${pool.name} is being deleted`);
        const newLimit = poolCapacityLimit({ ...pool, ...spec });
        const largest = Math.max(0, ...sched.queue.map((r) => r.ranks), ...Object.values(sched.allocations).map((a) => a.ranks));
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
      deleting = true;
      pool = { ...pool, state: 'DELETING', status: okStatus('being deleted') };
      changed();
      upsertSearchAttributes([{ key: NodePoolState, value: 'DELETING' }]);
      const mine = version;
      await condition(() => reported >= mine);
      return view();
    },
    {
      validator: (_request: { requestedBy?: string }) => {
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

  // The pool's state must survive any cancellation: `temporal workflow cancel` on a pool is ignored
  // (pools are deleted through the API, which refuses while jobs live), so both loops run non-cancellable.
  CancellationScope.current().cancelRequested.catch(() => log.warn('cancellation of a node pool workflow ignored; delete the pool through the API'));
  void CancellationScope.nonCancellable(async () => {
    for (;;) {
      await condition(() => version > reported);
      const v = version;
      await control.report({ kind: 'nodePools', account: input.account, resource: { ...pool }, version: v });
      reported = v;
    }
  });

  // ---- the scheduling loop -------------------------------------------------------------------------
  await CancellationScope.nonCancellable(async () => {
    const continueAsNewAt = input.continueAsNewEvents ?? 4000;
    for (;;) {
      if (patched(POOL_V1_MIGRATE_PATCH)) {
        await condition(allHandlersFinished);
        await condition(() => reported >= version);
        const settings = input.settings ?? (await control.poolSettings());
        const next = PoolQueue.resume({ scheduler: sched, hosts, jobs, version }, settings.queueWindow, now());
        const step = next.takeSync();
        next.applySync(step, await control.syncPool({ pool: input.name, ...step }));
        log.info('node pool migrated to format 2', { queued: next.length, window: next.window.length, taskQueue: settings.taskQueue });
        await makeContinueAsNewFunc<typeof nodePoolWorkflow>({ taskQueue: settings.taskQueue })({ ...input, pool, settings, carried: next.carried() });
      }
      setCurrentDetails(describe());
      await condition(
        () => dirty || (deleting && reported >= version) || workflowInfo().historyLength > continueAsNewAt || workflowInfo().continueAsNewSuggested,
      );
      if (dirty) {
        dirty = false;
        // One pass's grants go out together: awaiting each in turn would cost a round trip per job.
        await Promise.all(
          schedule(sched).map(async (allocation) => {
            const job = jobs[allocation.id];
            if (!job) {
              release(sched, allocation.id);
              dirty = true;
              return;
            }
            job.state = 'PENDING';
            try {
              await getExternalWorkflowHandle(job.workflowId).signal(capacityGrantedSignal, {
                pool: input.name,
                gpu,
                masterPort: allocation.masterPort,
                hosts: allocation.hosts.map((a) => ({
                  host: a.host,
                  address: hosts[a.host]?.address ?? '127.0.0.1',
                  taskQueue: hosts[a.host]?.taskQueue ?? hostTaskQueue(input.name, a.host),
                  slots: a.slots,
                })),
              });
            } catch (err) {
              // The job ended while it waited: give the capacity straight back.
              log.info('grant undeliverable; releasing', { job: allocation.id, error: String(err) });
              release(sched, allocation.id);
              delete jobs[allocation.id];
              dirty = true;
            }
          }),
        );
        continue;
      }
      if (deleting) {
        await condition(allHandlersFinished);
        await control.removeResource({ kind: 'nodePools', name: input.name });
        return;
      }
      // History grew large: start afresh with the same state.
      await condition(allHandlersFinished);
      await condition(() => reported >= version);
      await continueAsNew<typeof nodePoolWorkflow>({
        ...input,
        pool,
        carried: { scheduler: sched, hosts, jobs, version },
      });
    }
  });
}
