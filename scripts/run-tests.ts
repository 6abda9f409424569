/**
 * `npm test`: first what the suites need (Debian packages, the Temporal CLI: installed where this
 * process can, else a stop with the command to run — scripts/test-prerequisites.ts), then unit suites
 * (in parallel), then workflow suites (the real workflows with stub activities, one at a time), then
 * integration and end-to-end suites (each starts its own Temporal dev server, so they run two at a
 * time on a small machine), then the cluster suite (a production-shaped cluster whose pieces it kills;
 * about 5 minutes, alone). Ends with the line `N passed, N failed`. Arguments filter suites by
 * substring: `npm test -- scheduler`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { workflowThreadsNodeArgs } from '../src/temporal/workflow-worker';
import { ensureTestPrerequisites } from './test-prerequisites';

const root = join(__dirname, '..');
const filters = process.argv.slice(2);

function testFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...testFiles(path));
    else if (entry.endsWith('.test.js')) out.push(path);
  }
  return out.sort();
}

// The shell scripts live in the repository's scripts/, beside this file's source (root is dist/).
const prerequisites = ensureTestPrerequisites(join(root, '..'));
if (prerequisites.problem) {
  process.stderr.write(`\n${prerequisites.problem}\n`);
  process.exit(2);
}

const summaryFile = join(mkdtempSync(join(tmpdir(), 'batchd-tests-')), 'summary.jsonl');
const phases = [
  { name: 'unit', dir: join(root, 'test', 'unit'), concurrency: Math.max(2, cpus().length) },
  // Each workflow suite starts its own dev server and drives races through gates, one suite at a time.
  { name: 'workflows', dir: join(root, 'test', 'workflows'), concurrency: 1 },
  { name: 'integration', dir: join(root, 'test', 'integration'), concurrency: Number(process.env.TEST_CONCURRENCY ?? 2) },
  { name: 'e2e', dir: join(root, 'test', 'e2e'), concurrency: 1 },
  // A production-shaped cluster (npm run cluster) whose pieces are killed one at a time: alone, last.
  { name: 'cluster', dir: join(root, 'test', 'cluster'), concurrency: 1, timeoutMs: 15 * 60_000 },
];

let exitCode = 0;
for (const phase of phases) {
  const files = testFiles(phase.dir).filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)));
  if (files.length === 0) continue;
  process.stdout.write(`\n=== ${phase.name}: ${files.length} suite(s) ===\n`);
  const result = spawnSync(
    process.execPath,
    [
      '--enable-source-maps',
      // Test files run batchd's workflows as the service does (src/temporal/workflow-threads.ts).
      ...workflowThreadsNodeArgs(),
      '--test',
      `--test-concurrency=${phase.concurrency}`,
      // No test may hang the run: each gets at most this long (TEST_TIMEOUT_MS).
      `--test-timeout=${process.env.TEST_TIMEOUT_MS ?? ('timeoutMs' in phase ? phase.timeoutMs : 300_000)}`,
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      `--test-reporter=${join(__dirname, 'summary-reporter.js')}`,
      '--test-reporter-destination=stderr',
      ...files,
    ],
    { stdio: 'inherit', env: { ...process.env, TEST_SUMMARY_FILE: summaryFile } },
  );
  if (result.status !== 0) exitCode = 1;
}

let passed = 0;
let failed = 0;
if (existsSync(summaryFile)) {
  for (const line of readFileSync(summaryFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const counts = JSON.parse(line) as { passed: number; failed: number };
    passed += counts.passed;
    failed += counts.failed;
  }
}
if (failed > 0) exitCode = 1;
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(exitCode);
