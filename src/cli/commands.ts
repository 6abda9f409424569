/**
 * The command line's commands: each turns a parsed Command into calls of the typed HTTP client (the
 * one `batchd/client` exports) and prints the answer — a table or details for people, the API's own
 * JSON or YAML with `-o`. Returns the exit code; errors are thrown and printed by the caller.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { BatchdClient, type CreateBatchJobRequest, type LogEntry, WaitTimeoutError } from '../client/batchd-client';
import { type BatchJob } from '../domain/batch-job-model';
import { type Command, EXIT, type FlagValues, parseCount, parseDuration, parseInteger, parseKeyValues, UsageError } from './arguments';
import { environmentDetails, environmentTable, formatData, idOf, jobDetails, jobTable, poolDetails, poolTable, statsDetails } from './output';
import { type Settings } from './settings';

export interface Io {
  out(text: string): void;
  /** A line of progress that replaces the previous one; absent when stderr is not a terminal. */
  progress?: (text: string) => void;
  /** Clears the progress line. */
  endProgress?: () => void;
  readStdin(): string;
  now(): number;
}

export async function runCommand(command: Command, settings: Settings, io: Io): Promise<number> {
  const client = new BatchdClient(settings);
  const { spec, args, output } = command;
  const id = args[0] ?? '';
  const show = <T>(data: T, table: (data: T, now: number) => string) => io.out(output === 'table' ? table(data, io.now()) : formatData(data, output));

  switch (`${spec.noun} ${spec.verb}`) {
    case 'job create': {
      const body = jobBodyFrom(readJobFile(command.flags.file, io), command.flags);
      const batchJobId = str(command.flags.id);
      const job = await client.createBatchJob(body, batchJobId ? { batchJobId } : {});
      if (command.flags.wait) return waitFor(client, idOf(job.name), command, io);
      if (output === 'table') io.out(`${job.name} created (${job.state})`);
      else io.out(formatData(job, output));
      return EXIT.OK;
    }
    case 'job get':
      show(await client.getBatchJob(id), jobDetails);
      return EXIT.OK;
    case 'job list': {
      const limit = command.flags.limit === undefined ? 50 : parseCount('limit', str(command.flags.limit) ?? '');
      const jobs: BatchJob[] = [];
      const filter = str(command.flags.filter);
      const orderBy = str(command.flags['order-by']);
      for await (const job of client.listAllBatchJobs({ ...(filter ? { filter } : {}), ...(orderBy ? { orderBy } : {}), ...(limit ? { pageSize: Math.min(limit, 200) } : {}) })) {
        jobs.push(job);
        if (limit && jobs.length >= limit) break;
      }
      show(jobs, jobTable);
      return EXIT.OK;
    }
    case 'job cancel':
      await client.cancelBatchJob(id);
      io.out(output === 'table' ? `batch job ${id} cancelling` : formatData({}, output));
      return EXIT.OK;
    case 'job delete':
      await client.deleteBatchJob(id);
      io.out(output === 'table' ? `batch job ${id} deleting` : formatData({}, output));
      return EXIT.OK;
    case 'job logs':
      return printLogs(client, id, command, io);
    case 'job wait':
      return waitFor(client, id, command, io);
    case 'pool list': {
      const pools = [];
      for await (const pool of client.listAllNodePools()) pools.push(pool);
      show(pools, poolTable);
      return EXIT.OK;
    }
    case 'pool get':
      show(await client.getNodePool(id), poolDetails);
      return EXIT.OK;
    case 'pool stats':
      show(await client.getNodePoolStats(id), statsDetails);
      return EXIT.OK;
    case 'env list': {
      const envs = [];
      for await (const env of client.listAllEnvironments()) envs.push(env);
      show(envs, environmentTable);
      return EXIT.OK;
    }
    case 'env get':
      show(await client.getEnvironment(id), environmentDetails);
      return EXIT.OK;
    default:
      throw new UsageError(`no such command: ${spec.noun} ${spec.verb}`);
  }
}

function str(value: FlagValues[string]): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function list(value: FlagValues[string]): string[] {
  return Array.isArray(value) ? value : [];
}

