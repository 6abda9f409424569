import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { Pool } from 'pg';
import { storeUnavailable } from '../../src/store/store-errors';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('a store that cannot be reached', () => {
  it('is 503 UNAVAILABLE with Retry-After, from node-postgres\'s real error, and names no address or password', async () => {
    const pool = new Pool({ connectionString: `postgres://batchd:secret@127.0.0.1:${await closedPort()}/batchd`, connectionTimeoutMillis: 2000 });
    const err = await pool.query('SELECT 1').then(
      () => undefined,
      (e: unknown) => e,
    );
    await pool.end();
    const mapped = storeUnavailable(err);
    assert.ok(mapped, `mapped: ${String(err)}`);
    assert.equal(mapped.code, 'UNAVAILABLE');
    assert.equal((mapped as unknown as { retryAfterSeconds: number }).retryAfterSeconds, 2);
    assert.doesNotMatch(mapped.message, /secret|127\.0\.0\.1/);
  });

  it('leaves other errors alone', () => {
    assert.equal(storeUnavailable(new Error('syntax error at or near "SELEC"')), undefined);
    assert.equal(storeUnavailable(Object.assign(new Error('duplicate key'), { code: '23505' })), undefined);
    assert.equal(storeUnavailable('ECONNREFUSED'), undefined);
    assert.equal(storeUnavailable(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))?.code, 'UNAVAILABLE');
  });
});
