import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { attemptEnd, type AttemptFlags, type AttemptStep, AttemptWatch, describeProblem, type HostResult, ranksOnHosts, summariseHosts } from '../../src/domain/job-attempt';

const calm: AttemptFlags = { pending: false, stopWanted: false, preempted: false, runLimitHit: false };
const failed = (message: string, exitCode = 1, outOfMemory?: boolean): HostResult => ({ outcome: 'failed', rank: 0, exitCode, signal: null, message, ...(outOfMemory ? { outOfMemory } : {}) });

describe('one attempt of a job (AttemptWatch)', () => {
  it('waits while PENDING until every host has started, then says started', () => {
    const w = new AttemptWatch(['h0', 'h1']);
    assert.equal(w.next({ ...calm, pending: true }), undefined);
    w.hostStarted('h0');
    assert.equal(w.next({ ...calm, pending: true }), undefined, 'h1 has not started');
    w.hostStarted('h1');
    assert.deepEqual(w.next({ ...calm, pending: true }), { kind: 'started' });
    assert.equal(w.next(calm), undefined, 'RUNNING: it waits for the ranks to end');
  });

  it('counts a host that finished before it said it started as started (a fast rank)', () => {
    const w = new AttemptWatch(['h0', 'h1']);
    w.hostStarted('h1');
    w.hostEnded('h0', { outcome: 'succeeded' });
    assert.deepEqual(w.next({ ...calm, pending: true }), { kind: 'started' });
  });

  it('succeeds only when every host succeeded', () => {
    const w = new AttemptWatch(['h0', 'h1']);
    w.hostEnded('h0', { outcome: 'succeeded' });
    assert.equal(w.next(calm), undefined);
    w.hostEnded('h1', { outcome: 'succeeded', usage: [{ rank: 0, cpuSeconds: 2 }] });
    assert.deepEqual(w.next(calm), { kind: 'succeeded' });
    assert.match(w.usage() ?? '', /CPU/);
  });

  it('the first problem decides; a stop asked for outranks it', () => {
    const w = new AttemptWatch(['h0', 'h1']);
    w.hostEnded('h1', failed('rank 1 exited with code 3', 3));
    w.hostEnded('h0', { outcome: 'lost', message: 'host h0 was lost' });
    assert.deepEqual(w.next(calm), { kind: 'failed', host: 'h1', result: failed('rank 1 exited with code 3', 3) });
    assert.deepEqual(w.next({ ...calm, stopWanted: true }), { kind: 'stop' });
    assert.deepEqual(w.failedHosts(), ['h1', 'h0']);
    assert.deepEqual(w.lostHosts(), [{ host: 'h0', reason: 'host h0 was lost' }]);
  });

  it("'stopped' is a problem until the job asks its hosts to stop, then it is the answer", () => {
    const w = new AttemptWatch(['h0', 'h1']);
    w.hostEnded('h0', { outcome: 'stopped' });
    assert.deepEqual(w.next(calm), { kind: 'failed', host: 'h0', result: { outcome: 'stopped' } }, 'an agent that stopped by itself');
    const v = new AttemptWatch(['h0', 'h1']);
    v.hostEnded('h0', { outcome: 'succeeded' });
    assert.deepEqual(v.beginStop(), ['h1'], 'only the unfinished host is asked to stop');
    v.hostEnded('h1', { outcome: 'stopped' });
    assert.equal(v.firstProblem(), undefined);
    assert.deepEqual(v.failedHosts(), [], 'a host that stopped when asked is not avoided by a retry');
  });

  it('preemption and the run limit act only when no stop was asked for, preemption first', () => {
    const w = new AttemptWatch(['h0']);
    assert.deepEqual(w.next({ ...calm, preempted: true, runLimitHit: true }), { kind: 'preempted' });
    assert.deepEqual(w.next({ ...calm, runLimitHit: true }), { kind: 'run-limit' });
    assert.deepEqual(w.next({ ...calm, preempted: true, stopWanted: true }), { kind: 'stop' });
  });

  it('a cancel cannot confirm a stop on a host that was lost or whose agent erred', () => {
    const w = new AttemptWatch(['h0', 'h1']);
    w.beginStop();
    w.hostEnded('h0', { outcome: 'stopped' });
    assert.equal(w.unconfirmedStop(), undefined);
    w.hostEnded('h1', { outcome: 'error', message: 'host h1 could not run its ranks: boom' });
    assert.deepEqual(w.unconfirmedStop(), ['h1', { outcome: 'error', message: 'host h1 could not run its ranks: boom' }]);
  });

  it('agrees with a reference model on any order of host events and flags', () => {
    const hosts = ['h0', 'h1', 'h2'];
    const result = fc.constantFrom<HostResult>(
      { outcome: 'succeeded' },
      failed('exit 1'),
      { outcome: 'stopped' },
      { outcome: 'lost', message: 'lost' },
      { outcome: 'error', message: 'error' },
    );
    const event = fc.oneof(
      fc.record({ type: fc.constant('started' as const), host: fc.constantFrom(...hosts) }),
      fc.record({ type: fc.constant('ended' as const), host: fc.constantFrom(...hosts), result }),
      fc.record({ type: fc.constant('stop' as const) }),
    );
    const flags = fc.record({ pending: fc.boolean(), stopWanted: fc.boolean(), preempted: fc.boolean(), runLimitHit: fc.boolean() });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 12 }), flags, (events, f) => {
        const w = new AttemptWatch(hosts);
        const started = new Set<string>();
        const ended = new Map<string, HostResult>();
        let stopping = false;
        for (const e of events) {
          if (e.type === 'started') {
            w.hostStarted(e.host);
            started.add(e.host);
          } else if (e.type === 'ended') {
            w.hostEnded(e.host, e.result);
            ended.set(e.host, e.result);
          } else {
            const unfinished = w.beginStop();
            assert.deepEqual(unfinished, hosts.filter((h) => !ended.has(h)));
            stopping = true;
          }
        }
        // The model: the rules as docs/architecture.md states them, in their order.
        const allStarted = hosts.every((h) => started.has(h) || ended.get(h)?.outcome === 'succeeded');
        const allSucceeded = hosts.every((h) => ended.get(h)?.outcome === 'succeeded');
        const problem = [...ended].find(([, r]) => r.outcome !== 'succeeded' && !(r.outcome === 'stopped' && stopping));
        let expected: AttemptStep | undefined;
        if (f.pending && allStarted) expected = { kind: 'started' };
        else if (allSucceeded) expected = { kind: 'succeeded' };
        else if (f.stopWanted) expected = { kind: 'stop' };
        else if (problem) expected = { kind: 'failed', host: problem[0], result: problem[1] };
        else if (f.preempted) expected = { kind: 'preempted' };
        else if (f.runLimitHit) expected = { kind: 'run-limit' };
        assert.deepEqual(w.next(f), expected);
      }),
      { numRuns: 500 },
    );
  });
});

