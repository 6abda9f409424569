/**
 * batchd without its Temporal server for a while, through the real boundaries: the embedded dev server
 * SIGKILLed mid-job and restarted by the service on the same SQLite file (the job completes); a remote
 * Temporal stopped and started again (the API answers 503 UNAVAILABLE in the contract's shape within
 * seconds meanwhile, then everything carries on); a dev server that cannot be restarted (the service
 * exits with code 3 naming why); and a first start against a fresh namespace, whose new search
 * attributes the frontend picks up only after its namespace cache refreshes.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino, { type Logger } from 'pino';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { loadConfig } from '../../src/config';
import { type RunningService, startService } from '../../src/service';
import { ensureTemporalCli } from '../../src/temporal/cli';
import { type DevServer, startDevServer } from '../../src/temporal/dev-server';
import {
  Api,
  freePort,
  gatesIn,
  killAndWait,
  processesMatching,
  spawnRole,
  TEST_KEY,
  testEnv,
  waitFor,
  waitForState,
} from '../support/harness';

const A = '/v1/accounts/default';

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** An info-level logger whose lines the test reads (and shows with TEST_LOG_LEVEL). */
function capturedLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = {
    write(chunk: string) {
      if (process.env.TEST_LOG_LEVEL) process.stderr.write(chunk);
      for (const l of chunk.split('\n')) if (l.trim()) lines.push(JSON.parse(l) as LogLine);
    },
  };
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** The embedded dev server of a service: its command line names the data folder. */
function devServerPids(dataDir: string): number[] {
  return processesMatching(join(dataDir, 'temporal.sqlite')).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('start-dev');
    } catch {
      return false;
    }
  });
}

function collect(child: ChildProcess): () => string {
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return () => output;
}

const healthy = (url: string) => fetch(`${url}/healthz`).then((r) => (r.status === 200 ? true : undefined), () => undefined);

describe('the embedded dev server is SIGKILLed mid-job', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-devserver-kill-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('is restarted on the same database; the job completes and the service answers again', async () => {
    // The host heartbeat timeout outlasts the restart (a host silent longer is lost, by design).
    const env = await testEnv(dataDir, { LOG_LEVEL: 'info', HOST_HEARTBEAT_TIMEOUT_MS: '30000' });
    const child = spawnRole('temporal,worker,agents,api', env);
    const output = collect(child);
    const url = `http://127.0.0.1:${env.PORT}`;
    const api = new Api(url, TEST_KEY);
    const gates = gatesIn(env.WORKSPACE_DIR as string);
    try {
      await waitFor('the service healthy', () => healthy(url), 90_000, 300);
      const created = await api.post(`${A}/batchJobs?batchJobId=through-restart`, {
        nodePoolId: 'default-cpu',
        numRanks: 2,
        shellExecutor: { command: `${gates.heldUntil('go')}; echo finished rank $RANK` },
      });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      await waitForState(api, 'default', 'through-restart', 'RUNNING', 60_000);

      const [before] = devServerPids(dataDir);
      assert.ok(before, 'the embedded dev server runs');
      process.kill(before, 'SIGKILL');
      await waitFor('the restart', () => (output().includes('the Temporal dev server restarted on the same database') ? true : undefined), 60_000, 200);
      assert.match(output(), /the Temporal dev server was killed by SIGKILL; restarting it on the same database/);
      const [now] = devServerPids(dataDir);
      assert.ok(now !== undefined && now !== before, 'a new dev server process runs');
      await waitFor('the service healthy again', () => healthy(url), 60_000, 300);

      gates.open('go');
      const done = await waitForState(api, 'default', 'through-restart', 'COMPLETED', 60_000);
      assert.match(done.status, /all 2 ranks exited with code 0/);
      const logs = await api.get<{ entries: Array<{ message: string }> }>(`${A}/batchJobs/through-restart:getLogs`);
      assert.deepEqual(logs.body.entries.map((e) => e.message).sort(), ['finished rank 0', 'finished rank 1']);

      // Work accepted after the restart runs as before.
      const next = await api.post(`${A}/batchJobs?batchJobId=after-restart`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'echo after' } });
      assert.equal(next.status, 200, JSON.stringify(next.body));
      await waitForState(api, 'default', 'after-restart', 'COMPLETED', 60_000);
    } finally {
      await killAndWait(child, 'SIGTERM');
    }
  });
});

