/**
 * `npm run bench -- --cluster`: the api-create and sustained figures on the cluster of `npm run
 * cluster` (PostgreSQL, Temporal's four services as processes, two API replicas, two control workers,
 * real hosts in network namespaces) instead of the dev server, each beside its raw-Temporal baseline
 * on the same cluster, in one run. The cluster is started in a temporary folder and taken down after.
 *
 * - api-create: a closed loop of 8 clients POSTing 1-rank `true` jobs to the two replicas in turn,
 *   while the jobs run; baseline: client.workflow.start of a no-op workflow (bench worker, this process).
 * - sustained: C clients each create a job and wait for it to end (`true` on the real pool, one rank);
 *   baseline: the same number of bare one-activity workflows (`bash -c true`) on the bench worker.
 * CPU per operation is summed over the cluster's processes: batchd's (API replicas, control workers,
 * agents and their ranks) and Temporal's (four services and PostgreSQL with its backends).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { type ClusterState, down, readSecrets, up } from '../scripts/cluster/cluster';
import { bridgeAddress, type ClusterOptions, NAMESPACE, POOL_ID, portsOf, processesOf } from '../scripts/cluster/plan';
import { BENCH_TASK_QUEUE, cpuSeconds, createJob, descendants, diffCounts, frontendRequests, startBenchWorker } from './lib/env';
import { type FigureOptions, type FigureResult, within } from './lib/figure';
import { BenchApi } from './lib/http';
import { closedLoop, type ClosedLoopResult } from './lib/load';
import { fmt, sleep } from './lib/stats';

const JOB = { nodePoolId: POOL_ID, numRanks: 1, shellExecutor: { command: 'true' } };

interface Phase {
  load: ClosedLoopResult;
  cpuMsPerOp: { batchd: number; temporal: number };
  rpcPerOp: Record<string, number>;
}

/** CPU seconds of a set of processes and all their descendants (ranks, PostgreSQL backends). */
function treeCpu(pids: number[]): number {
  let total = 0;
  for (const pid of pids) for (const p of [pid, ...descendants(pid)]) total += cpuSeconds(p) || 0;
  return total;
}

