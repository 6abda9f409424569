/**
 * The typed HTTP client of batchd's API: the one the command-line client uses, and what another
 * team's program imports as `batchd/client`. It speaks the public API only (so it can do nothing its
 * key cannot), uses the platform's `fetch` and no Node built-in (it runs in a browser as well), and
 * takes its types from the schema-free domain models, so it loads no zod.
 *
 * Every failure is one of two errors: `BatchdApiError` (the API answered with its error shape
 * `{code, message, details}`) or `BatchdConnectionError` (no answer at all).
 */
import { type BatchJob, type BatchJobPlacement, isBatchJobState, isTerminal, type NotebookExecutor, type PythonExecutor, type ShellExecutor } from '../domain/batch-job-model';
import { type Environment } from '../domain/environment-model';
import { type ErrorDetail, type FieldViolation, GrpcCode, type GrpcCodeName } from '../domain/errors';
import { type NodePool, type NodePoolStats } from '../domain/node-pool-model';
import { type PoolUsage, type UsageSample } from '../domain/pool-usage';
import { ServerSentEventParser } from './server-sent-events';

export interface BatchdClientOptions {
  /** Where the API listens, e.g. `http://127.0.0.1:8080` (a trailing `/` is ignored). */
  apiUrl: string;
  /** An API key of the account (`Authorization: Bearer`). */
  apiKey: string;
  /** The account every call is made in. Default `default`. */
  account?: string;
  /** The fetch to use; default the global one (Node 18+, browsers). */
  fetch?: typeof fetch;
}

/** The body of a create: the writable fields of a batch job; exactly one executor. */
export interface CreateBatchJobRequest {
  displayName?: string;
  nodePoolId: string;
  environmentId?: string;
  snapshotId?: string;
  /** Default 1. */
  numRanks?: number;
  envVars?: Record<string, string>;
  role?: string;
  pythonExecutor?: PythonExecutor;
  notebookExecutor?: NotebookExecutor;
  shellExecutor?: ShellExecutor;
  imageRef?: string;
  annotations?: Record<string, string>;
  shared?: boolean;
}

/** What a PATCH may change. */
export interface UpdateBatchJobRequest {
  displayName?: string;
  annotations?: Record<string, string>;
  shared?: boolean;
}

/** AIP-158 paging with AIP-160 filter and AIP-132 order, as every list takes them. */
export interface ListOptions {
  filter?: string;
  orderBy?: string;
  pageSize?: number;
  pageToken?: string;
  readMask?: string;
}

export interface ListBatchJobsResponse {
  batchJobs: BatchJob[];
  nextPageToken: string;
  totalSize: number;
}
export interface ListNodePoolsResponse {
  nodePools: NodePool[];
  nextPageToken: string;
  totalSize: number;
}
export interface NodePoolUsageHistory {
  /** Oldest first. */
  samples: UsageSample[];
  sampleIntervalSeconds: number;
}
export interface ListEnvironmentsResponse {
  environments: Environment[];
  nextPageToken: string;
  totalSize: number;
}

/** One line a rank wrote. */
export interface LogEntry {
  logTime: string;
  rank: number;
  message: string;
  /** The attempt of the job that wrote the line (1-based; batchd extension). */
  attempt: number;
}

export interface GetLogsOptions {
  ranks?: number[];
  pageSize?: number;
  pageToken?: string;
  /** RFC 3339: no entry before this time. */
  startTime?: string;
  /** Only entries whose message contains this text. */
  filter?: string;
  /** Oldest first (the API's default is newest first). */
  startFromHead?: boolean;
  /** Only the lines of this attempt of the job. */
  attempt?: number;
}

export interface GetLogsResponse {
  entries: LogEntry[];
  nextPageToken: string;
}

/** What `followLogs` yields: each line, then one `end` once the job has ended (or was deleted). */
export type LogEvent = { type: 'log'; entry: LogEntry } | { type: 'end'; state: string; status: string };

export interface WaitOptions {
  /** How often to ask; default 1000 ms. */
  intervalMs?: number;
  /** Give up with a WaitTimeoutError after this long; default never. */
  timeoutMs?: number;
  /** Called with the job after every poll (progress displays). */
  onPoll?: (job: BatchJob) => void;
  signal?: AbortSignal;
}

const CODE_NAMES: ReadonlyMap<number, GrpcCodeName> = new Map(Object.entries(GrpcCode).map(([name, code]) => [code, name as GrpcCodeName]));

/** The API answered with an error: its gRPC code, message and details, as the contract shapes them. */
export class BatchdApiError extends Error {
  override readonly name = 'BatchdApiError';

  constructor(
    readonly httpStatus: number,
    /** The gRPC code's name (`INVALID_ARGUMENT`); `UNKNOWN` when the body was not the API's error shape. */
    readonly code: GrpcCodeName,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
  }

  /** Every field violation of the error's google.rpc.BadRequest details. */
  get fieldViolations(): FieldViolation[] {
    return this.details.flatMap((d) => d.fieldViolations ?? []);
  }
}