describe('a remote Temporal stops, then comes back', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-temporal-away-'));
  let server: DevServer | undefined;
  let service: RunningService | undefined;
  after(async () => {
    await service?.stop();
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('the API answers 503 UNAVAILABLE within seconds meanwhile; a job whose ranks ended meanwhile completes', async () => {
    const port = await freePort();
    // A server of its own on a SQLite file, as a remote Temporal the service does not own.
    const serverOptions = { cliPath: ensureTemporalCli(), dataDir: join(dataDir, 'temporal'), port, namespace: 'default', searchAttributes: ALL_SEARCH_ATTRIBUTES };
    server = await startDevServer(serverOptions);
    const env = await testEnv(dataDir, { TEMPORAL_ADDRESS: server.address, HOST_HEARTBEAT_TIMEOUT_MS: '60000' });
    const { logger, lines } = capturedLogger();
    service = await startService({ config: loadConfig(env), roles: ['worker', 'agents', 'api'], logger });
    const url = service.url as string;
    const api = new Api(url, TEST_KEY);
    const gates = gatesIn(service.config.workspaceDir);
    const created = await api.post(`${A}/batchJobs?batchJobId=outlives`, { nodePoolId: 'default-cpu', numRanks: 2, shellExecutor: { command: `${gates.heldUntil('go')}; echo done $RANK` } });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    await waitForState(api, 'default', 'outlives', 'RUNNING', 60_000);

    await killAndWait(server.process, 'SIGKILL');
    // The ranks end while the server is away: their outcome must reach it once it is back, although
    // the SDK retries a completion for only about 10 s.
    gates.open('go');
    const endedAt = Date.now();
    // Each answers 503 in the contract's shape within a few seconds, whether or not the service has
    // noticed yet (every Temporal call of a request has a deadline).
    const requests: Array<[string, string, unknown]> = [
      ['GET', `${A}/batchJobs/outlives`, undefined],
      ['POST', `${A}/batchJobs?batchJobId=during`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'echo during' } }],
      ['GET', `${A}/batchJobs`, undefined],
    ];
    for (const [method, path, body] of requests) {
      const started = Date.now();
      const r = await api.call<{ code: number; message: string; details: unknown[] }>(method, path, body);
      const ms = Date.now() - started;
      assert.equal(r.status, 503, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 14, 'UNAVAILABLE');
      assert.match(r.body.message, /Temporal server/);
      assert.deepEqual(r.body.details, []);
      assert.ok(ms < 8000, `${method} ${path} answered in ${ms} ms`);
    }
    // Readiness says why.
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 503);
    const checks = ((await health.json()) as { checks: Record<string, string> }).checks;
    assert.match(checks.temporal ?? '', /does not answer/);
    // Once the service knows, it answers at once, and says when to retry.
    const started = Date.now();
    const r = await fetch(`${url}${A}/batchJobs/outlives`, { headers: { authorization: `Bearer ${TEST_KEY}` } });
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '2');
    assert.ok(Date.now() - started < 1000, `answered in ${Date.now() - started} ms`);
    assert.ok(
      lines.some((l) => l.msg.startsWith('the Temporal server does not answer') && l.level === 40),
      'one warning says the server does not answer',
    );

    await waitFor('the agents holding the outcome', () => (lines.some((l) => l.msg.startsWith('the ranks ended while the Temporal server does not answer')) ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, Math.max(0, 12_000 - (Date.now() - endedAt))));

    // It comes back on the same database and port: every connection finds it again.
    server = await startDevServer(serverOptions);
    await waitFor('the service healthy again', () => healthy(url), 60_000, 300);
    assert.ok(lines.some((l) => l.msg === 'the Temporal server answers again'));
    assert.equal((await api.get(`${A}/batchJobs/during`)).status, 404, 'the create refused meanwhile created nothing');
    const done = await waitForState(api, 'default', 'outlives', 'COMPLETED', 60_000);
    assert.match(done.status, /all 2 ranks exited with code 0/);
    const next = await api.post(`${A}/batchJobs?batchJobId=after`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'echo after' } });
    assert.equal(next.status, 200, JSON.stringify(next.body));
    await waitForState(api, 'default', 'after', 'COMPLETED', 60_000);
  });
});

