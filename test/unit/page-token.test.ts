import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodePageToken, encodePageToken, queryFingerprint } from '../../src/api/page-token';
import { ApiError } from '../../src/domain/errors';

const SECRET = Buffer.from('0123456789abcdef0123456789abcdef');
const Q = queryFingerprint({ account: 'a', filter: 'state = RUNNING', orderBy: 'createTime desc' });

function rejects(token: string, pattern: RegExp, secret = SECRET, q = Q): void {
  assert.throws(
    () => decodePageToken(secret, token, q),
    (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.httpStatus, 400);
      const violation = err.details[0]?.fieldViolations?.[0];
      assert.equal(violation?.field, 'pageToken');
      assert.match(violation.description, pattern);
      return true;
    },
  );
}

/** A token whose payload is `body` (any text), correctly signed. */
function signed(body: string): string {
  const b = Buffer.from(body).toString('base64url');
  return `${b}.${createHmac('sha256', SECRET).update(b).digest('base64url')}`;
}

void describe('page tokens', () => {
  void it('round-trips the cursor, URL-safe', () => {
    const after = ['2026-01-01T00:00:00.000Z', 4, '', 'accounts/a/batchJobs/j"\'\\'];
    const token = encodePageToken(SECRET, { q: Q, after });
    assert.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodePageToken(SECRET, token, Q), after);
  });

  void it('round-trips arbitrary JSON cursors', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string({ unit: 'binary' }), fc.integer(), fc.constant(null))), (after) => {
        assert.deepEqual(decodePageToken(SECRET, encodePageToken(SECRET, { q: Q, after }), Q), after);
      }),
    );
  });

  void it('rejects a token made for another query', () => {
    const token = encodePageToken(SECRET, { q: Q, after: ['x'] });
    const other = queryFingerprint({ account: 'a', filter: 'state = FAILED', orderBy: 'createTime desc' });
    rejects(token, /was issued for a different query; filter, orderBy and the other list parameters \(except pageSize\) must match/, SECRET, other);
  });

  void it('rejects forged and tampered tokens', () => {
    const token = encodePageToken(SECRET, { q: Q, after: ['2026-01-01T00:00:00.000Z', 'accounts/a/batchJobs/j'] });
    const [body, sig] = token.split('.') as [string, string];
    const forgedBody = Buffer.from(JSON.stringify({ q: Q, after: ['9999', 'accounts/b/batchJobs/x'] })).toString('base64url');
    rejects(`${forgedBody}.${sig}`, /is not a page token this server issued/);
    rejects(`${body}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`, /is not a page token this server issued/);
    rejects(`${body}.${sig.slice(0, 10)}`, /is not a page token this server issued/);
    rejects(token, /is not a page token this server issued/, Buffer.from('another secret'));
  });

  void it('rejects malformed tokens', () => {
    for (const bad of ['', 'abc', 'a.b.c', '.', 'abc.', '.abc', 'a+b.c/d', `${'a'.repeat(9000)}.b`]) {
      rejects(bad, /is malformed|is not a page token this server issued/);
    }
    rejects('abc', /is malformed; pass the nextPageToken of the previous response unchanged/);
    rejects(signed('not json'), /is malformed/);
    rejects(signed(JSON.stringify({ q: Q })), /is malformed/);
    rejects(signed(JSON.stringify({ q: Q, after: 'x' })), /is malformed/);
    rejects(signed(JSON.stringify({ q: 1, after: [] })), /is malformed/);
    rejects(signed('null'), /is malformed/);
    assert.deepEqual(decodePageToken(SECRET, signed(JSON.stringify({ q: Q, after: [1] })), Q), [1]);
  });
});

void describe('queryFingerprint', () => {
  void it('is stable and ignores key order', () => {
    assert.equal(queryFingerprint({ account: 'a', filter: 'f', orderBy: 'o' }), queryFingerprint({ orderBy: 'o', filter: 'f', account: 'a' }));
  });

  void it('treats absent, undefined and empty parts alike', () => {
    const base = queryFingerprint({ account: 'a' });
    assert.equal(queryFingerprint({ account: 'a', filter: undefined }), base);
    assert.equal(queryFingerprint({ account: 'a', filter: '' }), base);
  });

  void it('changes with any part, and parts cannot bleed into each other', () => {
    const seen = new Set([
      queryFingerprint({ account: 'a', filter: 'x', orderBy: '' }),
      queryFingerprint({ account: 'a', filter: '', orderBy: 'x' }),
      queryFingerprint({ account: 'b', filter: 'x' }),
      queryFingerprint({ account: 'a', filter: 'x', readMask: 'name' }),
      queryFingerprint({ account: 'a', filter: 'x", "orderBy' }),
      queryFingerprint({ account: 'a', filter: 'x', orderBy: 'x' }),
    ]);
    assert.equal(seen.size, 6);
  });
});
