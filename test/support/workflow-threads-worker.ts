/**
 * A workflow worker in a process of its own: `node [preload args] workflow-threads-worker.js <address>
 * <task queue>`. It serves test/support/workflows/waits.ts with batchd's worker options until stdin
 * closes; test/integration/workflow-threads.test.ts starts it with and without the preload.
 */
import { join } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { workflowWorkerOptions } from '../../src/temporal/workflow-worker';

async function main(): Promise<void> {
  const [address, taskQueue] = process.argv.slice(2);
  if (!address || !taskQueue) throw new Error('usage: workflow-threads-worker.js <address> <task queue>');
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowsPath: join(__dirname, 'workflows', 'waits.js'),
    ...workflowWorkerOptions(),
    shutdownGraceTime: '1 second',
  });
  process.stdin.on('close', () => worker.shutdown());
  process.stdin.resume();
  process.stdout.write('polling\n');
  await worker.run();
  await connection.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
