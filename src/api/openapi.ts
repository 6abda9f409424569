/**
 * The OpenAPI 3.1 document of the API, generated from the route table (the same table that routes
 * requests, so the two cannot drift apart) and the routes' zod schemas: request bodies from their
 * input side, 200 responses from their output side, `z.toJSONSchema` doing the conversion. Served at
 * `GET /openapi.json`; never written by hand.
 *
 * Shared schemas (src/api/schemas.ts) become `components.schemas` and are referenced by `$ref`; a
 * route schema without a name becomes `<operationId>Request` / `<operationId>Response`. A component
 * whose input side differs from its output side is documented twice, the input one as `<name>Input`.
 */
import { isDeepStrictEqual } from 'node:util';
import { type Express } from 'express';
import { z } from 'zod';
import packageJson from '../../package.json';
import { type Method, type Route } from './routes';
import { errorSchema, type NamedSchema, namedApiSchemas } from './schemas';

export type JsonSchema = { [key: string]: unknown };

export interface OpenApiParameter {
  name: string;
  in: 'path' | 'query';
  required: boolean;
  description: string;
  schema: JsonSchema;
  style?: 'form';
  explode?: boolean;
}

export interface OpenApiMediaType {
  schema: JsonSchema;
}

export interface OpenApiResponse {
  description: string;
  content?: Record<string, OpenApiMediaType>;
}

export interface OpenApiOperation {
  operationId: string;
  summary: string;
  tags: string[];
  parameters: OpenApiParameter[];
  requestBody?: { required: boolean; content: Record<string, OpenApiMediaType> };
  responses: Record<string, OpenApiResponse | { $ref: string }>;
  security: Array<Record<string, string[]>>;
}

export type OpenApiMethod = Lowercase<Method>;
export type OpenApiPathItem = Partial<Record<OpenApiMethod, OpenApiOperation>>;

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  tags: Array<{ name: string }>;
  paths: Record<string, OpenApiPathItem>;
  components: {
    schemas: Record<string, JsonSchema>;
    responses: Record<string, OpenApiResponse>;
    securitySchemes: Record<string, { type: 'http'; scheme: 'bearer'; description: string }>;
  };
}

export const SCHEMA_REF_PREFIX = '#/components/schemas/';
export const RESPONSE_REF_PREFIX = '#/components/responses/';
const schemaRef = (id: string) => ({ $ref: `${SCHEMA_REF_PREFIX}${id}` });

/** The error statuses every operation documents, each with the error body. */
export const ERROR_RESPONSES: Readonly<Record<string, { name: string; description: string }>> = {
  '400': { name: 'BadRequest', description: 'INVALID_ARGUMENT (details name each bad field), FAILED_PRECONDITION (the state forbids it) or OUT_OF_RANGE' },
  '401': { name: 'Unauthenticated', description: 'UNAUTHENTICATED: the API key is missing or unknown' },
  '403': { name: 'PermissionDenied', description: "PERMISSION_DENIED: another account, or another user's resource that is not shared" },
  '404': { name: 'NotFound', description: 'NOT_FOUND' },
  '409': { name: 'Conflict', description: 'ALREADY_EXISTS or ABORTED' },
  '429': { name: 'ResourceExhausted', description: 'RESOURCE_EXHAUSTED: a per-account limit (the message names it; nothing was created) or the per-key request rate (retry after Retry-After seconds)' },
  '500': { name: 'Internal', description: 'INTERNAL: the message carries a request id; nothing else is revealed' },
  '501': { name: 'Unimplemented', description: 'UNIMPLEMENTED' },
  '503': { name: 'Unavailable', description: 'UNAVAILABLE: retry with backoff' },
};

const ERROR_COMPONENT = 'Error';

/** `{account}` → `account`, in order. */
export function pathParamsOf(template: string): string[] {
  return [...template.matchAll(/\{([a-zA-Z]+)\}/g)].map((m) => m[1] ?? '');
}

interface Conversion {
  components: Record<string, JsonSchema>;
  idOf: Map<z.ZodType, string>;
}

