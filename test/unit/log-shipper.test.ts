/**
 * The remote agents' log shipper against the real ingest endpoint over loopback HTTP (express, the
 * real route, a real LogStore on SQLite; only the placement lookup is a table): batches are sized in
 * bytes, an over-long line is cut with a marker, a batch refused as too large is split, a batch
 * refused for good is dropped without holding back later lines, and the spool is capped on disk with
 * a marker for what it dropped.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import pino from 'pino';
import { HttpLogSink } from '../../src/agent/log-shipper';
import { mountLogIngest } from '../../src/api/log-ingest';
import { MAX_LOG_LINE_BYTES } from '../../src/domain/log-limits';
import { type LogEntry, LogStore } from '../../src/store/log-store';

const TOKEN = 'agent-token-0123456789abcdef';
const JOB = 'accounts/a/batchJobs/placed';
const OTHER = 'accounts/a/batchJobs/elsewhere';

interface Ingest {
  url: string;
  store: LogStore;
  bodies: number[];
  statuses: number[];
  down: boolean;
  close(): Promise<void>;
}

async function startIngest(dir: string, maxBodyBytes: number): Promise<Ingest> {
  const store = new LogStore(join(mkdtempSync(join(dir, 'ingest-')), 'logs.sqlite'));
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
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        store.close();
      }),
  });
}

let seq = 0;
const entry = (message: string, job = JOB): LogEntry => ({ job, rank: 0, seq: seq++, time: new Date().toISOString(), stream: 'stdout', message });

async function until(what: string, probe: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const stored = (store: LogStore, job = JOB) => store.query({ job, fromHead: true, pageSize: 10_000 }).entries;

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
      const got = stored(ingest.store);
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

  it('splits a batch the API refuses as too large (413) until it fits', async () => {
    // The API takes 4 × 1024 bytes; this shipper was configured for far more.
    const ingest = await startIngest(dir, 1024);
    try {
      const sink = sinkFor(ingest.url, 'split', 1024 * 1024);
      sink.forHost('h1').append(Array.from({ length: 30 }, (_, i) => entry(`split ${i} ${'z'.repeat(300)}`)));
      await until('every line delivered', () => sink.pending === 0);
      assert.equal(stored(ingest.store).filter((e) => e.message.startsWith('split')).length, 30);
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
      assert.deepEqual(stored(ingest.store, OTHER), []);
      assert.deepEqual(stored(ingest.store).map((e) => e.message), ['mine']);
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
      const got = stored(ingest.store).filter((e) => e.message.includes('spooled') || e.message.startsWith('batchd:'));
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
