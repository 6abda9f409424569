/**
 * The remote agents' log shipper against the real ingest endpoint over loopback HTTP (express, the
 * real route, a real LogStore on SQLite; only the placement lookup is a table): batches are sized in
 * bytes, an over-long line is cut with a marker, a batch refused as too large is split, a batch
 * refused for good is dropped without holding back later lines, and the spool is capped on disk with
 * a marker for what it dropped. Each line keeps its attempt, a spool line of an agent from before
 * retries is stored as attempt 1, and a retry placed on another host is not refused by a stale cache.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import pino from 'pino';
import { HttpLogSink } from '../../src/agent/log-shipper';
import { mountLogIngest } from '../../src/api/log-ingest';
import { MAX_LOG_LINE_BYTES } from '../../src/domain/log-limits';
import { type LogEntry } from '../../src/store/log-store';
import { SqliteLogStore } from '../../src/store/sqlite-log-store';

const TOKEN = 'agent-token-0123456789abcdef';
const JOB = 'accounts/a/batchJobs/placed';
const OTHER = 'accounts/a/batchJobs/elsewhere';

interface Ingest {
  url: string;
  store: SqliteLogStore;
  /** Where each job's ranks run, as the job's workflow would answer; a test may place a job again (a retry). */
  placements: Map<string, Map<number, string>>;
  bodies: number[];
  statuses: number[];
  down: boolean;
  close(): Promise<void>;
}

async function startIngest(dir: string, maxBodyBytes: number): Promise<Ingest> {
  const store = new SqliteLogStore(join(mkdtempSync(join(dir, 'ingest-')), 'logs.sqlite'));
  const app = express();
  const state = { bodies: [] as number[], statuses: [] as number[], down: false };
  app.use((req, res, next) => {
    if (state.down) {
      res.status(503).json({ code: 14, message: 'down', details: [] });
      return;
    }
    state.bodies.push(Number(req.headers['content-length'] ?? 0));
    res.on('finish', () => state.statuses.push(res.statusCode));
    next();
  });
  // h1 runs rank 0 of JOB; OTHER runs on h2.
  const placements = new Map([
    [JOB, new Map([[0, 'h1']])],
    [OTHER, new Map([[0, 'h2']])],
  ]);
  mountLogIngest(app, { token: TOKEN, sink: store, maxBodyBytes, placement: { rankHosts: (job) => Promise.resolve(placements.get(job)) } });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    store,
    placements,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await store.close();
    },
  });
}

let seq = 0;
const entry = (message: string, job = JOB, attempt = 1): LogEntry => ({ job, attempt, rank: 0, seq: seq++, time: new Date().toISOString(), stream: 'stdout', message });

