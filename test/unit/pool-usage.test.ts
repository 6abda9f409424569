import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { samplesForWindow, summarizePoolUsage, UsageHistory, type UsageSample } from '../../src/domain/pool-usage';

const NOW = new Date('2026-01-01T12:00:00.000Z');
const at = (secondsAgo: number) => new Date(NOW.getTime() - secondsAgo * 1000).toISOString();
const sample = (secondsAgo: number, ranksInUse = 1): UsageSample => ({ sampleTime: at(secondsAgo), ranksInUse, rankCapacity: 16, queueLength: 0 });

describe('pool usage', () => {
  it('counts slots per host and in all, capacity on ready hosts only, and the oldest wait of the queue', () => {
    const u = summarizePoolUsage(
      {
        hosts: [
          { host: 'h0', status: 'ready', slots: 4, used: ['accounts/a/batchJobs/x', 'accounts/a/batchJobs/x', null, 'accounts/a/batchJobs/y'] },
          { host: 'h1', status: 'draining', slots: 2, used: ['accounts/a/batchJobs/z', null] },
          { host: 'h2', status: 'unreachable', slots: 2, used: [null, null] },
        ],
        queue: [{ enqueuedAt: at(30) }, { enqueuedAt: at(90) }, {}],
        queueSummary: { length: 1500 },
      },
      NOW,
    );
    assert.deepEqual(u.hosts[0], { host: 'h0', status: 'ready', slots: 4, slotsInUse: 3, slotJobs: ['x', 'x', null, 'y'] });
    assert.equal(u.hosts[1]?.slotsInUse, 1);
    assert.equal(u.ranksInUse, 4);
    assert.equal(u.rankCapacity, 4, 'draining and unreachable hosts take no work');
    assert.equal(u.queueLength, 1500, 'the queue counts beyond the workflow’s window');
    assert.equal(u.oldestWaitSeconds, 90);
    assert.equal(u.sampleTime, NOW.toISOString());
  });

  it('an empty queue waits 0 s; a slot list shorter than the slots is free beyond it', () => {
    const u = summarizePoolUsage({ hosts: [{ host: 'h', status: 'ready', slots: 3, used: ['accounts/a/batchJobs/j'] }], queue: [] }, NOW);
    assert.deepEqual(u.hosts[0]?.slotJobs, ['j', null, null]);
    assert.equal(u.queueLength, 0);
    assert.equal(u.oldestWaitSeconds, 0);
  });
});

describe('usage history', () => {
  it('returns the window’s samples oldest first and forgets older ones', () => {
    const h = new UsageHistory(3600_000, samplesForWindow(3600_000, 30_000));
    for (const s of [4000, 3590, 60, 30, 0]) h.add(sample(s));
    assert.deepEqual(
      h.samples(NOW).map((s) => s.sampleTime),
      [at(3590), at(60), at(30), at(0)],
    );
  });

  it('never holds more than its capacity, whatever is added (the newest are kept, in order)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 100 }), (capacity, n) => {
        const h = new UsageHistory(10_000_000, capacity);
        for (let i = n; i > 0; i--) h.add(sample(i, i));
        const got = h.samples(NOW).map((s) => s.ranksInUse);
        const want = Array.from({ length: n }, (_, k) => n - k).slice(-capacity);
        assert.deepEqual(got, want);
      }),
    );
  });

  it('an hour at 30 s needs 121 slots', () => {
    assert.equal(samplesForWindow(3600_000, 30_000), 121);
    assert.throws(() => new UsageHistory(1000, 0));
  });
});
