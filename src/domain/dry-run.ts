/**
 * A dry run of a job's create (`validateOnly=true`, AIP-163): what its pool would do with it now, and
 * when it would start, without creating anything.
 *
 * The pool's answer comes from the pool's own scheduler code (`schedule()` in scheduler.ts) run on a
 * copy of the pool's state as its workflow holds it: the job joins the end of the queue and one pass
 * says whether it is granted at once, and where. If not, the estimate replays the future on the copy:
 * each holder of capacity ends at its attempt's start plus its `maxRunDuration` (at once, if it is
 * already ending), each job granted along the way holds its capacity for its own `maxRunDuration`, and
 * a pass runs after every end, until the job is granted. A job that declares no `maxRunDuration`
 * holds its capacity forever in the replay, so the estimate is "unknown" when the job would need it.
 *
 * The estimate assumes every job runs to its limit (jobs that end sooner make the start earlier),
 * no retries, no host joining or leaving, and no new job overtaking on capacity outside a reservation.
 *
 * Pure: the caller reads the pool's workflow and the jobs' records and supplies the time.
 */
import { type BatchJobState, type DependencyCondition, isTerminal } from './batch-job-model';
import { dependencyVerdict, durationMs, formatDuration } from './job-policy';
import { queuedBehindWindowStatus, queuedStatus } from './queue-status';
import { type Allocation, type HostStatus, type PoolHost, type QueuedRequest, release, type Reservation, schedule, scheduleShared, type SchedulerState, standing } from './scheduler';
import { priorityOf, shareStanding } from './sharing';
import { type PoolSharingPolicy } from './sharing-config';

/** The pool as its workflow holds it (the node-pool workflow's `getNodePoolInternals` query). */
export interface DryRunPool {
  /** The pool's id (its name's last segment), for the words of `waitingFor`. */
  id: string;
  gpu: boolean;
  hosts: ReadonlyArray<{ host: string; slots: number; status: HostStatus; used: ReadonlyArray<string | null> }>;
  /** The head of the queue the pool schedules from (its window), in queue order (priority, then arrival). */
  queue: ReadonlyArray<{ jobName: string; ranks: number; priority?: number; account?: string }>;
  /** Every queued job, the window's and those behind it. */
  queueLength: number;
  /** How many queued jobs the pool schedules from (POOL_QUEUE_WINDOW). */
  window: number;
  reservation: Reservation | null;
  /** Jobs holding capacity, by name, with their priority and whether they may be preempted (shared pools). */
  allocations: Readonly<Record<string, { ranks: number; priority?: number; preemptible?: boolean; account?: string }>>;
}

/** What a job's record says of its timing (the read model's row; undefined when it has none). */
export interface JobTiming {
  state: BatchJobState;
  /** Its current attempt's start, once RUNNING. */
  startTime?: string;
  maxRunDuration?: string;
}

export interface DryRunDependency {
  batchJob: string;
  condition: DependencyCondition;
  /** The dependency's state now; undefined when it no longer exists. */
  state?: BatchJobState;
}

export interface DryRunInput {
  pool: DryRunPool;
  job: { name: string; ranks: number; maxQueueDuration?: string; maxRunDuration?: string; priority?: number; account?: string };
  /** The quotas and fair share the operator's sharing file sets for the pool (none: the pool is its owner's alone). */
  sharing?: PoolSharingPolicy;
  /** The records of the jobs holding capacity and queued in the window, by name; a job missing here has no record. */
  jobs: Readonly<Record<string, JobTiming | undefined>>;
  dependencies?: readonly DryRunDependency[];
  /** RFC 3339. */
  now: string;
}

export type DependencyStanding = 'MET' | 'WAITING' | 'IMPOSSIBLE';

export interface DryRunHost {
  host: string;
  ranks: number;
}

/** What would happen (the batchd extension `dryRun` of a validate-only create's answer). */
export interface DryRun {
  wouldStartNow: boolean;
  /** Where its ranks would run when it would start now: hosts in rank order, with how many ranks each. */
  placement?: DryRunHost[];
  /** Its place in its pool's queue when it would wait there (1-based), and the queue's length with it. */
  queuePosition?: number;
  queueLength?: number;
  /** Why it would not start now, in the words its status would use. */
  waitingFor?: string;
  /** The jobs whose end it waits for: those freeing the hosts it is expected to run on, or, when the estimate is unknown, those holding capacity with no maxRunDuration. */
  waitsForJobs?: string[];
  dependencies?: Array<{ batchJob: string; condition: DependencyCondition; state?: BatchJobState; standing: DependencyStanding }>;
  /** RFC 3339, or "unknown" (`estimate` says why). */
  estimatedStartTime: string;
  /** How the estimate was made, or why there is none. */
  estimate: string;
}

