/**
 * Figure `get`: `GET batchJobs/{id}` of a live job over HTTP, one request at a time, with the Temporal
 * requests each one makes. Two jobs on a 1-host fake pool of 8 GPUs: an 8-rank holder RUNNING
 * `sleep`, and a 1-rank job QUEUED behind it. Requests alternate between the two, and with the
 * baseline, so all see the same moments of the machine. Then 8 clients poll the QUEUED job at once,
 * whose queue-standing queries share their pool's (src/api/coalescing-reader.ts).
 *
 * Baseline: the same record read straight from the store (`store.get` in this process), which is
 * all a GET must do; the rest is HTTP, auth, the workflow's describe, and for a QUEUED job its queue
 * standing. The Temporal requests come from the dev server's own frontend counters
 * (`service_requests` by operation) over the HTTP requests alone.
 */
import { performance } from 'node:perf_hooks';
import { type BatchJobRecord } from '../src/store/read-model';
import { createFakePool, createJob, diffCounts, frontendRequests, startBenchEnv } from './lib/env';
import { type FigureOptions, type FigureResult } from './lib/figure';
import { fmt, summarize } from './lib/stats';

const A = '/v1/accounts/default';

interface Variant {
  name: string;
  http: () => Promise<void>;
  store: () => Promise<void>;
  httpMs: number[];
  storeMs: number[];
  /** Temporal frontend requests during `n` GETs, by operation. */
  rpc: Record<string, number>;
}

export async function run(o: FigureOptions): Promise<FigureResult> {
  const n = o.quick ? 40 : 300;
  const warm = o.quick ? 5 : 20;
  const e = await startBenchEnv();
  try {
    await createFakePool(e, 'bench', 'p4d.24xlarge', 1);
    const stateOf = async (name: string) => (await e.api.get<{ state?: string }>(`${A}/batchJobs/${name.split('/').pop() ?? ''}`)).body.state;
    const reach = async (name: string, state: string) => {
      const deadline = Date.now() + 120_000;
      while ((await stateOf(name)) !== state) {
        if (Date.now() > deadline) throw new Error(`${name} not ${state} within 120 s: ${await stateOf(name)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    // The holder first: a job created beside it could reach the pool before it and run.
    const holder = await createJob(e.api, { nodePoolId: 'bench', numRanks: 8, shellExecutor: { command: 'sleep 600' } }, 'get-holder');
    await reach(holder, 'RUNNING');
    const queued = await createJob(e.api, { nodePoolId: 'bench', numRanks: 1, shellExecutor: { command: 'true' } }, 'get-queued');
    await reach(queued, 'QUEUED');

    const store = e.service.store;
    const variants = [holder, queued].map((name): Variant => ({
      name,
      http: async () => {
        const r = await e.api.get<{ state?: string }>(`${A}/batchJobs/${name.split('/').pop() ?? ''}`);
        if (r.status !== 200 || !r.body.state) throw new Error(`GET ${name}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      },
      store: async () => {
        if (!(await store.get<BatchJobRecord>('batchJobs', name))) throw new Error(`${name} not in the store`);
      },
      httpMs: [],
      storeMs: [],
      rpc: {},
    }));
    for (let i = 0; i < warm; i++) for (const v of variants) await v.http();
    for (const v of variants) {
      // Temporal requests of this variant's GETs alone: counted over a run of them.
      const rpc0 = await frontendRequests(e.metricsUrl);
      for (let i = 0; i < n; i++) await v.http();
      // The server's counters reach its metrics endpoint a moment late.
      await new Promise((r) => setTimeout(r, 3000));
      v.rpc = diffCounts(await frontendRequests(e.metricsUrl), rpc0);
    }
    for (let i = 0; i < n; i++) {
      for (const v of variants) {
        let t = performance.now();
        await v.http();
        v.httpMs.push(performance.now() - t);
        t = performance.now();
        await v.store();
        v.storeMs.push(performance.now() - t);
      }
    }
    // The QUEUED job polled by several clients at once: their standing queries share the pool's.
    const clients = 8;
    const each = Math.ceil(n / clients);
    const polled = variants[1];
    if (!polled) throw new Error('no QUEUED variant');
    const concurrentMs: number[] = [];
    const c0 = await frontendRequests(e.metricsUrl);
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let i = 0; i < each; i++) {
          const t = performance.now();
          await polled.http();
          concurrentMs.push(performance.now() - t);
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 3000));
    const concurrentRpc = diffCounts(await frontendRequests(e.metricsUrl), c0);
    const concurrent = summarize(concurrentMs);
    const concurrentQueries = (concurrentRpc.QueryWorkflow ?? 0) / (clients * each);
    o.log(`    QUEUED, ${clients} clients at once: HTTP p50/p99 ${fmt(concurrent.p50, 2)}/${fmt(concurrent.p99, 2)} ms; ${fmt(concurrentQueries, 2)} queries per GET`);

    const [running, waiting] = variants.map((v) => ({
      http: summarize(v.httpMs),
      store: summarize(v.storeMs),
      perGet: (op: string) => (v.rpc[op] ?? 0) / n,
      rpc: v.rpc,
    }));
    if (!running || !waiting) throw new Error('no variants');
    const perGet = (r: typeof running) => `${fmt(r.perGet('QueryWorkflow'), 2)} queries, ${fmt(r.perGet('DescribeWorkflowExecution'), 2)} describes per GET`;
    o.log(`    RUNNING: HTTP p50/p99 ${fmt(running.http.p50, 2)}/${fmt(running.http.p99, 2)} ms, store.get ${fmt(running.store.p50, 2)}/${fmt(running.store.p99, 2)} ms; ${perGet(running)}`);
    o.log(`    QUEUED:  HTTP p50/p99 ${fmt(waiting.http.p50, 2)}/${fmt(waiting.http.p99, 2)} ms, store.get ${fmt(waiting.store.p50, 2)}/${fmt(waiting.store.p99, 2)} ms; ${perGet(waiting)}`);
    return {
      name: 'get',
      value: running.http.p50,
      unit: 'ms p50 GET of a RUNNING job over HTTP',
      baseline: running.store.p50,
      baselineUnit: 'ms p50 (store.get alone)',
      baselineLabel: 'the read model get of the same record in-process',
      ratio: running.http.p50 / running.store.p50,
      extra:
        `p99 ${fmt(running.http.p99, 1)} ms (store ${fmt(running.store.p99, 1)}); ${perGet(running)}; ` +
        `a QUEUED job ${fmt(waiting.http.p50, 1)}/${fmt(waiting.http.p99, 1)} ms p50/p99, ${perGet(waiting)}; ${n} requests each; ` +
        `the QUEUED job polled by ${clients} clients at once ${fmt(concurrent.p50, 1)}/${fmt(concurrent.p99, 1)} ms, ${fmt(concurrentQueries, 2)} queries per GET`,
      details: { n, running, waiting, concurrent: { clients, each, latency: concurrent, rpc: concurrentRpc } },
    };
  } finally {
    await e.stop();
  }
}
