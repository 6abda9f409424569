/**
 * LogWriter against sinks that fail: a failed flush (a full disk, a SQLite error) is counted and said
 * in the job's log, never an unhandled rejection (which would end the process), and later lines still
 * flow; past its budget a writer drops lines and closes with one marker line. A real LogStore on a
 * SQLite file whose disk "fills" (a size limit the file cannot grow past) is the failing sink.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type LogEntry, LogWriter, logLossTotals } from '../../src/store/log-store';
import { SqliteLogStore } from '../../src/store/sqlite-log-store';

describe('a log writer whose sink fails', () => {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  let dir: string;
  before(() => {
    process.on('unhandledRejection', onRejection);
    dir = mkdtempSync(join(tmpdir(), 'batchd-logwriter-'));
  });
  after(() => {
    process.off('unhandledRejection', onRejection);
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts a failed timed flush instead of rejecting, keeps writing, and says what was lost at the end', async () => {
    const file = join(dir, 'full.sqlite');
    const store = new SqliteLogStore(file);
    // The disk is "full": the file may not grow past its current pages.
    const raw = new Database(file);
    const pages = (raw.pragma('page_count', { simple: true }) as number) + 1;
    raw.close();
    (store as unknown as { db: Database.Database }).db.pragma(`max_page_count = ${pages}`);

    const errors: number[] = [];
    const writer = new LogWriter(store, 'accounts/a/batchJobs/j', () => 0, { intervalMs: 5, onError: (_err, lines) => errors.push(lines) });
    const before = logLossTotals.failedLines;
    for (let i = 0; i < 2000; i++) writer.write(0, 'stdout', `line ${i} ${'x'.repeat(200)}`);
    await new Promise((r) => setTimeout(r, 50)); // the timer's flush runs and fails
    assert.deepEqual(rejections, [], 'no unhandled rejection');
    assert.ok(errors.length > 0, 'the failure was told');
    assert.equal(writer.loss.failedLines, 2000);
    assert.equal(logLossTotals.failedLines - before, 2000);

    // Space comes back: later lines are stored, and the close says what was lost.
    (store as unknown as { db: Database.Database }).db.pragma('max_page_count = 1073741823');
    writer.write(0, 'stdout', 'after the disk had room again');
    await writer.close();
    const page = await store.query({ job: 'accounts/a/batchJobs/j', fromHead: true, pageSize: 100 });
    assert.deepEqual(
      page.entries.map((e) => e.message),
      ['after the disk had room again', 'batchd: 2000 lines of this job\'s log could not be stored and were lost (database or disk is full)'],
    );
    assert.deepEqual(rejections, []);
    await store.close();
  });

  it('survives a sink that throws synchronously or rejects', async () => {
    for (const sink of [
      { append: (): void => { throw new Error('boom'); } },
      { append: (): Promise<void> => Promise.reject(new Error('boom')) },
    ]) {
      const writer = new LogWriter(sink, 'accounts/a/batchJobs/k', () => 0, { intervalMs: 1 });
      writer.write(0, 'stderr', 'x');
      await new Promise((r) => setTimeout(r, 20));
      await writer.close();
      assert.equal(writer.loss.failedLines, 2, 'the line and the marker that tried to say so');
    }
    assert.deepEqual(rejections, []);
  });

  it('drops lines past its budget, keeps the order of what it stored, and closes with one marker', async () => {
    const stored: LogEntry[] = [];
    const writer = new LogWriter({ append: (e) => void stored.push(...e) }, 'accounts/a/batchJobs/b', () => 0, { budgetBytes: 250 });
    for (let i = 0; i < 10; i++) writer.write(i % 2, 'stdout', `${i}`.padStart(100, '.'));
    await writer.close();
    assert.deepEqual(stored.map((e) => e.message.slice(-1)), ['0', '1', 'd'], 'two lines, then the marker (which ends in "dropped")');
    assert.match(stored[2]?.message ?? '', /^batchd: this job's log budget of 250 B .* 8 lines \(800 B\) after it were dropped$/);
    assert.equal(stored[2]?.rank, 0, 'the marker is a line of a rank of this writer');
    assert.deepEqual(stored.map((e) => [e.rank, e.seq]), [[0, 0], [1, 0], [0, 1]], 'sequence numbers have no holes');
  });

  it('puts its attempt on every line, the markers included; absent, attempt 1', async () => {
    const stored: LogEntry[] = [];
    const second = new LogWriter({ append: (e) => void stored.push(...e) }, 'accounts/a/batchJobs/r', () => 0, { attempt: 2, budgetBytes: 3 });
    second.write(0, 'stdout', 'abc');
    second.write(0, 'stdout', 'over the budget');
    await second.close();
    assert.deepEqual(stored.map((e) => [e.attempt, e.seq, e.message.slice(0, 7)]), [[2, 0, 'abc'], [2, 1, 'batchd:']]);
    const first = new LogWriter({ append: (e) => void stored.push(...e) }, 'accounts/a/batchJobs/r', () => 0);
    first.write(0, 'stdout', 'x');
    await first.close();
    assert.equal(stored.at(-1)?.attempt, 1);
  });
});
