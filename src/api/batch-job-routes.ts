/** HTTP bindings of the batch-job API: each route parses its request, calls the service, shapes the reply. */
import { type BatchJob } from '../domain/batch-job';
import { ApiError } from '../domain/errors';
import { normalizeTimestamp } from '../domain/filter';
import { parsePageSize } from '../domain/list-params';
import { logCursorOf, parseLogAttempt, parseLogRanks } from '../domain/log-query';
import { type LogStore } from '../store/log-store';
import { type BatchJobService } from './batch-job-service';
import { applyReadMask, nextPageToken, parseListRequest, singleParam } from './list-request';
import { decodePageToken, encodePageToken, queryFingerprint } from './page-token';
import { type Route } from './routes';
import {
  batchDeleteRequestSchema,
  batchJobPlacementSchema,
  batchJobWireSchema,
  createBatchJobRequestSchema,
  createBatchJobResponseSchema,
  emptySchema,
  getBatchJobLogsResponseSchema,
  listBatchJobsResponseSchema,
  listParams,
  readMaskParam,
  updateBatchJobRequestSchema,
  updateMaskParam,
} from './schemas';

const JOB_FIELDS = [
  'name', 'displayName', 'createTime', 'startTime', 'endTime', 'createdBy', 'nodePoolId', 'environmentId', 'snapshotId',
  'numRanks', 'envVars', 'role', 'pythonExecutor', 'notebookExecutor', 'shellExecutor', 'imageRef', 'annotations',
  'state', 'status', 'shared', 'updateTime',
] as const;

export const LOG_PAGE = { default: 100, max: 10_000 };

function parseBool(name: string, raw: string | undefined): boolean | undefined {
  if (raw === undefined) return undefined;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw ApiError.invalidField(name, 'must be true or false');
}

