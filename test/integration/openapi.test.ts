/**
 * The running service describes itself: GET /openapi.json (no key) is the document generated from
 * the route table, and the service routes exactly what it documents — every documented operation is
 * routed (401 for a bogus key, never 404 or 405), and path shapes the document lacks are 404.
 * (Every other integration suite checks its responses against the document through the harness.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { documentedRoutes } from '../../src/api/api-routes';
import { buildOpenApi, type OpenApiDocument } from '../../src/api/openapi';
import { startTestService, type TestService } from '../support/harness';
import { concretePath } from '../support/openapi-check';

describe('the OpenAPI document of the running service', () => {
  let t: TestService;
  before(async () => {
    t = await startTestService({ roles: ['temporal', 'api'], defaultPools: false });
  });
  after(async () => {
    await t?.stop();
  });

  it('is served at GET /openapi.json without a key, and is the document of the route table', async () => {
    const res = await fetch(`${t.url}/openapi.json`);
    assert.equal(res.status, 200);
    const served = (await res.json()) as OpenApiDocument;
    assert.deepEqual(served, buildOpenApi(documentedRoutes()));
    assert.equal(served.openapi, '3.1.0');
  });

  it('routes every documented operation: 401 with a bogus key, not 404', async () => {
    const doc = (await (await fetch(`${t.url}/openapi.json`)).json()) as OpenApiDocument;
    const bogus = t.api.withKey('bogus-key');
    let probed = 0;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item)) {
        const body = method === 'post' || method === 'patch' ? {} : undefined;
        const r = await bogus.call(method.toUpperCase(), concretePath(path), body);
        assert.equal(r.status, 401, `${method.toUpperCase()} ${path}: ${JSON.stringify(r.body)}`);
        probed++;
      }
    }
    assert.equal(probed, documentedRoutes().length);
  });

  it('answers 404 for path shapes the document does not have', async () => {
    const bogus = t.api.withKey('bogus-key');
    for (const path of ['/v1/accounts/default/widgets', '/v1/accounts/default/batchJobs/x/logs', '/v1/accounts/default/batchJobs/x:explode', '/v1/nodePools']) {
      const r = await bogus.get(path);
      assert.equal(r.status, 404, `GET ${path}: ${JSON.stringify(r.body)}`);
    }
  });
});
