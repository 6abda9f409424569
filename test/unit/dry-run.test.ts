import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type DryRunInput, type DryRunPool, dryRun, holderEnd, type JobTiming, schedulerStateOf, UNKNOWN } from '../../src/domain/dry-run';
import { addHost, emptyScheduler, enqueue, schedule, type SchedulerState, setHostStatus } from '../../src/domain/scheduler';

const RUNS = Number(process.env.FC_RUNS ?? 150);
const NOW = '2026-03-01T12:00:00.000Z';
const at = (offsetSeconds: number) => new Date(Date.parse(NOW) + offsetSeconds * 1000).toISOString();
const job = (id: string) => `accounts/a/batchJobs/${id}`;
const NEW = job('new');

/** What the pool's workflow shows (getNodePoolInternals) of a scheduler state, as the API reads it. */
function internals(state: SchedulerState, window = 1000, queueLength = state.queue.length): DryRunPool {
  return {
    id: 'gpus',
    gpu: true,
    hosts: state.hosts.map((h) => ({ host: h.id, slots: h.slots, status: h.status, used: [...h.used] })),
    queue: state.queue.map((r) => ({ jobName: r.id, ranks: r.ranks })),
    queueLength,
    window,
    reservation: state.reservation ? structuredClone(state.reservation) : null,
    allocations: Object.fromEntries(Object.values(state.allocations).map((a) => [a.id, { ranks: a.ranks }])),
  };
}

/** A pool of `hosts` × `slots`, with the given jobs arriving in order (each granted or queued as the real pool would). */
function pool(hosts: number, slots: number, arrivals: Array<[string, number]> = []): SchedulerState {
  const s = emptyScheduler();
  for (let i = 0; i < hosts; i++) addHost(s, `h${i}`, slots);
  for (const [id, ranks] of arrivals) {
    enqueue(s, job(id), ranks);
    schedule(s);
  }
  return s;
}

const running = (startedSecondsAgo: number, maxRunDuration?: string): JobTiming => ({
  state: 'RUNNING',
  startTime: at(-startedSecondsAgo),
  ...(maxRunDuration ? { maxRunDuration } : {}),
});

function run(state: SchedulerState, ranks: number, jobs: DryRunInput['jobs'] = {}, extra: Partial<DryRunInput> = {}) {
  return dryRun({ pool: internals(state), job: { name: NEW, ranks }, jobs, now: NOW, ...extra });
}

describe('dry run: a job that would start now', () => {
  it('on an empty pool: placed by the real packer, hosts in rank order with their ranks', () => {
    const r = run(pool(2, 8), 12);
    assert.deepEqual(r, {
      wouldStartNow: true,
      placement: [
        { host: 'h0', ranks: 8 },
        { host: 'h1', ranks: 4 },
      ],
      estimatedStartTime: NOW,
      estimate: 'it would start now: its whole gang fits the free capacity the queue ahead of it leaves',
    });
  });

  it('beside a running job, on the capacity it leaves', () => {
    const r = run(pool(2, 8, [['twelve', 12]]), 4, { [job('twelve')]: running(60) });
    assert.equal(r.wouldStartNow, true);
    assert.deepEqual(r.placement, [{ host: 'h1', ranks: 4 }]);
  });

  it('behind a blocked head, on capacity outside its reservation (backfill), and not on what it reserved', () => {
    // h0 has 4 free and h1 2: the 8-rank head reserves h0, so h1's 2 GPUs are usable by later jobs.
    const s = pool(2, 8, [['four', 4], ['six', 6], ['head', 8]]);
    assert.deepEqual(s.reservation, { requestId: job('head'), counts: { h0: 8 } });
    const jobs = { [job('four')]: running(10, '100s'), [job('six')]: running(10, '100s'), [job('head')]: { state: 'QUEUED', maxRunDuration: '100s' } } as const;
    const small = run(s, 2, jobs);
    assert.equal(small.wouldStartNow, true);
    assert.deepEqual(small.placement, [{ host: 'h1', ranks: 2 }]);
    const three = run(s, 3, jobs);
    assert.equal(three.wouldStartNow, false);
    assert.equal(
      three.waitingFor,
      'waiting for 3 GPUs in node pool gpus; position 2 of 2 in the queue; 2 of 6 free GPUs usable (the rest is reserved for the job at the head of the queue)',
    );
  });

  it('does not change the state it is given (reads never write)', () => {
    const s = pool(2, 8, [['twelve', 12], ['eight', 8]]);
    const before = internals(s);
    const copy = structuredClone(before);
    dryRun({ pool: before, job: { name: NEW, ranks: 4 }, jobs: { [job('twelve')]: running(10, '100s'), [job('eight')]: { state: 'QUEUED', maxRunDuration: '50s' } }, now: NOW });
    assert.deepEqual(before, copy);
  });
});

