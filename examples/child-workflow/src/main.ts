/**
 * Runs the example end to end: starts this project's worker on its own task queue, runs `trainModel`
 * three times — a job that succeeds, one that fails (compensated), one batchd refuses (a clear
 * error) — reads each job's logs through `batchd/client`, and prints one JSON line per run.
 *
 * Environment: TEMPORAL_ADDRESS (127.0.0.1:7233), TEMPORAL_NAMESPACE (default), BATCHD_API_URL
 * (http://127.0.0.1:8080), BATCHD_API_KEY (required), BATCHD_ACCOUNT (default),
 * BATCHD_NODE_POOL (default-cpu), EXAMPLE_TASK_QUEUE (child-workflow-example).
 */
import { ApplicationFailure, Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { BatchdClient } from 'batchd/client';
import * as activities from './activities';
import { trainModel } from './workflows';

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] || fallback;
  if (value === undefined) throw new Error(`set ${name}`);
  return value;
};

async function main(): Promise<void> {
  const address = env('TEMPORAL_ADDRESS', '127.0.0.1:7233');
  const namespace = env('TEMPORAL_NAMESPACE', 'default');
  const taskQueue = env('EXAMPLE_TASK_QUEUE', 'child-workflow-example');
  const account = env('BATCHD_ACCOUNT', 'default');
  const nodePoolId = env('BATCHD_NODE_POOL', 'default-cpu');
  const batchd = new BatchdClient({ apiUrl: env('BATCHD_API_URL', 'http://127.0.0.1:8080'), apiKey: env('BATCHD_API_KEY'), account });

  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address }),
    namespace,
    taskQueue,
    workflowsPath: require.resolve('./workflows'),
    activities,
  });
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace });
  const suffix = Date.now().toString(36);

  await worker.runUntil(async () => {
    for (const [run, command] of [
      ['succeeds', 'echo training; echo done'],
      ['fails', 'echo diverged; exit 3'],
    ] as const) {
      const jobId = `example-${run}-${suffix}`;
      const result = await client.workflow.execute(trainModel, { taskQueue, workflowId: `train-${jobId}`, args: [{ account, nodePoolId, jobId, command }] });
      const logs = await batchd.getBatchJobLogs(jobId, { startFromHead: true });
      console.log(JSON.stringify({ run, outcome: result.outcome, state: result.job.state, status: result.job.status, compensation: result.compensation, logs: logs.entries.map((e) => e.message) }));
    }
    try {
      await client.workflow.execute(trainModel, { taskQueue, workflowId: `train-refused-${suffix}`, args: [{ account, nodePoolId: 'no-such-pool', jobId: `example-refused-${suffix}`, command: 'true' }] });
      console.log(JSON.stringify({ run: 'refused', outcome: 'unexpectedly started' }));
    } catch (err) {
      if (!(err instanceof WorkflowFailedError) || !(err.cause instanceof ApplicationFailure)) throw err;
      console.log(JSON.stringify({ run: 'refused', outcome: 'refused', type: err.cause.type, error: err.cause.message }));
    }
  });
  await connection.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
