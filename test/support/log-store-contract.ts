/**
 * The log store's contract, run against each backend (SQLite, PostgreSQL) by the suite of that backend:
 *
 * - `logStoreContract`: through the LogStore interface alone, each case in a fresh place (a file, a
 *   database), with a second store instance on the same place standing for another process or API
 *   replica;
 * - `logApiContract`: `:getLogs` and `:followLogs` over real HTTP, from two API "replicas" (two apps,
 *   each with its own log store and read model instances on the same place): lines come in through one
 *   replica's ingest endpoint and are paged, filtered by attempt and followed on the other, and a
 *   deleted job's logs are gone for both.
 */
import assert from 'node:assert/strict';
import { type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { type Client } from '@temporalio/client';
import pino from 'pino';
import { createApp } from '../../src/api/app';
import { keyEntry, KeyRing } from '../../src/api/auth';
import { batchJobRoutes } from '../../src/api/batch-job-routes';
import { BatchJobService } from '../../src/api/batch-job-service';
import { logFollowRoutes } from '../../src/api/log-follow-routes';
import { mountLogIngest } from '../../src/api/log-ingest';
import { encodePageToken, queryFingerprint } from '../../src/api/page-token';
import { purgeJob } from '../../src/control/purge';
import { type BatchJobState } from '../../src/domain/batch-job-model';
import { type LogCursor, type LogEntry, type LogStore } from '../../src/store/log-store';
import { type ReadModel } from '../../src/store/read-model';
import { Api } from './harness';
import { job } from './read-model-contract';

const JOB = 'accounts/a/batchJobs/j';
const OTHER_JOB = 'accounts/a/batchJobs/other';
const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();

/** One line: rank, seq and time (ms after T0) first, the rest defaulted. */
export function line(rank: number, seq: number, ms: number, message = `r${rank} s${seq}`, attempt = 1, jobName = JOB): LogEntry {
  return { job: jobName, attempt, rank, seq, time: at(ms), stream: rank % 2 ? 'stderr' : 'stdout', message };
}

const key = (e: LogEntry): string => `${e.attempt}/${e.rank}/${e.seq}`;
const order = (a: LogEntry, b: LogEntry): number =>
  a.time < b.time ? -1 : a.time > b.time ? 1 : a.attempt - b.attempt || a.rank - b.rank || a.seq - b.seq;

/** Every entry of a query, page after page; fails if a page repeats or skips one. */
async function readAll(store: LogStore, q: { job: string; fromHead: boolean; pageSize: number; maxBytes?: number; attempt?: number }): Promise<{ entries: LogEntry[]; pages: LogEntry[][] }> {
  const pages: LogEntry[][] = [];
  let next: LogCursor | undefined;
  for (;;) {
    const page = await store.query({ ...q, ...(next ? { after: next } : {}) });
    pages.push(page.entries);
    if (!page.next) break;
    next = page.next;
    assert.ok(pages.length < 10_000, 'paging ends');
  }
  return { entries: pages.flat(), pages };
}

/** A place for a log store (a file, a database): the store, and another instance on the same place. */
export interface LogStorePlace {
  store: LogStore;
  /** Another instance on the same place, as another process or API replica opens it. */
  replica(): Promise<LogStore>;
}

export interface LogStoreBackend {
  /** A fresh, empty place with its first store. */
  open(): Promise<LogStorePlace>;
  /** The read model of the same place (its database or directory), for the API cases. */
  readModel(): Promise<ReadModel>;
  cleanup(): Promise<void>;
}

export function logStoreContract(name: string, backend: LogStoreBackend): void {
  describe(`${name}: the log store contract`, () => {
    let place: LogStorePlace;
    const opened: LogStore[] = [];
    const replica = async (): Promise<LogStore> => {
      const r = await place.replica();
      opened.push(r);
      return r;
    };
    beforeEach(async () => {
      for (const s of opened.splice(0)) await s.close().catch(() => undefined);
      place = await backend.open();
      opened.push(place.store);
    });
    after(async () => {
      for (const s of opened.splice(0)) await s.close().catch(() => undefined);
      await backend.cleanup();
    });

    it('reads lines oldest first or newest first, in (time, attempt, rank, seq) order', async () => {
      const lines = [line(1, 0, 0), line(0, 0, 0), line(0, 1, 5), line(0, 0, 5, 'retry', 2), line(1, 1, 5), line(0, 0, 3, 'other job', 1, OTHER_JOB), line(0, 2, 9)];
      await place.store.append(lines.slice(0, 4));
      await place.store.append(lines.slice(4));
      const mine = lines.filter((e) => e.job === JOB).sort(order);
      const head = await place.store.query({ job: JOB, fromHead: true, pageSize: 100 });
      assert.deepEqual(head.entries, mine);
      assert.equal(head.next, undefined);
      const tail = await place.store.query({ job: JOB, fromHead: false, pageSize: 100 });
      assert.deepEqual(tail.entries, [...mine].reverse());
    });

    it('stores a line once however often it comes, and the same rank and seq of another attempt beside it', async () => {
      await place.store.append([line(0, 0, 0, 'first')]);
      await place.store.append([line(0, 0, 0, 'first'), line(0, 0, 0, 'a different text under the same key')]);
      await place.store.append([line(0, 0, 10, 'attempt two', 2)]);
      const got = (await place.store.query({ job: JOB, fromHead: true, pageSize: 100 })).entries;
      assert.deepEqual(got.map((e) => [e.attempt, e.seq, e.message]), [[1, 0, 'first'], [2, 0, 'attempt two']]);
      assert.equal(await place.store.storedBytes(), 'first'.length + 'attempt two'.length, 'a line sent again is not counted again');
    });

    it('filters by ranks, attempt, start time and case-sensitive substring, within one job', async () => {
      await place.store.append([
        line(0, 0, 0, 'Loss 0.9'),
        line(1, 0, 1, 'loss 0.8'),
        line(0, 1, 2, 'loss 0.7'),
        line(0, 0, 20, 'loss again', 2),
        line(1, 0, 21, 'retry rank 1', 2),
        line(0, 0, 3, 'loss elsewhere', 1, OTHER_JOB),
      ]);
      const messages = async (q: Partial<Parameters<LogStore['query']>[0]>) =>
        (await place.store.query({ job: JOB, fromHead: true, pageSize: 100, ...q })).entries.map((e) => e.message);
      assert.deepEqual(await messages({ attempt: 2 }), ['loss again', 'retry rank 1']);
      assert.deepEqual(await messages({ attempt: 1 }), ['Loss 0.9', 'loss 0.8', 'loss 0.7']);
      assert.deepEqual(await messages({ attempt: 3 }), []);
      assert.deepEqual(await messages({ ranks: [1] }), ['loss 0.8', 'retry rank 1']);
      assert.deepEqual(await messages({ ranks: [0], attempt: 2 }), ['loss again']);
      assert.deepEqual(await messages({ ranks: [0, 1], attempt: 1, filter: 'loss' }), ['loss 0.8', 'loss 0.7']);
      assert.deepEqual(await messages({ filter: 'Loss' }), ['Loss 0.9']);
      assert.deepEqual(await messages({ startTime: at(2) }), ['loss 0.7', 'loss again', 'retry rank 1']);
      assert.deepEqual(await messages({ startTime: at(2), fromHead: false, attempt: 1 }), ['loss 0.7']);
      assert.deepEqual(await messages({ filter: '%' }), [], 'a filter is a plain substring, not a pattern');
    });

    it('pages without gaps or repeats in both directions, across many reads of a page', async () => {
      // More lines than one read of a page holds on any backend, two attempts interleaved in time.
      const lines = Array.from({ length: 1300 }, (_, i) => line(i % 3, Math.floor(i / 6), Math.floor(i / 4), `line ${i}`, 1 + (Math.floor(i / 3) % 2)));
      await place.store.append(lines);
      const sorted = [...lines].sort(order);
      for (const pageSize of [1, 7, 300, 1000, 10_000]) {
        if (pageSize === 1) {
          const first = await place.store.query({ job: JOB, fromHead: true, pageSize });
          assert.deepEqual(first.entries, sorted.slice(0, 1));
          continue;
        }
        const up = await readAll(place.store, { job: JOB, fromHead: true, pageSize });
        assert.deepEqual(up.entries.map(key), sorted.map(key), `oldest first, pages of ${pageSize}`);
        assert.ok(up.pages.slice(0, -1).every((p) => p.length === pageSize));
        const down = await readAll(place.store, { job: JOB, fromHead: false, pageSize });
        assert.deepEqual(down.entries.map(key), [...sorted].reverse().map(key), `newest first, pages of ${pageSize}`);
      }
      const second = await readAll(place.store, { job: JOB, fromHead: true, pageSize: 50, attempt: 2 });
      assert.deepEqual(second.entries.map(key), sorted.filter((e) => e.attempt === 2).map(key));
    });

    it('ends a page at maxBytes of UTF-8 text, always holding at least one line', async () => {
      // 'é' is two bytes: 30 of them are 60 bytes, and only two such lines fit in 150.
      const lines = [line(0, 0, 0, 'é'.repeat(30)), line(0, 1, 1, 'é'.repeat(30)), line(0, 2, 2, 'é'.repeat(30)), line(0, 3, 3, 'x'.repeat(500)), line(0, 4, 4, 'tail')];
      await place.store.append(lines);
      const { pages } = await readAll(place.store, { job: JOB, fromHead: true, pageSize: 100, maxBytes: 150 });
      assert.deepEqual(pages.map((p) => p.map((e) => e.seq)), [[0, 1], [2], [3], [4]], 'a line over the cap comes alone');
      // Many long lines: a page that would need several reads stops at the cap.
      const wide = Array.from({ length: 600 }, (_, i) => line(5, i, 100 + i, `${i} ${'w'.repeat(1000)}`));
      await place.store.append(wide);
      // Lines 0-9 are 1002 bytes, 10-99 1003, the rest 1004: the first 400 are 1004 × 400 − 110 bytes.
      const page = await place.store.query({ job: JOB, fromHead: true, pageSize: 10_000, maxBytes: 1004 * 400 - 110, ranks: [5] });
      assert.equal(page.entries.length, 400);
      assert.ok(page.next);
      const rest = await place.store.query({ job: JOB, fromHead: true, pageSize: 10_000, ranks: [5], after: page.next });
      assert.equal(page.entries.length + rest.entries.length, 600);
    });

    it('stores U+0000 as U+FFFD on every backend, and a filter with it finds the line', async () => {
      await place.store.append([line(0, 0, 0, 'a\0b'), line(0, 1, 1, 'plain')]);
      const all = await place.store.query({ job: JOB, fromHead: true, pageSize: 10 });
      assert.deepEqual(all.entries.map((e) => e.message), ['a\uFFFDb', 'plain']);
      assert.deepEqual((await place.store.query({ job: JOB, fromHead: true, pageSize: 10, filter: '\0b' })).entries.map((e) => e.seq), [0]);
      assert.deepEqual((await place.store.query({ job: JOB, fromHead: true, pageSize: 10, filter: '\uFFFD' })).entries.map((e) => e.seq), [0]);
    });

    it('deletes one job’s lines, says how many, and counts stored bytes in UTF-8', async () => {
      await place.store.append([line(0, 0, 0, 'ééé'), line(0, 0, 1, 'retry', 2), line(0, 0, 2, 'kept', 1, OTHER_JOB)]);
      assert.equal(await place.store.storedBytes(), 6 + 5 + 4);
      assert.equal(await place.store.deleteJob(JOB), 2);
      assert.deepEqual((await place.store.query({ job: JOB, fromHead: true, pageSize: 10 })).entries, []);
      assert.equal((await place.store.query({ job: OTHER_JOB, fromHead: true, pageSize: 10 })).entries.length, 1);
      assert.equal(await place.store.storedBytes(), 4);
      assert.equal(await place.store.deleteJob(JOB), 0, 'deleting again finds nothing');
      await place.store.append([line(0, 0, 3, 'after the delete')]);
      assert.equal(await place.store.storedBytes(), 4 + 'after the delete'.length);
    });

    it('shares one log between instances: each reads what the other wrote, also when both write at once', async () => {
      const other = await replica();
      await place.store.append([line(0, 0, 0, 'through the first')]);
      assert.deepEqual((await other.query({ job: JOB, fromHead: true, pageSize: 10 })).entries.map((e) => e.message), ['through the first']);
      // Two hosts of the job write at once, each through its own instance, batch after batch.
      const batches = (rank: number) => Array.from({ length: 20 }, (_, b) => Array.from({ length: 25 }, (_, i) => line(rank, 1 + b * 25 + i, 10 + b * 25 + i, `host ${rank}`, 2)));
      await Promise.all([
        (async () => {
          for (const batch of batches(0)) await place.store.append(batch);
        })(),
        (async () => {
          for (const batch of batches(1)) await other.append(batch);
        })(),
      ]);
      for (const reader of [place.store, other]) {
        const got = await readAll(reader, { job: JOB, fromHead: true, pageSize: 400, attempt: 2 });
        assert.equal(got.entries.length, 1000);
        assert.equal(await reader.storedBytes(), 'through the first'.length + 1000 * 'host 0'.length);
      }
    });
  });
}

/** One API process: the log routes and the ingest endpoint on its own store and read model instances. */
interface Replica {
  api: Api;
  url: string;
  logs: LogStore;
  store: ReadModel;
  close(): Promise<void>;
}

const KEY = 'log-contract-key-0123456789';
const AGENT_TOKEN = 'log-contract-agent-token-0123';
const SECRET = Buffer.alloc(32, 7);
const ACCOUNT = 'default';
const JOBS = `/v1/accounts/${ACCOUNT}/batchJobs`;

/** A job's read-model record in a state (the API's 404 and the stream's end come from it). */
const jobRecord = (id: string, state: BatchJobState) => job(ACCOUNT, id, { state, status: state.toLowerCase(), nodePoolId: 'cpu' });

async function startReplica(logs: LogStore, store: ReadModel, placements: Map<string, Map<number, string>>): Promise<Replica> {
  // Only the read model is used by the log routes: a call that reached Temporal would fail on this empty client.
  const jobs = new BatchJobService({
    client: {} as Client,
    store,
    logs,
    config: { TASK_QUEUE: 'unused', HOST_HEARTBEAT_TIMEOUT_MS: 1000, HOST_START_TIMEOUT_MS: 1000, RANK_STOP_GRACE_MS: 100, dataDir: tmpdir(), POOL_QUEUE_WINDOW: 10 },
    logger: pino({ level: 'silent' }),
  });
  const limits = { pageMaxBytes: 1024 * 1024, streamsPerAccount: 4, streamIdleMs: 60_000 };
  const app = createApp({
    keys: new KeyRing([keyEntry(KEY, ACCOUNT, 'user@example.com')]),
    routes: [...batchJobRoutes(jobs, logs, SECRET, limits.pageMaxBytes), ...logFollowRoutes(jobs, logs, limits)],
    health: [],
    logger: pino({ level: 'silent' }),
    maxBodyBytes: 1 << 20,
    extra: (a) => mountLogIngest(a, { token: AGENT_TOKEN, sink: logs, maxBodyBytes: 1 << 20, placement: { rankHosts: (name) => Promise.resolve(placements.get(name)) } }),
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    api: new Api(url, KEY),
    url,
    logs,
    store,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await logs.close();
      await store.close();
    },
  };
}

/** Sends lines as host `host`'s agent does. */
async function ingest(replica: Replica, host: string, entries: LogEntry[]): Promise<number> {
  const res = await fetch(`${replica.url}/internal/v1/logs:ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${AGENT_TOKEN}` },
    body: JSON.stringify({ host, entries }),
  });
  await res.arrayBuffer();
  return res.status;
}

