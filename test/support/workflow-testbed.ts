/**
 * Workflow tests (test/workflows): the real workflow bundle on a Temporal dev server, with stub
 * activities the test drives, so each race happens in the order the test chooses instead of when real
 * timers and processes happen to line up.
 *
 * - The control activities are a fake world in memory: a read model that keeps the newest version of
 *   each report, a pool store with the semantics of src/store/pool-store.ts (a job queued once per pool,
 *   rows in seq order, the newest snapshot wins), and answers for validation, liveness and orphans.
 * - Host agents are fake: `runRanks` announces its ranks, heartbeats and waits until the test ends it,
 *   stops it, or cancels it; `stopRanks` ends the job's ranks on that host.
 * - Any stub call can be held at a named gate (`world.gates.hold('report:<job>:CANCELLED')`): the test
 *   waits until the call is there, does what it wants to race with it, then opens the gate.
 *
 * No time skipping: the SDK's time-skipping test server is a Java binary that the SDK downloads, and
 * nothing can be downloaded here (nor is that download mode ever used). `TestWorkflowEnvironment.createLocal`
 * runs the Temporal CLI the project builds (ensureTemporalCli) instead, with real time; timers are kept
 * short by input (job settings in milliseconds, PoolSettings.reconcileMs), never by sleeping in tests.
 */
import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import pino from 'pino';
import type { AgentActivities, ControlActivities, HostOutcome, HostRunInput, ValidateJobResult } from '../../activities/contracts';
import { missedPoolSignals } from '../../activities/missed-signals';
import { type BatchJob, type BatchJobSpec } from '../../src/domain/batch-job-model';
import { DISCONNECTED_MESSAGE, type Environment } from '../../src/domain/environment-model';
import { hostTaskQueue, fakeHostId } from '../../src/domain/hosts';
import { resourceName } from '../../src/domain/names';
import { isGpuPool, type NodePool, okStatus, ranksPerNodeOf } from '../../src/domain/node-pool-model';
import { type PoolAmendment, type QueueRow, readAfter, type StoredPoolSnapshot } from '../../src/store/pool-store';
import { runJobStep } from '../../activities/control';
import { internalsWithClaims, storedClaims } from '../../src/domain/capacity-claim';
import { compareKeys, keyOf, type PoolRecoverySnapshot } from '../../src/domain/pool-queue';
import { requestTermsOf } from '../../src/domain/sharing';
import { type PoolSharingPolicy } from '../../src/domain/sharing-config';
import { ensureTemporalCli } from '../../src/temporal/cli';
import { installRuntime } from '../../src/temporal/runtime';
import { workflowWorkerOptions } from '../../src/temporal/workflow-worker';
import type { batchJobWorkflowV2 } from '../../workflows/batch-job';
import type { environmentWorkflow } from '../../workflows/environment';
import type { nodePoolWorkflow } from '../../workflows/node-pool';
import {
  type BatchJobView,
  getBatchJobQuery,
  getNodePoolInternalsQuery,
  type JobSettings,
  type NodePoolInput,
  type NodePoolInternals,
  type PoolSettings,
  ranksStartedSignal,
  sendPoolSignal,
  capacityGrantedSignal,
  dependencyEndedSignal,
  preemptSignal,
  watchEndSignal,
} from '../../workflows/messages';
import { ALL_SEARCH_ATTRIBUTES, JOB_STARTS_VISIBLE_AS, jobSearchAttributes } from '../../workflows/search-attributes';

export const ACCOUNT = 'default';
export const CONTROL_QUEUE = 'wf-test-control';
export const POOL_QUEUE = 'wf-test-pools';

/** Short enough that a lost host shows in about a second; long enough for a loaded 2-core machine. */
export const FAST_JOB_SETTINGS: JobSettings = { heartbeatTimeoutMs: 1500, hostStartTimeoutMs: 10_000, stopGraceMs: 100 };

/** The job and environment workflows' task timeout in these tests (the API leaves Temporal's default, 10 s). */
export const JOB_TASK_TIMEOUT = '3 seconds';

// ---- gates -----------------------------------------------------------------------------------------

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Named stopping points in the stubs. `hold(key)` makes the next stub call at `key` wait; `reached(key)`
 * resolves once it waits there; `open(key)` lets it go on (and the gate is gone: later calls pass).
 */
export class Gates {
  private readonly held = new Map<string, { reached: Deferred<void>; opened: Deferred<Error | undefined> }>();

