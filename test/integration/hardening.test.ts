/**
 * Limits on abuse, through the real API: malformed percent-escapes and executor paths or commands a
 * host could not run are 400 and create nothing; per-account limits are 429 naming the limit and
 * create nothing; the per-key rate is 429 with Retry-After; /metrics needs its token or its own
 * listener; a job that prints past its log budget keeps running, completes, and has one marker line;
 * :getLogs pages end at a byte cap and continue; :followLogs streams are bounded per account and a
 * waiting job's idle stream ends; log ingest checks the agent token before the body and accepts lines
 * only from the host a rank is placed on.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../../src/config';
import { fakeHostId } from '../../src/domain/hosts';
import { type RunningService, startService } from '../../src/service';
import { Api, freePort, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const BUDGET = 16 * 1024;
const PAGE_BYTES = 4096;

interface ErrorBody {
  code: number;
  message: string;
  details: Array<{ fieldViolations?: Array<{ field: string; description: string }> }>;
}
interface LogsPage {
  entries: Array<{ rank: number; message: string }>;
  nextPageToken: string;
}

function fieldsOf(body: unknown): string[] {
  return ((body as ErrorBody).details ?? []).flatMap((d) => (d.fieldViolations ?? []).map((v) => v.field));
}

function expect429(r: { status: number; body: unknown }, variable: string): void {
  assert.equal(r.status, 429, JSON.stringify(r.body));
  const body = r.body as ErrorBody;
  assert.equal(body.code, 8, 'RESOURCE_EXHAUSTED');
  assert.match(body.message, new RegExp(`limit ${variable} reached`));
  assert.match(body.message, /Nothing was created|Close one/);
}

/** An open :followLogs stream: its events as they arrive, and a way to close it. */
function openStream(url: string, key: string) {
  const controller = new AbortController();
  const events: Array<{ event: string; data: Record<string, unknown> }> = [];
  const response = fetch(url, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
  const done = (async () => {
    const res = await response;
    if (res.status !== 200) return res.status;
    const reader = res.body?.getReader();
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const chunk = await reader?.read().catch(() => undefined);
      if (!chunk || chunk.done) break;
      text += decoder.decode(chunk.value as Uint8Array, { stream: true });
      let end: number;
      while ((end = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, end);
        text = text.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
      }
    }
    return 200;
  })();
  return { response, events, done, close: () => controller.abort() };
}

