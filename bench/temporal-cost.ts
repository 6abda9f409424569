/**
 * Figure 4, Temporal cost per job, for 1, 8 and 64 ranks on a fake pool of 8 × p4d.24xlarge (64 GPUs):
 * each job runs `sleep S` on every rank, alone on the server, so that:
 *
 * - its own history is fetched (`getHandle(name).fetchHistory()`), and
 * - the node-pool workflow's events attributable to it are the pool history's events between the
 *   job's start and the moment the pool's history stops growing after the job ended (nothing else
 *   runs, so every pool event of that window is the job's);
 * - heartbeats that reached the server are counted by the server itself: the delta of its
 *   `service_requests{operation="RecordActivityTaskHeartbeat"}` counter (Prometheus endpoint of the
 *   dev server) over the job's window. Histories keep only the last heartbeat, so they cannot say.
 *
 * Billable Actions follow bench/lib/history.ts (peers.md §3.3). The baseline is the same work as a
 * bare workflow: one activity per host the job used, each running `sleep S` and heartbeating with
 * the SDK's default throttle (80% of the same 20 s heartbeat timeout). The 1-hour figure scales the
 * measured heartbeat rate per host to an hour of running; everything else is per job.
 */
import { BENCH_TASK_QUEUE, createFakePool, createJob, diffCounts, frontendRequests, heartbeatsIn, startBenchEnv } from './lib/env';
import { type FigureOptions, type FigureResult, within } from './lib/figure';
import { addCounts, billableActions, countEvents, eventMs, type EventCounts, historyOf, settledHistory, type Actions } from './lib/history';
import { fmt, sleep } from './lib/stats';

const POOL_ID = 'cost';
const POOL_WORKFLOW = `accounts/default/nodePools/${POOL_ID}`;
const PRICE_PER_MILLION = 50;
/**
 * The floor's hour is computed from its throttle interval, not measured: the SDK sends a heartbeat
 * at most every 0.8 × 20 s = 16 s when the worker keeps the default maxHeartbeatThrottleInterval (60 s).
 */
const FLOOR_HEARTBEATS_PER_SECOND = 1 / 16;

interface Measured {
  ranks: number;
  hosts: number;
  /** Mean seconds a host's activity ran. */
  runSeconds: number;
  job: EventCounts;
  pool: EventCounts;
  heartbeats: number;
  /** Heartbeats that reached the server per host per second of running. */
  heartbeatRatePerHostSecond: number;
  actions: Actions;
  /** Actions of the same job running for one hour (heartbeats scaled to 3600 s). */
  actionsPerJobHour: number;
  rpcs: Record<string, number>;
}

/** Seconds each activity ran (started → closed), summed: host-seconds of heartbeating. */
function activitySeconds(events: Awaited<ReturnType<typeof historyOf>>): number {
  const started = new Map<string, number>();
  let total = 0;
  for (const e of events) {
    const s = e.activityTaskStartedEventAttributes;
    if (s) started.set(String(e.eventId), eventMs(e));
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskCanceledEventAttributes;
    if (done?.startedEventId !== undefined && done.startedEventId !== null) {
      const t = started.get(String(done.startedEventId));
      if (t !== undefined) total += (eventMs(e) - t) / 1000;
    }
  }
  return total;
}

function hoursActions(actions: Actions, hosts: number, rate: number): number {
  return actions.total - actions.heartbeats + rate * hosts * 3600;
}

