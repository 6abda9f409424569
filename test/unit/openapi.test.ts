import assert from 'node:assert/strict';
import { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Server } from 'node:http';
import pino from 'pino';
import { z } from 'zod';
import packageJson from '../../package.json';
import { documentedRoutes } from '../../src/api/api-routes';
import { createApp } from '../../src/api/app';
import { KeyRing } from '../../src/api/auth';
import {
  buildOpenApi,
  ERROR_RESPONSES,
  type JsonSchema,
  mountOpenApi,
  type OpenApiDocument,
  type OpenApiMethod,
  type OpenApiOperation,
  pathParamsOf,
  refsIn,
} from '../../src/api/openapi';
import { type Route } from '../../src/api/routes';
import { batchJobWireSchema, errorSchema, nodePoolWireSchema } from '../../src/api/schemas';
import { compileDocumentSchema, concretePath, OpenApiResponseChecker, openApiAjv } from '../support/openapi-check';

const routes = documentedRoutes();
const doc: OpenApiDocument = buildOpenApi(routes);
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

function operations(): Array<{ path: string; method: OpenApiMethod; op: OpenApiOperation }> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ path, method: method as OpenApiMethod, op })),
  );
}

/** Resolves a local JSON pointer (`#/components/schemas/BatchJob`) in the document. */
function resolve(ref: string): unknown {
  assert.ok(ref.startsWith('#/'), `${ref} is not a local reference`);
  let node: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(key in node)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** Every schema object the document holds outside components.schemas (parameters, bodies, responses). */
function inlineSchemas(): JsonSchema[] {
  const out: JsonSchema[] = [];
  for (const { op } of operations()) {
    for (const p of op.parameters) out.push(p.schema);
    for (const media of Object.values(op.requestBody?.content ?? {})) out.push(media.schema);
    for (const r of Object.values(op.responses)) if ('content' in r) for (const media of Object.values(r.content ?? {})) out.push(media.schema);
  }
  for (const r of Object.values(doc.components.responses)) for (const media of Object.values(r.content ?? {})) out.push(media.schema);
  return out;
}

const NOW = '2026-01-02T03:04:05.678Z';
const job = {
  name: 'accounts/default/batchJobs/train',
  displayName: 'Train',
  createTime: NOW,
  startTime: NOW,
  createdBy: 'ann@example.com',
  nodePoolId: 'default-cpu',
  numRanks: 2,
  envVars: { A: '1' },
  shellExecutor: { command: 'true' },
  imageRef: 'ghcr.io/org/image:tag',
  annotations: {},
  state: 'RUNNING',
  status: 'running: 2 of 2 ranks started',
  shared: false,
  updateTime: NOW,
};

describe('the OpenAPI document', () => {
  it('is OpenAPI 3.1.0 named batchd at the package version, and plain JSON', () => {
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(doc.info.title, 'batchd');
    assert.equal(doc.info.version, packageJson.version);
    assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc);
  });

  it('has every route of the route table with its method, and nothing else', () => {
    const documented = operations().map(({ path, method }) => `${method.toUpperCase()} ${path}`);
    const table = routes.map((r) => `${r.method} ${r.path}`);
    assert.deepEqual([...documented].sort(), [...table].sort());
    assert.equal(new Set(table).size, table.length, 'a method and path appear twice in the route table');
    for (const r of routes) {
      const op = doc.paths[r.path]?.[r.method.toLowerCase() as OpenApiMethod];
      assert.ok(op, `${r.method} ${r.path} is missing`);
      assert.equal(op.operationId, r.operationId);
      assert.equal(op.summary, r.summary);
      assert.deepEqual(op.tags, [r.tag]);
    }
    for (const item of Object.values(doc.paths)) {
      for (const key of Object.keys(item)) assert.ok((METHODS as readonly string[]).includes(key), `path items hold only operations, not "${key}"`);
    }
  });

  it('uses the API’s own literal path templates, custom methods included', () => {
    assert.ok(doc.paths['/v1/accounts/{account}/batchJobs/{batchJob}:cancel']?.post);
    assert.ok(doc.paths['/v1/accounts/{account}/batchJobs:batchDelete']?.post);
    assert.ok(doc.paths['/v1/accounts/{account}/nodePools/{nodePool}:getStats']?.get);
    for (const path of Object.keys(doc.paths)) assert.match(path, /^\/v1\/accounts\/\{account\}\//);
  });

  it('has unique operationIds', () => {
    const ids = operations().map(({ op }) => op.operationId);
    assert.equal(new Set(ids).size, ids.length);
  });

  it('declares every path parameter of each template, required, and no other', () => {
    for (const { path, method, op } of operations()) {
      const declared = op.parameters.filter((p) => p.in === 'path');
      assert.deepEqual(
        declared.map((p) => p.name),
        pathParamsOf(path),
        `${method} ${path}`,
      );
      for (const p of declared) assert.equal(p.required, true, `${method} ${path}: ${p.name}`);
      const keys = op.parameters.map((p) => `${p.in}:${p.name}`);
      assert.equal(new Set(keys).size, keys.length, `${method} ${path} declares a parameter twice`);
    }
  });

  it('documents the query parameters of each route', () => {
    for (const r of routes) {
      const op = doc.paths[r.path]?.[r.method.toLowerCase() as OpenApiMethod] as OpenApiOperation;
      const query = op.parameters.filter((p) => p.in === 'query');
      assert.deepEqual(
        query.map((p) => p.name),
        (r.queryParams ?? []).map((q) => q.name),
        r.operationId,
      );
    }
    const names = (operationId: string) =>
      operations()
        .find(({ op }) => op.operationId === operationId)
        ?.op.parameters.filter((p) => p.in === 'query')
        .map((p) => p.name);
    for (const list of ['Gateway_ListBatchJobs', 'Gateway_ListNodePools', 'Gateway_ListEnvironments', 'Gateway_ListSnapshots']) {
      assert.deepEqual(names(list), ['pageSize', 'pageToken', 'filter', 'orderBy', 'readMask'], list);
    }
    assert.deepEqual(names('Gateway_GetBatchJobLogs'), ['ranks', 'pageSize', 'pageToken', 'startTime', 'filter', 'startFromHead', 'attempt']);
    assert.deepEqual(names('Batchd_FollowBatchJobLogs'), ['ranks', 'attempt']);
    assert.deepEqual(names('Gateway_CreateBatchJob'), ['batchJobId', 'validateOnly']);
    assert.deepEqual(names('Gateway_UpdateBatchJob'), ['updateMask']);
    const ranks = operations()
      .find(({ op }) => op.operationId === 'Gateway_GetBatchJobLogs')
      ?.op.parameters.find((p) => p.name === 'ranks');
    assert.deepEqual(ranks?.schema, { type: 'array', items: { type: 'integer' } });
    assert.equal(ranks?.explode, true);
    for (const op of ['Gateway_GetBatchJobLogs', 'Batchd_FollowBatchJobLogs']) {
      const attempt = operations()
        .find(({ op: o }) => o.operationId === op)
        ?.op.parameters.find((p) => p.name === 'attempt');
      assert.deepEqual(attempt?.schema, { type: 'integer' }, op);
      assert.match(attempt?.description ?? '', /attempt/);
    }
    // Each log entry says its attempt (a batchd extension), always.
    const entry = doc.components.schemas.LogEntry as JsonSchema;
    assert.ok((entry.required as string[]).includes('attempt'));
    assert.equal((((entry.properties as Record<string, JsonSchema>).attempt) as JsonSchema).minimum, 1);
  });

  it('resolves every $ref', () => {
    const refs = refsIn(doc);
    assert.ok(refs.size > 10);
    for (const ref of refs) assert.ok(resolve(ref) !== undefined, `${ref} does not resolve`);
  });

  it('keeps only components it refers to, and no $id or $schema inside them', () => {
    const referenced = new Set([...refsIn(doc)].filter((r) => r.startsWith('#/components/schemas/')).map((r) => r.slice('#/components/schemas/'.length)));
    assert.deepEqual(Object.keys(doc.components.schemas).sort(), [...referenced].sort());
    const text = JSON.stringify(doc.components.schemas);
    assert.ok(!text.includes('"$id"') && !text.includes('"$schema"'));
  });

  it('gives every route a body and a response schema where it takes or gives JSON, and the error responses', () => {
    for (const r of routes) {
      const op = doc.paths[r.path]?.[r.method.toLowerCase() as OpenApiMethod] as OpenApiOperation;
      const ok = op.responses['200'];
      assert.ok(ok && 'content' in ok && ok.content, `${r.operationId}: no 200 content`);
      assert.deepEqual(Object.keys(ok.content), [r.responseMediaType ?? 'application/json']);
      if (r.method === 'POST' || r.method === 'PATCH') assert.ok(op.requestBody?.content['application/json'], `${r.operationId}: no request body`);
      else assert.equal(op.requestBody, undefined, `${r.operationId}: a ${r.method} has no body`);
      for (const status of ['400', '401', '403', '404', '409', '429', '500', '501', '503']) {
        const ref = op.responses[status];
        assert.ok(ref && '$ref' in ref, `${r.operationId}: no ${status}`);
        const response = resolve(ref.$ref) as { content: Record<string, { schema: JsonSchema }> };
        assert.deepEqual(response.content['application/json']?.schema, { $ref: '#/components/schemas/Error' });
      }
    }
    assert.deepEqual(Object.keys(ERROR_RESPONSES), ['400', '401', '403', '404', '409', '429', '500', '501', '503']);
  });

  it('requires the bearer key on every /v1 route', () => {
    assert.deepEqual(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', description: doc.components.securitySchemes.bearer?.description });
    for (const { path, method, op } of operations()) {
      assert.ok(path.startsWith('/v1/'));
      assert.deepEqual(op.security, [{ bearer: [] }], `${method} ${path}`);
    }
  });

  it('has schemas that compile with a strict JSON Schema 2020-12 validator', () => {
    const ajv = openApiAjv(doc);
    for (const id of Object.keys(doc.components.schemas)) compileDocumentSchema(ajv, { $ref: `#/components/schemas/${id}` });
    for (const schema of inlineSchemas()) compileDocumentSchema(ajv, schema);
  });

  it('marks the output-only fields of a batch job readOnly, and only those', () => {
    const properties = doc.components.schemas.BatchJob?.properties as Record<string, JsonSchema>;
    const readOnly = Object.entries(properties)
      .filter(([, s]) => s.readOnly === true)
      .map(([name]) => name)
      .sort();
    assert.deepEqual(readOnly, ['attempt', 'createTime', 'createdBy', 'endTime', 'name', 'startTime', 'state', 'status', 'updateTime']);
    assert.deepEqual((properties.state as JsonSchema).$ref, '#/components/schemas/BatchJobState');
    assert.ok(((doc.components.schemas.BatchJobState as JsonSchema).enum as string[]).includes('QUEUED'));
    // The create body takes the writable fields, and echoed output-only fields are marked as such.
    const create = doc.components.schemas.CreateBatchJobRequest as JsonSchema;
    assert.deepEqual(create.required, ['nodePoolId']);
    assert.equal(((create.properties as Record<string, JsonSchema>).state as JsonSchema).readOnly, true);
  });

  it('documents priority (a batchd extension) on the batch job and its create body: an integer from -1000 to 1000', () => {
    const onJob = (doc.components.schemas.BatchJob?.properties as Record<string, JsonSchema>).priority as JsonSchema;
    const onCreate = (doc.components.schemas.CreateBatchJobRequest?.properties as Record<string, JsonSchema>).priority as JsonSchema;
    for (const schema of [onJob, onCreate]) assert.deepEqual({ type: schema.type, minimum: schema.minimum, maximum: schema.maximum }, { type: 'integer', minimum: -1000, maximum: 1000 });
    assert.match(String(onJob.description), /^batchd extension: higher runs first; .*preempt running jobs of lower priority whose retryPolicy retries PREEMPTED/);
    assert.ok(!(doc.components.schemas.BatchJob?.required as string[]).includes('priority'));
    const ajv = openApiAjv(doc);
    const check = compileDocumentSchema(ajv, { $ref: '#/components/schemas/BatchJob' });
    assert.ok(check({ ...job, priority: -1000 }));
    assert.ok(!check({ ...job, priority: 1001 }));
    assert.ok(!check({ ...job, priority: 1.5 }));
  });

  it('documents the dry run: validateOnly on create, and its answer as BatchJob plus the dryRun extension, leaving BatchJob as upstream has it', () => {
    const create = doc.paths['/v1/accounts/{account}/batchJobs']?.post as OpenApiOperation;
    assert.deepEqual(create.parameters.find((p) => p.name === 'validateOnly')?.schema, { type: 'boolean' });
    const ok = create.responses['200'] as { content: Record<string, { schema: JsonSchema }> };
    assert.deepEqual(ok.content['application/json']?.schema, { $ref: '#/components/schemas/CreateBatchJobResponse' });
    const response = doc.components.schemas.CreateBatchJobResponse as JsonSchema;
    const batchJob = doc.components.schemas.BatchJob as JsonSchema;
    const { dryRun, ...jobProperties } = response.properties as Record<string, JsonSchema>;
    assert.deepEqual(dryRun, { $ref: '#/components/schemas/BatchJobDryRun' });
    assert.deepEqual(jobProperties, batchJob.properties, 'the job part is the BatchJob itself');
    assert.deepEqual(response.required, batchJob.required);
    assert.ok(!('dryRun' in (batchJob.properties as object)));
    const dry = doc.components.schemas.BatchJobDryRun as JsonSchema;
    assert.deepEqual(dry.required, ['wouldStartNow', 'estimatedStartTime', 'estimate']);
    const ajv = openApiAjv(doc);
    const check = compileDocumentSchema(ajv, { $ref: '#/components/schemas/BatchJobDryRun' });
    assert.ok(check({ wouldStartNow: false, estimatedStartTime: 'unknown', estimate: 'why' }));
    assert.ok(check({ wouldStartNow: true, placement: [{ host: 'h0', ranks: 8 }], estimatedStartTime: NOW, estimate: 'now' }));
    assert.ok(!check({ wouldStartNow: false, estimatedStartTime: 'soon', estimate: 'why' }), 'a time or "unknown", nothing else');
  });

  it('describes responses as the zod schemas do', () => {
    const ajv = openApiAjv(doc);
    const cases: Array<{ id: string; zod: { safeParse(v: unknown): { success: boolean } }; values: unknown[] }> = [
      {
        id: 'BatchJob',
        zod: batchJobWireSchema,
        values: [
          job,
          { ...job, extra: 1 },
          { ...job, state: 'STATE_UNSPECIFIED' },
          { ...job, createTime: '2026-01-02 03:04:05' },
          { ...job, numRanks: 0 },
          { ...job, pythonExecutor: { targetType: 'MODULE', target: 'x' } },
          { ...job, pythonExecutor: { targetType: 'TARGET_TYPE_UNSPECIFIED', target: 'x' } },
          Object.fromEntries(Object.entries(job).filter(([k]) => k !== 'updateTime')),
        ],
      },
      {
        id: 'Error',
        zod: errorSchema,
        values: [
          { code: 5, message: 'not found', details: [] },
          { code: 3, message: 'numRanks: bad', details: [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: 'numRanks', description: 'bad' }] }] },
          { code: 5, message: 'x', details: [{ '@type': 'type.googleapis.com/google.rpc.ResourceInfo', resourceName: 'accounts/a/nodePools/p', description: 'nodePoolId' }] },
          { code: 5, message: 'x', details: [{ '@type': 'type.googleapis.com/google.rpc.ResourceInfo', metadata: { field: 'nodePoolId' } }] },
          { code: 5, message: 'x' },
          { code: 0, message: 'x', details: [] },
        ],
      },
      {
        id: 'NodePool',
        zod: nodePoolWireSchema,
        values: [
          {
            name: 'accounts/a/nodePools/p',
            createTime: NOW,
            minNodeCount: 0,
            maxNodeCount: 2,
            overprovisionNodeCount: 0,
            fakeNodePool: { machineType: 'm5.xlarge', numNodes: 2 },
            annotations: {},
            state: 'READY',
            status: { code: 'OK', message: '' },
            nodePoolStats: { nodeCount: 2, ranksPerNode: 1, environmentCount: 0, environmentRanks: 0, batchJobCount: { RUNNING: 1 }, batchJobRanks: { RUNNING: 2 } },
            updateTime: NOW,
          },
          {
            name: 'accounts/a/nodePools/p',
            createTime: NOW,
            minNodeCount: 0,
            maxNodeCount: 2,
            overprovisionNodeCount: 0,
            fakeNodePool: { machineType: 'm5.xlarge', numNodes: 2 },
            annotations: {},
            state: 'READY',
            status: { code: 'OK', message: '' },
            nodePoolStats: { nodeCount: 2, ranksPerNode: 1, environmentCount: 0, environmentRanks: 0, batchJobCount: { RUNNING: 0 }, batchJobRanks: {} },
            updateTime: NOW,
          },
        ],
      },
    ];
    for (const { id, zod, values } of cases) {
      const validate = compileDocumentSchema(ajv, { $ref: `#/components/schemas/${id}` });
      for (const value of values) assert.equal(validate(value), zod.safeParse(value).success, `${id}: ${JSON.stringify(value)}`);
    }
  });

  it('documents a shared schema whose input side differs from its output side twice, <name>Input for the input', () => {
    const thing = z.strictObject({ n: z.int().default(1) });
    const holder = z.strictObject({ thing, label: z.string() });
    const same = z.strictObject({ s: z.string() });
    const route = (method: Route['method'], path: string, operationId: string, body: z.ZodType, response: z.ZodType): Route => ({
      method,
      path,
      operationId,
      summary: operationId,
      tag: 'Test',
      auth: true,
      body,
      response,
      handler: () => Promise.resolve({}),
    });
    const small = buildOpenApi(
      [route('POST', '/v1/accounts/{account}/things', 'CreateThing', holder, holder), route('PATCH', '/v1/accounts/{account}/same', 'Same', same, same)],
      [
        { id: 'Thing', schema: thing },
        { id: 'Holder', schema: holder },
        { id: 'Same', schema: same },
        { id: 'Unused', schema: z.string() },
      ],
    );
    // Unused is pruned; the error body's parts are inlined, not being named here.
    assert.deepEqual(Object.keys(small.components.schemas).sort(), ['Error', 'Holder', 'HolderInput', 'Same', 'Thing', 'ThingInput']);
    assert.deepEqual(small.components.schemas.Thing?.required, ['n']);
    assert.equal(small.components.schemas.ThingInput?.required, undefined);
    assert.deepEqual((small.components.schemas.HolderInput?.properties as Record<string, JsonSchema>).thing, { $ref: '#/components/schemas/ThingInput' });
    assert.deepEqual((small.components.schemas.Holder?.properties as Record<string, JsonSchema>).thing, { $ref: '#/components/schemas/Thing' });
    const create = small.paths['/v1/accounts/{account}/things']?.post;
    assert.deepEqual(create?.requestBody?.content['application/json']?.schema, { $ref: '#/components/schemas/HolderInput' });
    assert.deepEqual((create?.responses['200'] as { content: Record<string, { schema: JsonSchema }> }).content['application/json']?.schema, { $ref: '#/components/schemas/Holder' });
    const patch = small.paths['/v1/accounts/{account}/same']?.patch;
    assert.deepEqual(patch?.requestBody?.content['application/json']?.schema, { $ref: '#/components/schemas/Same' });
  });

  it('is what a service built from the same route table serves', () => {
    assert.deepEqual(buildOpenApi(documentedRoutes()), doc);
  });
});

