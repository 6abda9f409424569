import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Bucket, isFull, take } from '../../src/domain/token-bucket';

const rule = { perSecond: 2, burst: 3 };

/** Takes `n` tokens at `now`, returning how many were granted and the last result. */
function takeMany(bucket: Bucket | undefined, n: number, now: number) {
  let granted = 0;
  let last = take(bucket, rule, now);
  let b = last.bucket;
  if (last.ok) granted += 1;
  for (let i = 1; i < n; i++) {
    last = take(b, rule, now);
    b = last.bucket;
    if (last.ok) granted += 1;
  }
  return { granted, last, bucket: b };
}

describe('token bucket', () => {
  it('grants a burst at once, then refuses with the whole seconds until the next token', () => {
    const { granted, last } = takeMany(undefined, 4, 0);
    assert.equal(granted, 3);
    assert.equal(last.ok, false);
    assert.equal(last.ok ? 0 : last.retryAfterSeconds, 1, '0.5 s to the next token rounds up to 1');
  });

  it('refills at the rate: 2 per second', () => {
    const empty = takeMany(undefined, 3, 0).bucket;
    assert.equal(take(empty, rule, 499).ok, false);
    const half = take(empty, rule, 500);
    assert.equal(half.ok, true);
    assert.equal(take(half.bucket, rule, 500).ok, false);
    assert.equal(takeMany(empty, 3, 1000).granted, 2, 'one second gives two tokens');
  });

  it('never holds more than the burst, however long it rested', () => {
    const empty = takeMany(undefined, 3, 0).bucket;
    assert.equal(takeMany(empty, 10, 3_600_000).granted, 3);
  });

  it('says a long wait for a slow rate', () => {
    const slow = { perSecond: 0.1, burst: 1 };
    const first = take(undefined, slow, 0);
    const second = take(first.bucket, slow, 0);
    assert.equal(second.ok, false);
    assert.equal(second.ok ? 0 : second.retryAfterSeconds, 10);
  });

  it('does not refill for time going backwards', () => {
    const empty = takeMany(undefined, 3, 10_000).bucket;
    assert.equal(take(empty, rule, 5_000).ok, false);
  });

  it('knows when a bucket is full again (so it can be forgotten)', () => {
    const used = take(undefined, rule, 0).bucket;
    assert.equal(isFull(used, rule, 0), false);
    assert.equal(isFull(used, rule, 500), true);
  });
});
