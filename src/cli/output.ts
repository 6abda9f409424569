/**
 * What the command line prints: aligned tables and `Field: value` details for people, JSON or YAML
 * of the API's own resources for scripts, and the one-line error. Pure: strings in, strings out.
 */
import { stringify as toYaml } from 'yaml';
import { type BatchJob } from '../domain/batch-job-model';
import { type Environment } from '../domain/environment-model';
import { type NodePool, type NodePoolStats } from '../domain/node-pool-model';
import { BatchdApiError } from '../client/batchd-client';
import { type OutputFormat } from './arguments';

/** Columns padded to their widest cell, two spaces apart, no trailing blanks; a cell never breaks a line. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const clean = (cell: string) => cell.replace(/[\r\n\t]+/g, ' ');
  const table = [headers, ...rows].map((row) => headers.map((_, i) => clean(row[i] ?? '')));
  const widths = headers.map((_, i) => Math.max(...table.map((row) => [...(row[i] ?? '')].length)));
  return table.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - [...cell].length))).join('  ').trimEnd()).join('\n');
}

/** `Label:  value` lines with the values aligned; absent values are left out. */
export function formatDetails(pairs: ReadonlyArray<readonly [string, string | undefined]>): string {
  const present = pairs.filter((p): p is readonly [string, string] => p[1] !== undefined && p[1] !== '');
  const width = Math.max(0, ...present.map(([label]) => label.length + 1));
  return present.map(([label, value]) => `${`${label}:`.padEnd(width)}  ${value.replace(/\n/g, `\n${' '.repeat(width + 2)}`)}`).join('\n');
}

