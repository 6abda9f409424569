/**
 * `GET /v1/accounts/{account}/batchJobs/{batchJob}:followLogs` (beyond the contract): the job's log
 * lines as server-sent events, oldest first — everything so far, then each new line as it is stored —
 * ending with an `end` event once the job has ended and every line has been sent (or when it is
 * deleted). `ranks` (repeated) narrows it to some ranks.
 *
 *   curl -N -H "Authorization: Bearer $KEY" "$API/v1/accounts/default/batchJobs/my-job:followLogs"
 */
import { isTerminal } from '../domain/batch-job';
import { ApiError } from '../domain/errors';
import { type LogStore } from '../store/log-store';
import { type BatchJobService } from './batch-job-service';
import { type Route } from './routes';
import { logEventStreamSchema } from './schemas';

const POLL_MS = 250;
const KEEPALIVE_MS = 15_000;

function ranksOf(raw: unknown): number[] | undefined {
  if (raw === undefined) return undefined;
  return (Array.isArray(raw) ? raw : [raw]).map((v) => {
    if (typeof v !== 'string' || !/^\d+$/.test(v)) throw ApiError.invalidField('ranks', `"${String(v)}" is not a rank number`);
    return Number(v);
  });
}

export function logFollowRoutes(service: BatchJobService, logs: LogStore): Route[] {
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
      queryParams: [{ name: 'ranks', description: 'Only these ranks (repeat the parameter).', type: 'integer', repeated: true }],
      handler: async ({ principal, params, query, req, res }) => {
        const id = params.batchJob ?? '';
        await service.exists(principal, id);
        const ranks = ranksOf(query.ranks);
        res.status(200);
        res.setHeader('content-type', 'text/event-stream; charset=utf-8');
        res.setHeader('cache-control', 'no-cache');
        res.setHeader('x-accel-buffering', 'no');
        res.flushHeaders();

        let open = true;
        req.on('close', () => {
          open = false;
        });
        let after: [string, number, number] | undefined;
        let lastWrite = Date.now();
        const send = (event: string, data: unknown) => {
          res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
          lastWrite = Date.now();
        };
        while (open) {
          // Read the job's state before the lines: a job seen ended has written every line it will.
          let ended: { state: string; status: string } | undefined;
          try {
            const job = await service.exists(principal, id);
            if (isTerminal(job.state)) ended = { state: job.state, status: job.status };
          } catch {
            ended = { state: 'DELETED', status: 'the job was deleted' };
          }
          for (;;) {
            const page = logs.query({ job: `accounts/${principal.account}/batchJobs/${id}`, fromHead: true, pageSize: 1000, ...(ranks ? { ranks } : {}), ...(after ? { after } : {}) });
            for (const e of page.entries) send('log', { logTime: e.time, rank: e.rank, message: e.message });
            const last = page.entries[page.entries.length - 1];
            if (last) after = [last.time, last.rank, last.seq];
            if (!page.next) break;
          }
          if (ended) {
            send('end', ended);
            break;
          }
          if (Date.now() - lastWrite > KEEPALIVE_MS) {
            res.write(': keep-alive\n\n');
            lastWrite = Date.now();
          }
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
        res.end();
        return undefined;
      },
    },
  ];
}