describe('dry run: a job that would queue', () => {
  it('waits for the running job: its end is its start plus maxRunDuration', () => {
    const s = pool(2, 8, [['twelve', 12]]);
    const r = run(s, 8, { [job('twelve')]: running(600, '3600s') });
    assert.deepEqual(r, {
      wouldStartNow: false,
      queuePosition: 1,
      queueLength: 1,
      waitingFor: 'waiting for 8 GPUs in node pool gpus; first of 1 in the queue; 4 free now, and capacity is reserved for this job as running jobs end',
      estimatedStartTime: at(3000),
      estimate: 'if every job runs to its maxRunDuration: it starts in 50m, once 1 running job and 0 queued jobs ahead of it have made room (sooner if they end sooner)',
      waitsForJobs: [job('twelve')],
    });
  });

  it('adds the queue ahead: the head starts when the running job ends, and runs its own maxRunDuration', () => {
    const s = pool(2, 8, [['all', 16], ['head', 16]]);
    const r = run(s, 8, { [job('all')]: running(0, '100s'), [job('head')]: { state: 'QUEUED', maxRunDuration: '50s' } });
    assert.equal(r.wouldStartNow, false);
    assert.equal(r.queuePosition, 2);
    assert.equal(r.queueLength, 2);
    assert.equal(r.estimatedStartTime, at(150));
    assert.match(r.estimate, /it starts in 2m30s, once 1 running job and 1 queued job ahead of it have made room/);
    assert.deepEqual(r.waitsForJobs, [job('all'), job('head')]);
  });

  it('takes the earliest end that frees enough, not the last', () => {
    const s = pool(2, 8, [['long', 8], ['short', 8]]);
    const r = run(s, 8, { [job('long')]: running(0, '1000s'), [job('short')]: running(0, '10s') });
    assert.equal(r.estimatedStartTime, at(10));
    assert.deepEqual(r.waitsForJobs, [job('short')]);
  });

  it('a job granted but not yet running ends at most maxRunDuration from now', () => {
    const s = pool(1, 8, [['pending', 8]]);
    const r = run(s, 2, { [job('pending')]: { state: 'PENDING', maxRunDuration: '30s' } });
    assert.equal(r.estimatedStartTime, at(30));
  });

  it('a holder that is already stopping frees its capacity now', () => {
    const s = pool(1, 8, [['stopping', 8]]);
    const r = run(s, 2, { [job('stopping')]: { state: 'CANCELLING' } });
    assert.equal(r.wouldStartNow, false, 'the pool has not freed it yet');
    assert.equal(r.estimatedStartTime, NOW);
  });

  it('a job past its limit is being stopped: now, not in the past', () => {
    const s = pool(1, 8, [['overdue', 8]]);
    assert.equal(run(s, 2, { [job('overdue')]: running(100, '10s') }).estimatedStartTime, NOW);
  });

  it('says when the estimate is past its maxQueueDuration', () => {
    const s = pool(1, 8, [['holder', 8]]);
    const r = dryRun({ pool: internals(s), job: { name: NEW, ranks: 8, maxQueueDuration: '60s' }, jobs: { [job('holder')]: running(0, '120s') }, now: NOW });
    assert.equal(r.estimatedStartTime, at(120));
    assert.match(r.estimate, /past its maxQueueDuration \(60s\), so it may fail waiting/);
  });

  it('is unknown when it needs capacity held by a job without maxRunDuration, naming it', () => {
    const s = pool(2, 8, [['forever', 8], ['bounded', 8]]);
    const r = run(s, 16, { [job('forever')]: running(10), [job('bounded')]: running(10, '60s') });
    assert.equal(r.estimatedStartTime, UNKNOWN);
    assert.deepEqual(r.waitsForJobs, [job('forever')]);
    assert.match(r.estimate, /held by 1 job that declare no maxRunDuration \(forever\)/);
  });

  it('is unknown when a queued job ahead declares no maxRunDuration and holds what it needs', () => {
    const s = pool(1, 8, [['now', 8], ['next', 8]]);
    const r = run(s, 8, { [job('now')]: running(0, '10s'), [job('next')]: { state: 'QUEUED' } });
    assert.equal(r.estimatedStartTime, UNKNOWN);
    assert.deepEqual(r.waitsForJobs, [job('next')]);
  });

  it('is known when the job without maxRunDuration holds nothing it needs', () => {
    const s = pool(2, 8, [['forever', 8], ['bounded', 8]]);
    const r = run(s, 8, { [job('forever')]: running(10), [job('bounded')]: running(10, '60s') });
    assert.equal(r.estimatedStartTime, at(50));
    assert.deepEqual(r.waitsForJobs, [job('bounded')]);
  });

  it('is unknown while too few hosts are ready', () => {
    const s = pool(2, 8);
    setHostStatus(s, 'h1', 'unreachable');
    const r = run(s, 12);
    assert.equal(r.wouldStartNow, false);
    assert.equal(r.estimatedStartTime, UNKNOWN);
    assert.match(r.estimate, /ready hosts have 8 GPUs in all, fewer than the 12 it needs/);
  });

  it('queued jobs that are ending leave the queue first', () => {
    const s = pool(1, 8, [['holder', 8], ['cancelled', 8]]);
    const r = run(s, 8, { [job('holder')]: running(0, '20s'), [job('cancelled')]: { state: 'CANCELLED' } });
    assert.equal(r.queuePosition, 1);
    assert.equal(r.estimatedStartTime, at(20));
  });

  it('behind the window: its place, and no estimate', () => {
    const s = pool(1, 8, [['holder', 8], ['q1', 8], ['q2', 8]]);
    const r = dryRun({ pool: internals(s, 2, 5), job: { name: NEW, ranks: 1 }, jobs: {}, now: NOW });
    assert.equal(r.wouldStartNow, false);
    assert.equal(r.queuePosition, 6);
    assert.equal(r.queueLength, 6);
    assert.match(r.waitingFor ?? '', /position 6 of 6 in the queue; the pool schedules from the first 2/);
    assert.equal(r.estimatedStartTime, UNKNOWN);
  });
});