/** kubectl-style age: 45s, 12m, 5h, 3d. */
export function formatAge(fromIso: string | undefined, now: number): string {
  if (!fromIso) return '';
  const seconds = Math.max(0, Math.floor((now - Date.parse(fromIso)) / 1000));
  if (!Number.isFinite(seconds)) return '';
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** The last segment of a resource name: `accounts/a/batchJobs/x` → `x`. */
export function idOf(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

/** Resources for scripts: exactly the API's JSON, or the same as YAML. */
export function formatData(data: unknown, format: Exclude<OutputFormat, 'table'>): string {
  return format === 'json' ? JSON.stringify(data, null, 2) : toYaml(data).trimEnd();
}

function keyValues(map: Record<string, string> | undefined): string | undefined {
  const entries = Object.entries(map ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(', ') : undefined;
}

function executorText(job: BatchJob): string {
  if (job.shellExecutor) return `shell: ${job.shellExecutor.command}`;
  if (job.pythonExecutor) return `python ${job.pythonExecutor.targetType.toLowerCase()}: ${[job.pythonExecutor.target, ...(job.pythonExecutor.args ?? [])].join(' ')}`;
  if (job.notebookExecutor) return `notebook: ${job.notebookExecutor.notebookFilename}`;
  return '';
}

function timeText(iso: string | undefined, now: number): string | undefined {
  return iso ? `${iso} (${formatAge(iso, now)} ago)` : undefined;
}

export function jobTable(jobs: readonly BatchJob[], now: number): string {
  return formatTable(
    ['ID', 'STATE', 'POOL', 'RANKS', 'DISPLAY NAME', 'AGE'],
    jobs.map((j) => [idOf(j.name), j.state, j.nodePoolId, String(j.numRanks), j.displayName ?? '', formatAge(j.createTime, now)]),
  );
}

export function jobDetails(job: BatchJob, now: number): string {
  return formatDetails([
    ['Name', job.name],
    ['Display name', job.displayName],
    ['State', job.state],
    ['Status', job.status],
    ['Node pool', job.nodePoolId],
    ['Ranks', String(job.numRanks)],
    ['Executor', executorText(job)],
    ['Environment', job.environmentId],
    ['Snapshot', job.snapshotId],
    ['Image', job.imageRef],
    ['Env vars', keyValues(job.envVars)],
    ['Annotations', keyValues(job.annotations)],
    ['Shared', job.shared ? 'yes' : undefined],
    ['Created', `${timeText(job.createTime, now) ?? ''} by ${job.createdBy}`],
    ['Started', timeText(job.startTime, now)],
    ['Ended', timeText(job.endTime, now)],
  ]);
}

function poolMachine(pool: NodePool): string {
  return pool.fakeNodePool ? `fake ${pool.fakeNodePool.machineType}` : pool.eksNodePool ? `eks ${pool.eksNodePool.instanceType}` : '';
}

function liveJobs(stats: NodePoolStats): string {
  return String(['QUEUED', 'PENDING', 'RUNNING'].reduce((n, s) => n + (stats.batchJobCount[s] ?? 0), 0));
}

export function poolTable(pools: readonly NodePool[], now: number): string {
  return formatTable(
    ['ID', 'STATE', 'MACHINE', 'NODES', 'RANKS/NODE', 'LIVE JOBS', 'AGE'],
    pools.map((p) => [idOf(p.name), p.state, poolMachine(p), String(p.nodePoolStats.nodeCount), String(p.nodePoolStats.ranksPerNode), liveJobs(p.nodePoolStats), formatAge(p.createTime, now)]),
  );
}

export function poolDetails(pool: NodePool, now: number): string {
  return formatDetails([
    ['Name', pool.name],
    ['Display name', pool.displayName],
    ['State', pool.state],
    ['Status', pool.status.message ? `${pool.status.code}: ${pool.status.message}` : pool.status.code],
    ['Machine', poolMachine(pool)],
    ['Nodes', `${pool.nodePoolStats.nodeCount} (min ${pool.minNodeCount}, max ${pool.maxNodeCount})`],
    ['Ranks per node', String(pool.nodePoolStats.ranksPerNode)],
    ['Jobs', keyValues(mapValues(pool.nodePoolStats.batchJobCount))],
    ['Annotations', keyValues(pool.annotations)],
    ['Created', timeText(pool.createTime, now)],
  ]);
}

export function statsDetails(stats: NodePoolStats): string {
  return formatDetails([
    ['Nodes', String(stats.nodeCount)],
    ['Ranks per node', String(stats.ranksPerNode)],
    ['Jobs by state', keyValues(mapValues(stats.batchJobCount)) ?? 'none'],
    ['Ranks by state', keyValues(mapValues(stats.batchJobRanks)) ?? 'none'],
    ['Environments', `${stats.environmentCount} (${stats.environmentRanks} ranks)`],
  ]);
}

export function environmentTable(envs: readonly Environment[], now: number): string {
  return formatTable(
    ['ID', 'STATE', 'IMAGE', 'CREATED BY', 'AGE'],
    envs.map((e) => [idOf(e.name), e.state, e.baseImageRef ?? '', e.createdBy, formatAge(e.createTime, now)]),
  );
}

export function environmentDetails(env: Environment, now: number): string {
  return formatDetails([
    ['Name', env.name],
    ['Display name', env.displayName],
    ['State', env.state],
    ['Status', env.status.message],
    ['Base image', env.baseImageRef],
    ['Snapshot image', env.snapshotImageRef],
    ['Shared', env.shared ? 'yes' : 'no'],
    ['Annotations', keyValues(env.annotations)],
    ['Created', `${timeText(env.createTime, now) ?? ''} by ${env.createdBy}`],
  ]);
}

function mapValues(counts: Record<string, number>): Record<string, string> {
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, String(v)]));
}

/**
 * The one line an error prints: the API's code and message, and the fields it names when the
 * message does not already (`INVALID_ARGUMENT: numRanks: must be at least 1`).
 */
export function errorLine(err: unknown): string {
  if (err instanceof BatchdApiError) {
    // Field violations name their field; ResourceInfo names the request field that pointed at it.
    const named = err.details.flatMap((d) => /request field (\S+)/.exec(d.description ?? '')?.[1] ?? []);
    const fields = [...new Set([...err.fieldViolations.map((v) => v.field), ...named])].filter((f) => !err.message.includes(f));
    const message = err.message.replace(/\s*\n\s*/g, ' ');
    return `error: ${err.code}: ${message}${fields.length ? ` (field ${fields.join(', ')})` : ''}`;
  }
  return `error: ${(err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ')}`;
}
