import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../src/domain/errors';
import { PAGE_SIZE, parsePageSize } from '../../src/domain/list-params';

function rejects(raw: unknown, pattern: RegExp): void {
  assert.throws(
    () => parsePageSize(raw),
    (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.httpStatus, 400);
      const violation = err.details[0]?.fieldViolations?.[0];
      assert.equal(violation?.field, 'pageSize');
      assert.match(violation.description, pattern);
      return true;
    },
  );
}

void describe('parsePageSize', () => {
  void it('defaults to 50 when absent, empty or 0', () => {
    assert.deepEqual(PAGE_SIZE, { default: 50, max: 200 });
    for (const raw of [undefined, null, '', 0, '0']) assert.equal(parsePageSize(raw), 50, String(raw));
  });

  void it('passes sizes up to the max through', () => {
    assert.equal(parsePageSize(1), 1);
    assert.equal(parsePageSize('7'), 7);
    assert.equal(parsePageSize(' 199 '), 199);
    assert.equal(parsePageSize(200), 200);
  });

  void it('coerces sizes above the max to the max', () => {
    assert.equal(parsePageSize(201), 200);
    assert.equal(parsePageSize('100000'), 200);
    assert.equal(parsePageSize('99999999999999999999999'), 200);
  });

  void it('rejects negative sizes', () => {
    rejects(-1, /must not be negative, got -1/);
    rejects('-20', /must not be negative, got -20/);
  });

  void it('rejects what is not an integer', () => {
    rejects(1.5, /must be a non-negative integer, got 1.5/);
    rejects('1.5', /got "1.5"/);
    rejects('ten', /got "ten"/);
    rejects('1e2', /got "1e2"/);
    rejects(['10', '20'], /got more than one value/);
    rejects(true, /got boolean/);
    rejects(Number.NaN, /got NaN/);
  });

  void it('honours other limits', () => {
    assert.equal(parsePageSize(undefined, { default: 10, max: 20 }), 10);
    assert.equal(parsePageSize(30, { default: 10, max: 20 }), 20);
  });
});
