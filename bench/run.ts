/**
 * `npm run bench` — builds, then runs every figure, each beside its baseline in the same run:
 *
 *   npm run bench                 # all figures (about 70 minutes on 2 cores, most of it the 100,000-job queue)
 *   npm run bench -- --quick      # the same figures with small counts (under 2 minutes)
 *   npm run bench -- list memory  # only the named figures (names below; --quick combines)
 *   npm run bench -- --cluster    # api-create and sustained on the cluster of `npm run cluster` (as root)
 *
 * Prints one line per figure on stdout (`name: value unit (baseline: value unit, ratio x); …`),
 * progress on stderr, and writes bench/results/<YYYY-MM-DD>.json (a quick or partial run adds
 * `-quick` and the figures' names, so it never overwrites a full run's; gitignored; see
 * bench/results/example.json). docs/performance.md explains each figure and its baseline.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { machineInfo } from './lib/env';
import { type FigureOptions, type FigureResult, figureLine } from './lib/figure';
import { rounded } from './lib/stats';

// The memory figure measures RSS after a full collection: expose gc() before anything allocates much.
setFlagsFromString('--expose-gc');
(globalThis as { gc?: unknown }).gc ??= runInNewContext('gc') as unknown;

type Figure = (o: FigureOptions) => Promise<FigureResult>;

const FIGURES: Record<string, () => Promise<Figure>> = {
  'api-create': async () => (await import('./api-create')).run,
  'end-to-end': async () => (await import('./end-to-end')).run,
  sustained: async () => (await import('./sustained')).run,
  'temporal-cost': async () => (await import('./temporal-cost')).run,
  scheduler: async () => (await import('./scheduler-figure')).run,
  list: async () => (await import('./list')).run,
  get: async () => (await import('./get')).run,
  memory: async () => (await import('./memory')).run,
  queue: async () => (await import('./queue')).run,
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const cluster = args.includes('--cluster');
  const unknownFlags = args.filter((a) => a.startsWith('-') && a !== '--quick' && a !== '--cluster');
  const names = args.filter((a) => !a.startsWith('-'));
  const unknown = names.filter((n) => !(n in FIGURES));
  if (unknownFlags.length > 0 || unknown.length > 0) {
    console.error(`unknown ${[...unknownFlags, ...unknown].join(', ')}; figures: ${Object.keys(FIGURES).join(', ')}; flags: --quick, --cluster`);
    process.exitCode = 2;
    return;
  }
  if (cluster && names.some((n) => n !== 'api-create' && n !== 'sustained')) {
    console.error('--cluster runs api-create and sustained (both, in one cluster); name no other figure');
    process.exitCode = 2;
    return;
  }
  const selected = cluster ? ['api-create', 'sustained'] : names.length > 0 ? Object.keys(FIGURES).filter((n) => names.includes(n)) : Object.keys(FIGURES);
  const machine = machineInfo();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(`bench: ${quick ? 'quick' : 'full'} suite, figures ${selected.join(', ')}`);
  log(`machine: ${machine.cpuModel} × ${machine.cores} cores, ${machine.memoryGiB} GiB, node ${machine.node}, Temporal CLI ${machine.temporalCli}, load ${machine.loadAverage1m}, workflow threads ${machine.workflowThreads}`);

  const started = Date.now();
  const results: Record<string, unknown> = {};
  const lines: string[] = [];
  let failed = 0;
  if (cluster) {
    // One cluster for both figures: starting it is the slow part.
    const t0 = Date.now();
    try {
      const { runClusterFigures } = await import('./cluster');
      for (const r of await runClusterFigures({ quick, log })) {
        const line = figureLine(r);
        lines.push(line);
        console.log(line);
        results[r.name] = rounded({ ...r, line, seconds: (Date.now() - t0) / 1000 });
      }
    } catch (err) {
      failed = selected.length;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      lines.push(`cluster: FAILED (${message.split('\n')[0] ?? ''})`);
      console.log(lines[lines.length - 1]);
      log(message);
      results.cluster = { failed: message, seconds: (Date.now() - t0) / 1000 };
    }
  }
  for (const name of cluster ? [] : selected) {
    const t0 = Date.now();
    log(`— ${name}`);
    try {
      const figure = await (FIGURES[name] as () => Promise<Figure>)();
      const r = await figure({ quick, log });
      const line = figureLine(r);
      lines.push(line);
      console.log(line);
      results[name] = rounded({ ...r, line, seconds: (Date.now() - t0) / 1000 });
    } catch (err) {
      failed++;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      const line = `${name}: FAILED (${message.split('\n')[0] ?? ''})`;
      lines.push(line);
      console.log(line);
      log(message);
      results[name] = { name, failed: message, seconds: (Date.now() - t0) / 1000 };
    }
    log(`  (${name} took ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }

  const date = new Date().toISOString().slice(0, 10);
  const dir = join(__dirname, '..', '..', 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  // A quick or partial run never overwrites the day's full results.
  const partial = cluster ? '-cluster' : selected.length < Object.keys(FIGURES).length ? `-${selected.join('-')}` : '';
  const file = join(dir, `${date}${quick ? '-quick' : ''}${partial}.json`);
  const report = {
    date: new Date().toISOString(),
    suite: `${quick ? 'quick' : 'full'}${cluster ? ' cluster' : ''}`,
    seconds: (Date.now() - started) / 1000,
    machine: { ...machine, loadAverage1mAtEnd: machineInfo().loadAverage1m },
    lines,
    figures: results,
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  log(`bench: ${selected.length - failed}/${selected.length} figures in ${((Date.now() - started) / 1000).toFixed(0)} s; results in ${file}`);
  if (failed > 0) process.exitCode = 1;
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    // Native handles (Temporal runtime) must not keep a finished run alive.
    setTimeout(() => process.exit(), 2000).unref();
  });
