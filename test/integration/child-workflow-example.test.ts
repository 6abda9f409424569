/**
 * batchd as another team's dependency: `npm pack` the project, install the tarball into a copy of
 * examples/child-workflow (an outside project with its own worker and task queue), compile it, and
 * run it against the real service — a child job that succeeds, one that fails and is compensated,
 * one batchd refuses — and check that `batchd/workflow` brings no zod into the workflow bundle.
 *
 * The install is offline: npm installs batchd from the tarball, while batchd's and the example's
 * third-party dependencies are links into this project's node_modules. npm's cache here holds the
 * packages' tarballs but not the registry metadata a fresh tree needs, so a fully offline resolve
 * of @temporalio/* and friends cannot work; the links give the same versions without the network.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestService, type TestService } from '../support/harness';

const ROOT = join(__dirname, '..', '..', '..');

function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}, timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Links every package of this project's node_modules into the example's, as described above. */
function linkDependencies(exampleDir: string): void {
  const from = join(ROOT, 'node_modules');
  const to = join(exampleDir, 'node_modules');
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from)) {
    if (entry.startsWith('.') || entry === 'batchd') continue;
    if (entry.startsWith('@')) {
      mkdirSync(join(to, entry), { recursive: true });
      for (const pkg of readdirSync(join(from, entry))) symlinkSync(join(from, entry, pkg), join(to, entry, pkg));
    } else symlinkSync(join(from, entry), join(to, entry));
  }
}

describe('an outside project using the packed batchd', () => {
  let t: TestService;
  const work = mkdtempSync(join(tmpdir(), 'batchd-example-'));
  const example = join(work, 'child-workflow');

  before(async () => {
    t = await startTestService();
  });
  after(async () => {
    await t?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('packs, installs offline from the tarball, and compiles against the package’s types', async () => {
    cpSync(join(ROOT, 'examples', 'child-workflow'), example, { recursive: true, filter: (src) => !/(node_modules|dist|\.tgz)$/.test(src) });
    const pack = await run('npm', ['pack', '--pack-destination', example, '--json'], ROOT);
    assert.equal(pack.code, 0, pack.stderr);
    const [packed] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const wanted = (JSON.parse(readFileSync(join(example, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies.batchd;
    assert.equal(`file:${packed?.filename ?? ''}`, wanted, 'the example names the tarball npm pack writes');
    const files = new Set(packed?.files.map((f) => f.path));
    for (const f of ['dist/src/package/client.js', 'dist/src/package/client.d.ts', 'dist/src/package/workflow.d.ts', 'dist/src/cli/main.js']) assert.ok(files.has(f), `the tarball has ${f}`);
    assert.ok(![...files].some((f) => f.startsWith('dist/test/') || f.startsWith('test/')), 'the tarball holds no tests');

    linkDependencies(example);
    const install = await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock'], example);
    assert.equal(install.code, 0, install.stderr);
    const installed = join(example, 'node_modules', 'batchd');
    assert.ok(lstatSync(installed).isDirectory() && !lstatSync(installed).isSymbolicLink(), 'batchd is unpacked from the tarball, not linked');

    const tsc = await run(process.execPath, [join(example, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], example);
    assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);
  });

  it('bundles the example’s workflow without zod or a Node built-in', async () => {
    const script = `
      const { bundleWorkflowCode } = require('@temporalio/worker');
      bundleWorkflowCode({ workflowsPath: require.resolve('./dist/workflows'), logger: { trace() {}, debug() {}, info() {}, warn: console.error, error: console.error, log() {} } })
        .then(({ code }) => console.log(JSON.stringify({ bytes: code.length, zod: /node_modules\\/zod\\//.test(code), batchd: /node_modules\\/batchd\\/dist\\/workflows\\/child\\.js/.test(code) })));`;
    const r = await run(process.execPath, ['-e', script], example);
    assert.equal(r.code, 0, r.stderr);
    const bundle = JSON.parse(r.stdout) as { bytes: number; zod: boolean; batchd: boolean };
    assert.equal(bundle.batchd, true, 'the bundle has batchd’s child-workflow helpers from the installed package');
    assert.equal(bundle.zod, false, 'and no zod');
  });

  it('runs batch jobs as children on its own task queue, compensating a failed one and reporting a refused one', async () => {
    const r = await run(process.execPath, ['dist/main.js'], example, {
      TEMPORAL_ADDRESS: `127.0.0.1:${t.env.TEMPORAL_PORT ?? ''}`,
      BATCHD_API_URL: t.url,
      BATCHD_API_KEY: t.key,
      EXAMPLE_TASK_QUEUE: 'example-team-queue',
    });
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const runs = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      runs.map((x) => [x.run, x.outcome, x.state]),
      [
        ['succeeds', 'trained', 'COMPLETED'],
        ['fails', 'compensated', 'FAILED'],
        ['refused', 'refused', undefined],
      ],
    );
    assert.deepEqual(runs[0]?.logs, ['training', 'done'], 'logs read through batchd/client');
    assert.match(String(runs[1]?.compensation), /^released the reservation of example-fails-\w+ after: rank 0 on host \w+ exited with code 3/);
    assert.equal(runs[2]?.type, 'ApiError:NOT_FOUND');
    assert.match(String(runs[2]?.error), /node pool "no-such-pool" not found/);

    // The children are ordinary batchd jobs: the API lists them, made by the parent workflow.
    const list = await t.api.get<{ batchJobs: Array<{ name: string; createdBy: string; state: string }> }>('/v1/accounts/default/batchJobs?filter=' + encodeURIComponent('state = "FAILED"'));
    const failed = list.body.batchJobs.find((j) => j.name.includes('example-fails-'));
    assert.ok(failed, 'the failed child is listed');
    assert.match(failed.createdBy, /^workflow:train-example-fails-/);
  });
});