describe('the response checker', () => {
  const checker = new OpenApiResponseChecker(doc);
  const json = (value: unknown) => JSON.stringify(value);
  const A = '/v1/accounts/default';

  it('accepts a response that matches, and names route, status and errors when one does not', () => {
    assert.equal(checker.check({ method: 'GET', path: `${A}/batchJobs/train`, status: 200, contentType: 'application/json; charset=utf-8', text: json(job) }), 'its 200 schema');
    assert.throws(
      () => checker.check({ method: 'GET', path: `${A}/batchJobs/train`, status: 200, contentType: 'application/json', text: json({ ...job, secret: 'x', numRanks: '2' }) }),
      (err: Error) => {
        assert.match(err.message, /GET \/v1\/accounts\/\{account\}\/batchJobs\/\{batchJob\} \(Gateway_GetBatchJob\) answered 200/);
        assert.match(err.message, /must NOT have additional properties "secret"/);
        assert.match(err.message, /\/numRanks must be integer/);
        return true;
      },
    );
  });

  it('checks error responses against the error schema, on any /v1 path', () => {
    assert.equal(checker.check({ method: 'GET', path: `${A}/widgets`, status: 404, contentType: 'application/json', text: json({ code: 5, message: 'no such path', details: [] }) }), 'the error schema');
    assert.throws(() => checker.check({ method: 'DELETE', path: `${A}/batchJobs/x`, status: 403, contentType: 'application/json', text: json({ error: 'no' }) }), /Gateway_DeleteBatchJob\) answered 403: does not match the error schema/);
  });

  it('relaxes required fields under a readMask, but not types or unknown fields', () => {
    const masked = `${A}/batchJobs?readMask=${encodeURIComponent('name,state')}`;
    assert.ok(checker.check({ method: 'GET', path: masked, status: 200, contentType: 'application/json', text: json({ batchJobs: [{ name: job.name, state: 'QUEUED' }], nextPageToken: '', totalSize: 1 }) }));
    assert.throws(() => checker.check({ method: 'GET', path: masked, status: 200, contentType: 'application/json', text: json({ batchJobs: [{ name: job.name, state: 'NOPE' }] }) }), /state must be equal to one of the allowed values/);
    assert.throws(() => checker.check({ method: 'GET', path: `${A}/batchJobs`, status: 200, contentType: 'application/json', text: json({ batchJobs: [{ name: job.name }] }) }), /must have required property/);
  });

  it('refuses undocumented statuses and content types, and skips streams and paths outside /v1', () => {
    assert.throws(() => checker.check({ method: 'POST', path: `${A}/batchJobs`, status: 201, contentType: 'application/json', text: json(job) }), /status 201 is not documented/);
    assert.throws(() => checker.check({ method: 'GET', path: `${A}/batchJobs/x`, status: 200, contentType: 'text/html', text: '<p>' }), /content type "text\/html" is not documented/);
    assert.throws(() => checker.check({ method: 'PUT', path: `${A}/batchJobs/x`, status: 200, contentType: 'application/json', text: '{}' }), /200 on a path and method the document does not have/);
    assert.equal(checker.check({ method: 'GET', path: `${A}/batchJobs/x:followLogs`, status: 200, contentType: 'text/event-stream', text: 'event: end\n' }), undefined);
    assert.equal(checker.check({ method: 'GET', path: '/healthz', status: 200, contentType: 'application/json', text: '{"status":"ok"}' }), undefined);
  });
});