/** The API could not be reached, or its answer was cut off. */
export class BatchdConnectionError extends Error {
  override readonly name = 'BatchdConnectionError';
}

/** `waitForBatchJob` gave up before the job ended; `job` is how it was last seen. */
export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
  constructor(readonly job: BatchJob) {
    super(`batch job ${job.name} had not ended after the wait's timeout (state ${job.state})`);
  }
}

type Query = Record<string, string | number | boolean | readonly (string | number)[] | undefined>;

export class BatchdClient {
  readonly apiUrl: string;
  readonly account: string;
  private readonly apiKey: string;
  private readonly fetchFn: typeof fetch;

  constructor(options: BatchdClientOptions) {
    this.apiUrl = options.apiUrl.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.account = options.account ?? 'default';
    this.fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
  }

  // --- batch jobs -------------------------------------------------------------------------------

  /** Creates a job; without `batchJobId` the server picks the id. Returns the job as created (CREATING). */
  createBatchJob(body: CreateBatchJobRequest, options: { batchJobId?: string } = {}): Promise<BatchJob> {
    return this.call('POST', this.collection('batchJobs'), { batchJobId: options.batchJobId }, body);
  }

  getBatchJob(id: string, options: { readMask?: string } = {}): Promise<BatchJob> {
    return this.call('GET', this.resource('batchJobs', id), { readMask: options.readMask });
  }

  listBatchJobs(options: ListOptions = {}): Promise<ListBatchJobsResponse> {
    return this.call('GET', this.collection('batchJobs'), { ...options });
  }

  /** Every job the list matches, page after page. */
  listAllBatchJobs(options: Omit<ListOptions, 'pageToken'> = {}): AsyncGenerator<BatchJob> {
    return this.pages((pageToken) => this.listBatchJobs({ ...options, pageToken }), (page) => page.batchJobs);
  }

  updateBatchJob(id: string, patch: UpdateBatchJobRequest, options: { updateMask?: string } = {}): Promise<BatchJob> {
    return this.call('PATCH', this.resource('batchJobs', id), { updateMask: options.updateMask }, patch);
  }

  /** Asks a live job to stop; it is CANCELLED once every rank has. An ended job: FAILED_PRECONDITION. */
  async cancelBatchJob(id: string): Promise<void> {
    await this.call('POST', `${this.resource('batchJobs', id)}:cancel`, {}, {});
  }

  /** Deletes a job (a live one is stopped first; DELETING until it is gone). */
  async deleteBatchJob(id: string): Promise<void> {
    await this.call('DELETE', this.resource('batchJobs', id));
  }

  getBatchJobLogs(id: string, options: GetLogsOptions = {}): Promise<GetLogsResponse> {
    return this.call('GET', `${this.resource('batchJobs', id)}:getLogs`, { ...options });
  }

  /**
   * The job's log lines as they are stored, oldest first, then one `end` event; ends when the job has
   * (or at once for an ended job, after its lines). Breaking out of the loop closes the stream.
   */
  async *followBatchJobLogs(id: string, options: { ranks?: number[]; attempt?: number; signal?: AbortSignal } = {}): AsyncGenerator<LogEvent> {
    const abort = new AbortController();
    const stop = () => abort.abort();
    options.signal?.addEventListener('abort', stop, { once: true });
    try {
      const res = await this.send('GET', `${this.resource('batchJobs', id)}:followLogs`, { ranks: options.ranks, attempt: options.attempt }, undefined, abort.signal, 'text/event-stream');
      if (!res.body) throw new BatchdConnectionError('the log stream had no body');
      const parser = new ServerSentEventParser();
      const decoder = new TextDecoder();
      const reader = res.body.getReader();
      for (;;) {
        let chunk: { done: boolean; value?: Uint8Array };
        try {
          chunk = await reader.read();
        } catch (err) {
          if (options.signal?.aborted) return;
          throw new BatchdConnectionError(`the log stream broke: ${messageOf(err)}`);
        }
        if (chunk.done) throw new BatchdConnectionError('the log stream ended before the job did');
        for (const e of parser.push(decoder.decode(chunk.value ?? new Uint8Array(), { stream: true }))) {
          const data = JSON.parse(e.data) as Record<string, unknown>;
          if (e.event === 'log') yield { type: 'log', entry: data as unknown as LogEntry };
          else if (e.event === 'end') {
            yield { type: 'end', state: String(data.state), status: String(data.status) };
            return;
          }
        }
      }
    } finally {
      options.signal?.removeEventListener('abort', stop);
      abort.abort();
    }
  }

  /** Where a live job's ranks run (host and slot of each rank); empty before its grant and after it ends. */
  getBatchJobPlacement(id: string): Promise<BatchJobPlacement> {
    return this.call('GET', `${this.resource('batchJobs', id)}:getPlacement`);
  }

