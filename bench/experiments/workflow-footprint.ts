/**
 * Experiment behind the memory and CPU findings in docs/performance.md: what one open, cached workflow
 * costs the TypeScript SDK worker (RSS and CPU of its first workflow task) when its bundle pulls in
 * src/domain (and so zod), against a bare workflow, and with zod preloaded once per V8 context
 * (bundleWorkflowCode's `preloadModules`). With reuseV8Context (the default) every workflow gets its
 * own webpack module cache, so every module its code imports is evaluated again per workflow unless
 * it is preloaded.
 *
 *   node dist/bench/experiments/workflow-footprint.js [N]      # N workflows per variant (default 200)
 *
 * Each variant runs in its own child process with its own in-memory dev server.
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { ensureTemporalCli } from '../../src/temporal/cli';
import { startDevServer } from '../../src/temporal/dev-server';
import { freePort } from '../lib/http';
import { closedLoop } from '../lib/load';
import { diffCounts, frontendRequests, rssMiB } from '../lib/env';
import { fmt, sleep } from '../lib/stats';

const VARIANTS = {
  bare: { path: '../workflows/bench-workflows', type: 'benchWaitWorkflow', preload: [] as string[] },
  domain: { path: './domain-wait-workflow', type: 'domainWaitWorkflow', preload: [] as string[] },
  'domain+preload-zod': { path: './domain-wait-workflow', type: 'domainWaitWorkflow', preload: ['zod'] },
  // The domain modules build their zod schemas at module scope: share those too.
  'domain+preload-domain': {
    path: './domain-wait-workflow',
    type: 'domainWaitWorkflow',
    preload: ['zod', require.resolve('../../src/domain/batch-job'), require.resolve('../../src/domain/ranks')],
  },
} as const;
type Variant = keyof typeof VARIANTS;

const silent = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) };

async function one(variant: Variant, n: number): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const v: { path: string; type: string; preload: readonly string[] } = VARIANTS[variant];
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve(v.path), logger: silent, ...(v.preload.length ? { preloadModules: [...v.preload] } : {}) });
  const metricsPort = await freePort();
  const server = await startDevServer({ cliPath: ensureTemporalCli(), port: await freePort(), namespace: 'default', searchAttributes: [], extraArgs: ['--metrics-port', String(metricsPort)] });
  const metrics = `http://127.0.0.1:${metricsPort}/metrics`;
  try {
    const connection = await NativeConnection.connect({ address: server.address });
    const worker = await Worker.create({ connection, taskQueue: 'fp', workflowBundle: { code }, maxCachedWorkflows: 5000 });
    const running = worker.run();
    const client = new Client({ connection: await Connection.connect({ address: server.address }) });
    // One workflow first, so the context and the shared modules exist before the baseline sample.
    await client.workflow.start(v.type, { taskQueue: 'fp', workflowId: 'first' });
    await sleep(1500);
    gc();
    await sleep(500);
    const rss0 = process.memoryUsage().rss / 2 ** 20;
    const cpu0 = process.cpuUsage();
    const rpc0 = await frontendRequests(metrics);
    const t0 = performance.now();
    await closedLoop({ concurrency: 8, count: n, maxMs: 120_000, op: (i) => client.workflow.start(v.type, { taskQueue: 'fp', workflowId: `w-${i}` }).then(() => undefined) });
    for (let k = 0; k < 600; k++) {
      if ((diffCounts(await frontendRequests(metrics), rpc0).RespondWorkflowTaskCompleted ?? 0) >= n) break;
      await sleep(100);
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    gc();
    await sleep(500);
    const rss1 = process.memoryUsage().rss / 2 ** 20;
    const result = {
      variant,
      workflows: n,
      bundleKiB: Math.round(code.length / 1024),
      kibPerWorkflow: ((rss1 - rss0) * 1024) / n,
      cpuMsPerWorkflow: (cpu.user + cpu.system) / 1000 / n,
      serverRssMiB: rssMiB(server.process.pid),
      seconds,
    };
    console.log(JSON.stringify(result));
    worker.shutdown();
    await running;
    await connection.close();
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const variantArg = process.argv.find((a) => a.startsWith('--variant='))?.slice(10) as Variant | undefined;
  const n = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 200);
  if (variantArg) return one(variantArg, n);
  console.log(`variant | workflows | bundle KiB | RSS KiB per cached workflow | CPU ms per workflow (start + first task)`);
  for (const variant of Object.keys(VARIANTS) as Variant[]) {
    const r = spawnSync(process.execPath, [__filename, `--variant=${variant}`, String(n)], { encoding: 'utf8', timeout: 300_000 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      const x = JSON.parse(line) as { workflows: number; bundleKiB: number; kibPerWorkflow: number; cpuMsPerWorkflow: number };
      console.log(`${variant} | ${x.workflows} | ${x.bundleKiB} | ${fmt(x.kibPerWorkflow, 0)} | ${fmt(x.cpuMsPerWorkflow, 1)}`);
    } catch {
      console.log(`${variant} | failed: ${(r.stderr || line).slice(-500)}`);
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