describe('the embedded dev server cannot be restarted', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-devserver-lost-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('the service exits with code 3, naming why, after its bounded attempts', async () => {
    const env = await testEnv(dataDir, { LOG_LEVEL: 'info', DEFAULT_POOLS: 'false', TEMPORAL_RESTART_ATTEMPTS: '2' });
    const child = spawnRole('temporal,worker,agents,api', env);
    const output = collect(child);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor('the service healthy', () => healthy(`http://127.0.0.1:${env.PORT}`), 90_000, 300).catch((err: Error) => {
        throw new Error(`${err.message}; the service printed:\n${output().slice(-3000)}`);
      });
      const [pid] = devServerPids(dataDir);
      assert.ok(pid, 'the embedded dev server runs');
      // Its database file is ruined under it (the running server keeps the file it opened), then it dies.
      const file = join(dataDir, 'temporal.sqlite');
      writeFileSync(`${file}.ruined`, 'not a database '.repeat(1000));
      renameSync(`${file}.ruined`, file);
      process.kill(pid, 'SIGKILL');
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 90_000))]);
      assert.equal(code, 3, output().slice(-3000));
      assert.match(output(), /batchd is stopping: the Temporal dev server was killed by SIGKILL and could not be restarted \(2 attempts in a row\): the Temporal dev server exited with code \d+ during start: .*not a database/);
      assert.match(output(), /"attempt":2,"of":2,.*"msg":"the Temporal dev server did not restart"/);
      assert.doesNotMatch(output(), /\n\s+at .+\(.+:\d+:\d+\)/, 'no stack trace');
    } finally {
      await killAndWait(child, 'SIGKILL');
    }
  });
});

describe('a first start against a fresh namespace', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-fresh-namespace-'));
  const servers: DevServer[] = [];
  after(async () => {
    for (const s of servers) await s.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /**
   * A server like a production one: search attributes are not read through on every use (as the dev
   * server does by default), and the frontend refreshes its copy of a namespace every refreshInterval.
   * Its namespace `fresh` has none of batchd's attributes.
   */
  async function freshServer(refreshInterval: string): Promise<DevServer> {
    const s = await startDevServer({
      cliPath: ensureTemporalCli(),
      port: await freePort(),
      namespace: 'fresh',
      searchAttributes: [],
      extraArgs: [
        '--dynamic-config-value',
        'system.forceSearchAttributesCacheRefreshOnRead=false',
        '--dynamic-config-value',
        `system.namespaceCacheRefreshInterval="${refreshInterval}"`,
      ],
    });
    servers.push(s);
    return s;
  }

  it('waits, saying so, until its new search attributes are usable, then creates the default pools', async () => {
    const s = await freshServer('8s');
    const env = await testEnv(join(dataDir, 'a'), { TEMPORAL_ADDRESS: s.address, TEMPORAL_NAMESPACE: 'fresh' });
    const { logger, lines } = capturedLogger();
    const service = await startService({ config: loadConfig(env), roles: ['worker'], logger });
    try {
      const messages = lines.map((l) => l.msg);
      const order = ['registered search attributes', 'waiting for the search attributes to be usable', 'search attributes are usable', 'created default node pools'].map((m) =>
        messages.findIndex((x) => x.startsWith(m)),
      );
      assert.ok(order.every((i, n) => i >= 0 && (n === 0 || i > (order[n - 1] as number))), `log lines in order: ${JSON.stringify(messages)}`);
      for (const pool of ['default-cpu', 'default-gpu']) {
        const d = await service.client.workflow.getHandle(`accounts/default/nodePools/${pool}`).describe();
        assert.equal(d.status.name, 'RUNNING');
      }
    } finally {
      await service.stop();
    }
  });

  it('gives up after TEMPORAL_SEARCH_ATTRIBUTES_WAIT_MS with exit code 1, naming the server’s answer', async () => {
    const s = await freshServer('60s');
    const env = await testEnv(join(dataDir, 'b'), { TEMPORAL_ADDRESS: s.address, TEMPORAL_NAMESPACE: 'fresh', TEMPORAL_SEARCH_ATTRIBUTES_WAIT_MS: '1000' });
    const child = spawnRole('worker', env);
    const output = collect(child);
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    assert.equal(code, 1, output());
    assert.match(
      output(),
      /batchd failed to start: registering batchd's search attributes in namespace fresh: the search attributes of namespace fresh were not usable within 1000 ms \(TEMPORAL_SEARCH_ATTRIBUTES_WAIT_MS\): 3 INVALID_ARGUMENT: .*BatchdAccount.* is not a valid search attribute/,
    );
    assert.doesNotMatch(output(), /\n\s+at .+\(.+:\d+:\d+\)/, 'no stack trace');
  });
});