describe('limits on abuse', () => {
  let t: TestService;
  before(async () => {
    t = await startTestService({
      env: {
        MAX_LIVE_JOBS_PER_ACCOUNT: '4',
        MAX_QUEUED_JOBS_PER_ACCOUNT: '1',
        MAX_NODE_POOLS_PER_ACCOUNT: '4',
        MAX_FAKE_HOSTS_PER_ACCOUNT: '9',
        MAX_ENVIRONMENTS_PER_ACCOUNT: '1',
        MAX_SNAPSHOTS_PER_ACCOUNT: '1',
        LOG_BUDGET_BYTES_PER_JOB: String(BUDGET),
        LOG_PAGE_MAX_BYTES: String(PAGE_BYTES),
        MAX_LOG_STREAMS_PER_ACCOUNT: '2',
        LOG_STREAM_IDLE_MS: '1500',
      },
    });
  });
  after(async () => {
    await t?.stop();
  });

  const jobCount = async () => (await t.api.get<{ totalSize: number }>(`${A}/batchJobs`)).body.totalSize;

  it('answers 400 INVALID_ARGUMENT, not 500, to a path with a malformed percent-escape', async () => {
    for (const path of ['/v1/accounts/%E0%A4%A/batchJobs', `${A}/batchJobs/%ZZ`, `${A}/nodePools/a%`]) {
      const r = await t.api.get<ErrorBody>(path);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 3);
      assert.match(r.body.message, /not valid percent-encoding/);
    }
    assert.deepEqual(fieldsOf((await t.api.get('/v1/accounts/%E0%A4%A/batchJobs')).body), ['account']);
  });

  it('refuses executor paths outside WORKSPACE_DIR and over-long commands, naming the field, creating nothing', async () => {
    const before = await jobCount();
    const cases: Array<[unknown, string]> = [
      [{ pythonExecutor: { targetType: 'FILENAME', target: '../../etc/passwd' } }, 'pythonExecutor.target'],
      [{ pythonExecutor: { targetType: 'FILENAME', target: '/etc/passwd' } }, 'pythonExecutor.target'],
      [{ notebookExecutor: { notebookFilename: 'nb/../../outside.ipynb' } }, 'notebookExecutor.notebookFilename'],
      [{ notebookExecutor: { notebookFilename: '/tmp/x.ipynb' } }, 'notebookExecutor.notebookFilename'],
      [{ shellExecutor: { command: `echo ${'x'.repeat(128 * 1024)}` } }, 'shellExecutor.command'],
    ];
    for (const [executor, field] of cases) {
      const r = await t.api.post<ErrorBody>(`${A}/batchJobs?batchJobId=bad-path`, { nodePoolId: 'default-cpu', ...(executor as object) });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.deepEqual(fieldsOf(r.body), [field]);
    }
    assert.equal((await t.api.get(`${A}/batchJobs/bad-path`)).status, 404);
    assert.equal(await jobCount(), before);
  });

  it('limits node pools and fake hosts per account: 429 naming the limit, nothing created', async () => {
    // The default pools hold 2 + 4 fake hosts; the limit is 9 hosts in 4 pools.
    const pool = (id: string, numNodes: number) => t.api.post(`${A}/nodePools`, { nodePoolId: id, nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes } } });
    assert.equal((await pool('p3', 2)).status, 200);
    expect429(await pool('p4', 2), 'MAX_FAKE_HOSTS_PER_ACCOUNT');
    assert.equal((await t.api.get(`${A}/nodePools/p4`)).status, 404);
    expect429(await t.api.patch(`${A}/nodePools/p3?updateMask=fakeNodePool.numNodes`, { fakeNodePool: { numNodes: 4 } }), 'MAX_FAKE_HOSTS_PER_ACCOUNT');
    assert.equal((await t.api.get<{ fakeNodePool: { numNodes: number } }>(`${A}/nodePools/p3`)).body.fakeNodePool.numNodes, 2);
    assert.equal((await pool('p4', 1)).status, 200);
    expect429(await pool('p5', 1), 'MAX_NODE_POOLS_PER_ACCOUNT');
    assert.equal((await t.api.get<{ totalSize: number }>(`${A}/nodePools`)).body.totalSize, 4);
  });

  it('limits environments and snapshots per account', async () => {
    assert.equal((await t.api.post(`${A}/environments`, { environmentId: 'env1', environment: { baseImageRef: 'ghcr.io/a/b:1' } })).status, 200);
    expect429(await t.api.post(`${A}/environments`, { environmentId: 'env2', environment: {} }), 'MAX_ENVIRONMENTS_PER_ACCOUNT');
    assert.equal((await t.api.get(`${A}/environments/env2`)).status, 404);
    assert.equal((await t.api.post(`${A}/snapshots`, { environmentId: 'env1' })).status, 200);
    expect429(await t.api.post(`${A}/snapshots`, { environmentId: 'env1' }), 'MAX_SNAPSHOTS_PER_ACCOUNT');
    assert.equal((await t.api.get<{ totalSize: number }>(`${A}/snapshots`)).body.totalSize, 1);
  });

  it('keeps a job that prints past its log budget running to COMPLETED, with one marker line that counts the rest', async () => {
    // 300 lines of 100 bytes: 30 000 bytes against a budget of 16 KiB.
    const r = await t.api.post(`${A}/batchJobs?batchJobId=chatty`, {
      nodePoolId: 'default-cpu',
      shellExecutor: { command: 'for i in $(seq 1 300); do printf "%0100d\\n" $i; done; echo finished > done.txt' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const job = await waitForState(t.api, 'default', 'chatty', ['COMPLETED', 'FAILED']);
    assert.equal(job.state, 'COMPLETED', job.status);
    const entries: LogsPage['entries'] = [];
    let token = '';
    do {
      const page = await t.api.get<LogsPage>(`${A}/batchJobs/chatty:getLogs?startFromHead=true&pageSize=1000${token ? `&pageToken=${token}` : ''}`);
      entries.push(...page.body.entries);
      token = page.body.nextPageToken;
    } while (token);
    const kept = Math.floor(BUDGET / 100);
    const markers = entries.filter((e) => e.message.startsWith('batchd:'));
    assert.equal(markers.length, 1, JSON.stringify(markers));
    assert.equal(entries.length, kept + 1);
    assert.equal(entries[kept - 1]?.message, String(kept).padStart(100, '0'), 'the lines before the budget are all there, in order');
    assert.match(markers[0]?.message ?? '', new RegExp(`budget of 16 KiB \\(LOG_BUDGET_BYTES_PER_JOB\\) was reached; ${300 - kept} lines \\(.+\\) after it were dropped`));
    const metrics = await (await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${readFileSync(join(t.dataDir, 'metrics-token'), 'utf8').trim()}` } })).text();
    const counted = Number(/^batchd_log_lines_dropped_total\{reason="budget"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(counted >= 300 - kept, `counted ${counted}`);
  });

  it('ends a :getLogs page at LOG_PAGE_MAX_BYTES of text, and the page token continues after it', async () => {
    const r = await t.api.post(`${A}/batchJobs?batchJobId=wide`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'for i in $(seq 1 10); do printf "%01000d\\n" $i; done' } });
    assert.equal(r.status, 200);
    assert.equal((await waitForState(t.api, 'default', 'wide', ['COMPLETED', 'FAILED'])).state, 'COMPLETED');
    const first = await t.api.get<LogsPage>(`${A}/batchJobs/wide:getLogs?startFromHead=true&pageSize=100`);
    assert.equal(first.body.entries.length, Math.floor(PAGE_BYTES / 1000), 'four lines of 1000 bytes fit 4096');
    assert.notEqual(first.body.nextPageToken, '');
    const all = [...first.body.entries];
    let token = first.body.nextPageToken;
    while (token) {
      const page = await t.api.get<LogsPage>(`${A}/batchJobs/wide:getLogs?startFromHead=true&pageSize=100&pageToken=${token}`);
      assert.ok(page.body.entries.length <= 4);
      all.push(...page.body.entries);
      token = page.body.nextPageToken;
    }
    assert.deepEqual(all.map((e) => Number(e.message)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('checks the agent token before reading an ingest body, and takes lines only from the host a rank is placed on', async () => {
    const ingest = (token: string, body: string) =>
      fetch(`${t.url}/internal/v1/logs:ingest`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
    // A body over the ingest limit (4 × MAX_BODY_BYTES): the wrong token is refused before it is read.
    const huge = JSON.stringify({ host: 'h0', entries: [], pad: 'x'.repeat(5 * 1024 * 1024) });
    assert.equal((await ingest('not-the-agent-token', huge)).status, 401);
    const token = readFileSync(join(t.dataDir, 'agent-token'), 'utf8').trim();
    assert.equal((await ingest(token, huge)).status, 413, 'too large for the right token: the shipper splits it');

    const line = (host: string, seq: number) =>
      JSON.stringify({ host, entries: [{ job: 'accounts/default/batchJobs/wide', rank: 0, seq: 1000 + seq, time: '2026-01-01T00:00:00.000Z', stream: 'stdout', message: `from ${host}` }] });
    const answers = await Promise.all([0, 1, 2, 3].map(async (i) => (await ingest(token, line(fakeHostId(i), i))).status));
    assert.deepEqual(answers.filter((s) => s === 200).length, 1, `exactly the host of rank 0 may write its lines: ${answers.join(',')}`);
    assert.deepEqual(answers.filter((s) => s === 403).length, 3);
    const refused = await ingest(token, line('h9', 9));
    assert.equal(refused.status, 403);
    assert.match(((await refused.json()) as ErrorBody).message, /host h9 may not write the logs of rank 0 of accounts\/default\/batchJobs\/wide: that rank is not placed on it/);
    const unknown = JSON.stringify({ host: 'h0', entries: [{ job: 'accounts/default/batchJobs/no-such-job', rank: 0, seq: 0, time: '2026-01-01T00:00:00.000Z', stream: 'stdout', message: 'x' }] });
    assert.equal((await ingest(token, unknown)).status, 403);
    const stored = await t.api.get<LogsPage>(`${A}/batchJobs/wide:getLogs?filter=from%20h`);
    assert.equal(stored.body.entries.length, 1);
  });

  it('bounds :followLogs streams per account, and ends a waiting job’s idle stream', async () => {
    // p4 has one host: "hold" runs on it and "waiter" queues behind it.
    assert.equal((await t.api.post(`${A}/batchJobs?batchJobId=hold`, { nodePoolId: 'p4', shellExecutor: { command: 'sleep 120' } })).status, 200);
    await waitForState(t.api, 'default', 'hold', 'RUNNING');
    assert.equal((await t.api.post(`${A}/batchJobs?batchJobId=waiter`, { nodePoolId: 'p4', shellExecutor: { command: 'true' } })).status, 200);
    await waitForState(t.api, 'default', 'waiter', 'QUEUED');

    const url = (id: string) => `${t.url}${A}/batchJobs/${id}:followLogs`;
    const one = openStream(url('hold'), t.key);
    const two = openStream(url('hold'), t.key);
    assert.equal((await one.response).status, 200);
    assert.equal((await two.response).status, 200);
    const third = await t.api.get(`${A}/batchJobs/hold:followLogs`);
    expect429(third, 'MAX_LOG_STREAMS_PER_ACCOUNT');
    one.close();
    await one.done.catch(() => undefined);
    // The server notices the closed stream within a poll; then the account has room again.
    const idle = await waitFor('room for a new stream', async () => {
      const s = openStream(url('waiter'), t.key);
      const status = (await s.response).status;
      if (status === 200) return s;
      s.close();
      return undefined;
    }, 10_000, 200);
    const started = Date.now();
    assert.equal(await idle.done, 200);
    const end = idle.events.find((e) => e.event === 'end');
    assert.equal(end?.data.state, 'QUEUED');
    assert.match(String(end?.data.status), /the stream ended after 2 s without a line while the job waits to start/);
    assert.ok(Date.now() - started < 5000, 'the idle stream ended within its bound');
    two.close();
    await two.done.catch(() => undefined);
  });

  it('limits waiting and live jobs per account: 429 naming the limit, nothing created', async () => {
    // "waiter" waits: no other job may be created while it does (MAX_QUEUED_JOBS_PER_ACCOUNT = 1).
    expect429(await t.api.post(`${A}/batchJobs?batchJobId=x1`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'true' } }), 'MAX_QUEUED_JOBS_PER_ACCOUNT');
    assert.equal((await t.api.get(`${A}/batchJobs/x1`)).status, 404);
    assert.equal((await t.api.post(`${A}/batchJobs/waiter:cancel`, {})).status, 200);
    await waitForState(t.api, 'default', 'waiter', 'CANCELLED');
    // "hold" is live; three more make four, the limit.
    for (const id of ['y1', 'y2', 'y3']) {
      assert.equal((await t.api.post(`${A}/batchJobs?batchJobId=${id}`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'sleep 120' } })).status, 200);
      await waitForState(t.api, 'default', id, 'RUNNING');
    }
    expect429(await t.api.post(`${A}/batchJobs?batchJobId=y4`, { nodePoolId: 'default-gpu', shellExecutor: { command: 'true' } }), 'MAX_LIVE_JOBS_PER_ACCOUNT');
    assert.equal((await t.api.get(`${A}/batchJobs/y4`)).status, 404);
    for (const id of ['hold', 'y1', 'y2', 'y3']) await t.api.post(`${A}/batchJobs/${id}:cancel`, {});
  });

  describe('a second API process: the per-key rate and a metrics listener of its own', () => {
    let api: RunningService;
    let metricsPort: number;
    const other = 'other-user-key-0123456789';
    before(async () => {
      const keys = join(mkdtempSync(join(tmpdir(), 'batchd-keys-')), 'keys.json');
      writeFileSync(keys, JSON.stringify([{ key: other, account: 'default', email: 'other@example.com' }]));
      metricsPort = await freePort();
      const env = {
        ...t.env,
        TEMPORAL_ADDRESS: t.service.temporalAddress,
        PORT: String(await freePort()),
        API_KEYS_FILE: keys,
        // One token per 5 s: the three requests below do not earn a fourth even on a loaded machine.
        API_RATE_LIMIT_PER_SECOND: '0.2',
        API_RATE_LIMIT_BURST: '3',
        METRICS_PORT: String(metricsPort),
      };
      api = await startService({ config: loadConfig(env), roles: ['api'], logger: pino({ level: 'warn' }) });
    });
    after(async () => {
      await api?.stop();
    });

    it('answers 429 with Retry-After past a key’s burst, and other keys are not held back', async () => {
      const mine = new Api(api.url ?? '', t.key);
      for (let i = 0; i < 3; i++) assert.equal((await mine.get(`${A}/nodePools`)).status, 200);
      const res = await fetch(`${api.url ?? ''}${A}/nodePools`, { headers: { authorization: `Bearer ${t.key}` } });
      assert.equal(res.status, 429);
      const retryAfter = Number(res.headers.get('retry-after'));
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 5, `Retry-After in whole seconds until the next token: ${retryAfter}`);
      const body = (await res.json()) as ErrorBody;
      assert.equal(body.code, 8);
      assert.match(body.message, /API_RATE_LIMIT_PER_SECOND/);
      assert.equal((await new Api(api.url ?? '', other).get(`${A}/nodePools`)).status, 200, 'the other key has its own bucket');
      await new Promise((r) => setTimeout(r, retryAfter * 1000 + 100));
      assert.equal((await mine.get(`${A}/nodePools`)).status, 200, 'a token is back after Retry-After');
    });

    it('serves /metrics on METRICS_PORT only, and on the API port /metrics needs METRICS_TOKEN', async () => {
      const separate = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(separate.status, 200);
      assert.match(await separate.text(), /^# TYPE batchd_batch_jobs gauge$/m);
      assert.equal((await fetch(`${api.url ?? ''}/metrics`)).status, 404);
      const main = await fetch(`${t.url}/metrics`);
      assert.equal(main.status, 401);
      assert.ok(!(await main.text()).includes(readFileSync(join(t.dataDir, 'metrics-token'), 'utf8').trim()));
      assert.equal((await fetch(`${t.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
    });
  });
});