describe('dry run: priority', () => {
  const busy = () => pool(1, 8, [['holder', 8], ['q1', 8], ['q2', 8]]);
  const timings = { [job('holder')]: running(60, '120s'), [job('q1')]: { state: 'QUEUED' as const, maxRunDuration: '60s' }, [job('q2')]: { state: 'QUEUED' as const, maxRunDuration: '60s' } };

  it('a job of higher priority goes ahead of the queue and takes the reservation: it starts when the holder ends', () => {
    const r = dryRun({ pool: internals(busy()), job: { name: NEW, ranks: 8, priority: 5 }, jobs: timings, now: NOW });
    assert.equal(r.wouldStartNow, false);
    assert.equal(r.queuePosition, 1);
    assert.equal(r.queueLength, 3);
    assert.match(r.waitingFor ?? '', /^waiting for 8 GPUs in node pool gpus at priority 5; first of 3 in the queue/);
    assert.equal(r.estimatedStartTime, at(60), 'the holder ends 120 s after its start, 60 s ago');
    const same = dryRun({ pool: internals(busy()), job: { name: NEW, ranks: 8 }, jobs: timings, now: NOW });
    assert.equal(same.queuePosition, 3, 'at priority 0 it queues behind both');
  });

  it('a job that would preempt a preemptible holder of lower priority says so', () => {
    const s = busy();
    const input = internals(s);
    const r = dryRun({ pool: { ...input, allocations: { [job('holder')]: { ranks: 8, preemptible: true } } }, job: { name: NEW, ranks: 8, priority: 5 }, jobs: timings, now: NOW });
    assert.equal(r.wouldStartNow, false);
    assert.match(r.waitingFor ?? '', /1 running job of lower priority \(holder\) is being preempted to make room for it/);
    const lower = dryRun({ pool: { ...input, allocations: { [job('holder')]: { ranks: 8, preemptible: true, priority: 5 } } }, job: { name: NEW, ranks: 8, priority: 5 }, jobs: timings, now: NOW });
    assert.doesNotMatch(lower.waitingFor ?? '', /preempted/, 'never a holder of equal priority');
  });

  it('on a shared pool, a job past its account\'s quota waits with free capacity, saying so with the numbers', () => {
    const s = pool(1, 8, [['holder', 4]]);
    const input = internals(s);
    const shared = { ...input, allocations: { [job('holder')]: { ranks: 4, account: 'beta' } } };
    const r = dryRun({ pool: shared, job: { name: NEW, ranks: 2, account: 'beta' }, jobs: { [job('holder')]: running(10, '60s') }, now: NOW, sharing: { quotas: { beta: 5 } } });
    assert.equal(r.wouldStartNow, false);
    assert.match(r.waitingFor ?? '', /account beta holds 4 GPUs of its quota of 5 on this pool, and this job would take it past that/);
    const other = dryRun({ pool: shared, job: { name: NEW, ranks: 2, account: 'gamma' }, jobs: {}, now: NOW, sharing: { quotas: { beta: 5 } } });
    assert.equal(other.wouldStartNow, true, 'another account is not held by beta\'s quota');
  });

  it('behind a full window, a job of higher priority than its last joins it, first', () => {
    const r = dryRun({ pool: internals(busy(), 2, 5), job: { name: NEW, ranks: 1, priority: 1 }, jobs: timings, now: NOW });
    assert.equal(r.queuePosition, 1);
    assert.equal(r.queueLength, 6);
  });
});