async function until(what: string, probe: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const stored = async (store: SqliteLogStore, job = JOB) => (await store.query({ job, fromHead: true, pageSize: 10_000 })).entries;

describe('the log shipper', () => {
  let dir: string;
  const logger = pino({ level: 'silent' });
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'batchd-shipper-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const sinkFor = (url: string, name: string, maxBatchBytes: number, spoolMaxBytes = 64 * 1024 * 1024) =>
    new HttpLogSink({ apiUrl: url, token: TOKEN, spoolDir: join(dir, name), logger, maxBatchBytes, spoolMaxBytes });

  it('sizes batches in bytes, cuts an over-long line with a marker, and every later line still arrives', async () => {
    const ingest = await startIngest(dir, 1024 * 1024);
    try {
      const sink = sinkFor(ingest.url, 'sizes', 8 * 1024);
      const lines = [...Array.from({ length: 40 }, (_, i) => entry(`${i}`.padStart(1000, '-'))), entry('y'.repeat(200 * 1024)), entry('after the long line')];
      sink.forHost('h1').append(lines);
      await until('every line delivered', () => sink.pending === 0);
      const got = await stored(ingest.store);
      assert.equal(got.length, 42);
      assert.ok(ingest.bodies.every((b) => b <= 8 * 1024 + 200 || b <= MAX_LOG_LINE_BYTES + 500), `bodies ${ingest.bodies.join(',')}`);
      assert.ok(ingest.bodies.length >= 6, 'forty 1 KB lines took several 8 KiB batches');
      const long = got[40]?.message ?? '';
      assert.ok(Buffer.byteLength(long) <= MAX_LOG_LINE_BYTES);
      assert.match(long, /^y+ … \[batchd: line truncated, \d+ more bytes dropped\]$/);
      assert.equal(got[41]?.message, 'after the long line');
      assert.ok(ingest.statuses.every((s) => s === 200));
    } finally {
      await ingest.close();
    }
  });

  it('stores each line with its attempt, and a spooled line of an older agent (no attempt) as attempt 1', async () => {
    const ingest = await startIngest(dir, 1024 * 1024);
    try {
      // What an agent from before retries left in its spool: entries without an attempt.
      const spoolDir = join(dir, 'old-spool');
      mkdirSync(spoolDir, { recursive: true });
      const old = { job: JOB, rank: 0, seq: 900, time: new Date().toISOString(), stream: 'stdout', message: 'from an older agent' };
      writeFileSync(join(spoolDir, 'pending.jsonl'), `${JSON.stringify({ host: 'h1', entry: old })}\n`);
      const sink = sinkFor(ingest.url, 'old-spool', 64 * 1024);
      sink.forHost('h1').append([entry('first try', JOB, 1), entry('second try', JOB, 2)]);
      await until('every line delivered', () => sink.pending === 0);
      const got = await stored(ingest.store);
      assert.deepEqual(
        got.map((e) => [e.message, e.attempt]).sort(),
        [['first try', 1], ['from an older agent', 1], ['second try', 2]],
      );
      assert.ok(ingest.statuses.every((s) => s === 200), `statuses ${ingest.statuses.join(',')}`);
    } finally {
      await ingest.close();
    }
  });

  it('takes the lines of a retry that its job placed on another host, though the old placement is cached', async () => {
    const ingest = await startIngest(dir, 1024 * 1024);
    try {
      const h1 = sinkFor(ingest.url, 'placed-h1', 64 * 1024);
      h1.forHost('h1').append([entry('attempt 1 on h1', JOB, 1)]);
      await until('attempt 1 delivered', () => h1.pending === 0);
      // The job failed and was retried: attempt 2 runs rank 0 on h2.
      ingest.placements.set(JOB, new Map([[0, 'h2']]));
      const h2 = sinkFor(ingest.url, 'placed-h2', 64 * 1024);
      h2.forHost('h2').append([entry('attempt 2 on h2', JOB, 2)]);
      await until('attempt 2 delivered', () => h2.pending === 0);
      assert.deepEqual(ingest.statuses, [200, 200]);
      // h1 no longer runs rank 0: its lines are refused now.
      h1.forHost('h1').append([entry('late line of h1', JOB, 2)]);
      await until('the refused batch settled', () => h1.pending === 0);
      assert.deepEqual(ingest.statuses, [200, 200, 403]);
      assert.deepEqual((await stored(ingest.store)).map((e) => [e.message, e.attempt]), [['attempt 1 on h1', 1], ['attempt 2 on h2', 2]]);
    } finally {
      await ingest.close();
    }
  });

  it('splits a batch the API refuses as too large (413) until it fits', async () => {
    // The API takes 4 × 1024 bytes; this shipper was configured for far more.
    const ingest = await startIngest(dir, 1024);
    try {
      const sink = sinkFor(ingest.url, 'split', 1024 * 1024);
      sink.forHost('h1').append(Array.from({ length: 30 }, (_, i) => entry(`split ${i} ${'z'.repeat(300)}`)));
      await until('every line delivered', () => sink.pending === 0);
      assert.equal((await stored(ingest.store)).filter((e) => e.message.startsWith('split')).length, 30);
      assert.ok(ingest.statuses.includes(413), 'the first batch was too large');
      assert.equal(ingest.statuses.at(-1), 200);
    } finally {
      await ingest.close();
    }
  });

  it('drops a batch refused for good (403: not this host’s job) without holding back later lines', async () => {
    const ingest = await startIngest(dir, 1024 * 1024);
    try {
      const sink = sinkFor(ingest.url, 'refused', 64 * 1024);
      sink.forHost('h1').append([entry('not mine', OTHER)]);
      sink.forHost('h1').append([entry('mine')]);
      await until('the queue is empty', () => sink.pending === 0);
      assert.deepEqual(ingest.statuses, [403, 200]);
      assert.deepEqual(await stored(ingest.store, OTHER), []);
      assert.deepEqual((await stored(ingest.store)).map((e) => e.message), ['mine']);
    } finally {
      await ingest.close();
    }
  });

  it('caps its spool while the API is down: the oldest lines go, one marker says how many', async () => {
    const ingest = await startIngest(dir, 1024 * 1024);
    try {
      ingest.down = true;
      const cap = 20 * 1024;
      const sink = sinkFor(ingest.url, 'spool', 64 * 1024, cap);
      for (let i = 0; i < 100; i++) sink.forHost('h1').append([entry(`spooled ${i} ${'s'.repeat(1000)}`)]);
      const spoolBytes = statSync(join(dir, 'spool', 'pending.jsonl')).size;
      assert.ok(spoolBytes <= cap + 2048, `the spool holds ${spoolBytes} bytes`);
      ingest.down = false;
      await until('every kept line delivered', () => sink.pending === 0, 30_000);
      const got = (await stored(ingest.store)).filter((e) => e.message.includes('spooled') || e.message.startsWith('batchd:'));
      const markers = got.filter((e) => e.message.startsWith('batchd:'));
      assert.equal(markers.length >= 1, true);
      const dropped = markers.reduce((n, m) => n + Number(/^batchd: (\d+) line/.exec(m.message)?.[1] ?? 0), 0);
      const kept = got.filter((e) => e.message.includes('spooled'));
      assert.equal(kept.at(-1)?.message.startsWith('spooled 99 '), true, 'the newest line is kept');
      assert.equal(dropped + kept.length, 100, 'every line is either delivered or counted in a marker');
      assert.equal(markers.length, 1, 'one rank, one marker');
      assert.match(markers[0]?.message ?? '', /spool of undelivered lines reached 20 KiB/);
    } finally {
      await ingest.close();
    }
  });
});