/** `-f FILE` (JSON or YAML; `-` reads stdin) as an object; `{}` without `-f`. */
function readJobFile(file: FlagValues[string], io: Io): Record<string, unknown> {
  const path = str(file);
  if (path === undefined) return {};
  let text: string;
  try {
    text = path === '-' ? io.readStdin() : readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new UsageError(`${path} is neither JSON nor YAML: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new UsageError(`${path} must hold one job object (the API's create body)`);
  return data as Record<string, unknown>;
}

/**
 * The create body: the file's fields, with the flags' fields over them. An executor flag replaces
 * whatever executor the file names, so `-f base.json --shell 'echo hi'` runs the shell command. The
 * body is not validated here: the API does that and names the field.
 */
export function jobBodyFrom(file: Record<string, unknown>, flags: FlagValues): CreateBatchJobRequest {
  const body: Record<string, unknown> = { ...file };
  const set = (field: string, value: unknown) => {
    if (value !== undefined) body[field] = value;
  };
  set('nodePoolId', str(flags.pool));
  if (str(flags.ranks) !== undefined) set('numRanks', parseCount('ranks', str(flags.ranks) ?? ''));
  set('displayName', str(flags['display-name']));
  set('environmentId', str(flags.environment));
  set('imageRef', str(flags['image-ref']));
  const executors = [str(flags.shell), str(flags.python), str(flags.notebook)].filter((e) => e !== undefined);
  if (executors.length > 1) throw new UsageError('give at most one of --shell, --python and --notebook');
  if (list(flags.arg).length > 0 && str(flags.python) === undefined) throw new UsageError('--arg goes with --python');
  if (executors.length === 1) {
    delete body.shellExecutor;
    delete body.pythonExecutor;
    delete body.notebookExecutor;
  }
  const shell = str(flags.shell);
  const python = str(flags.python);
  const notebook = str(flags.notebook);
  if (shell !== undefined) body.shellExecutor = { command: shell };
  if (python !== undefined) {
    const args = list(flags.arg);
    body.pythonExecutor = { targetType: python.endsWith('.py') ? 'FILENAME' : 'MODULE', target: python, ...(args.length ? { args } : {}) };
  }
  if (notebook !== undefined) body.notebookExecutor = { notebookFilename: notebook };
  const env = list(flags.env);
  if (env.length) body.envVars = { ...(body.envVars as Record<string, string> | undefined), ...parseKeyValues('env', env) };
  const maxAttempts = str(flags['max-attempts']);
  const exitCodes = str(flags['retry-exit-codes']);
  const retryOn = str(flags['retry-on']);
  if (maxAttempts !== undefined || exitCodes !== undefined || retryOn !== undefined) {
    const policy: Record<string, unknown> = { ...(body.retryPolicy as Record<string, unknown> | undefined) };
    if (maxAttempts !== undefined) policy.maxAttempts = parseCount('max-attempts', maxAttempts);
    if (exitCodes !== undefined) policy.exitCodes = exitCodes.split(',').map((c) => c.trim()).filter(Boolean);
    if (retryOn !== undefined) policy.conditions = retryOn.split(',').map((c) => c.trim().toUpperCase()).filter(Boolean);
    body.retryPolicy = policy;
  }
  set('maxRunDuration', str(flags['max-run-duration']));
  set('maxQueueDuration', str(flags['max-queue-duration']));
  const priority = str(flags.priority);
  if (priority !== undefined) body.priority = parseInteger('priority', priority);
  const after = list(flags.after);
  if (after.length) {
    const deps = after.map((a) => {
      const [batchJob = '', condition = 'COMPLETED'] = a.split(':');
      return { batchJob, condition: condition.toUpperCase() };
    });
    body.dependsOn = [...((body.dependsOn as unknown[] | undefined) ?? []), ...deps];
  }
  const annotations = list(flags.annotation);
  if (annotations.length) body.annotations = { ...(body.annotations as Record<string, string> | undefined), ...parseKeyValues('annotation', annotations) };
  return body as unknown as CreateBatchJobRequest;
}

function logLine(entry: LogEntry, output: Command['output']): string {
  return output === 'table' ? `[${entry.rank}] ${entry.message}` : JSON.stringify(entry);
}

/** Oldest first; `-f` then follows until the job has ended. `-o json` prints one JSON object a line. */
async function printLogs(client: BatchdClient, id: string, command: Command, io: Io): Promise<number> {
  if (command.output === 'yaml') throw new UsageError('job logs prints lines (table) or JSON lines (-o json), not YAML');
  const ranks = list(command.flags.rank).map((r) => parseCount('rank', r));
  if (command.flags.follow) {
    for await (const event of client.followBatchJobLogs(id, ranks.length ? { ranks } : {})) {
      if (event.type === 'log') io.out(logLine(event.entry, command.output));
    }
    return EXIT.OK;
  }
  let pageToken: string | undefined;
  do {
    const page = await client.getBatchJobLogs(id, { startFromHead: true, pageSize: 1000, ...(ranks.length ? { ranks } : {}), ...(pageToken ? { pageToken } : {}) });
    for (const entry of page.entries) io.out(logLine(entry, command.output));
    pageToken = page.nextPageToken || undefined;
  } while (pageToken);
  return EXIT.OK;
}

/** Polls until the job ends; prints it as it ended and exits with its outcome. */
async function waitFor(client: BatchdClient, id: string, command: Command, io: Io): Promise<number> {
  const timeout = str(command.flags.timeout);
  const interval = str(command.flags.interval);
  const started = io.now();
  let job: BatchJob;
  try {
    job = await client.waitForBatchJob(id, {
      ...(timeout !== undefined ? { timeoutMs: parseDuration('timeout', timeout) } : {}),
      ...(interval !== undefined ? { intervalMs: Math.max(100, parseDuration('interval', interval)) } : {}),
      onPoll: (j) => io.progress?.(progressText(j, io.now() - started)),
    });
  } catch (err) {
    io.endProgress?.();
    if (!(err instanceof WaitTimeoutError)) throw err;
    io.out(command.output === 'table' ? `batch job ${id} is still ${err.job.state} after ${timeout ?? ''}: ${err.job.status}` : formatData(err.job, command.output));
    return EXIT.TIMEOUT;
  }
  io.endProgress?.();
  io.out(command.output === 'table' ? jobDetails(job, io.now()) : formatData(job, command.output));
  return job.state === 'COMPLETED' ? EXIT.OK : job.state === 'CANCELLED' ? EXIT.CANCELLED : EXIT.FAILED;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** `⠹ hello RUNNING 12s: 8 of 8 ranks running` — the spinner moves once a second. */
export function progressText(job: Pick<BatchJob, 'name' | 'state' | 'status'>, elapsedMs: number): string {
  const seconds = Math.floor(elapsedMs / 1000);
  return `${SPINNER[seconds % SPINNER.length] ?? ''} ${idOf(job.name)} ${job.state} ${seconds}s${job.status ? `: ${job.status}` : ''}`;
}