/** `logPageMaxBytes`: most bytes of log text in one `:getLogs` page (LOG_PAGE_MAX_BYTES). */
export function batchJobRoutes(service: BatchJobService, logs: LogStore, pageSecret: Buffer, logPageMaxBytes: number): Route[] {
  const base = '/v1/accounts/{account}/batchJobs';
  return [
    {
      method: 'POST',
      path: base,
      operationId: 'Gateway_CreateBatchJob',
      summary:
        'Create a batch job (optional query parameter batchJobId chooses its id). With validateOnly=true (AIP-163), run every check and create nothing: ' +
        'the answer is the job as it would be created plus dryRun (batchd extension): whether it would start now and where, or its place in the queue, ' +
        'what it waits for and an estimated start',
      tag: 'BatchJobs',
      auth: true,
      body: createBatchJobRequestSchema,
      response: createBatchJobResponseSchema,
      queryParams: [
        { name: 'batchJobId', description: 'The id of the new job (1-63 of a-z, 0-9, -; starts with a letter). Server-assigned when absent.', type: 'string' },
        {
          name: 'validateOnly',
          description:
            'true: a dry run (AIP-163). Every check of create runs with the same errors (a job that can never fit is 400, a taken batchJobId 409), nothing is created, ' +
            'and the answer adds dryRun. 503 when the node pool does not answer. Also accepted as validate_only. Default false.',
          type: 'boolean',
        },
      ],
      handler: ({ principal, query, body }) => {
        const batchJobId = singleParam(query, 'batchJobId');
        const validateOnly = parseBool('validateOnly', singleParam(query, 'validateOnly') ?? singleParam(query, 'validate_only')) ?? false;
        return validateOnly ? service.dryRunCreate(principal, body, batchJobId) : service.create(principal, body, batchJobId);
      },
    },
    {
      method: 'GET',
      path: base,
      operationId: 'Gateway_ListBatchJobs',
      summary: 'List batch jobs (filter, orderBy, pageSize, pageToken, readMask)',
      tag: 'BatchJobs',
      auth: true,
      response: listBatchJobsResponseSchema,
      queryParams: listParams('batchJobs'),
      handler: async ({ principal, query }) => {
        const request = parseListRequest('batchJobs', principal.account, query, pageSecret);
        const page = await service.list(principal, request);
        return {
          batchJobs: page.jobs.map((j) => applyReadMask<BatchJob>(j, request.readMask, JOB_FIELDS)),
          nextPageToken: nextPageToken(pageSecret, request, page.nextAfter),
          totalSize: page.totalSize,
        };
      },
    },
    {
      method: 'GET',
      path: `${base}/{batchJob}`,
      operationId: 'Gateway_GetBatchJob',
      summary: 'Get a batch job',
      tag: 'BatchJobs',
      auth: true,
      response: batchJobWireSchema,
      queryParams: [readMaskParam],
      handler: async ({ principal, params, query }) =>
        applyReadMask(await service.get(principal, params.batchJob ?? ''), singleParam(query, 'readMask'), JOB_FIELDS),
    },
    {
      method: 'PATCH',
      path: `${base}/{batchJob}`,
      operationId: 'Gateway_UpdateBatchJob',
      summary: 'Update displayName, annotations or shared (optional updateMask, AIP-134), in any state but DELETING',
      tag: 'BatchJobs',
      auth: true,
      body: updateBatchJobRequestSchema,
      response: batchJobWireSchema,
      queryParams: [updateMaskParam('displayName, annotations, shared')],
      handler: ({ principal, params, query, body }) =>
        service.update(principal, params.batchJob ?? '', body, singleParam(query, 'updateMask') ?? singleParam(query, 'update_mask')),
    },
    {
      method: 'DELETE',
      path: `${base}/{batchJob}`,
      operationId: 'Gateway_DeleteBatchJob',
      summary: 'Delete a batch job (a live job is stopped first; DELETING until it is gone)',
      tag: 'BatchJobs',
      auth: true,
      response: emptySchema,
      handler: async ({ principal, params }) => {
        await service.delete(principal, params.batchJob ?? '');
        return {};
      },
    },
    {
      method: 'POST',
      path: `${base}/{batchJob}:cancel`,
      operationId: 'Gateway_CancelBatchJob',
      summary: 'Cancel a CREATING, QUEUED, PENDING or RUNNING batch job',
      tag: 'BatchJobs',
      auth: true,
      body: emptySchema,
      response: emptySchema,
      handler: async ({ principal, params, body }) => {
        if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length > 0)) {
          throw ApiError.invalidField('(body)', 'the cancel body must be the empty object {}');
        }
        await service.cancel(principal, params.batchJob ?? '');
        return {};
      },
    },
    {
      method: 'GET',
      path: `${base}/{batchJob}:getLogs`,
      operationId: 'Gateway_GetBatchJobLogs',
      summary: 'Read the logs of a batch job: newest first unless startFromHead; a page ends at pageSize entries or LOG_PAGE_MAX_BYTES of text, and nextPageToken continues it; each entry says its attempt (batchd extension)',
      tag: 'BatchJobs',
      auth: true,
      response: getBatchJobLogsResponseSchema,
      queryParams: [
        { name: 'ranks', description: 'Only these ranks (repeat the parameter: ranks=0&ranks=2).', type: 'integer', repeated: true },
        { name: 'pageSize', description: `At most this many entries (default ${LOG_PAGE.default}, at most ${LOG_PAGE.max}).`, type: 'integer' },
        { name: 'pageToken', description: 'The nextPageToken of the previous page; every other parameter must be the same as on that call.', type: 'string' },
        { name: 'startTime', description: 'No entry before this time (RFC 3339).', type: 'string', format: 'date-time' },
        { name: 'filter', description: 'Only entries whose message contains this text.', type: 'string' },
        { name: 'startFromHead', description: 'Oldest first (default false: newest first).', type: 'boolean' },
        { name: 'attempt', description: 'Only the lines of this attempt of the job (1 for its first run, 2 for its first retry, …; batchd extension).', type: 'integer' },
      ],
      handler: async ({ principal, params, query }) => {
        const job = await service.exists(principal, params.batchJob ?? '');
        const ranks = parseLogRanks(query.ranks);
        const attempt = parseLogAttempt(query.attempt);
        const pageSize = parsePageSize(singleParam(query, 'pageSize'), LOG_PAGE);
        const startText = singleParam(query, 'startTime');
        const startTime = startText === undefined ? undefined : normalizeTimestamp(startText);
        if (startText !== undefined && startTime === undefined) throw ApiError.invalidField('startTime', `"${startText}" is not an RFC 3339 timestamp`);
        const filter = singleParam(query, 'filter');
        const fromHead = parseBool('startFromHead', singleParam(query, 'startFromHead')) ?? false;
        const fingerprint = queryFingerprint({ job: job.name, ranks: ranks?.join(','), attempt: attempt?.toString(), startTime, filter, fromHead: String(fromHead) });
        const token = singleParam(query, 'pageToken');
        const after = token ? logCursorOf(decodePageToken(pageSecret, token, fingerprint)) : undefined;
        if (token && !after) throw ApiError.invalidField('pageToken', 'is not a log page token');
        const page = await logs.query({
          job: job.name,
          fromHead,
          pageSize,
          maxBytes: logPageMaxBytes,
          ...(ranks ? { ranks } : {}),
          ...(attempt !== undefined ? { attempt } : {}),
          ...(startTime ? { startTime } : {}),
          ...(filter ? { filter } : {}),
          ...(after ? { after } : {}),
        });
        return {
          entries: page.entries.map((e) => ({ logTime: e.time, rank: e.rank, message: e.message, attempt: e.attempt })),
          nextPageToken: page.next ? encodePageToken(pageSecret, { q: fingerprint, after: page.next }) : '',
        };
      },
    },
    {
      method: 'GET',
      path: `${base}/{batchJob}:getPlacement`,
      operationId: 'Batchd_GetBatchJobPlacement',
      summary: 'Where a live batch job’s ranks run: each rank’s host and slot (batchd extension; empty before capacity is granted and after the job ends)',
      tag: 'BatchJobs',
      auth: true,
      response: batchJobPlacementSchema,
      handler: ({ principal, params }) => service.placement(principal, params.batchJob ?? ''),
    },
    {
      method: 'POST',
      path: `${base}:batchDelete`,
      operationId: 'Gateway_BatchDeleteBatchJobs',
      summary: 'Delete several batch jobs by name; one bad name fails the call and deletes none',
      tag: 'BatchJobs',
      auth: true,
      body: batchDeleteRequestSchema,
      response: emptySchema,
      handler: async ({ principal, body }) => {
        await service.deleteMany(principal, body);
        return {};
      },
    },
  ];
}
