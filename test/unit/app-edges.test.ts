/**
 * The edges of the HTTP app, over loopback HTTP: /healthz says in words what is not ready and never
 * an upstream's raw error; a malformed percent-escape is 400 naming the path parameter, before any
 * key is looked at; the per-key rate limit answers 429 with Retry-After and counts keys apart.
 */
import assert from 'node:assert/strict';
import { type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createApp } from '../../src/api/app';
import { keyEntry, KeyRing } from '../../src/api/auth';
import { KeyRateLimiter } from '../../src/api/rate-limit';
import { type Route } from '../../src/api/routes';

const KEY_A = 'key-a-0123456789abcdef';
const KEY_B = 'key-b-0123456789abcdef';

describe('the app’s edges', () => {
  let server: Server;
  let base: string;
  let now = 0;
  const route: Route = {
    method: 'GET',
    path: '/v1/accounts/{account}/things/{thing}',
    operationId: 'Test_GetThing',
    summary: 'a thing',
    tag: 'Test',
    auth: true,
    handler: ({ params }) => Promise.resolve({ thing: params.thing }),
  };

  before(async () => {
    const app = createApp({
      keys: new KeyRing([keyEntry(KEY_A, 'acme', 'a@acme.dev'), keyEntry(KEY_B, 'acme', 'b@acme.dev')]),
      routes: [route],
      health: [
        { name: 'fine', check: () => Promise.resolve(undefined) },
        { name: 'words', check: () => Promise.resolve('the thing is not ready') },
        { name: 'upstream', check: () => Promise.reject(new Error('14 UNAVAILABLE: connect ECONNREFUSED 10.1.2.3:7233 secret-internal-detail')) },
      ],
      logger: pino({ level: 'silent' }),
      maxBodyBytes: 1 << 20,
      rateLimiter: new KeyRateLimiter({ perSecond: 1, burst: 2 }, () => now),
    });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const get = (path: string, key?: string) => fetch(`${base}${path}`, key ? { headers: { authorization: `Bearer ${key}` } } : {});

  it('says in words why it is not ready, and never passes on an upstream’s raw error', async () => {
    const res = await get('/healthz');
    assert.equal(res.status, 503);
    const text = await res.text();
    assert.ok(!text.includes('ECONNREFUSED') && !text.includes('secret-internal-detail') && !text.includes('10.1.2.3'), text);
    const body = JSON.parse(text) as { code: number; message: string; checks: Record<string, string> };
    assert.equal(body.code, 14);
    assert.deepEqual(body.checks, { fine: 'ok', words: 'the thing is not ready', upstream: 'could not be checked (the service log says why)' });
    assert.match(body.message, /^not ready: /);
  });

  it('answers 400 naming the parameter for a malformed percent-escape, before looking at the key', async () => {
    for (const path of ['/v1/accounts/%E0%A4%A/things/x', '/v1/accounts/acme/things/%']) {
      const res = await get(path);
      assert.equal(res.status, 400, path);
      const body = (await res.json()) as { code: number; details: Array<{ fieldViolations: Array<{ field: string }> }> };
      assert.equal(body.code, 3);
      assert.equal(body.details[0]?.fieldViolations[0]?.field, path.includes('%E0') ? 'account' : 'thing');
    }
    const fine = await get('/v1/accounts/acme/things/a%2Fb', KEY_A);
    assert.deepEqual(await fine.json(), { thing: 'a/b' }, 'a valid escape is decoded');
  });

  it('limits each key to its bucket: 429 with Retry-After, and another key is not held back', async () => {
    now = 1_000_000;
    assert.equal((await get('/v1/accounts/acme/things/1', KEY_B)).status, 200);
    assert.equal((await get('/v1/accounts/acme/things/2', KEY_B)).status, 200);
    const refused = await get('/v1/accounts/acme/things/3', KEY_B);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.match(((await refused.json()) as { message: string }).message, /API_RATE_LIMIT_PER_SECOND/);
    assert.equal((await get('/v1/accounts/acme/things/4', 'not-a-key-0123456789')).status, 401, 'no key, no token taken');
    now += 1000;
    assert.equal((await get('/v1/accounts/acme/things/5', KEY_B)).status, 200, 'a second later a token is back');
  });
});