/** Converts the named schemas of one side plus the routes' schemas of that side, refs between them as `#/components/schemas/…`. */
function convert(io: 'input' | 'output', named: readonly NamedSchema[], routeSchemas: ReadonlyArray<{ schema: z.ZodType; fallbackId: string }>): Conversion {
  const registry = z.registry<{ id: string }>();
  const idOf = new Map<z.ZodType, string>();
  const add = (schema: z.ZodType, id: string) => {
    if (idOf.has(schema)) return;
    if ([...idOf.values()].includes(id)) throw new Error(`OpenAPI: two ${io} schemas are both named ${id}`);
    registry.add(schema, { id });
    idOf.set(schema, id);
  };
  for (const n of named) if (!n.io || n.io === io) add(n.schema, n.id);
  for (const r of routeSchemas) add(r.schema, r.fallbackId);

  const { schemas } = z.toJSONSchema(registry, { io, uri: (id) => `${SCHEMA_REF_PREFIX}${id}`, unrepresentable: 'throw' });
  if ('__shared' in schemas) throw new Error('OpenAPI: a schema is cyclic or carries a global id; name it in src/api/schemas.ts instead');
  const components: Record<string, JsonSchema> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    const { $schema: _dialect, $id: _id, ...rest } = schema as JsonSchema;
    components[id] = rest;
  }
  return { components, idOf };
}

/** A deep copy of `value` with every component `$ref` renamed through `rename`. */
function renameRefs<T>(value: T, rename: (id: string) => string): T {
  if (Array.isArray(value)) return value.map((v: unknown) => renameRefs(v, rename)) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: JsonSchema = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = key === '$ref' && typeof v === 'string' && v.startsWith(SCHEMA_REF_PREFIX) ? `${SCHEMA_REF_PREFIX}${rename(v.slice(SCHEMA_REF_PREFIX.length))}` : renameRefs(v, rename);
  }
  return out as T;
}

/** Every `$ref` string anywhere in `value`. */
export function refsIn(value: unknown, into: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) for (const v of value) refsIn(v, into);
  else if (value !== null && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === '$ref' && typeof v === 'string') into.add(v);
      else refsIn(v, into);
    }
  }
  return into;
}

/**
 * Merges the two sides into one set of components: a name whose input side is the output side
 * (after renaming what it refers to) is documented once; otherwise the input side is `<name>Input`.
 */
function merge(output: Conversion, input: Conversion): { components: Record<string, JsonSchema>; inputId: (id: string) => string } {
  const split = new Set<string>();
  const inputId = (id: string) => (split.has(id) ? `${id}Input` : id);
  for (let changed = true; changed; ) {
    changed = false;
    for (const [id, schema] of Object.entries(input.components)) {
      const outputSide = output.components[id];
      if (split.has(id) || outputSide === undefined) continue;
      if (!isDeepStrictEqual(renameRefs(schema, inputId), outputSide)) {
        split.add(id);
        changed = true;
      }
    }
  }
  const components: Record<string, JsonSchema> = { ...output.components };
  for (const [id, schema] of Object.entries(input.components)) {
    const name = inputId(id);
    if (split.has(id) && name in output.components) throw new Error(`OpenAPI: the input side of ${id} cannot be named ${name}: that name is taken`);
    components[name] = renameRefs(schema, inputId);
  }
  return { components, inputId };
}

/** Keeps the components that the document refers to, directly or through other components. */
function prune(document: OpenApiDocument): void {
  const keep = new Set<string>();
  const pending = [...refsIn(document.paths), ...refsIn(document.components.responses)];
  while (pending.length > 0) {
    const ref = pending.pop() as string;
    if (!ref.startsWith(SCHEMA_REF_PREFIX)) continue;
    const id = ref.slice(SCHEMA_REF_PREFIX.length);
    if (keep.has(id)) continue;
    keep.add(id);
    pending.push(...refsIn(document.components.schemas[id]));
  }
  for (const id of Object.keys(document.components.schemas)) if (!keep.has(id)) delete document.components.schemas[id];
}