export async function runClusterFigures(o: FigureOptions): Promise<FigureResult[]> {
  const options: ClusterOptions = { dir: mkdtempSync(join(tmpdir(), 'batchd-bench-cluster-')), portBase: 30_000, net: 201, hosts: 4, slotsPerHost: 4 };
  const t0 = Date.now();
  let state: ClusterState | undefined;
  let connection: Connection | undefined;
  let bench: { stop(): Promise<void> } | undefined;
  try {
    state = await up(options, (line) => o.log(`    [cluster] ${line}`));
    o.log(`    [cluster] up in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    const s = state;
    const address = `${bridgeAddress(options)}:${portsOf(options).frontend}`;
    connection = await Connection.connect({ address });
    const client = new Client({ connection, namespace: NAMESPACE });
    bench = await startBenchWorker(address, NAMESPACE);
    const key = readSecrets(options).bootstrapApiKey;
    const apis = portsOf(options).api.map((p) => new BenchApi(`http://${bridgeAddress(options)}:${p}`, key));
    const specs = processesOf(options, readSecrets(options));
    const pidsOf = (kinds: string[]) => specs.filter((p) => kinds.includes(p.kind)).map((p) => s.processes[p.name]?.pid as number);
    const batchdPids = pidsOf(['api', 'worker', 'agent']);
    const temporalPids = pidsOf(['temporal', 'postgres']);
    const metricsUrl = `http://127.0.0.1:${portsOf(options).metrics.frontend}/metrics`;

    const measure = async (run: () => Promise<ClosedLoopResult>): Promise<Phase> => {
      const rpc0 = await frontendRequests(metricsUrl);
      const b0 = treeCpu(batchdPids);
      const t = treeCpu(temporalPids);
      const load = await run();
      const n = Math.max(1, load.completed);
      const rpc = diffCounts(await frontendRequests(metricsUrl), rpc0);
      return {
        load: { ...load, latencies: [] },
        cpuMsPerOp: { batchd: ((treeCpu(batchdPids) - b0) * 1000) / n, temporal: ((treeCpu(temporalPids) - t) * 1000) / n },
        rpcPerOp: Object.fromEntries(Object.entries(rpc).filter(([op]) => !op.startsWith('Poll') && op !== 'GetSystemInfo').map(([op, v]) => [op, Math.round((v / n) * 100) / 100])),
      };
    };
    const line = (p: Phase, per: string) =>
      `${fmt(p.load.throughput, 1)}/s, p50 ${fmt(p.load.latencyMs.p50, 0)} ms, p99 ${fmt(p.load.latencyMs.p99, 0)} ms, CPU/${per} ${fmt(p.cpuMsPerOp.batchd, 0)} ms batchd + ${fmt(p.cpuMsPerOp.temporal, 0)} ms Temporal+PostgreSQL${p.load.errors ? `, ${p.load.errors} errors (${p.load.firstErrors[0] ?? ''})` : ''}`;

    // ---- api-create
    const concurrency = 8;
    const count = o.quick ? 24 : 400;
    const maxMs = o.quick ? 5_000 : 25_000;
    const start = (prefix: string) => (i: number) => client.workflow.start('benchNoopWorkflow', { taskQueue: BENCH_TASK_QUEUE, workflowId: `${prefix}-${i}` }).then(() => undefined);
    const create = (prefix: string) => (i: number) => createJob(apis[i % apis.length] as BenchApi, JOB, `${prefix}-${i}`).then(() => undefined);
    await closedLoop({ concurrency, count: o.quick ? 3 : 30, maxMs, op: start('warm') });
    await closedLoop({ concurrency, count: o.quick ? 3 : 30, maxMs, op: create('warm-create') });
    await sleep(2000);
    o.log('  api-create (cluster): baseline (workflow.start of a no-op workflow)…');
    const startPhase = await measure(() => closedLoop({ concurrency, count, maxMs, op: start('noop') }));
    o.log(`    ${line(startPhase, 'op')}`);
    await sleep(2000);
    o.log('  api-create (cluster): POST batchJobs to both replicas (jobs run while the load goes on)…');
    const createPhase = await measure(() => closedLoop({ concurrency, count, maxMs, op: create('create') }));
    o.log(`    ${line(createPhase, 'op')}`);
    const apiCreate: FigureResult = {
      name: 'api-create (cluster)',
      value: createPhase.load.throughput,
      unit: `creates/s at concurrency ${concurrency}, 2 replicas`,
      baseline: startPhase.load.throughput,
      baselineUnit: 'starts/s',
      baselineLabel: 'client.workflow.start of a no-op workflow, same cluster, same concurrency',
      ratio: createPhase.load.throughput / startPhase.load.throughput,
      extra:
        `p50/p99 ${fmt(createPhase.load.latencyMs.p50, 0)}/${fmt(createPhase.load.latencyMs.p99, 0)} ms (baseline ${fmt(startPhase.load.latencyMs.p50, 0)}/${fmt(startPhase.load.latencyMs.p99, 0)} ms); ` +
        `CPU per create ${fmt(createPhase.cpuMsPerOp.batchd, 0)} ms batchd + ${fmt(createPhase.cpuMsPerOp.temporal, 0)} ms Temporal+PostgreSQL`,
      details: { concurrency, count, baseline: startPhase, create: createPhase },
    };
    // Let the created jobs drain before the next figure.
    await sleep(o.quick ? 5_000 : 30_000);

    // ---- sustained
    const jobs = o.quick ? 12 : 200;
    const c = o.quick ? 4 : 12;
    const floorOp = (prefix: string) => async (i: number) => {
      const h = await client.workflow.start('benchCommandWorkflow', { taskQueue: BENCH_TASK_QUEUE, workflowId: `${prefix}-${i}`, args: [{ command: 'true' }] });
      await within(h.result(), 60_000, `bare workflow ${i}`);
    };
    const jobOp = (prefix: string) => async (i: number) => {
      const name = await createJob(apis[i % apis.length] as BenchApi, JOB, `${prefix}-${i}`);
      const r = await within(client.workflow.getHandle(name).result() as Promise<{ job: { state: string; status: string } }>, 180_000, `job ${name}`);
      if (r.job.state !== 'COMPLETED') throw new Error(`${name} ended ${r.job.state}: ${r.job.status}`);
    };
    await closedLoop({ concurrency: c, count: c, maxMs: 20_000, op: floorOp('warm-floor') });
    await closedLoop({ concurrency: c, count: c, maxMs: 30_000, op: jobOp('warm-job') });
    o.log(`  sustained (cluster): ${jobs} bare workflows at concurrency ${c}…`);
    const floor = await measure(() => closedLoop({ concurrency: c, count: jobs, maxMs: o.quick ? 10_000 : 40_000, op: floorOp('floor') }));
    o.log(`    ${line(floor, 'workflow')}`);
    await sleep(2000);
    o.log(`  sustained (cluster): ${jobs} jobs at concurrency ${c}…`);
    const sub = await measure(() => closedLoop({ concurrency: c, count: jobs, maxMs: o.quick ? 15_000 : 120_000, op: jobOp('job') }));
    o.log(`    ${line(sub, 'job')}`);
    const sustained: FigureResult = {
      name: 'sustained (cluster)',
      value: sub.load.throughput * 60,
      unit: `jobs completed/min (${sub.load.completed} jobs, concurrency ${c}, ${options.hosts} real hosts)`,
      baseline: floor.load.throughput * 60,
      baselineUnit: 'bare workflows/min',
      baselineLabel: 'the same number of bare one-activity workflows, same cluster, same concurrency',
      ratio: sub.load.throughput / floor.load.throughput,
      extra:
        `CPU per job ${fmt(sub.cpuMsPerOp.batchd, 0)} ms batchd + ${fmt(sub.cpuMsPerOp.temporal, 0)} ms Temporal+PostgreSQL ` +
        `(bare ${fmt(floor.cpuMsPerOp.batchd, 0)} + ${fmt(floor.cpuMsPerOp.temporal, 0)} ms); job latency p50/p99 ${fmt(sub.load.latencyMs.p50, 0)}/${fmt(sub.load.latencyMs.p99, 0)} ms` +
        (sub.load.errors ? `; ${sub.load.errors} errors` : ''),
      details: { jobs, concurrency: c, floor, jobsPhase: sub },
    };
    return [apiCreate, sustained];
  } finally {
    await bench?.stop();
    await connection?.close();
    await down(options.dir, (l) => o.log(`    [cluster] ${l}`), { purge: true });
  }
}
