/**
 * `GET /v1/accounts/{account}/batchJobs/{batchJob}:followLogs` (beyond the contract): the job's log
 * lines as server-sent events, oldest first — everything so far, then each new line as it is stored —
 * ending with an `end` event once the job has ended and every line has been sent (or when it is
 * deleted). `ranks` (repeated) narrows it to some ranks, `attempt` to one attempt of the job; each
 * line says its attempt.
 *
 * A stream cannot hurt the service: it writes no faster than the client reads (it waits for the
 * socket to drain), yields to other requests between pages, a stream of a job that has not started
 * ends after LOG_STREAM_IDLE_MS without a line (its `end` event carries the job's waiting state), and
 * an account holds at most MAX_LOG_STREAMS_PER_ACCOUNT streams in this API process (429 past it).
 *
 *   curl -N -H "Authorization: Bearer $KEY" "$API/v1/accounts/default/batchJobs/my-job:followLogs"
 */
import { once } from 'node:events';
import { type Request, type Response } from 'express';
import { isBatchJobState, isTerminal } from '../domain/batch-job';
import { ApiError } from '../domain/errors';
import { type LogCursor, parseLogAttempt, parseLogRanks } from '../domain/log-query';
import { cursorOf, type LogStore } from '../store/log-store';
import { type LogReadLimits } from './api-routes';
import { type BatchJobService } from './batch-job-service';
import { type Route } from './routes';
import { logEventStreamSchema } from './schemas';

const POLL_MS = 250;
const KEEPALIVE_MS = 15_000;
const PAGE = 1000;
/** States in which a job has not started yet: its stream may end for idleness. */
const WAITING = new Set(['CREATING', 'QUEUED', 'PENDING']);

/** Open streams per account, in this process. */
class StreamCounter {
  private readonly open = new Map<string, number>();

  constructor(private readonly limit: number) {}

  /** Takes a place for the account, or throws 429 naming the limit; the returned function gives it back (once). */
  acquire(account: string): () => void {
    const n = this.open.get(account) ?? 0;
    if (n >= this.limit) {
      throw new ApiError(
        'RESOURCE_EXHAUSTED',
        `limit MAX_LOG_STREAMS_PER_ACCOUNT reached: account "${account}" has ${n} open :followLogs streams; the limit is ${this.limit}. Close one, or page with :getLogs`,
      );
    }
    this.open.set(account, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(account) ?? 1) - 1;
      if (left > 0) this.open.set(account, left);
      else this.open.delete(account);
    };
  }
}

/** Writes to the socket; when its buffer is full, waits for it to drain (or for the client to go). */
async function write(res: Response, text: string): Promise<void> {
  if (res.destroyed || res.write(text)) return;
  // Both listeners go once either fires, so a long stream does not pile up 'close' listeners.
  const stop = new AbortController();
  try {
    await Promise.race([once(res, 'drain', { signal: stop.signal }), once(res, 'close', { signal: stop.signal })]);
  } finally {
    stop.abort();
  }
}

const yieldToOthers = () => new Promise<void>((resolve) => setImmediate(resolve));

export function logFollowRoutes(service: BatchJobService, logs: LogStore, limits: LogReadLimits): Route[] {
  const streams = new StreamCounter(limits.streamsPerAccount);
  return [
    {
      method: 'GET',
      path: '/v1/accounts/{account}/batchJobs/{batchJob}:followLogs',
      operationId: 'Batchd_FollowBatchJobLogs',
      summary: 'Follow a job’s logs live as server-sent events (`log` events, then one `end` event when the job has ended)',
      tag: 'BatchJobs',
      auth: true,
      response: logEventStreamSchema,
      responseMediaType: 'text/event-stream',
      queryParams: [
        { name: 'ranks', description: 'Only these ranks (repeat the parameter).', type: 'integer', repeated: true },
        { name: 'attempt', description: 'Only the lines of this attempt of the job (1 for its first run, 2 for its first retry, …; batchd extension).', type: 'integer' },
      ],
      handler: async ({ principal, params, query, req, res }) => {
        const id = params.batchJob ?? '';
        await service.exists(principal, id);
        const ranks = parseLogRanks(query.ranks);
        const attempt = parseLogAttempt(query.attempt);
        const release = streams.acquire(principal.account);
        try {
          await streamLogs(req, res, {
            logs,
            limits,
            job: `accounts/${principal.account}/batchJobs/${id}`,
            ...(ranks ? { ranks } : {}),
            ...(attempt !== undefined ? { attempt } : {}),
            state: async () => {
              try {
                const job = await service.exists(principal, id);
                return { state: job.state, status: job.status };
              } catch {
                return { state: 'DELETED', status: 'the job was deleted' };
              }
            },
          });
        } finally {
          release();
        }
        return undefined;
      },
    },
  ];
}

export interface StreamOptions {
  logs: LogStore;
  limits: LogReadLimits;
  job: string;
  ranks?: number[];
  attempt?: number;
  /** The job's state now (DELETED once it is gone). */
  state(): Promise<{ state: string; status: string }>;
}

/** The event stream of one job's logs, until the job ends, the client goes, or a waiting job stays silent too long. */
export async function streamLogs(req: Request, res: Response, o: StreamOptions): Promise<void> {
  res.status(200);
  res.setHeader('content-type', 'text/event-stream; charset=utf-8');
  res.setHeader('cache-control', 'no-cache');
  res.setHeader('x-accel-buffering', 'no');
  res.flushHeaders();

  let open = true;
  req.on('close', () => {
    open = false;
  });
  res.on('close', () => {
    open = false;
  });
  let after: LogCursor | undefined;
  let lastWrite = Date.now();
  let lastLine = Date.now();
  const send = async (event: string, data: unknown) => {
    await write(res, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    lastWrite = Date.now();
  };
  while (open) {
    // Read the job's state before the lines: a job seen ended has written every line it will.
    const now = await o.state();
    const ended = now.state === 'DELETED' || (isBatchJobState(now.state) && isTerminal(now.state));
    for (;;) {
      const page = await o.logs.query({
        job: o.job,
        fromHead: true,
        pageSize: PAGE,
        maxBytes: o.limits.pageMaxBytes,
        ...(o.ranks ? { ranks: o.ranks } : {}),
        ...(o.attempt !== undefined ? { attempt: o.attempt } : {}),
        ...(after ? { after } : {}),
      });
      for (const e of page.entries) {
        if (!open) break;
        await send('log', { logTime: e.time, rank: e.rank, message: e.message, attempt: e.attempt });
        after = cursorOf(e);
        lastLine = Date.now();
      }
      if (!page.next || !open) break;
      await yieldToOthers();
    }
    if (!open) break;
    if (ended) {
      await send('end', now);
      break;
    }
    if (WAITING.has(now.state) && Date.now() - lastLine >= o.limits.streamIdleMs) {
      const seconds = Math.round(o.limits.streamIdleMs / 1000);
      await send('end', { state: now.state, status: `${now.status} (the stream ended after ${seconds} s without a line while the job waits to start; follow again)` });
      break;
    }
    if (Date.now() - lastWrite > KEEPALIVE_MS) {
      await write(res, ': keep-alive\n\n');
      lastWrite = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  res.end();
}
