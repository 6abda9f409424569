/**
 * `POST /internal/v1/logs:ingest`: where agents on other machines deliver rank logs, as
 * `{"host": "<host id>", "entries": [...]}`. Guarded by the agents' shared token (not an API key: an
 * agent acts for the service, not for a user), checked before a byte of the body is read. Entries are
 * stored idempotently by (job, attempt, rank, seq), so a batch retried after a lost reply is stored
 * once. An entry without `attempt` (an agent or spool from before retries) is attempt 1.
 *
 * A host may only write the lines of ranks placed on it: each entry's (job, rank) must be in the job's
 * placement on the sending host (from the job workflow's getBatchJob query, cached). A job's retry may
 * place its ranks elsewhere, so a batch that the cached placement refuses is checked once more against
 * the job's placement now. A batch that breaks this is 403 and stores nothing. A body over the limit is 413,
 * which tells the shipper to split the batch; a line over MAX_LOG_LINE_BYTES is 400.
 */
import { timingSafeEqual } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { ApiError } from '../domain/errors';
import { HOST_ID_PATTERN } from '../domain/hosts';
import { MAX_LOG_LINE_BYTES } from '../domain/log-limits';
import { MAX_LOG_ATTEMPT } from '../domain/log-query';
import { parseOrThrow } from '../domain/validation';
import { type LogSink } from '../store/log-store';
import { bearerKey, sha256 } from './auth';

const entrySchema = z.strictObject({
  job: z.string().regex(/^accounts\/[^/]+\/batchJobs\/[^/]+$/, 'must be a batch job name'),
  attempt: z.number().int().min(1).max(MAX_LOG_ATTEMPT).default(1),
  rank: z.number().int().min(0),
  seq: z.number().int().min(0),
  time: z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, 'must be an RFC 3339 UTC time with milliseconds'),
  stream: z.enum(['stdout', 'stderr']),
  message: z.string().refine((m) => Buffer.byteLength(m, 'utf8') <= MAX_LOG_LINE_BYTES, `must be at most ${MAX_LOG_LINE_BYTES} bytes of UTF-8 (the shipper truncates longer lines)`),
});
const bodySchema = z.strictObject({
  host: z.string().regex(HOST_ID_PATTERN, 'must be the sending host’s id'),
  entries: z.array(entrySchema).max(5000),
});

/** Where a job's ranks run: rank → host, once placed; undefined for a job that does not exist or is not placed. */
export interface PlacementSource {
  rankHosts(jobName: string): Promise<ReadonlyMap<number, string> | undefined>;
}

export interface LogIngestOptions {
  token: string;
  sink: LogSink;
  /** MAX_BODY_BYTES: a batch may be up to four times it. */
  maxBodyBytes: number;
  placement: PlacementSource;
}

/** How many jobs' placements are remembered (the oldest is forgotten first). */
const PLACEMENT_CACHE = 10_000;

export function ingestLimitBytes(maxBodyBytes: number): number {
  return maxBodyBytes * 4;
}

export function mountLogIngest(app: Express, o: LogIngestOptions): void {
  const expected = sha256(o.token);
  const placements = new Map<string, ReadonlyMap<number, string>>();
  // One lookup per job at a time: batches of one job that arrive together share it (a closed job's is a replay).
  const inFlight = new Map<string, Promise<ReadonlyMap<number, string> | undefined>>();

  const lookUp = async (job: string): Promise<ReadonlyMap<number, string> | undefined> => {
    const found = await o.placement.rankHosts(job);
    if (found) {
      if (placements.size >= PLACEMENT_CACHE) placements.delete(placements.keys().next().value as string);
      placements.set(job, found);
    }
    return found;
  };
  /** The job's placement, cached unless `fresh` (a retry may have placed the job again since it was cached). */
  const rankHosts = (job: string, fresh = false): Promise<ReadonlyMap<number, string> | undefined> => {
    const cached = fresh ? undefined : placements.get(job);
    if (cached) return Promise.resolve(cached);
    if (fresh) placements.delete(job);
    let pending = inFlight.get(job);
    if (!pending) {
      pending = lookUp(job).finally(() => inFlight.delete(job));
      inFlight.set(job, pending);
    }
    return pending;
  };

  // The token first: a caller without it gets 401 before the body is read.
  const authenticate = (req: Request, res: Response, next: NextFunction) => {
    const presented = bearerKey(req.headers.authorization);
    if (!presented || !timingSafeEqual(sha256(presented), expected)) answer(res, new ApiError('UNAUTHENTICATED', 'missing or wrong agent token'));
    else next();
  };
  const json = express.json({ limit: ingestLimitBytes(o.maxBodyBytes) });
  const readBody = (req: Request, res: Response, next: NextFunction) => {
    json(req, res, (err?: unknown) => {
      if ((err as { type?: unknown } | undefined)?.type === 'entity.too.large') {
        // 413, not the API's 400: the shipper splits the batch and sends the halves.
        const tooLarge = ApiError.invalidField('(body)', `the batch is larger than the ingest limit of ${ingestLimitBytes(o.maxBodyBytes)} bytes; split it`);
        res.status(413).json(tooLarge.toBody());
        return;
      }
      next(err);
    });
  };

  app.post('/internal/v1/logs:ingest', authenticate, readBody, async (req, res, next) => {
    try {
      const { host, entries } = parseOrThrow(bodySchema, req.body);
      for (const job of new Set(entries.map((e) => e.job))) {
        const foreignTo = (hosts: ReadonlyMap<number, string> | undefined) => entries.find((e) => e.job === job && hosts?.get(e.rank) !== host);
        let hosts = await rankHosts(job);
        let foreign = foreignTo(hosts);
        if (foreign && hosts) {
          hosts = await rankHosts(job, true);
          foreign = foreignTo(hosts);
        }
        if (foreign) {
          throw ApiError.permissionDenied(
            hosts
              ? `host ${host} may not write the logs of rank ${foreign.rank} of ${job}: that rank is not placed on it; the batch was refused`
              : `host ${host} may not write the logs of ${job}: the job does not exist or has no ranks placed; the batch was refused`,
          );
        }
      }
      await o.sink.append(entries);
      res.status(200).json({ accepted: entries.length });
    } catch (err) {
      // The endpoint answers its own refusals, wherever it is mounted; anything else is the app's 500.
      if (err instanceof ApiError) answer(res, err);
      else next(err);
    }
  });
}

function answer(res: Response, err: ApiError): void {
  res.status(err.httpStatus).json(err.toBody());
}
