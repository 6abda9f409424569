/**
 * The Express facade: JSON in and out, bearer auth, account scoping, the route table, and errors in
 * the contract's shape on every path (malformed JSON, wrong content type, oversized bodies, malformed
 * percent-escapes and unknown routes included), and the per-key request rate (429 with Retry-After).
 * Nothing here holds durable state; everything durable is in Temporal or the stores.
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { type Logger } from 'pino';
import { ApiError } from '../domain/errors';
import { withCallTimeout } from '../temporal/connection';
import { bearerKey, type KeyRing } from './auth';
import { fromTemporal } from './errors';
import { storeUnavailable } from '../store/store-errors';
import { type KeyRateLimiter } from './rate-limit';
import { type CompiledRoute, compileRoute, matchRoute, type Route } from './routes';

export interface HealthCheck {
  name: string;
  check(): Promise<string | undefined>;
}

export interface AppDeps {
  keys: KeyRing;
  routes: Route[];
  health: HealthCheck[];
  logger: Logger;
  maxBodyBytes: number;
  /** Called after each request with its route and outcome (metrics). */
  observe?: (route: string, method: string, status: number, seconds: number) => void;
  /** Extra plain routes (metrics, OpenAPI, streams) mounted before the API. */
  extra?: (app: express.Express) => void;
  /** The per-key request rate; no limit when absent. */
  rateLimiter?: KeyRateLimiter;
  /**
   * Temporal as requests meet it: while `problem()` says it is away, every /v1 request answers 503
   * UNAVAILABLE at once (with Retry-After) rather than wait out its calls' deadlines; otherwise each
   * Temporal call a request makes without a deadline of its own gets callTimeoutMs.
   */
  temporal?: { problem(): string | undefined; callTimeoutMs: number };
}

/** Retry-After of a 503 while Temporal is away: about one probe of the monitor. */
const TEMPORAL_RETRY_AFTER_SECONDS = 2;

function sendError(res: Response, err: ApiError): void {
  res.status(err.httpStatus).json(err.toBody());
}

export function createApp(deps: AppDeps): express.Express {
  const routes: CompiledRoute[] = deps.routes.map(compileRoute);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    const requestId = randomUUID();
    res.locals.requestId = requestId;
    res.setHeader('x-request-id', requestId);
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = (res.locals.route as string | undefined) ?? 'unmatched';
      deps.observe?.(route, req.method, res.statusCode, seconds);
      deps.logger.debug({ requestId, method: req.method, route, status: res.statusCode, ms: Math.round(seconds * 1000) }, 'request');
    });
    next();
  });

  app.get('/healthz', async (_req, res) => {
    const failures: string[] = [];
    const checks: Record<string, string> = {};
    await Promise.all(
      deps.health.map(async (h) => {
        // A check that throws is reported in words; what it threw (an upstream's raw error) goes to the log only.
        const problem = await h.check().catch((err: unknown) => {
          deps.logger.warn({ check: h.name, err: String(err) }, 'readiness check failed');
          return 'could not be checked (the service log says why)';
        });
        checks[h.name] = problem ?? 'ok';
        if (problem) failures.push(`${h.name}: ${problem}`);
      }),
    );
    if (failures.length === 0) res.status(200).json({ status: 'ok', checks });
    else res.status(503).json({ ...new ApiError('UNAVAILABLE', `not ready: ${failures.join('; ')}`).toBody(), checks });
  });

  deps.extra?.(app);

  // Bodies: JSON only, bounded; everything that goes wrong here is the client's 400.
  app.use('/v1', (req, _res, next) => {
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && !req.is(['application/json', 'application/*+json'])) {
      next(ApiError.invalidField('(body)', `Content-Type must be application/json, not "${req.headers['content-type'] ?? 'none'}"`));
      return;
    }
    next();
  });
  app.use('/v1', express.json({ limit: deps.maxBodyBytes, strict: false, type: ['application/json', 'application/*+json'] }));

  app.use('/v1', async (req: Request, res: Response, next: NextFunction) => {
    try {
      const path = req.baseUrl + req.path;
      const { matches, malformed } = matchRoute(routes, path);
      if (matches.length === 0) throw new ApiError('NOT_FOUND', `no such API path: ${req.method} ${path}`);
      if (malformed) throw malformed;
      const match = matches.find((m) => m.route.method === req.method);
      if (!match) {
        res.setHeader('Allow', [...new Set(matches.map((m) => m.route.method))].join(', '));
        throw Object.assign(new ApiError('UNIMPLEMENTED', `method ${req.method} is not allowed on ${path}`), { httpStatusOverride: 405 });
      }
      res.locals.route = `${match.route.method} ${match.route.path}`;
      const key = bearerKey(req.headers.authorization);
      const principal = key ? deps.keys.authenticate(key) : undefined;
      if (!principal) {
        throw new ApiError('UNAUTHENTICATED', key ? 'the API key is not valid' : 'missing API key: send "Authorization: Bearer <key>"');
      }
      deps.rateLimiter?.check(`${principal.account}/${principal.email}/${principal.keyId}`);
      const account = match.params.account;
      if (account !== undefined && account !== principal.account) {
        throw ApiError.permissionDenied(`this API key belongs to account "${principal.account}" and cannot access account "${account}"`);
      }
      const temporal = deps.temporal;
      const away = temporal?.problem();
      if (away) throw Object.assign(new ApiError('UNAVAILABLE', away), { retryAfterSeconds: TEMPORAL_RETRY_AFTER_SECONDS });
      const handle = () => match.route.handler({ principal, params: match.params, query: req.query, body: req.body as unknown, req, res });
      const result = temporal ? await withCallTimeout(temporal.callTimeoutMs, handle) : await handle();
      if (result !== undefined && !res.headersSent) res.status(200).json(result);
    } catch (err) {
      next(err);
    }
  });

  app.use((req, _res, next) => next(new ApiError('NOT_FOUND', `no such path: ${req.method} ${req.path}`)));

  // The one error handler: known errors in the contract's shape, everything else INTERNAL without details.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) return;
    const known = err instanceof ApiError ? err : (bodyParserError(err) ?? fromTemporal(err) ?? storeUnavailable(err));
    if (known) {
      const retryAfter = (err as { retryAfterSeconds?: number }).retryAfterSeconds ?? (known as { retryAfterSeconds?: number }).retryAfterSeconds;
      if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter));
      const override = (err as { httpStatusOverride?: number }).httpStatusOverride;
      if (override) res.status(override).json(known.toBody());
      else sendError(res, known);
      return;
    }
    const requestId = res.locals.requestId as string;
    deps.logger.error({ err, requestId, method: req.method, path: req.path }, 'unhandled error');
    sendError(res, new ApiError('INTERNAL', `internal error (request id ${requestId}); it has been logged`));
  });
  return app;
}

/** body-parser's errors carry a `type`; they are all the client's doing. */
function bodyParserError(err: unknown): ApiError | undefined {
  const e = err as { type?: unknown; limit?: unknown; message?: unknown };
  switch (e?.type) {
    case 'entity.parse.failed':
      return ApiError.invalidField('(body)', `malformed JSON: ${String(e.message)}`);
    case 'entity.too.large':
      return ApiError.invalidField('(body)', `the request body is larger than the limit of ${String(e.limit)} bytes`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return ApiError.invalidField('(body)', `unsupported body encoding: ${String(e.message)}`);
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return ApiError.invalidField('(body)', `the request body could not be read: ${String(e.message)}`);
    default:
      return undefined;
  }
}
