/**
 * `GET /metrics` behind its own bearer token (METRICS_TOKEN, not an API key: a scraper reads every
 * account's figures), or on a listener of its own (METRICS_PORT, the Prometheus convention), where the
 * token is asked only when METRICS_TOKEN is set explicitly. A missing or wrong token is 401 in the
 * contract's shape.
 */
import { timingSafeEqual } from 'node:crypto';
import { type Server } from 'node:http';
import express, { type RequestHandler } from 'express';
import { ApiError } from '../domain/errors';
import { bearerKey, sha256 } from './auth';
import { type Metrics } from './metrics';

/** The handler of GET /metrics; `token` undefined serves anyone who reaches the listener. */
export function metricsHandler(metrics: Metrics, token: string | undefined): RequestHandler {
  const expected = token === undefined ? undefined : sha256(token);
  return (req, res, next) => {
    if (expected) {
      const presented = bearerKey(req.headers.authorization);
      if (!presented || !timingSafeEqual(sha256(presented), expected)) {
        const err = new ApiError('UNAUTHENTICATED', 'GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>" (the token is in DATA_DIR/metrics-token unless METRICS_TOKEN is set)');
        res.setHeader('WWW-Authenticate', 'Bearer');
        res.status(err.httpStatus).json(err.toBody());
        return;
      }
    }
    metrics.render().then((text) => res.type(metrics.contentType).send(text), next);
  };
}

/** A listener that serves only /metrics (and 404 in the contract's shape for anything else). */
export async function listenMetrics(handler: RequestHandler, host: string, port: number): Promise<Server> {
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', handler);
  app.use((req, res) => {
    const err = new ApiError('NOT_FOUND', `no such path: ${req.method} ${req.path} (this listener serves GET /metrics only)`);
    res.status(err.httpStatus).json(err.toBody());
  });
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, () => resolve(server));
    server.once('error', reject);
  });
}
