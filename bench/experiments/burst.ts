/**
 * Experiment behind "Collapse under an unpaced burst" in docs/performance.md §7: N jobs created as
 * fast as C clients can post them, none waiting for its job to move, all queued behind an 8-rank
 * holder on a 1-host pool (so no rank runs and the work measured is the control plane's). It reports
 * how long the creates took, how long until the read model showed every job QUEUED, and how many
 * workflow tasks timed out or failed in the jobs' histories (the signature of an overloaded worker).
 *
 *   node dist/bench/experiments/burst.js [N] [C]        # default 500 jobs from 16 clients
 *
 * Bounded: creation stops after 180 s and the wait for QUEUED after a further 240 s.
 */
import { temporal } from '@temporalio/proto';
import { parseFilter } from '../../src/domain/filter';
import { FILTER_FIELDS } from '../../src/domain/list-fields';
import { getNodePoolInternalsQuery, type NodePoolInternals } from '../../workflows/messages';
import { createFakePool, createJob, cpuSeconds, selfCpuSeconds, startBenchEnv } from '../lib/env';
import { eventName, historyOf } from '../lib/history';
import { type BatchJobRecord } from '../../src/store/read-model';
import { closedLoop } from '../lib/load';
import { fmt, sleep } from '../lib/stats';


const TimeoutType = temporal.api.enums.v1.TimeoutType;

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 500);
  const c = Number(process.argv[3] ?? 16);
  const e = await startBenchEnv();
  try {
    await createFakePool(e, 'hold', 'p4d.24xlarge', 1);
    await createJob(e.api, { nodePoolId: 'hold', numRanks: 8, shellExecutor: { command: 'sleep 3600' } }, 'holder');
    const queued = () => e.service.store.count('batchJobs', 'default', parseFilter('state = "QUEUED" AND nodePoolId = "hold"', FILTER_FIELDS.batchJobs));
    const cpu0 = { self: selfCpuSeconds(), server: cpuSeconds(e.devServer.process.pid) };
    const t0 = Date.now();
    const made = await closedLoop({
      concurrency: c,
      count: n,
      maxMs: 180_000,
      op: (i) => createJob(e.api, { nodePoolId: 'hold', numRanks: 1, shellExecutor: { command: 'sleep 3600' } }, `b-${i}`).then(() => undefined),
    });
    const createdS = (Date.now() - t0) / 1000;
    console.log(`created ${made.completed} (${made.errors} errors ${made.firstErrors[0] ?? ''}) in ${fmt(createdS)} s: ${fmt(made.throughput)}/s, p50 ${fmt(made.latencyMs.p50, 0)} ms, p99 ${fmt(made.latencyMs.p99, 0)} ms`);
    const deadline = Date.now() + 240_000;
    let q = 0;
    for (let last = -1; Date.now() < deadline; await sleep(1000)) {
      q = await queued();
      if (q !== last && (q - last >= 100 || q >= made.completed)) console.log(`  ${fmt((Date.now() - t0) / 1000, 0)} s: ${q} QUEUED`);
      last = q;
      if (q >= made.completed) break;
    }
    const allS = (Date.now() - t0) / 1000;
    const cpu = { self: selfCpuSeconds() - cpu0.self, server: cpuSeconds(e.devServer.process.pid) - cpu0.server };
    console.log(`${q} of ${made.completed} QUEUED ${fmt(allS)} s after the first create; CPU ${fmt((cpu.self * 1000) / Math.max(1, q), 0)} ms/job here + ${fmt((cpu.server * 1000) / Math.max(1, q), 0)} ms Temporal`);

    const holder = await e.api.get<{ state?: string; status?: string }>('/v1/accounts/default/batchJobs/holder');
    const pool = await e.client.workflow.getHandle('accounts/default/nodePools/hold').query<NodePoolInternals>(getNodePoolInternalsQuery);
    const row = await e.service.store.get<BatchJobRecord>('batchJobs', 'accounts/default/batchJobs/holder');
    console.log(`holder: ${holder.body.state ?? '?'} (${holder.body.status ?? ''}), read model ${row?.resource.state ?? 'absent'} v${row?.version ?? 0}; pool: ${pool.queue.length} queued, allocations ${JSON.stringify(pool.allocations)}`);

    const bad: Record<string, number> = {};
    let tasks = 0;
    for (let i = 0; i < made.completed; i++) {
      for (const ev of await historyOf(e.client, `accounts/default/batchJobs/b-${i}`)) {
        const name = eventName(ev);
        if (name === 'WORKFLOW_TASK_COMPLETED') tasks++;
        if (name === 'WORKFLOW_TASK_FAILED') bad[name] = (bad[name] ?? 0) + 1;
        if (name === 'WORKFLOW_TASK_TIMED_OUT') {
          // SCHEDULE_TO_START: a sticky task the cached worker did not take within 5 s (it goes back to
          // the normal queue); START_TO_CLOSE: a task the worker took and did not finish within 10 s.
          const type = TimeoutType[ev.workflowTaskTimedOutEventAttributes?.timeoutType ?? 0] ?? 'UNKNOWN';
          const key = `${name} (${type.replace(/^TIMEOUT_TYPE_/, '')})`;
          bad[key] = (bad[key] ?? 0) + 1;
        }
      }
    }
    console.log(`histories: ${tasks} workflow tasks completed, timed out or failed: ${JSON.stringify(bad)}`);
  } finally {
    await e.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
