/**
 * Figure 6, list: a page of 50 over 10,000 jobs, with and without a state filter, p50/p99.
 *
 * The read model is seeded directly through SqliteReadModel.put with 10,000 realistic job records in
 * a temporary DATA_DIR (old jobs mostly COMPLETED, some FAILED or CANCELLED; the newest 4% RUNNING,
 * QUEUED or PENDING), then the service starts on it with the `worker` and `api` roles (the worker
 * serves the two default pools' workflows, which answer the queue-standing query list makes for
 * QUEUED jobs on a page) and requests go through the real HTTP API, one at a time.
 *
 * Baseline: the same query straight on the store (SqliteReadModel.list in this process: the indexed
 * SELECT and COUNT alone, no HTTP, auth, JSON or queue-standing query).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseListRequest } from '../src/api/list-request';
import { type BatchJob } from '../src/domain/batch-job';
import { SqliteReadModel } from '../src/store/sqlite-read-model';
import { ACCOUNT_PATH, startBenchEnv, waitHealthy } from './lib/env';
import { type FigureOptions, type FigureResult } from './lib/figure';
import { fmt, prng, summarize } from './lib/stats';

/** `total` job records, oldest first, 4 minutes apart, ending now. */
export function seedJobs(total: number, seed = 7): BatchJob[] {
  const rnd = prng(seed);
  const now = Date.now();
  const users = ['admin@localhost', 'ann@example.com', 'bob@example.com', 'cat@example.com'];
  const out: BatchJob[] = [];
  for (let i = 0; i < total; i++) {
    const created = now - (total - i) * 240_000;
    const recent = i >= total * 0.96;
    const r = rnd();
    const state: BatchJob['state'] = recent
      ? r < 0.5
        ? 'RUNNING'
        : r < 0.875
          ? 'QUEUED'
          : 'PENDING'
      : r < 0.88
        ? 'COMPLETED'
        : r < 0.96
          ? 'FAILED'
          : 'CANCELLED';
    const numRanks = [1, 1, 2, 4, 8, 16][Math.floor(rnd() * 6)] ?? 1;
    const gpu = rnd() < 0.8;
    const iso = (ms: number) => new Date(ms).toISOString();
    const job: BatchJob = {
      name: `accounts/default/batchJobs/job-${String(i).padStart(5, '0')}`,
      displayName: `training run ${i}`,
      nodePoolId: gpu ? 'default-gpu' : 'default-cpu',
      numRanks: gpu ? numRanks : 1,
      envVars: { EPOCHS: String(1 + (i % 5)), LR: '3e-4' },
      annotations: { team: ['vision', 'speech', 'ranking'][i % 3] ?? 'vision' },
      shared: i % 4 === 0,
      shellExecutor: { command: `python train.py --config configs/run-${i % 40}.yaml` },
      createdBy: users[i % users.length] ?? 'admin@localhost',
      createTime: iso(created),
      updateTime: iso(created + 60_000),
      state,
      status:
        state === 'COMPLETED'
          ? `all ${numRanks} ranks exited with code 0`
          : state === 'FAILED'
            ? 'rank 0 on host h0 exited with code 1 (last output: Traceback (most recent call last): …)'
            : state === 'CANCELLED'
              ? 'cancelled by ann@example.com'
              : state === 'QUEUED'
                ? `queued in node pool ${gpu ? 'default-gpu' : 'default-cpu'}: waiting for ${numRanks} GPUs`
                : `running ${numRanks} ranks on 1 host: h0 (${numRanks})`,
    };
    if (state !== 'QUEUED' && state !== 'PENDING') job.startTime = iso(created + 30_000);
    if (state === 'COMPLETED' || state === 'FAILED' || state === 'CANCELLED') job.endTime = iso(created + 60_000);
    out.push(job);
  }
  return out;
}

interface Variant {
  /** Label in the report. */
  name: string;
  query: Record<string, string>;
}