describe('dry run: dependencies', () => {
  const idle = () => internals(pool(1, 8));

  it('met dependencies leave the pool to decide', () => {
    const r = dryRun({ pool: idle(), job: { name: NEW, ranks: 1 }, jobs: {}, now: NOW, dependencies: [{ batchJob: job('done'), condition: 'COMPLETED', state: 'COMPLETED' }] });
    assert.equal(r.wouldStartNow, true);
    assert.deepEqual(r.dependencies, [{ batchJob: job('done'), condition: 'COMPLETED', state: 'COMPLETED', standing: 'MET' }]);
  });

  it('a dependency still running: waits for it, no estimate', () => {
    const r = dryRun({
      pool: idle(),
      job: { name: NEW, ranks: 1 },
      jobs: {},
      now: NOW,
      dependencies: [
        { batchJob: job('done'), condition: 'ENDED', state: 'FAILED' },
        { batchJob: job('train'), condition: 'COMPLETED', state: 'RUNNING' },
      ],
    });
    assert.equal(r.wouldStartNow, false);
    assert.equal(r.queuePosition, undefined);
    assert.equal(r.waitingFor, 'dependencies: train (now RUNNING) to end COMPLETED');
    assert.equal(r.estimatedStartTime, UNKNOWN);
    assert.deepEqual(
      r.dependencies?.map((d) => d.standing),
      ['MET', 'WAITING'],
    );
  });

  it('a dependency that can never be met: it would never start', () => {
    const r = dryRun({
      pool: idle(),
      job: { name: NEW, ranks: 1 },
      jobs: {},
      now: NOW,
      dependencies: [
        { batchJob: job('train'), condition: 'COMPLETED', state: 'CANCELLED' },
        { batchJob: job('gone'), condition: 'FAILED' },
      ],
    });
    assert.equal(r.wouldStartNow, false);
    assert.equal(r.estimatedStartTime, UNKNOWN);
    assert.equal(r.waitingFor, 'dependencies that can never be met: train ended CANCELLED (the job needs it COMPLETED); gone no longer exists (the job needs it FAILED)');
    assert.deepEqual(r.dependencies?.[1], { batchJob: job('gone'), condition: 'FAILED', standing: 'IMPOSSIBLE' });
  });
});