function parametersOf(route: Route): OpenApiParameter[] {
  const path = pathParamsOf(route.path).map(
    (name): OpenApiParameter => ({
      name,
      in: 'path',
      required: true,
      description: name === 'account' ? 'The account id' : `The ${name} id (the last segment of its name)`,
      schema: { type: 'string' },
    }),
  );
  const query = (route.queryParams ?? []).map((q): OpenApiParameter => {
    const scalar: JsonSchema = { type: q.type, ...(q.format ? { format: q.format } : {}) };
    return {
      name: q.name,
      in: 'query',
      required: false,
      description: q.description,
      schema: q.repeated ? { type: 'array', items: scalar } : scalar,
      ...(q.repeated ? { style: 'form' as const, explode: true } : {}),
    };
  });
  return [...path, ...query];
}

/** The OpenAPI 3.1 document of `routes`; `named` gives shared schemas their component names (default: src/api/schemas.ts's). */
export function buildOpenApi(routes: readonly Route[], named: readonly NamedSchema[] = namedApiSchemas): OpenApiDocument {
  const responses = routes.flatMap((r) => (r.response ? [{ schema: r.response, fallbackId: `${r.operationId}Response` }] : []));
  const bodies = routes.flatMap((r) => (r.body ? [{ schema: r.body, fallbackId: `${r.operationId}Request` }] : []));
  const output = convert('output', named, [...responses, { schema: errorSchema, fallbackId: ERROR_COMPONENT }]);
  const input = convert('input', named, bodies);
  const { components, inputId } = merge(output, input);

  const errorId = output.idOf.get(errorSchema) ?? ERROR_COMPONENT;
  const errorResponses: Record<string, OpenApiResponse> = {};
  for (const { name, description } of Object.values(ERROR_RESPONSES)) {
    errorResponses[name] = { description, content: { 'application/json': { schema: schemaRef(errorId) } } };
  }

  const paths: Record<string, OpenApiPathItem> = {};
  const operationIds = new Set<string>();
  for (const route of routes) {
    const method = route.method.toLowerCase() as OpenApiMethod;
    const item = (paths[route.path] ??= {});
    if (item[method]) throw new Error(`OpenAPI: ${route.method} ${route.path} is in the route table twice`);
    if (operationIds.has(route.operationId)) throw new Error(`OpenAPI: operationId ${route.operationId} is used twice`);
    operationIds.add(route.operationId);

    const ok: OpenApiResponse = { description: 'OK' };
    if (route.response) {
      const id = output.idOf.get(route.response) as string;
      ok.content = { [route.responseMediaType ?? 'application/json']: { schema: schemaRef(id) } };
    }
    const operation: OpenApiOperation = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      parameters: parametersOf(route),
      responses: { '200': ok },
      security: route.auth ? [{ bearer: [] }] : [],
    };
    if (route.body) {
      const id = inputId(input.idOf.get(route.body) as string);
      operation.requestBody = { required: true, content: { 'application/json': { schema: schemaRef(id) } } };
    }
    for (const [status, { name }] of Object.entries(ERROR_RESPONSES)) {
      if (status === '401' && !route.auth) continue;
      operation.responses[status] = { $ref: `${RESPONSE_REF_PREFIX}${name}` };
    }
    item[method] = operation;
  }

  const document: OpenApiDocument = {
    openapi: '3.1.0',
    info: { title: 'batchd', version: packageJson.version, description: packageJson.description },
    tags: [...new Set(routes.map((r) => r.tag))].map((name) => ({ name })),
    paths,
    components: {
      schemas: components,
      responses: errorResponses,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API key: Authorization: Bearer <key>' } },
    },
  };
  prune(document);
  return document;
}

/** Serves the document of `routes` at `GET /openapi.json` (no key needed); returns it. */
export function mountOpenApi(app: Express, routes: readonly Route[]): OpenApiDocument {
  const document = buildOpenApi(routes);
  app.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  return document;
}