  hold(key: string): void {
    if (!this.held.has(key)) this.held.set(key, { reached: deferred<void>(), opened: deferred<Error | undefined>() });
  }

  /** Waits until a call arrives at the held gate `key`; fails, naming it, when none has within `timeoutMs`. */
  async reached(key: string, timeoutMs = 30_000): Promise<void> {
    const gate = this.held.get(key);
    if (!gate) throw new Error(`no gate is held at ${key}`);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`nothing reached the gate ${key} within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([gate.reached.promise, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Lets the call at `key` go on; with `failure`, it fails instead (an activity that never got its write done). */
  open(key: string, failure?: Error): void {
    const gate = this.held.get(key);
    if (!gate) throw new Error(`no gate is held at ${key}`);
    this.held.delete(key);
    gate.opened.resolve(failure);
  }

  /** Called by a stub: waits while a gate is held at `key`. */
  async pass(key: string): Promise<void> {
    const gate = this.held.get(key);
    if (!gate) return;
    gate.reached.resolve();
    const failure = await gate.opened.promise;
    if (failure) throw failure;
  }
}

/** Polls an in-memory probe (the fake world, a query) until it answers; fails naming what never came. */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last instanceof Error ? last.message : JSON.stringify(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- the fake world: read model, pool store, validation --------------------------------------------

export interface StoredReport {
  kind: string;
  account: string;
  resource: Record<string, unknown> & { name: string };
  version: number;
}

/** What the control activities read and write, in memory, with the stores' semantics. */
export class FakeWorld {
  readonly gates = new Gates();
  /** Newest version of each resource, as the read model keeps it (a lower version never replaces it). */
  readonly records = new Map<string, StoredReport>();
  /** Every report in the order it landed. */
  readonly reports: StoredReport[] = [];
  readonly pools = new Map<string, NodePool>();
  readonly queues = new Map<string, Map<string, QueueRow>>();
  readonly snapshots = new Map<string, StoredPoolSnapshot>();
  /** Steps refused because a later snapshot was stored (pool-store.ts expectStep), per pool. */
  readonly lostSteps = new Map<string, number>();
  /** Of those, the ones refused because a step of the pool's own wrote it (not a job's claim, return or close). */
  readonly lostToPoolSteps = new Map<string, number>();
  /** The stored step numbers that jobs' amendments wrote, per pool. */
  private readonly amendedSteps = new Map<string, Set<number>>();
  /** Every sync step's inserts, in order: the order in which each pool admitted its requests. */
  readonly inserted = new Map<string, QueueRow[]>();
  readonly removed: string[] = [];
  readonly purged: string[] = [];
  /** Jobs whose grant the syncPool step has handed to Temporal (accepted: it lands in the job's history when the job's open task completes). */
  readonly grantsSent: string[] = [];
  /** Jobs the pools asked to stop for a job of higher priority, as their sync steps sent it. */
  readonly preemptsSent: string[] = [];
  readonly closedJobsAsked: string[][] = [];
  /** Jobs liveJobs answers as live (environments ask it before a delete). */
  readonly live = new Set<string>();
  /** Per job: what validateJob answers instead of admitting it. */
  readonly validation = new Map<string, ValidateJobResult>();
  /** Per pool: every how many sync steps one fails after it wrote and sent (its worker's answer lost), so the step is retried. */
  readonly failSyncEvery = new Map<string, number>();
  private readonly syncCount = new Map<string, number>();

  /** Per pool, the jobs that gave their capacity back in its store (capacity-claim.ts), in order. */
  readonly storeReturns = new Map<string, string[]>();
  /** Per pool, the sharing file's terms every sync step reads (as activities/control.ts syncPool). */
  readonly sharing = new Map<string, PoolSharingPolicy>();

  private sharingOf(pool: string): { sharing?: PoolSharingPolicy } {
    const policy = this.sharing.get(pool);
    return policy ? { sharing: structuredClone(policy) } : {};
  }

  /** As the stores' amendPoolSnapshot: a claim or return written one step on (the pool's next step is refused). */
  amendPoolSnapshot<T>(pool: string, amend: (state: unknown) => PoolAmendment<T>): Promise<T> {
    const stored = this.snapshots.get(pool);
    const { answer, write } = amend(structuredClone(stored?.state));
    if (write !== undefined && stored) {
      const held = (state: unknown) => Object.keys((state as PoolRecoverySnapshot).scheduler.allocations);
      const after = new Set(held(write));
      for (const gone of held(stored.state).filter((name) => !after.has(name))) this.storeReturns.set(pool, [...(this.storeReturns.get(pool) ?? []), gone]);
      this.snapshots.set(pool, { ...stored, state: structuredClone(write), step: stored.step + 1 });
      this.amendedSteps.set(pool, (this.amendedSteps.get(pool) ?? new Set()).add(stored.step + 1));
    }
    return Promise.resolve(answer);
  }

  queue(pool: string): QueueRow[] {
    return [...(this.queues.get(pool)?.values() ?? [])].sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
  }

  job(name: string): BatchJob | undefined {
    return this.records.get(name)?.resource as unknown as BatchJob | undefined;
  }

  /** The states a resource was reported in, in order, without repeats. */
  statesOf(name: string): string[] {
    const out: string[] = [];
    for (const r of this.reports) {
      const s = r.resource.name === name ? (r.resource.state as string | undefined) : undefined;
      if (s !== undefined && out.at(-1) !== s) out.push(s);
    }
    return out;
  }

  controlActivities(client: Client): ControlActivities {
    const activities: Omit<ControlActivities, 'jobStep'> = {
      validateJob: async ({ name, account, spec }) => {
        await this.gates.pass(`validate:${name}`);
        const fixed = this.validation.get(name);
        if (fixed) return fixed;
        const s = spec as BatchJobSpec;
        const poolName = resourceName(account, 'nodePools', s.nodePoolId);
        const pool = this.pools.get(poolName);
        if (!pool) return { ok: false, message: `node pool "${s.nodePoolId}" not found`, code: 'NOT_FOUND' };
        return {
          ok: true,
          spec: s,
          pool: { workflowId: poolName, gpu: isGpuPool(pool), ranksPerNode: ranksPerNodeOf(pool) },
          settings: FAST_JOB_SETTINGS,
        };
      },
      report: async (input) => {
        const resource = input.resource as unknown as StoredReport['resource'];
        await this.gates.pass(`report:${resource.name}:${String(resource.state)}`);
        const stored = { kind: input.kind, account: input.account, resource: structuredClone(resource), version: input.version };
        const before = this.records.get(resource.name);
        if (!before || before.version < input.version) this.records.set(resource.name, stored);
        this.reports.push(stored);
      },
      removeResource: ({ kind, name }) => {
        if (kind === 'nodePools') {
          this.queues.delete(name);
          this.snapshots.delete(name);
          this.pools.delete(name);
        }
        this.records.delete(name);
        this.removed.push(name);
        return Promise.resolve();
      },
      purgeJob: ({ name }) => {
        this.records.delete(name);
        this.purged.push(name);
        return Promise.resolve();
      },
      liveJobs: async ({ names }) => {
        await this.gates.pass('liveJobs');
        return { live: names.filter((n) => this.live.has(n)) };
      },
      poolSettings: () => Promise.reject(new Error('tests always pass PoolSettings in the pool input')),
      syncPool: async (step) => {
        await this.gates.pass(`sync:${step.pool}`);
        // As the stores: a checked step that follows an older snapshot than the stored one writes nothing.
        const before = this.snapshots.get(step.pool);
        const storedStep = before?.step ?? 0;
        if (step.expectStep !== undefined && storedStep > step.expectStep) {
          this.lostSteps.set(step.pool, (this.lostSteps.get(step.pool) ?? 0) + 1);
          if (!this.amendedSteps.get(step.pool)?.has(storedStep)) this.lostToPoolSteps.set(step.pool, (this.lostToPoolSteps.get(step.pool) ?? 0) + 1);
          return { inserted: 0, removed: 0, ...totals(this.queue(step.pool)), rows: [], step: storedStep, lost: structuredClone(before!), undeliverable: [], ...this.sharingOf(step.pool) };
        }
        let stepNumber = storedStep;
        if (step.snapshot && (step.expectStep !== undefined || !before || before.version <= step.snapshot.version)) {
          stepNumber = storedStep + 1;
          this.snapshots.set(step.pool, { ...structuredClone(step.snapshot), step: stepNumber });
        }
        const rows = this.queues.get(step.pool) ?? new Map<string, QueueRow>();
        this.queues.set(step.pool, rows);
        let inserted = 0;
        for (const r of step.inserts) {
          if (rows.has(r.jobName)) continue;
          rows.set(r.jobName, r);
          inserted++;
          this.inserted.set(step.pool, [...(this.inserted.get(step.pool) ?? []), r]);
        }
        let removed = 0;
        for (const n of step.removes) if (rows.delete(n)) removed++;
        const sorted = this.queue(step.pool);
        const after = step.read && readAfter(step.read);
        const read = step.read && after ? sorted.filter((r) => compareKeys(keyOf(r), after) > 0).slice(0, step.read.limit) : [];
        // As the real step: written first, then the grants go out; closed jobs come back undeliverable.
        const undeliverable: string[] = [];
        for (const g of step.grants ?? []) {
          // Written, not yet sent: a test can hold one job's grant here (`grant:<job>`).
          await this.gates.pass(`grant:${g.jobName}`);
          try {
            await client.workflow.getHandle(g.workflowId).signal(capacityGrantedSignal, g.grant);
            this.grantsSent.push(g.jobName);
          } catch (err) {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
            undeliverable.push(g.jobName);
          }
        }
        for (const p of step.preempts ?? []) {
          // Written, not yet sent: a test can hold one victim's preemption here (`preempt:<job>`).
          await this.gates.pass(`preempt:${p.jobName}`);
          try {
            await client.workflow.getHandle(p.workflowId).signal(preemptSignal, { by: p.by, reason: p.reason });
            this.preemptsSent.push(p.jobName);
          } catch (err) {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
            undeliverable.push(p.jobName);
          }
        }
        const n = (this.syncCount.get(step.pool) ?? 0) + 1;
        this.syncCount.set(step.pool, n);
        const every = this.failSyncEvery.get(step.pool);
        if (every !== undefined && n % every === 0) throw new Error(`step ${n} of ${step.pool} written and sent; its answer is lost`);
        return { inserted, removed, ...totals(sorted), rows: read, step: stepNumber, undeliverable, ...this.sharingOf(step.pool) };
      },
      signalPool: async ({ pool, signal }) => {
        try {
          await sendPoolSignal(client.workflow.getHandle(pool), signal);
          return { delivered: true };
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return { delivered: false };
          throw err;
        }
      },
      loadPool: ({ pool, windowSize }) => {
        const sorted = this.queue(pool);
        const snapshot = this.snapshots.get(pool);
        return Promise.resolve({
          ...(snapshot ? { snapshot: structuredClone(snapshot) } : {}),
          ...totals(sorted),
          maxSeq: sorted.at(-1)?.seq ?? 0,
          rows: sorted.slice(0, windowSize),
        });
      },
      closedJobs: async ({ names }) => {
        this.closedJobsAsked.push(names);
        const closed: string[] = [];
        for (const name of names) {
          try {
            if ((await client.workflow.getHandle(name).describe()).status.name !== 'RUNNING') closed.push(name);
          } catch (err) {
            if (err instanceof WorkflowNotFoundError) closed.push(name);
            else throw err;
          }
        }
        return { closed };
      },
      poolOrphans: ({ pool, account, poolId, known }) => {
        // As activities/pool-recovery.ts: the pool's CREATING or QUEUED jobs that hold nothing and are not in its stored queue.
        const queued = this.queues.get(pool) ?? new Map<string, QueueRow>();
        const states: Record<string, string> = {};
        for (const name of known) {
          const j = this.job(name);
          if (j) states[name] = j.state;
        }
        const orphans = [...this.records.values()]
          .filter((r) => r.kind === 'batchJobs' && r.account === account)
          .map((r) => r.resource as unknown as BatchJob)
          .filter((j) => j.nodePoolId === poolId && (j.state === 'CREATING' || j.state === 'QUEUED') && !known.includes(j.name) && !queued.has(j.name))
          .sort((a, b) => a.createTime.localeCompare(b.createTime) || a.name.localeCompare(b.name))
          .map((j) => ({ jobName: j.name, ranks: j.numRanks, createTime: j.createTime, terms: requestTermsOf(account, j, j.attempt ?? 1) }));
        return Promise.resolve({ orphans, states });
      },
      poolExists: ({ pool }) => Promise.resolve(this.pools.has(pool)),
      // The real one: it reads a closed run's history from the server.
      missedPoolSignals: (input) => missedPoolSignals(client, input),
      // As activities/control.ts: ask first, then read the record; a gone workflow or record is skipped / null.
      watchJobs: async ({ watcher, jobs }) => {
        const states: Record<string, BatchJob['state'] | null> = {};
        for (const job of jobs) {
          await this.gates.pass(`watch:${job}`);
          try {
            await client.workflow.getHandle(job).signal(watchEndSignal, { watcher });
          } catch (err) {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
          }
          states[job] = this.job(job)?.state ?? null;
        }
        return { states };
      },
      notifyJobEnded: async ({ job, state, watchers }) => {
        for (const watcher of watchers) {
          try {
            await client.workflow.getHandle(watcher).signal(dependencyEndedSignal, { batchJob: job, state });
          } catch (err) {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
          }
        }
      },
    };
    return {
      ...activities,
      // The real step (claims and returns through this store), the record with its gate `report:<job>:<state>`.
      jobStep: (step) => runJobStep(step, { store: this, signalPool: activities.signalPool, report: activities.report }),
    };
  }
}

function totals(rows: QueueRow[]): { length: number; ranks: number; maxRanks: number } {
  return { length: rows.length, ranks: rows.reduce((n, r) => n + r.ranks, 0), maxRanks: Math.max(0, ...rows.map((r) => r.ranks)) };
}

// ---- fake host agents -----------------------------------------------------------------------------

/** How a fake agent runs one job's ranks. */
export interface RankBehaviour {
  /** Signal ranksStarted to the job (default true). */
  announce?: boolean;
  /** Heartbeat while running (default true); false is a host that died after picking its ranks up. */
  heartbeat?: boolean;
  /** Succeed at once instead of waiting to be ended (default false). */
  succeed?: boolean;
}

export interface RankRun {
  jobName: string;
  host: string;
  input: HostRunInput;
  /** Ends the ranks with this outcome (the test decides when). */
  end(outcome: HostOutcome): void;
  /** How the activity ended: an outcome, or 'cancelled'. */
  ended?: HostOutcome | 'cancelled';
}

export class FakeAgents {
  readonly runs: RankRun[] = [];
  readonly stops: Array<{ jobName: string; host: string }> = [];
  /** Deleted jobs' folders removed, by host. */
  readonly purges: Array<{ jobName: string; host: string }> = [];
  /** Hosts whose pool probed them (it holds them unreachable), in order. */
  readonly probes: string[] = [];
  /** Per `<job>@<host>` or per job name; jobs without one announce, heartbeat and wait. */
  readonly behaviour = new Map<string, RankBehaviour>();
  defaultBehaviour: RankBehaviour = {};

  constructor(private readonly gates: Gates) {}

  runsOf(jobName: string): RankRun[] {
    return this.runs.filter((r) => r.jobName === jobName);
  }

  activitiesFor(host: string): AgentActivities {
    return {
      runRanks: async (input) => {
        const ctx = Context.current();
        const b = { announce: true, heartbeat: true, succeed: false, ...this.defaultBehaviour, ...(this.behaviour.get(`${input.jobName}@${host}`) ?? this.behaviour.get(input.jobName)) };
        const outcome = deferred<HostOutcome>();
        const run: RankRun = { jobName: input.jobName, host, input, end: (o) => outcome.resolve(o) };
        this.runs.push(run);
        await this.gates.pass(`run:${input.jobName}@${host}`);
        if (b.announce) await ctx.client.workflow.getHandle(input.workflowId).signal(ranksStartedSignal, { host: input.host });
        if (b.succeed) {
          run.ended = { outcome: 'succeeded' };
          return run.ended;
        }
        const beat = b.heartbeat ? setInterval(() => ctx.heartbeat(), 100) : undefined;
        try {
          // ctx.cancelled rejects with the cancellation, which is what a cancelled activity throws.
          run.ended = await Promise.race([outcome.promise, ctx.cancelled]);
          return run.ended;
        } catch (err) {
          run.ended = 'cancelled';
          throw err;
        } finally {
          clearInterval(beat);
        }
      },
      stopRanks: async ({ jobName }) => {
        this.stops.push({ jobName, host });
        await this.gates.pass(`stop:${jobName}@${host}`);
        const live = this.runs.filter((r) => r.jobName === jobName && r.host === host && r.ended === undefined);
        for (const r of live) r.end({ outcome: 'stopped' });
        return { stopped: live.length };
      },
      purgeRanks: async ({ jobName }) => {
        this.purges.push({ jobName, host });
        await this.gates.pass(`purge:${jobName}@${host}`);
        return { removed: true };
      },
      probeHost: async () => {
        this.probes.push(host);
        await this.gates.pass(`probe:${host}`);
        // As a real agent: the jobs whose ranks it still runs, whatever their workflows think.
        return { host, activeJobs: [...new Set(this.runs.filter((r) => r.host === host && r.ended === undefined).map((r) => r.jobName))] };
      },
    };
  }
}

// ---- the testbed ----------------------------------------------------------------------------------

export interface PoolOptions {
  numNodes: number;
  /** A machine type of src/domain/machine-types.ts (default g5.xlarge: 1 GPU per host). */
  machineType?: string;
  queueWindow?: number;
  reconcileMs?: number;
  continueAsNewEvents?: number;
}

export interface JobOptions {
  pool: string;
  numRanks?: number;
  settings?: JobSettings;
  createTime?: string;
  /** Fields of the job beyond pool and ranks (retryPolicy, limits, dependsOn), already normalized. */
  spec?: Partial<BatchJobSpec>;
  /** The job workflow type: V2 unless a test checks the API's V3 (claims) or that the frozen V1 still runs. */
  workflowType?: 'batchJobWorkflowV3' | 'batchJobWorkflowV2' | 'batchJobWorkflow';
  /** BatchJobState as the job starts: as the API starts it today (V1: CREATING, as it started V1 jobs). */
  startVisibleAs?: string;
}

/** A dev server, the control workers on the real bundle with the fake world, and fake agents per host. */
export class WorkflowTestbed {
  readonly world = new FakeWorld();
  readonly agents = new FakeAgents(this.world.gates);
  private readonly workers: Array<{ worker: Worker; running: Promise<void> }> = [];
  private readonly hostQueues = new Set<string>();
  private createSeq = 0;

  private constructor(readonly env: TestWorkflowEnvironment) {}

  get client(): Client {
    return this.env.client;
  }

  static async start(): Promise<WorkflowTestbed> {
    installRuntime(pino({ level: process.env.TEST_LOG_LEVEL ?? 'error' }));
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: ensureTemporalCli() },
        // The workflows upsert these, as on the service's dev server (src/temporal/dev-server.ts).
        searchAttributes: [...ALL_SEARCH_ATTRIBUTES],
        log: { format: 'json', level: 'error' },
      },
    });
    const bed = new WorkflowTestbed(env);
    try {
      const activities = bed.world.controlActivities(env.client);
      for (const taskQueue of [CONTROL_QUEUE, POOL_QUEUE]) {
        await bed.run(
          await Worker.create({
            connection: env.nativeConnection,
            taskQueue,
            workflowBundle: { codePath: join(__dirname, '..', '..', 'workflow-bundle.js') },
            ...workflowWorkerOptions(),
            activities,
            maxCachedWorkflows: 200,
            shutdownGraceTime: '1 second',
          }),
        );
      }
    } catch (err) {
      await bed.stop();
      throw err;
    }
    return bed;
  }

  private run(worker: Worker): Promise<void> {
    const running = worker.run();
    this.workers.push({ worker, running });
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    for (const { worker } of this.workers) if (worker.getState() === 'RUNNING') worker.shutdown();
    await Promise.allSettled(this.workers.map((w) => w.running));
    await this.env.teardown();
  }

  poolName(id: string): string {
    return resourceName(ACCOUNT, 'nodePools', id);
  }

  jobName(id: string): string {
    return resourceName(ACCOUNT, 'batchJobs', id);
  }

  /** Starts a fake pool's workflow on the pools' task queue, and an agent for each of its hosts. */
  async startPool(id: string, options: PoolOptions): Promise<string> {
    const pool = this.addPool(id, options);
    const name = pool.name;
    for (let i = 0; i < options.numNodes; i++) await this.startAgent(name, fakeHostId(i));
    await this.startPoolWorkflow(this.poolInput(id, pool, options));
    return name;
  }

  /** A new fake pool's record, as NodePoolService makes it, known to the world (no agents, no workflow). */
  addPool(id: string, options: PoolOptions): NodePool {
    const name = this.poolName(id);
    const time = new Date().toISOString();
    const pool: NodePool = {
      name,
      minNodeCount: 0,
      maxNodeCount: options.numNodes,
      overprovisionNodeCount: 0,
      annotations: {},
      fakeNodePool: { machineType: options.machineType ?? 'g5.xlarge', numNodes: options.numNodes },
      createTime: time,
      updateTime: time,
      state: 'CREATING',
      status: okStatus(),
      nodePoolStats: { nodeCount: 0, ranksPerNode: 0, environmentCount: 0, environmentRanks: 0, batchJobCount: {}, batchJobRanks: {} },
    };
    this.world.pools.set(name, pool);
    return pool;
  }

  poolInput(id: string, pool: NodePool, options: PoolOptions, recover?: NodePoolInput['recover']): NodePoolInput {
    const settings: PoolSettings = { taskQueue: POOL_QUEUE, queueWindow: options.queueWindow ?? 100, reconcileMs: options.reconcileMs ?? 60_000 };
    return {
      account: ACCOUNT,
      poolId: id,
      name: pool.name,
      pool,
      settings,
      ...(options.continueAsNewEvents !== undefined ? { continueAsNewEvents: options.continueAsNewEvents } : {}),
      ...(recover ? { recover } : {}),
    };
  }

  /** As NodePoolService starts (and recoverPool restarts) a pool's workflow. */
  async startPoolWorkflow(input: NodePoolInput): Promise<void> {
    await this.client.workflow.start<typeof nodePoolWorkflow>('nodePoolWorkflow', {
      workflowId: input.name,
      taskQueue: POOL_QUEUE,
      args: [input],
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    });
  }

  private async startAgent(pool: string, host: string): Promise<void> {
    const taskQueue = hostTaskQueue(pool, host);
    if (this.hostQueues.has(taskQueue)) return;
    this.hostQueues.add(taskQueue);
    await this.run(await Worker.create({ connection: this.env.nativeConnection, taskQueue, activities: this.agents.activitiesFor(host), shutdownGraceTime: '1 second' }));
  }

  /** Starts an environment's workflow as EnvironmentService.create does (image `baseImageRef`). */
  async startEnvironment(id: string, baseImageRef: string): Promise<string> {
    const name = resourceName(ACCOUNT, 'environments', id);
    const time = new Date().toISOString();
    const environment: Environment = {
      name,
      shared: false,
      annotations: {},
      baseImageRef,
      imageRef: baseImageRef,
      createTime: time,
      updateTime: time,
      createdBy: 'ann@example.com',
      state: 'DISCONNECTED',
      status: okStatus(DISCONNECTED_MESSAGE),
    };
    await this.client.workflow.start<typeof environmentWorkflow>('environmentWorkflow', {
      workflowId: name,
      taskQueue: CONTROL_QUEUE,
      args: [{ account: ACCOUNT, environmentId: id, name, environment }],
      workflowIdConflictPolicy: 'FAIL',
      workflowTaskTimeout: JOB_TASK_TIMEOUT,
    });
    return name;
  }

  /** Starts a job's workflow as the API does (its spec already normalized). */
  async startJob(id: string, options: JobOptions): Promise<string> {
    const name = this.jobName(id);
    // Distinct, increasing create times: recovery queues orphans in create order.
    const createTime = options.createTime ?? new Date(Date.UTC(2026, 0, 1) + ++this.createSeq).toISOString();
    const spec: BatchJobSpec = {
      nodePoolId: options.pool,
      numRanks: options.numRanks ?? 1,
      envVars: {},
      shellExecutor: { command: 'true' },
      annotations: {},
      shared: false,
      ...options.spec,
    };
    await this.client.workflow.start<typeof batchJobWorkflowV2>(options.workflowType ?? 'batchJobWorkflowV2', {
      workflowId: name,
      taskQueue: CONTROL_QUEUE,
      args: [{ name, account: ACCOUNT, jobId: id, spec, createdBy: 'ann@example.com', createTime, settings: options.settings ?? FAST_JOB_SETTINGS }],
      workflowIdConflictPolicy: 'FAIL',
      typedSearchAttributes: jobSearchAttributes(ACCOUNT, { ...spec, createdBy: 'ann@example.com', state: options.startVisibleAs ?? (options.workflowType === 'batchJobWorkflow' ? 'CREATING' : JOB_STARTS_VISIBLE_AS) }),
      // A task held open by a gated local activity is heartbeated (completed, and a new one started) at
      // 80% of this; the default 10 s would cost 8 s whenever a test needs that new task.
      workflowTaskTimeout: JOB_TASK_TIMEOUT,
    });
    return name;
  }

  async jobView(name: string): Promise<BatchJobView> {
    return this.client.workflow.getHandle(name).query(getBatchJobQuery);
  }

  /** Waits until the job's newest report is in `state` (the read model has it). */
  async reported(name: string, state: string | string[]): Promise<BatchJob> {
    const states = Array.isArray(state) ? state : [state];
    return until(`${name} reported ${states.join(' or ')}`, () => {
      const j = this.world.job(name);
      return j && states.includes(j.state) ? j : undefined;
    });
  }

  /** The job's result once its workflow completes. */
  /** The job's result; fails, naming the job and its state, when it has not ended within `timeoutMs`. */
  async result(name: string, timeoutMs = 60_000): Promise<{ job: BatchJob; deleted: boolean }> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void this.jobView(name).then(
          (v) => reject(new Error(`${name} did not end within ${timeoutMs} ms: it is ${v.job.state} (${v.job.status})`)),
          (err: unknown) => reject(new Error(`${name} did not end within ${timeoutMs} ms (${String(err)})`)),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.client.workflow.getHandle<typeof batchJobWorkflowV2>(name).result(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The pool's internals as the API answers them: its workflow's, with the claims and returns in its store (capacity-claim.ts). */
  async internals(pool: string): Promise<NodePoolInternals> {
    const internals = await this.client.workflow.getHandle(pool).query(getNodePoolInternalsQuery);
    return internalsWithClaims(internals, storedClaims(this.world.snapshots.get(pool)?.state));
  }

  /** A pool holding nothing: no allocation, no queue, every slot free. */
  async assertIdle(pool: string): Promise<NodePoolInternals> {
    return until(`${pool} idle`, async () => {
      const i = await this.internals(pool);
      const busy = Object.keys(i.allocations).length > 0 || i.queue.length > 0 || (i.queueSummary?.length ?? 0) > 0 || i.hosts.some((h) => h.used.some((u) => u !== null));
      return busy ? undefined : i;
    });
  }

  /** Event types of a workflow's current run (for failure messages). */
  async eventsOf(workflowId: string): Promise<string[]> {
    const history = await this.client.workflow.getHandle(workflowId).fetchHistory();
    return (history.events ?? []).map((e) => {
      const type = temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? String(e.eventType);
      const cause = e.workflowTaskFailedEventAttributes?.cause;
      return type.replace('EVENT_TYPE_', '') + (cause ? `(${temporal.api.enums.v1.WorkflowTaskFailedCause[cause]})` : '');
    });
  }

  /** Signals of one name that reached a workflow (its current run, or the run named), with their payloads. */
  async signalsAt(workflowId: string, signalName: string, runId?: string): Promise<unknown[]> {
    const history = await this.client.workflow.getHandle(workflowId, runId).fetchHistory();
    const out: unknown[] = [];
    for (const e of history.events ?? []) {
      const a = e.workflowExecutionSignaledEventAttributes;
      if (e.eventType !== temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED || a?.signalName !== signalName) continue;
      const data = a.input?.payloads?.[0]?.data;
      out.push(data ? JSON.parse(Buffer.from(data).toString('utf8')) : undefined);
    }
    return out;
  }

  /** Whether the named signals reached the workflow in one workflow task (no task started between them). */
  async inOneTask(workflowId: string, signalNames: string[]): Promise<boolean> {
    const events = (await this.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const at = signalNames.map((n) => events.findIndex((e) => e.workflowExecutionSignaledEventAttributes?.signalName === n));
    if (at.some((i) => i < 0)) return false;
    const [from, to] = [Math.min(...at), Math.max(...at)];
    return !events.slice(from, to).some((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED);
  }

  /** How many `signalName` signals from `from` reached `to` (the server confirmed their delivery). */
  async delivered(_from: string, signalName: string, to: string): Promise<number> {
    // Counted where it lands: grants leave from the pool's syncPool step (an activity), not as commands.
    const history = await this.client.workflow.getHandle(to).fetchHistory();
    return (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === signalName).length;
  }

  /** How many times `job` gave its capacity back to the pool: releaseCapacity signals that reached its workflow (its current run), and returns in its store. */
  async releasesAt(pool: string, job: string): Promise<number> {
    const returns = (this.world.storeReturns.get(pool) ?? []).filter((name) => name === job).length;
    return returns + (await this.signalsAt(pool, 'releaseCapacity')).filter((p) => (p as { jobName?: string } | undefined)?.jobName === job).length;
  }
}