describe('how an attempt ended, in words and for its retry policy', () => {
  it('maps each host result to the retry rule it can match', () => {
    assert.deepEqual(attemptEnd('h0', failed('oom', 137, true)), { kind: 'exit', exitCode: 137, signal: null, outOfMemory: true, message: 'oom' });
    assert.deepEqual(attemptEnd('h0', { outcome: 'lost', message: 'gone' }), { kind: 'host-lost', host: 'h0', message: 'gone' });
    assert.equal(attemptEnd('h0', { outcome: 'stopped' }).kind, 'host-lost', 'an agent that shut down took its host with it');
    assert.equal(attemptEnd('h0', { outcome: 'error', message: 'x' }).kind, 'error');
  });
  it('says what happened', () => {
    assert.equal(describeProblem('h0', { outcome: 'stopped' }), 'the agent of host h0 stopped its ranks (it shut down)');
    assert.equal(describeProblem('h0', failed('rank 0 exited with code 2', 2)), 'rank 0 exited with code 2');
    assert.equal(summariseHosts([{ host: 'h0', slots: [0, 1] }, { host: 'h1', slots: [3] }]), 'h0 (2), h1 (1)');
    assert.equal(ranksOnHosts(1, 1), '1 rank on 1 host');
    assert.equal(ranksOnHosts(8, 2), '8 ranks on 2 hosts');
  });
});