  /** Polls the job until it has ended (COMPLETED, FAILED or CANCELLED) and returns it as it ended. */
  async waitForBatchJob(id: string, options: WaitOptions = {}): Promise<BatchJob> {
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    for (;;) {
      const job = await this.getBatchJob(id);
      options.onPoll?.(job);
      if (isBatchJobState(job.state) && isTerminal(job.state)) return job;
      if (deadline !== undefined && Date.now() >= deadline) throw new WaitTimeoutError(job);
      const pause = Math.min(options.intervalMs ?? 1000, deadline === undefined ? Infinity : Math.max(0, deadline - Date.now()));
      await sleep(pause, options.signal);
    }
  }

  // --- node pools and environments --------------------------------------------------------------

  listNodePools(options: ListOptions = {}): Promise<ListNodePoolsResponse> {
    return this.call('GET', this.collection('nodePools'), { ...options });
  }

  listAllNodePools(options: Omit<ListOptions, 'pageToken'> = {}): AsyncGenerator<NodePool> {
    return this.pages((pageToken) => this.listNodePools({ ...options, pageToken }), (page) => page.nodePools);
  }

  getNodePool(id: string): Promise<NodePool> {
    return this.call('GET', this.resource('nodePools', id));
  }

  getNodePoolStats(id: string): Promise<NodePoolStats> {
    return this.call('GET', `${this.resource('nodePools', id)}:getStats`);
  }

  /** The pool's hosts with their slots in use (and by which job), and its queue, now. */
  getNodePoolUsage(id: string): Promise<PoolUsage> {
    return this.call('GET', `${this.resource('nodePools', id)}:getUsage`);
  }

  /** The last hour of slots in use, capacity and queue length, as the API process sampled them. */
  getNodePoolUsageHistory(id: string): Promise<NodePoolUsageHistory> {
    return this.call('GET', `${this.resource('nodePools', id)}:getUsageHistory`);
  }

  listEnvironments(options: ListOptions = {}): Promise<ListEnvironmentsResponse> {
    return this.call('GET', this.collection('environments'), { ...options });
  }

  listAllEnvironments(options: Omit<ListOptions, 'pageToken'> = {}): AsyncGenerator<Environment> {
    return this.pages((pageToken) => this.listEnvironments({ ...options, pageToken }), (page) => page.environments);
  }

  getEnvironment(id: string): Promise<Environment> {
    return this.call('GET', this.resource('environments', id));
  }

  // --- plumbing ---------------------------------------------------------------------------------

  private collection(kind: string): string {
    return `/v1/accounts/${encodeURIComponent(this.account)}/${kind}`;
  }

  /** A resource by id, or by its full name (`accounts/a/batchJobs/x`, which names its own account). */
  private resource(kind: string, idOrName: string): string {
    const parts = idOrName.split('/');
    if (parts.length === 4 && parts[0] === 'accounts' && parts[2] === kind) {
      return `/v1/accounts/${encodeURIComponent(parts[1] ?? '')}/${kind}/${encodeURIComponent(parts[3] ?? '')}`;
    }
    return `${this.collection(kind)}/${encodeURIComponent(idOrName)}`;
  }

  private async *pages<P extends { nextPageToken: string }, T>(fetchPage: (token: string | undefined) => Promise<P>, items: (page: P) => T[]): AsyncGenerator<T> {
    let token: string | undefined;
    do {
      const page = await fetchPage(token);
      yield* items(page);
      token = page.nextPageToken || undefined;
    } while (token);
  }

  private async call<T>(method: string, path: string, query: Query = {}, body?: unknown): Promise<T> {
    const res = await this.send(method, path, query, body);
    const text = await res.text().catch((err: unknown) => {
      throw new BatchdConnectionError(`the answer of ${method} ${path} was cut off: ${messageOf(err)}`);
    });
    return (text ? JSON.parse(text) : {}) as T;
  }

  /** Sends one request; a non-2xx answer becomes a BatchdApiError. */
  private async send(method: string, path: string, query: Query, body: unknown, signal?: AbortSignal, accept = 'application/json'): Promise<Response> {
    const url = `${this.apiUrl}${path}${queryString(query)}`;
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey}`, accept };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await this.fetchFn(url, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), ...(signal ? { signal } : {}) });
    } catch (err) {
      throw new BatchdConnectionError(`cannot reach the batchd API at ${this.apiUrl}: ${messageOf(err)}`);
    }
    if (res.ok) return res;
    throw errorOf(res.status, await res.text().catch(() => ''));
  }
}

/** The API's error body `{code, message, details}` as a BatchdApiError; anything else (a proxy's page) as UNKNOWN. */
export function errorOf(httpStatus: number, text: string): BatchdApiError {
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown; details?: unknown };
    const code = typeof body.code === 'number' ? CODE_NAMES.get(body.code) : undefined;
    if (code && typeof body.message === 'string') {
      return new BatchdApiError(httpStatus, code, body.message, Array.isArray(body.details) ? (body.details as ErrorDetail[]) : []);
    }
  } catch {
    // not JSON: fall through
  }
  const excerpt = text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return new BatchdApiError(httpStatus, 'UNKNOWN', `HTTP ${httpStatus}${excerpt ? `: ${excerpt}` : ''}`);
}

/** Repeated parameters as `ranks=0&ranks=2`, the form the API reads. */
export function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

function messageOf(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
