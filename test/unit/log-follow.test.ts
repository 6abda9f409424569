/**
 * The :followLogs writer against a client that reads slowly: it writes no further while the socket's
 * buffer is full (write() returned false) and goes on at each 'drain', so a stored log of any size
 * never piles up in the server's memory; every line still arrives, in order, then the end event.
 * The log store is real (SQLite); the response is a stand-in whose buffer the test drains.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Request, type Response } from 'express';
import { streamLogs } from '../../src/api/log-follow-routes';
import { SqliteLogStore } from '../../src/store/sqlite-log-store';

const JOB = 'accounts/a/batchJobs/big';
const LINES = 5000;

/** A response whose socket holds `capacity` bytes until the reader drains it. */
class SlowResponse extends EventEmitter {
  buffered = 0;
  written = 0;
  /** Most bytes ever waiting in the buffer. */
  peak = 0;
  text = '';
  ended = false;
  destroyed = false;
  constructor(private readonly capacity: number) {
    super();
  }
  status(): this {
    return this;
  }
  setHeader(): void {}
  flushHeaders(): void {}
  write(chunk: string): boolean {
    this.buffered += chunk.length;
    this.written += 1;
    this.text += chunk;
    this.peak = Math.max(this.peak, this.buffered);
    return this.buffered < this.capacity;
  }
  end(): void {
    this.ended = true;
  }
  /** The reader empties the buffer. */
  drain(): void {
    this.buffered = 0;
    this.emit('drain');
  }
}

describe(':followLogs backpressure', () => {
  let dir: string;
  let store: SqliteLogStore;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'batchd-follow-'));
    store = new SqliteLogStore(join(dir, 'logs.sqlite'));
    const time = '2026-01-01T00:00:00.000Z';
    await store.append(Array.from({ length: LINES }, (_, i) => ({ job: JOB, attempt: 1, rank: 0, seq: i, time, stream: 'stdout' as const, message: `line ${i} ${'x'.repeat(100)}` })));
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits for the socket to drain before writing more, and still sends every line and the end', async () => {
    const res = new SlowResponse(4096);
    const req = new EventEmitter();
    const done = streamLogs(req as unknown as Request, res as unknown as Response, {
      logs: store,
      limits: { pageMaxBytes: 1024 * 1024, streamsPerAccount: 1, streamIdleMs: 60_000 },
      job: JOB,
      state: () => Promise.resolve({ state: 'COMPLETED', status: 'done' }),
    });
    await new Promise((r) => setTimeout(r, 50));
    const stalledAt = res.written;
    assert.ok(stalledAt < 100, `wrote ${stalledAt} events into a full buffer`);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(res.written, stalledAt, 'nothing more is written until the buffer drains');
    while (!res.ended) {
      res.drain();
      await new Promise((r) => setImmediate(r));
    }
    await done;
    assert.ok(res.peak < 4096 + 500, `at most one event past the buffer's capacity (peak ${res.peak})`);
    const events = [...res.text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    assert.equal(events.filter((e) => e === 'log').length, LINES);
    assert.equal(events.at(-1), 'end');
    assert.match(res.text, /"message":"line 4999 x+"/);
    assert.ok(res.listenerCount('close') <= 1 && res.listenerCount('drain') === 0, 'no listeners left behind by the waits');
  });

  it('stops when the client goes away while it waits for a drain', async () => {
    const res = new SlowResponse(1024);
    const req = new EventEmitter();
    const done = streamLogs(req as unknown as Request, res as unknown as Response, {
      logs: store,
      limits: { pageMaxBytes: 1024 * 1024, streamsPerAccount: 1, streamIdleMs: 60_000 },
      job: JOB,
      state: () => Promise.resolve({ state: 'RUNNING', status: 'running' }),
    });
    await new Promise((r) => setTimeout(r, 20));
    res.emit('close');
    req.emit('close');
    await done;
    assert.ok(res.written < 50);
    assert.equal(res.ended, true);
  });
});
