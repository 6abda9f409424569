/**
 * `POST /internal/v1/logs:ingest`: where agents on other machines deliver rank logs. Guarded by the
 * agents' shared token (not an API key: an agent acts for the service, not for a user). Entries are
 * stored idempotently by (job, rank, seq), so a batch retried after a lost reply is stored once.
 */
import { timingSafeEqual } from 'node:crypto';
import express, { type Express } from 'express';
import { z } from 'zod';
import { ApiError } from '../domain/errors';
import { parseOrThrow } from '../domain/validation';
import { type LogSink } from '../store/log-store';
import { bearerKey, sha256 } from './auth';

const entrySchema = z.strictObject({
  job: z.string().regex(/^accounts\/[^/]+\/batchJobs\/[^/]+$/, 'must be a batch job name'),
  rank: z.number().int().min(0),
  seq: z.number().int().min(0),
  time: z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, 'must be an RFC 3339 UTC time with milliseconds'),
  stream: z.enum(['stdout', 'stderr']),
  message: z.string().max(70_000),
});
const bodySchema = z.strictObject({ entries: z.array(entrySchema).max(5000) });

export function mountLogIngest(app: Express, token: string, sink: LogSink, maxBodyBytes: number): void {
  const expected = sha256(token);
  app.post('/internal/v1/logs:ingest', express.json({ limit: maxBodyBytes * 4 }), async (req, res, next) => {
    try {
      const presented = bearerKey(req.headers.authorization);
      if (!presented || !timingSafeEqual(sha256(presented), expected)) throw new ApiError('UNAUTHENTICATED', 'missing or wrong agent token');
      const { entries } = parseOrThrow(bodySchema, req.body);
      await sink.append(entries);
      res.status(200).json({ accepted: entries.length });
    } catch (err) {
      next(err);
    }
  });
}