interface WireEntry {
  logTime: string;
  rank: number;
  message: string;
  attempt: number;
}
interface LogsBody {
  entries: WireEntry[];
  nextPageToken: string;
}
interface ErrorBody {
  code: number;
  message: string;
  details: Array<{ fieldViolations?: Array<{ field: string; description: string }> }>;
}

/** An open :followLogs stream at `baseUrl` + `path`: the events so far, and how it ended. */
export function followLogs(baseUrl: string, key: string, path: string) {
  const controller = new AbortController();
  const events: Array<{ event: string; data: Record<string, unknown> }> = [];
  const done = (async () => {
    const res = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
    if (res.status !== 200) return { status: res.status, body: (await res.json()) as ErrorBody };
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const chunk = await reader.read().catch(() => undefined);
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
    return { status: 200, body: undefined };
  })();
  return { events, done, close: () => controller.abort() };
}

const follow = (replica: Replica, path: string) => followLogs(replica.url, KEY, path);

async function until(what: string, probe: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function logApiContract(name: string, backend: LogStoreBackend): void {
  describe(`${name}: logs over HTTP from two API replicas`, () => {
    let a: Replica;
    let b: Replica;
    /** Rank → host of each job, as the job's workflow would answer the ingest endpoint. */
    const placements = new Map<string, Map<number, string>>();
    const dataDir = mkdtempSync(join(tmpdir(), 'batchd-log-api-'));

    before(async () => {
      const place = await backend.open();
      a = await startReplica(place.store, await backend.readModel(), placements);
      b = await startReplica(await place.replica(), await backend.readModel(), placements);
    });
    after(async () => {
      await a?.close();
      await b?.close();
      await backend.cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    });

    /** A job with ranks 0 and 1 on h1 and h2, and lines of its attempts 1 and 2 ingested through replica A. */
    async function jobWithTwoAttempts(id: string, state: BatchJobState = 'COMPLETED'): Promise<void> {
      const jobName = `accounts/${ACCOUNT}/batchJobs/${id}`;
      await a.store.put('batchJobs', ACCOUNT, jobRecord(id, state), 1);
      placements.set(jobName, new Map([[0, 'h1'], [1, 'h2']]));
      assert.equal(await ingest(a, 'h1', [line(0, 0, 0, 'first try', 1, jobName), line(0, 1, 1, 'first try failed', 1, jobName)]), 200);
      assert.equal(await ingest(a, 'h2', [line(1, 0, 2, 'first try of rank 1', 1, jobName)]), 200);
      assert.equal(await ingest(a, 'h1', [line(0, 0, 50, 'second try', 2, jobName)]), 200);
    }

    it('returns each entry’s attempt on another replica, and attempt= filters an attempt in and out', async () => {
      await jobWithTwoAttempts('two-tries');
      const all = await b.api.get<LogsBody>(`${JOBS}/two-tries:getLogs?startFromHead=true`);
      assert.equal(all.status, 200, JSON.stringify(all.body));
      assert.deepEqual(all.body.entries.map((e) => [e.attempt, e.rank, e.message]), [
        [1, 0, 'first try'],
        [1, 0, 'first try failed'],
        [1, 1, 'first try of rank 1'],
        [2, 0, 'second try'],
      ]);
      const second = await b.api.get<LogsBody>(`${JOBS}/two-tries:getLogs?attempt=2`);
      assert.deepEqual(second.body.entries.map((e) => [e.attempt, e.message]), [[2, 'second try']]);
      const first = await b.api.get<LogsBody>(`${JOBS}/two-tries:getLogs?attempt=1&ranks=0`);
      assert.deepEqual(first.body.entries.map((e) => [e.attempt, e.message]), [[1, 'first try failed'], [1, 'first try']], 'newest first');
      assert.deepEqual((await b.api.get<LogsBody>(`${JOBS}/two-tries:getLogs?attempt=3`)).body.entries, []);
      assert.deepEqual((await a.api.get<LogsBody>(`${JOBS}/two-tries:getLogs?attempt=2&filter=second`)).body.entries.map((e) => e.message), ['second try']);
    });

    it('answers a bad attempt with 400 INVALID_ARGUMENT naming attempt, on :getLogs and :followLogs', async () => {
      await a.store.put('batchJobs', ACCOUNT, jobRecord('bad-attempt', 'COMPLETED'), 1);
      for (const value of ['0', '-1', 'two', '1.5', '1&attempt=2']) {
        const r = await b.api.get<ErrorBody>(`${JOBS}/bad-attempt:getLogs?attempt=${value}`);
        assert.equal(r.status, 400, `attempt=${value}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, 3);
        assert.equal(r.body.details[0]?.fieldViolations?.[0]?.field, 'attempt');
        const stream = follow(b, `${JOBS}/bad-attempt:followLogs?attempt=${value}`);
        const result = await stream.done;
        assert.equal(result.status, 400);
        assert.equal(result.body?.code, 3);
        assert.match(result.body?.message ?? '', /^attempt: /);
      }
    });

    it('continues a page on another replica, and a page token from before attempts still continues', async () => {
      await jobWithTwoAttempts('paged');
      const first = await a.api.get<LogsBody>(`${JOBS}/paged:getLogs?startFromHead=true&pageSize=2`);
      assert.deepEqual(first.body.entries.map((e) => e.message), ['first try', 'first try failed']);
      const rest = await b.api.get<LogsBody>(`${JOBS}/paged:getLogs?startFromHead=true&pageSize=2&pageToken=${encodeURIComponent(first.body.nextPageToken)}`);
      assert.deepEqual(rest.body.entries.map((e) => e.message), ['first try of rank 1', 'second try']);
      assert.equal(rest.body.nextPageToken, '');
      // A token issued before attempts: its cursor is (time, rank, seq) of the last line of its page.
      const q = queryFingerprint({ job: `accounts/${ACCOUNT}/batchJobs/paged`, fromHead: 'true' });
      const old = encodePageToken(SECRET, { q, after: [at(1), 0, 1] });
      const continued = await b.api.get<LogsBody>(`${JOBS}/paged:getLogs?startFromHead=true&pageSize=10&pageToken=${encodeURIComponent(old)}`);
      assert.equal(continued.status, 200, JSON.stringify(continued.body));
      assert.deepEqual(continued.body.entries.map((e) => e.message), ['first try of rank 1', 'second try']);
      const otherQuery = await b.api.get<ErrorBody>(`${JOBS}/paged:getLogs?startFromHead=true&attempt=2&pageToken=${encodeURIComponent(first.body.nextPageToken)}`);
      assert.equal(otherQuery.status, 400, 'a token is for the query that issued it, attempt included');
    });

    it('follows on one replica the lines ingested through the other, of one attempt, until the job ends', async () => {
      const id = 'followed';
      const jobName = `accounts/${ACCOUNT}/batchJobs/${id}`;
      await a.store.put('batchJobs', ACCOUNT, jobRecord(id, 'RUNNING'), 1);
      placements.set(jobName, new Map([[0, 'h1']]));
      assert.equal(await ingest(a, 'h1', [line(0, 0, 0, 'attempt 1 before', 1, jobName)]), 200);
      const all = follow(b, `${JOBS}/${id}:followLogs`);
      const second = follow(b, `${JOBS}/${id}:followLogs?attempt=2`);
      try {
        await until('the line so far', () => all.events.length === 1);
        assert.equal(await ingest(a, 'h1', [line(0, 0, 100, 'attempt 2 live', 2, jobName)]), 200);
        await until('the live line on both streams', () => all.events.length === 2 && second.events.length === 1);
        assert.equal(await ingest(a, 'h1', [line(0, 1, 200, 'attempt 2 later', 2, jobName)]), 200);
        await until('the later line', () => all.events.length === 3 && second.events.length === 2);
        // The job ends: its state, read from the shared read model, ends both streams after their last line.
        await a.store.put('batchJobs', ACCOUNT, jobRecord(id, 'COMPLETED'), 2);
        await Promise.all([all.done, second.done]);
        const logs = (s: typeof all) => s.events.filter((e) => e.event === 'log').map((e) => [e.data.attempt, e.data.message]);
        assert.deepEqual(logs(all), [[1, 'attempt 1 before'], [2, 'attempt 2 live'], [2, 'attempt 2 later']]);
        assert.deepEqual(logs(second), [[2, 'attempt 2 live'], [2, 'attempt 2 later']]);
        for (const s of [all, second]) assert.deepEqual(s.events.at(-1), { event: 'end', data: { state: 'COMPLETED', status: 'completed' } });
      } finally {
        all.close();
        second.close();
      }
    });

    it('purges a deleted job’s logs for every replica', async () => {
      await jobWithTwoAttempts('purged');
      await jobWithTwoAttempts('kept');
      assert.equal((await b.api.get<LogsBody>(`${JOBS}/purged:getLogs`)).body.entries.length, 4);
      await purgeJob({ store: a.store, logs: a.logs, dataDir }, ACCOUNT, `accounts/${ACCOUNT}/batchJobs/purged`, 'purged');
      assert.equal((await b.api.get(`${JOBS}/purged:getLogs`)).status, 404);
      assert.deepEqual((await b.logs.query({ job: `accounts/${ACCOUNT}/batchJobs/purged`, fromHead: true, pageSize: 10 })).entries, []);
      assert.equal((await b.api.get<LogsBody>(`${JOBS}/kept:getLogs`)).body.entries.length, 4, 'other jobs keep theirs');
    });
  });
}
