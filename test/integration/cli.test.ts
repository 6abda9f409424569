/**
 * The command line, driven as a user drives it: the built `batchd` binary in a child process against
 * the real service — create, follow logs, wait with its exit codes, cancel, delete, tables and
 * `-o json|yaml`, one-line errors, and where it finds its API key.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { freePort, startTestService, type TestService } from '../support/harness';

const BIN = join(__dirname, '..', '..', 'src', 'cli', 'main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('command line', () => {
  let t: TestService;
  let home: string;

  before(async () => {
    t = await startTestService();
    home = mkdtempSync(join(tmpdir(), 'batchd-cli-home-'));
  });
  after(async () => {
    await t?.stop();
  });

  /** Runs the binary asynchronously: the service answering it lives in this very process. */
  function cli(args: string[], env: Record<string, string> = {}, command = process.execPath, prefix: string[] = [BIN]): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, [...prefix, ...args], {
        // HOME without a config file, so only what the test passes counts.
        env: { PATH: process.env.PATH ?? '', HOME: home, BATCHD_API_URL: t.url, BATCHD_API_KEY: t.key, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  async function json<T = Record<string, unknown>>(args: string[]): Promise<T> {
    const r = await cli([...args, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  }

  it('creates a job from flags, follows its logs to the end, and waits for it (exit 0)', async () => {
    const created = await cli(['job', 'create', '--id', 'hello', '--pool', 'default-cpu', '--ranks', '2', '--env', 'GREETING=hi', '--shell', 'echo "$GREETING from $RANK"; sleep 0.5; echo "bye from $RANK"']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, 'accounts/default/batchJobs/hello created (CREATING)\n');

    const follow = await cli(['job', 'logs', 'hello', '-f']);
    assert.equal(follow.code, 0, follow.stderr);
    assert.deepEqual(follow.stdout.trim().split('\n').sort(), ['[0] bye from 0', '[0] hi from 0', '[1] bye from 1', '[1] hi from 1']);

    const wait = await cli(['job', 'wait', 'hello', '-o', 'json']);
    assert.equal(wait.code, 0, wait.stderr);
    assert.equal(wait.stderr, '', 'no progress line when stderr is not a terminal');
    const ended = JSON.parse(wait.stdout) as Record<string, unknown>;
    assert.equal(ended.state, 'COMPLETED');
    assert.deepEqual(ended, (await t.api.get('/v1/accounts/default/batchJobs/hello')).body, '-o json prints the API’s own resource');

    const get = await cli(['job', 'get', 'hello']);
    assert.match(get.stdout, /^Name: +accounts\/default\/batchJobs\/hello$/m);
    assert.match(get.stdout, /^State: +COMPLETED$/m);
    assert.match(get.stdout, /^Env vars: +GREETING=hi$/m);
    const list = await cli(['job', 'list', '--filter', 'state = "COMPLETED"']);
    assert.match(list.stdout, /^ID +STATE +POOL +RANKS +DISPLAY NAME +AGE\nhello +COMPLETED +default-cpu +2 +\d+s\n$/);
    const yaml = await cli(['job', 'list', '-o', 'yaml']);
    assert.deepEqual(parseYaml(yaml.stdout), [ended]);

    const rank1 = await cli(['job', 'logs', 'hello', '--rank', '1', '-o', 'json']);
    assert.deepEqual(
      rank1.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { message: string }).message),
      ['hi from 1', 'bye from 1'],
    );
  });

  it('creates from a YAML file with flags over it, and `job create --wait` exits 3 when the job fails', async () => {
    const file = join(home, 'job.yaml');
    writeFileSync(file, 'nodePoolId: default-cpu\ndisplayName: from-file\nshellExecutor:\n  command: echo never runs\n');
    const r = await cli(['job', 'create', '-f', file, '--id', 'fails', '--shell', 'echo failing; exit 7', '--wait']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /^State: +FAILED$/m);
    assert.match(r.stdout, /^Status: +.*code 7/m);
    assert.match(r.stdout, /^Display name: +from-file$/m);
    assert.equal((await cli(['job', 'logs', 'fails'])).stdout, '[0] failing\n');
  });

  it('times out a wait (exit 5), cancels (wait exits 4), and deletes', async () => {
    assert.equal((await cli(['job', 'create', '--id', 'sleepy', '--pool', 'default-cpu', '--shell', 'sleep 60'])).code, 0);
    const timeout = await cli(['job', 'wait', 'sleepy', '--timeout', '1s', '--interval', '200ms']);
    assert.equal(timeout.code, 5, timeout.stderr);
    assert.match(timeout.stdout, /^batch job sleepy is still (CREATING|QUEUED|PENDING|RUNNING) after 1s/);

    const cancel = await cli(['job', 'cancel', 'sleepy']);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal(cancel.stdout, 'batch job sleepy cancelling\n');
    const wait = await cli(['job', 'wait', 'sleepy', '--timeout', '30s']);
    assert.equal(wait.code, 4, wait.stderr);
    assert.match(wait.stdout, /^State: +CANCELLED$/m);

    assert.equal((await cli(['job', 'delete', 'sleepy'])).code, 0);
    const deadline = Date.now() + 30_000;
    let gone: Run;
    do {
      gone = await cli(['job', 'get', 'sleepy']);
    } while (gone.code === 0 && Date.now() < deadline);
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, 'error: NOT_FOUND: batch job "sleepy" not found\n');
  });

  it('shows a progress line on a terminal', async () => {
    await json(['job', 'create', '--id', 'tty', '--pool', 'default-cpu', '--shell', 'sleep 2']);
    // `script` gives the binary a pseudo-terminal; its stderr then carries the spinner line.
    const cmd = [process.execPath, BIN, 'job', 'wait', 'tty', '--interval', '200ms'].map((a) => `'${a}'`).join(' ');
    const r = await cli(['-qefc', cmd, '/dev/null'], {}, 'script', []);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // eslint-disable-next-line no-control-regex -- the progress line is drawn with an ANSI erase-line
    assert.match(r.stdout, /\r\x1b\[K[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] tty (QUEUED|PENDING|RUNNING) \d+s/);
    assert.match(r.stdout, /State: +COMPLETED/);
  });

  it('prints API errors in one line with the field, and exits 1', async () => {
    const zero = await cli(['job', 'create', '--pool', 'default-cpu', '--ranks', '0', '--shell', 'true']);
    assert.equal(zero.code, 1);
    assert.equal(zero.stderr, 'error: INVALID_ARGUMENT: numRanks: numRanks must be at least 1\n');
    assert.equal(zero.stdout, '');
    const pool = await cli(['job', 'create', '--pool', 'no-such-pool', '--shell', 'true']);
    assert.equal(pool.code, 1);
    assert.match(pool.stderr, /^error: NOT_FOUND: node pool "no-such-pool" not found.* \(field nodePoolId\)\n$/);
    const wrongKey = await cli(['job', 'list'], { BATCHD_API_KEY: 'not-a-key-0123456789' });
    assert.equal(wrongKey.code, 1);
    assert.match(wrongKey.stderr, /^error: UNAUTHENTICATED: .*\n$/);
    const otherAccount = await cli(['pool', 'list', '--account', 'someone-else']);
    assert.equal(otherAccount.code, 1);
    assert.match(otherAccount.stderr, /^error: PERMISSION_DENIED: .*\n$/);
    const down = await cli(['job', 'list'], { BATCHD_API_URL: `http://127.0.0.1:${await freePort()}` });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^error: cannot reach the batchd API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\n$/);
  });

  it('exits 2 for a bad command line or no key, before calling the API', async () => {
    const bad = await cli(['job', 'get']);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, 'error: batchd job get takes JOB_ID, got none\n');
    const noKey = await cli(['job', 'list'], { BATCHD_API_KEY: '' });
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /^error: no API key: pass --api-key, set BATCHD_API_KEY, or put "apiKey" in .*\/\.config\/batchd\/config\.json\n$/);
    const help = await cli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Exit codes:/);
  });

  it('reads the API and key from a config file', async () => {
    const file = join(home, 'batchd.json');
    writeFileSync(file, JSON.stringify({ apiUrl: t.url, apiKey: t.key, account: 'default' }));
    const r = await cli(['pool', 'list', '--config', file], { BATCHD_API_URL: '', BATCHD_API_KEY: '' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^default-cpu +READY +fake m5\.xlarge +4 +1 +\d+ +\d+[smhd]$/m);
    assert.match(r.stdout, /^default-gpu +READY +fake p4d\.24xlarge +2 +8 +\d+ +\d+[smhd]$/m);
  });

  it('shows pools, their stats and environments as tables and as the API’s JSON', async () => {
    const pool = await json(['pool', 'get', 'default-gpu']);
    assert.deepEqual(pool, (await t.api.get('/v1/accounts/default/nodePools/default-gpu')).body);
    const stats = await json(['pool', 'stats', 'default-gpu']);
    assert.deepEqual(stats, (await t.api.get('/v1/accounts/default/nodePools/default-gpu:getStats')).body);
    const table = await cli(['pool', 'stats', 'default-gpu']);
    assert.match(table.stdout, /^Nodes: +2$/m);
    assert.match(table.stdout, /^Ranks per node: +8$/m);

    assert.equal((await t.api.post('/v1/accounts/default/environments', { environment: { baseImageRef: 'python:3.12' }, environmentId: 'py' })).status, 200);
    const envs = await cli(['env', 'list']);
    assert.match(envs.stdout, /^ID +STATE +IMAGE +CREATED BY +AGE\npy +\w+ +python:3\.12 +admin@localhost +\d+s\n$/);
    const env = await cli(['env', 'get', 'py', '-o', 'yaml']);
    assert.deepEqual(parseYaml(env.stdout), (await t.api.get('/v1/accounts/default/environments/py')).body);
  });
});