describe('the Express app serves exactly the documented routes', () => {
  let server: Server;
  let base: string;
  const served: Route[] = documentedRoutes();

  before(async () => {
    const app = createApp({
      keys: new KeyRing(),
      routes: served,
      health: [],
      logger: pino({ level: 'silent' }),
      maxBodyBytes: 1 << 20,
      extra: (a) => {
        mountOpenApi(a, served);
      },
    });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const request = (method: string, path: string) =>
    fetch(`${base}${path}`, {
      method,
      headers: { authorization: 'Bearer not-a-key', 'content-type': 'application/json' },
      ...(method === 'POST' || method === 'PATCH' ? { body: '{}' } : {}),
    });

  it('serves the document at GET /openapi.json without a key', async () => {
    const res = await fetch(`${base}/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), doc);
  });

  it('routes every documented operation (401 for a bogus key, not 404 or 405)', async () => {
    const checker = new OpenApiResponseChecker(doc);
    for (const { path, method } of operations()) {
      const res = await request(method.toUpperCase(), concretePath(path));
      const text = await res.text();
      assert.equal(res.status, 401, `${method.toUpperCase()} ${path}: ${text}`);
      checker.check({ method, path: concretePath(path), status: res.status, contentType: res.headers.get('content-type'), text });
    }
  });

  it('answers 405 with the documented methods in Allow for any other method on a documented path', async () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      const documented = Object.keys(item).map((m) => m.toUpperCase());
      for (const method of ['GET', 'POST', 'PATCH', 'DELETE', 'PUT'].filter((m) => !documented.includes(m))) {
        const res = await request(method, concretePath(path));
        assert.equal(res.status, 405, `${method} ${path}`);
        assert.deepEqual(res.headers.get('allow')?.split(', ').sort(), [...documented].sort(), `${method} ${path}`);
      }
    }
  });

  it('answers 404 for path shapes the document does not have', async () => {
    for (const path of [
      '/v1/accounts/default',
      '/v1/accounts/default/widgets',
      '/v1/accounts/default/batchJobs/x/extra',
      '/v1/accounts/default/batchJobs/x:explode',
      '/v1/accounts/default/nodePools/x:getLogs',
      '/v1/accounts/default/clusters/c/batchJobs/x',
      '/v1/batchJobs',
      '/v2/accounts/default/batchJobs',
    ]) {
      for (const method of ['GET', 'POST']) {
        const res = await request(method, path);
        assert.equal(res.status, 404, `${method} ${path}`);
      }
    }
  });
});
