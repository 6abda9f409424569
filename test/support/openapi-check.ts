/**
 * Checks API responses against the generated OpenAPI document (src/api/openapi.ts), built once per
 * process from the same route table the service uses. The harness's `Api.call` runs every response
 * through `checkApiResponse` unless OPENAPI_VALIDATE=0, so every integration test also checks that
 * what the API answers is what its document says:
 *
 * - a path under /v1/ is matched to its route template; other paths (/healthz, /metrics, …) are not
 *   documented and not checked;
 * - 200 → the route's response schema (streams are skipped); ≥ 400 → the error schema; any other
 *   status is undocumented and a mismatch;
 * - a request with a readMask (not `*`) may omit any field, so its 200 is checked without `required`.
 *
 * A mismatch throws an Error naming the route, the status and each validation error.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { documentedRoutes } from '../../src/api/api-routes';
import { buildOpenApi, ERROR_RESPONSES, type JsonSchema, type OpenApiDocument, type OpenApiMethod, type OpenApiResponse, SCHEMA_REF_PREFIX } from '../../src/api/openapi';
import { type CompiledRoute, compileRoute, matchRoute } from '../../src/api/routes';

const COMPONENTS_ID = 'urn:batchd:openapi:components';

/** A copy of `value` whose component refs point into the schema Ajv holds the components in. */
function ajvRefs<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => ajvRefs(v)) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: JsonSchema = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = key === '$ref' && typeof v === 'string' && v.startsWith(SCHEMA_REF_PREFIX) ? `${COMPONENTS_ID}#/$defs/${v.slice(SCHEMA_REF_PREFIX.length)}` : ajvRefs(v);
  }
  return out as T;
}

/** A copy of a schema without any `required` list: what a readMask response must still satisfy. */
function withoutRequired<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => withoutRequired(v)) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: JsonSchema = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'required' && Array.isArray(v)) continue;
    out[key] = withoutRequired(v);
  }
  return out as T;
}

/** Ajv (JSON Schema 2020-12, strict, with formats) holding the document's components. */
export function openApiAjv(document: OpenApiDocument, options: { relaxRequired?: boolean } = {}): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  const components = ajvRefs(document.components.schemas);
  ajv.addSchema({ $id: COMPONENTS_ID, $defs: options.relaxRequired ? withoutRequired(components) : components });
  return ajv;
}

/** Compiles a schema of the document (component refs included) with `ajv`. */
export function compileDocumentSchema(ajv: Ajv2020, schema: JsonSchema): ValidateFunction {
  return ajv.compile(ajvRefs(schema));
}

export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .map((e) => {
      const extra = e.keyword === 'additionalProperties' ? ` "${String((e.params as { additionalProperty?: unknown }).additionalProperty)}"` : '';
      return `${e.instancePath || '(body)'} ${e.message ?? e.keyword}${extra}`;
    })
    .join('; ');
}

export interface ResponseToCheck {
  method: string;
  /** The request path with its query string. */
  path: string;
  status: number;
  contentType: string | null;
  text: string;
}

export class OpenApiResponseChecker {
  private readonly routes: CompiledRoute[];
  private readonly strict: Ajv2020;
  private readonly relaxed: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(readonly document: OpenApiDocument = buildOpenApi(documentedRoutes())) {
    this.routes = documentedRoutes().map(compileRoute);
    this.strict = openApiAjv(document);
    this.relaxed = openApiAjv(document, { relaxRequired: true });
  }

  private validator(schema: JsonSchema, relaxed: boolean): ValidateFunction {
    const key = `${relaxed ? 'relaxed' : 'strict'} ${JSON.stringify(schema)}`;
    let v = this.validators.get(key);
    if (!v) {
      v = compileDocumentSchema(relaxed ? this.relaxed : this.strict, relaxed ? withoutRequired(schema) : schema);
      this.validators.set(key, v);
    }
    return v;
  }

  /** Throws when the response does not match the document; returns what it checked against, or undefined when nothing. */
  check(r: ResponseToCheck): string | undefined {
    const url = new URL(r.path, 'http://api.invalid');
    if (!url.pathname.startsWith('/v1/')) return undefined;
    const method = r.method.toUpperCase();
    const matches = matchRoute(this.routes, url.pathname).matches;
    const route = matches.find((m) => m.route.method === method)?.route;
    const where = route ? `${method} ${route.path} (${route.operationId})` : `${method} ${url.pathname} (no documented route)`;
    const fail = (problem: string): never => {
      throw new Error(`OpenAPI mismatch: ${where} answered ${r.status}: ${problem}; body: ${r.text.slice(0, 2000)}`);
    };
    const mediaType = (r.contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';

    let schema: JsonSchema;
    let relaxed = false;
    let against: string;
    if (r.status >= 400) {
      const errorResponse = this.document.components.responses[ERROR_RESPONSES[String(r.status)]?.name ?? 'BadRequest'];
      schema = errorResponse?.content?.['application/json']?.schema ?? fail('the document has no error schema');
      against = 'the error schema';
    } else if (r.status === 200) {
      if (!route) return fail('200 on a path and method the document does not have');
      const ok = this.document.paths[route.path]?.[method.toLowerCase() as OpenApiMethod]?.responses['200'] as OpenApiResponse | undefined;
      const content = ok?.content ?? fail('the document has no 200 response for this route');
      if (content['text/event-stream']) return undefined; // streams are not checked here
      schema = content[mediaType]?.schema ?? fail(`the content type "${r.contentType ?? 'none'}" is not documented (${Object.keys(content).join(', ')})`);
      const readMask = url.searchParams.get('readMask') ?? url.searchParams.get('read_mask');
      relaxed = readMask !== null && readMask.trim() !== '' && readMask.trim() !== '*';
      against = `its 200 schema${relaxed ? ' (readMask: required fields relaxed)' : ''}`;
    } else {
      return fail(`status ${r.status} is not documented: only 200 and the error statuses are`);
    }

    if (mediaType !== 'application/json') return fail(`expected application/json, got "${r.contentType ?? 'none'}"`);
    let body: unknown;
    try {
      body = JSON.parse(r.text);
    } catch {
      return fail('the body is not JSON');
    }
    const validate = this.validator(schema, relaxed);
    if (!validate(body)) fail(`does not match ${against}: ${describeErrors(validate.errors)}`);
    return against;
  }
}

/** A concrete path for a template: each `{param}` becomes `probe-<param>`. */
export function concretePath(template: string): string {
  return template.replace(/\{([a-zA-Z]+)\}/g, (_m, name: string) => `probe-${name.toLowerCase()}`);
}

let shared: OpenApiResponseChecker | undefined;

/** The process's checker, built on first use. */
export function responseChecker(): OpenApiResponseChecker {
  shared ??= new OpenApiResponseChecker();
  return shared;
}

/** Whether `Api.call` checks responses: on unless OPENAPI_VALIDATE=0. */
export function openApiValidationEnabled(): boolean {
  return process.env.OPENAPI_VALIDATE !== '0';
}

export function checkApiResponse(r: ResponseToCheck): void {
  if (openApiValidationEnabled()) responseChecker().check(r);
}