export async function run(o: FigureOptions): Promise<FigureResult> {
  const total = 10_000;
  const n = o.quick ? 20 : 300;
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-bench-list-'));
  try {
    const seedStart = Date.now();
    const seeding = new SqliteReadModel(join(dataDir, 'batchd.sqlite'));
    for (const job of seedJobs(total)) await seeding.put('batchJobs', 'default', job, 1);
    await seeding.close();
    o.log(`    seeded ${total} jobs in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);

    const e = await startBenchEnv({ dataDir, roles: ['worker', 'api'], defaultPools: true });
    try {
      await waitHealthy(e);
      const store = e.service.store;
      const secret = Buffer.from('bench');
      // A cursor 20 pages (1,000 jobs) in: keyset paging should cost what the first page costs.
      let after: unknown[] | undefined;
      let token = '';
      {
        const q = parseListRequest('batchJobs', 'default', { pageSize: '50' }, secret);
        for (let p = 0; p < 20; p++) after = (await store.list('batchJobs', { account: 'default', orderBy: q.orderBy, pageSize: 50, ...(after ? { after } : {}) })).nextAfter;
        for (let p = 0; p < 20; p++) {
          const r = await e.api.get<{ nextPageToken: string }>(`${ACCOUNT_PATH}/batchJobs?pageSize=50${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`);
          token = r.body.nextPageToken;
        }
      }
      const variants: Variant[] = [
        { name: 'no filter', query: { pageSize: '50' } },
        { name: 'state = "RUNNING"', query: { pageSize: '50', filter: 'state = "RUNNING"' } },
        { name: 'state = "FAILED"', query: { pageSize: '50', filter: 'state = "FAILED"' } },
        { name: 'no filter, page 21', query: { pageSize: '50', pageToken: token } },
      ];
      // Every variant, HTTP then store, in turn: each round sees the same moment of a noisy machine.
      const ops = variants.map((v) => {
        const qs = new URLSearchParams(v.query).toString();
        const req = parseListRequest('batchJobs', 'default', { ...v.query, pageToken: '' }, secret);
        const seen = { items: 0, totalSize: 0 };
        return {
          v,
          seen,
          http: async () => {
            const r = await e.api.get<{ batchJobs?: unknown[]; totalSize?: number }>(`${ACCOUNT_PATH}/batchJobs?${qs}`);
            if (r.status !== 200) throw new Error(`list ${v.name}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
            seen.items = r.body.batchJobs?.length ?? 0;
            seen.totalSize = r.body.totalSize ?? 0;
          },
          store: async () => {
            await store.list('batchJobs', {
              account: 'default',
              orderBy: req.orderBy,
              pageSize: req.pageSize,
              ...(req.filter ? { filter: req.filter } : {}),
              ...(v.query.pageToken && after ? { after } : {}),
            });
          },
          httpMs: [] as number[],
          storeMs: [] as number[],
        };
      });
      const deadline = Date.now() + (o.quick ? 6_000 : 45_000);
      const warm = 10;
      for (let i = 0; i < n + warm && Date.now() < deadline; i++) {
        for (const op of ops) {
          let t = performance.now();
          await op.http();
          if (i >= warm) op.httpMs.push(performance.now() - t);
          t = performance.now();
          await op.store();
          if (i >= warm) op.storeMs.push(performance.now() - t);
        }
      }
      const rows = ops.map((op) => ({ variant: op.v.name, items: op.seen.items, totalSize: op.seen.totalSize, http: summarize(op.httpMs), store: summarize(op.storeMs) }));
      for (const r of rows) {
        o.log(
          `    ${r.variant}: HTTP p50/p99 ${fmt(r.http.p50, 2)}/${fmt(r.http.p99, 2)} ms, store.list ${fmt(r.store.p50, 2)}/${fmt(r.store.p99, 2)} ms ` +
            `(${r.items} items of totalSize ${r.totalSize}, ${r.http.n} requests)`,
        );
      }
      const [plain, running, failed, deep] = rows;
      if (!plain || !running || !failed || !deep) throw new Error('a list variant did not run');
      return {
        name: 'list',
        value: plain.http.p50,
        unit: `ms p50, page of 50 over ${total} jobs via HTTP`,
        baseline: plain.store.p50,
        baselineUnit: 'ms p50 (store.list alone)',
        baselineLabel: 'SqliteReadModel.list of the same query in-process',
        ratio: plain.http.p50 / plain.store.p50,
        extra:
          `p99 ${fmt(plain.http.p99, 1)} ms (store ${fmt(plain.store.p99, 1)}); ` +
          `state="RUNNING" p50/p99 ${fmt(running.http.p50, 1)}/${fmt(running.http.p99, 1)} ms (store ${fmt(running.store.p50, 1)}/${fmt(running.store.p99, 1)}); ` +
          `state="FAILED" ${fmt(failed.http.p50, 1)}/${fmt(failed.http.p99, 1)} ms (store ${fmt(failed.store.p50, 1)}/${fmt(failed.store.p99, 1)}); ` +
          `page 21 ${fmt(deep.http.p50, 1)}/${fmt(deep.http.p99, 1)} ms`,
        details: {
          total,
          mode: 'real HTTP API (roles worker + api, dev server) vs SqliteReadModel.list in-process',
          rows,
        },
      };
    } finally {
      await e.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
