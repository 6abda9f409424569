/**
 * `batchd/client` (and `batchd`): the typed HTTP client of the API and the wire types of its
 * resources, for programs of other teams. Loads no zod, no Temporal and no Node built-in.
 *
 *   import { BatchdClient } from 'batchd/client';
 *   const batchd = new BatchdClient({ apiUrl: 'http://127.0.0.1:8080', apiKey: process.env.BATCHD_API_KEY!, account: 'default' });
 *   const job = await batchd.createBatchJob({ nodePoolId: 'default-cpu', shellExecutor: { command: 'echo hi' } }, { batchJobId: 'hi' });
 *   const ended = await batchd.waitForBatchJob(job.name);
 */
export * from '../client/batchd-client';
export { type ServerSentEvent, ServerSentEventParser } from '../client/server-sent-events';
export {
  BATCH_JOB_STATES,
  type BatchJob,
  type BatchJobPlacement,
  type BatchJobSpec,
  type BatchJobState,
  isTerminal,
  type NotebookExecutor,
  type PythonExecutor,
  type ShellExecutor,
  TERMINAL_STATES,
} from '../domain/batch-job-model';
export { type Environment, type EnvironmentState } from '../domain/environment-model';
export { type ErrorDetail, type FieldViolation, type GrpcCodeName } from '../domain/errors';
export { type GatewayStatus, type NodePool, type NodePoolState, type NodePoolStats } from '../domain/node-pool-model';
export { type HostUsage, type PoolUsage, type UsageSample } from '../domain/pool-usage';
export { type Snapshot, type SnapshotState } from '../domain/snapshot-model';