export async function run(o: FigureOptions): Promise<FigureResult> {
  const seconds = o.quick ? 1 : 8;
  const sizes = [1, 8, 64];
  const e = await startBenchEnv({ benchWorker: true });
  try {
    await createFakePool(e, POOL_ID, 'p4d.24xlarge', 8);
    // A warm-up job, so the first measured job pays no first-time costs.
    const warm = await createJob(e.api, { nodePoolId: POOL_ID, numRanks: 1, shellExecutor: { command: 'true' } }, 'warm');
    await within(e.client.workflow.getHandle(warm).result(), 60_000, 'warm-up job');
    await settledHistory(e.client, POOL_WORKFLOW);

    const measured: Measured[] = [];
    const floors: Measured[] = [];
    for (const ranks of sizes) {
      const poolBefore = (await historyOf(e.client, POOL_WORKFLOW)).length;
      const rpc0 = await frontendRequests(e.metricsUrl);
      const name = await createJob(e.api, { nodePoolId: POOL_ID, numRanks: ranks, shellExecutor: { command: `sleep ${seconds}` } }, `cost-${ranks}`);
      const result = (await within(e.client.workflow.getHandle(name).result(), 120_000, `job of ${ranks} ranks`)) as { job: { state: string; status: string } };
      if (result.job.state !== 'COMPLETED') throw new Error(`${name} ended ${result.job.state}: ${result.job.status}`);
      const poolEvents = (await settledHistory(e.client, POOL_WORKFLOW, o.quick ? 1000 : 1500)).slice(poolBefore);
      const rpcs = diffCounts(await frontendRequests(e.metricsUrl), rpc0);
      const jobEvents = await historyOf(e.client, name);
      const job = countEvents(jobEvents);
      const pool = countEvents(poolEvents);
      const heartbeats = heartbeatsIn(rpcs);
      const hosts = job.activitiesScheduled;
      const hostSeconds = activitySeconds(jobEvents);
      const rate = heartbeats / Math.max(0.001, hostSeconds);
      const runSeconds = hostSeconds / Math.max(1, hosts);
      const actions = billableActions(addCounts(job, pool), heartbeats);
      measured.push({ ranks, hosts, runSeconds, job, pool, heartbeats, heartbeatRatePerHostSecond: rate, actions, actionsPerJobHour: hoursActions(actions, hosts, rate), rpcs });
      o.log(
        `    ${ranks} rank(s) on ${hosts} host(s): job ${job.events} events (${job.workflowTasks} WFTs), pool +${pool.events} events (${pool.workflowTasks} WFTs); ` +
          `${actions.total} Actions = start ${actions.workflowStarts} + activities ${actions.activities} + LA tasks ${actions.localActivityTasks} + signals ${actions.signals} + SA upserts ${actions.searchAttributeUpserts} + timers ${actions.timers} + heartbeats ${heartbeats} (${fmt(rate, 2)}/host/s)`,
      );

      // The floor: one workflow, one heartbeating activity per host, nothing else.
      const fid = `floor-${ranks}`;
      const f0 = await frontendRequests(e.metricsUrl);
      const h = await e.client.workflow.start('benchCommandWorkflow', { taskQueue: BENCH_TASK_QUEUE, workflowId: fid, args: [{ command: `sleep ${seconds}`, hosts }] });
      await within(h.result(), 120_000, `floor workflow ${fid}`);
      await sleep(300);
      const frpc = diffCounts(await frontendRequests(e.metricsUrl), f0);
      const fc = countEvents(await historyOf(e.client, fid));
      const fhb = heartbeatsIn(frpc);
      const frate = fhb / Math.max(1, hosts) / seconds;
      const factions = billableActions(fc, fhb);
      floors.push({ ranks, hosts, runSeconds: seconds, job: fc, pool: countEvents([]), heartbeats: fhb, heartbeatRatePerHostSecond: frate, actions: factions, actionsPerJobHour: hoursActions(factions, hosts, FLOOR_HEARTBEATS_PER_SECOND), rpcs: frpc });
      o.log(`      floor: ${fc.events} events, ${factions.total} Actions (heartbeats ${fhb}); 1-hour: ${fmt(hoursActions(factions, hosts, FLOOR_HEARTBEATS_PER_SECOND), 0)} Actions vs ${fmt(hoursActions(actions, hosts, rate), 0)}`);
    }

    /**
     * A 1-rank variant of the plain job, its Actions excluding heartbeats: its own and its pool's
     * events, and the workflow queries made while it was created and ran (the API's, at create).
     */
    const variant = async (body: Record<string, unknown>, id: string): Promise<{ actions: number; queries: number }> => {
      const poolBefore = (await historyOf(e.client, POOL_WORKFLOW)).length;
      const rpc0 = await frontendRequests(e.metricsUrl);
      const name = await createJob(e.api, { nodePoolId: POOL_ID, numRanks: 1, ...body }, id);
      const result = (await within(e.client.workflow.getHandle(name).result(), 120_000, `job ${id}`)) as { job: { state: string; status: string } };
      if (result.job.state !== 'COMPLETED') throw new Error(`${name} ended ${result.job.state}: ${result.job.status}`);
      const pool = countEvents((await settledHistory(e.client, POOL_WORKFLOW, o.quick ? 1000 : 1500)).slice(poolBefore));
      const queries = diffCounts(await frontendRequests(e.metricsUrl), rpc0).QueryWorkflow ?? 0;
      const actions = billableActions(addCounts(countEvents(await historyOf(e.client, name)), pool), 0, queries);
      return { actions: actions.total - actions.heartbeats, queries };
    };
    // The same 1-rank job with a retry policy it never uses: it must cost exactly what the plain one does.
    const withPolicy = await variant(
      { retryPolicy: { maxAttempts: 3, exitCodes: ['1-255'], conditions: ['HOST_LOST', 'OUT_OF_MEMORY'] }, shellExecutor: { command: `sleep ${seconds}` } },
      'cost-retry-policy',
    );
    // A python job: its create checks that a host of the pool can run python (executor-admission.ts).
    const python = await variant({ pythonExecutor: { targetType: 'MODULE', target: 'timeit', args: ['-n', '1', 'pass'] } }, 'cost-python');
    const plainOne = (measured[0] as Measured).actions;
    o.log(`    1 rank with an unused retryPolicy: ${withPolicy.actions} Actions excluding heartbeats, against ${plainOne.total - plainOne.heartbeats} without one`);
    o.log(`    1 rank, python: ${python.actions} Actions excluding heartbeats, of which ${python.queries} queries`);

    const one = measured[0] as Measured;
    const oneFloor = floors[0] as Measured;
    const table = measured.map((m, i) => {
      const f = floors[i] as Measured;
      return {
        ranks: m.ranks,
        hosts: m.hosts,
        jobEvents: m.job.events,
        poolEvents: m.pool.events,
        workflowTasks: m.job.workflowTasks + m.pool.workflowTasks,
        activities: m.job.activityAttempts,
        localActivities: m.job.localActivities + m.pool.localActivities,
        localActivityTasks: m.job.localActivityTasks + m.pool.localActivityTasks,
        timers: m.job.timers + m.pool.timers,
        signalsReceived: m.job.signalsReceived + m.pool.signalsReceived,
        signalsSentByWorkflows: m.job.signalsSent + m.pool.signalsSent,
        searchAttributeUpserts: m.job.searchAttributeUpserts + m.pool.searchAttributeUpserts,
        heartbeats: m.heartbeats,
        runSeconds: m.runSeconds,
        actionsExcludingHeartbeats: m.actions.total - m.actions.heartbeats,
        actions: m.actions.total,
        actionsPerJobHour: Math.round(m.actionsPerJobHour),
        dollarsPerJobHour: (m.actionsPerJobHour * PRICE_PER_MILLION) / 1e6,
        floorActions: f.actions.total,
        floorActionsPerJobHour: Math.round(f.actionsPerJobHour),
      };
    });
    o.log('    ranks | hosts | job+pool events | WFTs | activities | LA (tasks) | timers | signals | SA upserts | heartbeats | Actions | Actions/job-hour | $/job-hour | floor Actions/job-hour');
    for (const r of table) {
      o.log(
        `    ${r.ranks} | ${r.hosts} | ${r.jobEvents}+${r.poolEvents} | ${r.workflowTasks} | ${r.activities} | ${r.localActivities} (${r.localActivityTasks}) | ${r.timers} | ${r.signalsReceived} | ${r.searchAttributeUpserts} | ${r.heartbeats} in ${fmt(r.runSeconds, 1)} s | ${r.actions} | ${r.actionsPerJobHour} | ${fmt(r.dollarsPerJobHour, 3)} | ${r.floorActionsPerJobHour}`,
      );
    }
    const eight = table[1];
    const sixtyFour = table[2];
    return {
      name: 'temporal-cost',
      value: one.actions.total - one.actions.heartbeats,
      unit: 'billable Actions per 1-rank job, excluding heartbeats',
      baseline: oneFloor.actions.total - oneFloor.actions.heartbeats,
      baselineUnit: 'Actions (bare workflow, one activity)',
      baselineLabel: 'one workflow with one heartbeating activity per host, same command',
      ratio: (one.actions.total - one.actions.heartbeats) / Math.max(1, oneFloor.actions.total - oneFloor.actions.heartbeats),
      extra:
        `8 ranks: ${eight?.actionsExcludingHeartbeats ?? '?'}, 64 ranks: ${sixtyFour?.actionsExcludingHeartbeats ?? '?'}, 1 rank with an unused retryPolicy: ${withPolicy.actions}, 1 rank of python: ${python.actions} (${python.queries} queries); ` +
        `heartbeats reaching the server ${fmt(one.heartbeatRatePerHostSecond, 2)}/host/s (server counter), so a 1-hour job costs ` +
        `${table.map((r) => `${fmt(r.actionsPerJobHour, 0)}`).join(' / ')} Actions for 1/8/64 ranks ` +
        `($${table.map((r) => fmt(r.dollarsPerJobHour, 3)).join(' / ')} at $50/M; floor ${table.map((r) => fmt(r.floorActionsPerJobHour, 0)).join(' / ')})`,
      details: { sleepSeconds: seconds, pricePerMillion: PRICE_PER_MILLION, table, measured, floors, unusedRetryPolicyActions: withPolicy.actions, python },
    };
  } finally {
    await e.stop();
  }
}
