/**
 * CoalescingReader: one read per key in flight; requests arriving meanwhile share the next read,
 * which asks for all their names and starts only once the one in flight ended; each request gets
 * its own names' answers; a failed read fails only its own requests; keys are independent; nothing
 * is kept once no request waits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoalescingReader } from '../../src/api/coalescing-reader';

interface Read {
  key: string;
  names: string[];
  answer: (failWith?: Error) => void;
}

function source(): { reader: CoalescingReader<number>; reads: Read[] } {
  const reads: Read[] = [];
  const reader = new CoalescingReader<number>(
    (key, names) =>
      new Promise((resolve, reject) => {
        reads.push({
          key,
          names: [...names].sort(),
          // Answers every name asked (its length), plus one nobody asked for.
          answer: (failWith) => (failWith ? reject(failWith) : resolve(Object.fromEntries([...names.map((n) => [n, n.length] as const), ['other', 0]]))),
        });
      }),
  );
  return { reader, reads };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('CoalescingReader', () => {
  it('reads once for the requests of one tick, and answers each with its own names only', async () => {
    const { reader, reads } = source();
    const a = reader.get('pool', ['a']);
    const b = reader.get('pool', ['bb', 'a']);
    await tick();
    assert.deepEqual(reads.map((r) => r.names), [['a', 'bb']]);
    reads[0]?.answer();
    assert.deepEqual(await a, { a: 1 });
    assert.deepEqual(await b, { bb: 2, a: 1 });
    await tick();
    assert.equal(reader.inFlight, 0, 'nothing kept once no request waits');
  });

  it('makes requests that arrive during a read wait for the next one, which asks for all their names after it ends', async () => {
    const { reader, reads } = source();
    const first = reader.get('pool', ['a']);
    await tick();
    const later = [reader.get('pool', ['b']), reader.get('pool', ['cc']), reader.get('pool', ['b'])];
    await tick();
    assert.equal(reads.length, 1, 'no second read while the first runs');
    reads[0]?.answer();
    assert.deepEqual(await first, { a: 1 });
    await tick();
    assert.deepEqual(reads.map((r) => r.names), [['a'], ['b', 'cc']], 'one read for the three that waited');
    reads[1]?.answer();
    assert.deepEqual(await Promise.all(later), [{ b: 1 }, { cc: 2 }, { b: 1 }]);
  });

  it('fails only the requests of a read that failed; the next read goes ahead', async () => {
    const { reader, reads } = source();
    const failing = reader.get('pool', ['a']);
    await tick();
    const next = reader.get('pool', ['b']);
    reads[0]?.answer(new Error('deadline exceeded'));
    await assert.rejects(failing, /deadline exceeded/);
    await tick();
    reads[1]?.answer();
    assert.deepEqual(await next, { b: 1 });
  });

  it('reads each key on its own', async () => {
    const { reader, reads } = source();
    const one = reader.get('pool-1', ['a']);
    const two = reader.get('pool-2', ['a']);
    await tick();
    assert.deepEqual(reads.map((r) => r.key).sort(), ['pool-1', 'pool-2']);
    reads[1]?.answer();
    reads[0]?.answer();
    assert.deepEqual(await Promise.all([one, two]), [{ a: 1 }, { a: 1 }]);
  });

  it('fails the waiting requests when the read throws before it starts', async () => {
    const reader = new CoalescingReader<number>(() => {
      throw new Error('no client');
    });
    await assert.rejects(reader.get('pool', ['a']), /no client/);
    await tick();
    assert.equal(reader.inFlight, 0);
  });
});