export const UNKNOWN = 'unknown';
/** At most this many names in `waitsForJobs`. */
export const MAX_WAITS_FOR_JOBS = 20;

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

function idOf(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

/** A job that is stopping or has ended gives its capacity back at once. */
function isEnding(state: BatchJobState): boolean {
  return isTerminal(state) || state === 'CANCELLING' || state === 'DELETING';
}

/** When a holder of capacity gives it back at the latest, or undefined when nothing bounds it. */
export function holderEnd(timing: JobTiming | undefined, now: number): number | undefined {
  if (!timing) return undefined;
  if (isEnding(timing.state)) return now;
  const limit = timing.maxRunDuration === undefined ? undefined : durationMs(timing.maxRunDuration);
  if (limit === undefined) return undefined;
  const started = timing.state === 'RUNNING' && timing.startTime !== undefined ? Date.parse(timing.startTime) : NaN;
  // Granted but not yet running: it starts about now.
  return Math.max(now, (Number.isNaN(started) ? now : started) + limit);
}

/** The pool's scheduler state, rebuilt from what its workflow shows (allocations from the slot owners). */
export function schedulerStateOf(pool: DryRunPool): SchedulerState {
  const hosts: PoolHost[] = pool.hosts.map((h) => ({ id: h.host, slots: h.slots, status: h.status, used: Array.from({ length: h.slots }, (_, i) => h.used[i] ?? null) }));
  const allocations: Record<string, Allocation> = {};
  for (const [id, a] of Object.entries(pool.allocations)) {
    allocations[id] = {
      id,
      ranks: a.ranks,
      hosts: [],
      masterPort: 0,
      ...(a.priority ? { priority: a.priority } : {}),
      ...(a.preemptible ? { preemptible: true } : {}),
      ...(a.account ? { account: a.account } : {}),
    };
  }
  for (const h of hosts) {
    const slotsOf = new Map<string, number[]>();
    h.used.forEach((holder, slot) => {
      if (holder !== null) slotsOf.set(holder, [...(slotsOf.get(holder) ?? []), slot]);
    });
    for (const [holder, slots] of slotsOf) {
      allocations[holder] ??= { id: holder, ranks: 0, hosts: [], masterPort: 0 };
      allocations[holder].hosts.push({ host: h.id, slots });
    }
  }
  const queue: QueuedRequest[] = pool.queue.map((r, i) => ({ id: r.jobName, ranks: r.ranks, seq: i + 1, ...(r.priority ? { priority: r.priority } : {}), ...(r.account ? { account: r.account } : {}) }));
  return { hosts, allocations, queue, reservation: pool.reservation ? structuredClone(pool.reservation) : null, seq: queue.length };
}

export function dryRun(input: DryRunInput): DryRun {
  const dependencies = input.dependencies?.map((d) => {
    const verdict = dependencyVerdict(d.condition, d.state);
    return { batchJob: d.batchJob, condition: d.condition, ...(d.state ? { state: d.state } : {}), standing: verdict.toUpperCase() as DependencyStanding };
  });
  const withDeps = <T extends object>(r: T): T => (dependencies?.length ? { ...r, dependencies } : r);

  const impossible = dependencies?.filter((d) => d.standing === 'IMPOSSIBLE') ?? [];
  if (impossible.length > 0) {
    const why = impossible.map((d) => `${idOf(d.batchJob)} ${d.state ? `ended ${d.state}` : 'no longer exists'} (the job needs it ${d.condition})`).join('; ');
    return withDeps({
      wouldStartNow: false,
      waitingFor: `dependencies that can never be met: ${why}`,
      estimatedStartTime: UNKNOWN,
      estimate: `it would never start: ${why}, so the job would fail without running`,
    });
  }
  const waiting = dependencies?.filter((d) => d.standing === 'WAITING') ?? [];
  if (waiting.length > 0) {
    const what = waiting.map((d) => `${idOf(d.batchJob)} (now ${d.state ?? 'unknown'}) to end ${d.condition === 'ENDED' ? 'in any way' : d.condition}`).join(', ');
    return withDeps({
      wouldStartNow: false,
      waitingFor: `dependencies: ${what}`,
      estimatedStartTime: UNKNOWN,
      estimate: `it joins the queue of node pool ${input.pool.id} only once its dependencies are met, and when they end is not predicted`,
    });
  }
  return withDeps(onPool(input));
}

/** The job reaches its pool now: granted at once, or queued with an estimate. */
function onPool(input: DryRunInput): DryRun {
  const { pool, job } = input;
  const now = Date.parse(input.now);
  const state = schedulerStateOf(pool);
  const unit = pool.gpu ? 'GPU' : 'host';

  // It reaches the window when the window holds the whole queue, or when it sorts before the window's
  // last job: a higher priority (PoolQueue.request).
  const priority = job.priority ?? 0;
  const last = pool.queue.at(-1);
  const windowHoldsAll = pool.queueLength <= pool.queue.length && pool.queue.length < pool.window;
  if (!windowHoldsAll && !(last && priority > priorityOf(last))) {
    const position = pool.queueLength + 1;
    return {
      wouldStartNow: false,
      queuePosition: position,
      queueLength: position,
      waitingFor: queuedBehindWindowStatus(pool.id, pool.gpu, { ranks: job.ranks, position, queueLength: position, window: pool.window }),
      estimatedStartTime: UNKNOWN,
      estimate: `${plural(pool.queueLength, 'job')} wait ahead of it, more than the ${pool.window} the pool schedules from, and the estimate does not read the queue past those`,
    };
  }

  // Queued jobs already ending leave the queue; what the rest will hold, and for how long.
  const durationOf = new Map<string, number | undefined>();
  for (const r of [...state.queue]) {
    const timing = input.jobs[r.id];
    if (timing && isEnding(timing.state)) release(state, r.id);
    else durationOf.set(r.id, timing?.maxRunDuration === undefined ? undefined : durationMs(timing.maxRunDuration));
  }
  const endOf = new Map<string, number | undefined>();
  for (const id of Object.keys(state.allocations)) endOf.set(id, holderEnd(input.jobs[id], now));

  // Declared run times, for backfill: of the holders (their ends) and of the queued jobs.
  for (const [id, end] of endOf) {
    const a = state.allocations[id];
    if (a && end !== undefined) a.endsBy = end;
  }
  for (const r of state.queue) {
    const d = durationOf.get(r.id);
    if (d !== undefined) r.maxRunMs = d;
  }
  state.seq += 1;
  const candidate: QueuedRequest = { id: job.name, ranks: job.ranks, seq: state.seq, ...(priority ? { priority } : {}), ...(job.account ? { account: job.account } : {}) };
  const runMs = job.maxRunDuration === undefined ? undefined : durationMs(job.maxRunDuration);
  if (runMs !== undefined) candidate.maxRunMs = runMs;
  // At its place in queue order: behind every job of its priority or higher.
  const at = state.queue.findIndex((r) => priorityOf(r) < priority);
  state.queue.splice(at < 0 ? state.queue.length : at, 0, candidate);
  const { grants } = scheduleShared(state, { now, ...input.sharing });
  const now0 = grants.find((g) => g.id === job.name);
  if (now0) {
    return {
      wouldStartNow: true,
      placement: now0.hosts.map((h) => ({ host: h.host, ranks: h.slots.length })),
      estimatedStartTime: new Date(now).toISOString(),
      estimate: 'it would start now: its whole gang fits the free capacity the queue ahead of it leaves',
    };
  }
  // The job is in the window, and so is every job ahead of it: the scheduler's standing is its place in all of it.
  const found = standing(state, job.name);
  const s = found && { ...found, queueLength: Math.max(found.queueLength, pool.queueLength + 1 - grants.length), ...shareStanding(state, job.name, input.sharing) };
  const answer: DryRun = { wouldStartNow: false, estimatedStartTime: UNKNOWN, estimate: '' };
  if (s) {
    answer.queuePosition = s.position;
    answer.queueLength = s.queueLength;
    answer.waitingFor = queuedStatus(pool.id, pool.gpu, s);
  }
  for (const g of grants) endOf.set(g.id, durationOf.get(g.id) === undefined ? undefined : now + (durationOf.get(g.id) ?? 0));

  return { ...answer, ...replay(state, job.name, { endOf, durationOf, startedAhead: grants.map((g) => g.id) }, now, unit, job.maxQueueDuration) };
}

/**
 * Plays the pool forward from `now`: the earliest known end frees its capacity, a pass runs, and so on
 * until the job is granted or no known end is left.
 */
function replay(
  state: SchedulerState,
  jobName: string,
  known: { endOf: Map<string, number | undefined>; durationOf: ReadonlyMap<string, number | undefined>; startedAhead: string[] },
  now: number,
  unit: string,
  maxQueueDuration: string | undefined,
): Pick<DryRun, 'estimatedStartTime' | 'estimate' | 'waitsForJobs'> {
  const { endOf, durationOf } = known;
  const ended: Array<{ id: string; hosts: string[] }> = [];
  const startedAhead = new Set(known.startedAhead);
  let t = now;
  // Each round ends at least one allocation, and allocations only come from the finite queue.
  for (;;) {
    let next: number | undefined;
    for (const [id, end] of endOf) if (end !== undefined && state.allocations[id] && (next === undefined || end < next)) next = end;
    if (next === undefined) return unknownEstimate(state, jobName, endOf, unit);
    t = Math.max(t, next);
    for (const [id, end] of [...endOf]) {
      if (end !== next) continue;
      const a = state.allocations[id];
      if (a) ended.push({ id, hosts: a.hosts.map((h) => h.host) });
      release(state, id);
      endOf.delete(id);
    }
    for (const g of schedule(state)) {
      if (g.id === jobName) {
        const on = new Set(g.hosts.map((h) => h.host));
        const frees = ended.filter((e) => e.hosts.some((h) => on.has(h))).map((e) => e.id);
        const waited = t - now;
        const endedRunning = ended.filter((e) => !startedAhead.has(e.id)).length;
        let estimate =
          `if every job runs to its maxRunDuration: it starts in ${formatDuration(waited)}, once ${plural(endedRunning, 'running job')} and ` +
          `${plural(startedAhead.size, 'queued job')} ahead of it have made room (sooner if they end sooner)`;
        const queueLimit = maxQueueDuration === undefined ? undefined : durationMs(maxQueueDuration);
        if (queueLimit !== undefined && waited > queueLimit) {
          estimate += `; that is past its maxQueueDuration (${maxQueueDuration}), so it may fail waiting`;
        }
        return { estimatedStartTime: new Date(t).toISOString(), estimate, waitsForJobs: frees.slice(0, MAX_WAITS_FOR_JOBS) };
      }
      startedAhead.add(g.id);
      endOf.set(g.id, durationOf.get(g.id) === undefined ? undefined : t + (durationOf.get(g.id) ?? 0));
    }
  }
}

/** No known end is left and the job still waits: say what holds the capacity it needs. */
function unknownEstimate(state: SchedulerState, jobName: string, endOf: ReadonlyMap<string, number | undefined>, unit: string): Pick<DryRun, 'estimatedStartTime' | 'estimate' | 'waitsForJobs'> {
  const ranks = state.queue.find((r) => r.id === jobName)?.ranks ?? 0;
  const capacity = state.hosts.filter((h) => h.status === 'ready').reduce((n, h) => n + h.slots, 0);
  if (capacity < ranks) {
    return {
      estimatedStartTime: UNKNOWN,
      estimate: `the pool's ready hosts have ${plural(capacity, unit)} in all, fewer than the ${ranks} it needs: it waits for hosts to join or come back`,
    };
  }
  const open = Object.keys(state.allocations).filter((id) => endOf.get(id) === undefined);
  if (open.length === 0) {
    return { estimatedStartTime: UNKNOWN, estimate: 'the jobs ahead of it wait for hosts of the pool to join or come back' };
  }
  const names = open.map(idOf);
  return {
    estimatedStartTime: UNKNOWN,
    estimate:
      `it needs capacity held by ${plural(open.length, 'job')} that declare no maxRunDuration (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}), ` +
      'so when it frees cannot be estimated',
    waitsForJobs: open.slice(0, MAX_WAITS_FOR_JOBS),
  };
}
