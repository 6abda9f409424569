import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatBytes,
  headWithinBytes,
  hostShareOfBudget,
  LogBudget,
  lostLinesMarker,
  MAX_LOG_LINE_BYTES,
  oldestToDrop,
  spoolDropMarker,
  truncateLine,
  utf8Prefix,
} from '../../src/domain/log-limits';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

describe('a job’s log budget', () => {
  it('admits lines up to the budget, then drops every later one and says so in one marker', () => {
    const budget = new LogBudget(10);
    assert.equal(budget.marker(), undefined);
    assert.equal(budget.admit(4), true);
    assert.equal(budget.admit(6), true, 'exactly the budget fits');
    assert.equal(budget.admit(1), false);
    assert.equal(budget.admit(1), false);
    assert.deepEqual(budget.dropped, { lines: 2, bytes: 2 });
    assert.equal(budget.marker(), "batchd: this job's log budget of 10 B (LOG_BUDGET_BYTES_PER_JOB) was reached; 2 lines (2 B) after it were dropped");
  });

  it('drops a later small line once a big one was refused, so the log has no holes', () => {
    const budget = new LogBudget(10);
    assert.equal(budget.admit(8), true);
    assert.equal(budget.admit(5), false);
    assert.equal(budget.admit(1), false, 'it would fit, but the log would then skip a line');
  });

  it('gives each host its ranks’ share', () => {
    assert.equal(hostShareOfBudget(1000, 8, 12), 666);
    assert.equal(hostShareOfBudget(1000, 4, 4), 1000);
    assert.equal(hostShareOfBudget(1000, 1, 1), 1000);
  });

  it('words sizes for people', () => {
    assert.equal(formatBytes(64 * 1024 * 1024), '64 MiB');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.match(lostLinesMarker(3, 'disk full'), /^batchd: 3 lines .* lost \(disk full\)$/);
    assert.match(spoolDropMarker(1, 1024), /^batchd: 1 line .* 1 KiB/);
  });
});

describe('long lines', () => {
  it('keeps a line that fits', () => {
    assert.deepEqual(truncateLine('hello', 5), { message: 'hello', cutBytes: 0 });
  });

  it('cuts a long line to the limit, marker included, and says how much was cut', () => {
    const line = 'x'.repeat(MAX_LOG_LINE_BYTES * 2);
    const { message, cutBytes } = truncateLine(line);
    assert.ok(bytes(message) <= MAX_LOG_LINE_BYTES, `${bytes(message)} bytes`);
    assert.match(message, / … \[batchd: line truncated, \d+ more bytes dropped\]$/);
    const kept = message.indexOf(' … [');
    assert.equal(kept + cutBytes, line.length, 'kept + cut = the whole line');
    assert.ok(message.includes(`${cutBytes} more bytes`));
  });

  it('never splits a character', () => {
    const line = '€'.repeat(1000); // 3 bytes each
    const { message } = truncateLine(line, 200);
    assert.ok(bytes(message) <= 200);
    assert.ok(!message.includes('\ufffd'));
    assert.equal(utf8Prefix('a€b', 3), 'a');
    assert.equal(utf8Prefix('a€b', 4), 'a€');
    assert.equal(utf8Prefix('😀x', 3), '', 'a 4-byte character is kept whole or not at all');
  });
});

describe('byte caps on lists of entries', () => {
  it('takes the head that fits, by bytes and by count', () => {
    assert.equal(headWithinBytes([3, 3, 3], 7), 2);
    assert.equal(headWithinBytes([3, 3, 3], 9), 3);
    assert.equal(headWithinBytes([3, 3, 3], 100, 2), 2);
    assert.equal(headWithinBytes([], 10), 0);
  });

  it('always moves at least one entry, even one over the cap', () => {
    assert.equal(headWithinBytes([50, 1], 10), 1);
  });

  it('drops the oldest entries until the rest fit', () => {
    assert.equal(oldestToDrop([5, 5, 5], 15), 0);
    assert.equal(oldestToDrop([5, 5, 5], 14), 1);
    assert.equal(oldestToDrop([5, 5, 5], 4), 3);
  });
});