describe('dry run: the pool it reads', () => {
  it('holderEnd: unknown without a record or a limit', () => {
    const now = Date.parse(NOW);
    assert.equal(holderEnd(undefined, now), undefined);
    assert.equal(holderEnd({ state: 'RUNNING', startTime: at(-5) }, now), undefined);
    assert.equal(holderEnd({ state: 'RUNNING', startTime: at(-5), maxRunDuration: '10s' }, now), now + 5000);
    assert.equal(holderEnd({ state: 'COMPLETED' }, now), now);
  });

  it('rebuilds the allocations from the slot owners', () => {
    const s = pool(2, 8, [['twelve', 12]]);
    const rebuilt = schedulerStateOf(internals(s));
    assert.deepEqual(rebuilt.allocations[job('twelve')]?.hosts, s.allocations[job('twelve')]?.hosts);
    assert.deepEqual(rebuilt.hosts, s.hosts);
  });

  it('answers exactly what the pool does with the job: granted or not, and where', () => {
    const arrival = fc.tuple(fc.integer({ min: 1, max: 20 }), fc.boolean());
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.constantFrom(1, 2, 8), fc.array(arrival, { maxLength: 12 }), fc.integer({ min: 1, max: 24 }), (hosts, slots, arrivals, ranks) => {
        const s = pool(hosts, slots);
        arrivals.forEach(([r, releaseOne], i) => {
          enqueue(s, job(`j${i}`), r);
          schedule(s);
          // Free some capacity without a pass, as the query may see between a release and the pool's next pass.
          const held = Object.keys(s.allocations)[0];
          if (releaseOne && held) {
            for (const h of s.hosts) h.used = h.used.map((u) => (u === held ? null : u));
            delete s.allocations[held];
          }
        });
        const answer = dryRun({ pool: internals(s), job: { name: NEW, ranks }, jobs: {}, now: NOW });
        enqueue(s, NEW, ranks);
        const granted = schedule(s).find((g) => g.id === NEW);
        assert.equal(answer.wouldStartNow, granted !== undefined);
        if (granted) assert.deepEqual(answer.placement, granted.hosts.map((h) => ({ host: h.host, ranks: h.slots.length })));
        else assert.equal(answer.queuePosition, s.queue.findIndex((r) => r.id === NEW) + 1);
      }),
      { numRuns: RUNS },
    );
  });

  it('with every duration known and enough hosts, always has an estimate, never before now', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 500 })), { maxLength: 10 }), fc.integer({ min: 1, max: 16 }), (arrivals, ranks) => {
        const s = pool(2, 8);
        const jobs: Record<string, JobTiming> = {};
        arrivals.forEach(([r, seconds], i) => {
          enqueue(s, job(`j${i}`), r);
          schedule(s);
          jobs[job(`j${i}`)] = s.allocations[job(`j${i}`)] ? running(0, `${seconds}s`) : { state: 'QUEUED', maxRunDuration: `${seconds}s` };
        });
        const answer = dryRun({ pool: internals(s), job: { name: NEW, ranks }, jobs, now: NOW });
        assert.notEqual(answer.estimatedStartTime, UNKNOWN, answer.estimate);
        assert.ok(answer.estimatedStartTime >= NOW);
        const total = arrivals.reduce((n, [, seconds]) => n + seconds, 0);
        assert.ok(answer.estimatedStartTime <= at(total), 'no later than every job run one after another');
      }),
      { numRuns: RUNS },
    );
  });
});
