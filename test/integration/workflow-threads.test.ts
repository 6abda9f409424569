/**
 * The workflow-thread preload (src/temporal/workflow-threads.ts) leaves the SDK's stack-trace promise
 * hook out of the workflow threads of the process that preloads it, and only there. Two workers, each
 * a process of its own on a real Temporal server, run the same waiting workflow; one is started with
 * `workflowThreadsNodeArgs()`. The SDK answers `__stack_trace` from what the hook records, so the plain
 * one answers with the workflow's stack and the preloaded one says stack traces are not enabled.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ensureTemporalCli } from '../../src/temporal/cli';
import { workflowThreadsNodeArgs } from '../../src/temporal/workflow-worker';
import { killAndWait } from '../support/harness';
import { endSignal } from '../support/workflows/waits';

const WORKER = join(__dirname, '..', 'support', 'workflow-threads-worker.js');

describe('the workflow-thread preload', () => {
  let env: TestWorkflowEnvironment;
  const children: ChildProcess[] = [];

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: ensureTemporalCli() }, log: { format: 'json', level: 'error' } } });
  });
  after(async () => {
    await Promise.all(children.map((c) => killAndWait(c)));
    await env?.teardown();
  });

  /** A worker process on `taskQueue`, once it polls. */
  async function workerProcess(taskQueue: string, preload: boolean): Promise<ChildProcess> {
    const child = spawn(process.execPath, [...(preload ? workflowThreadsNodeArgs() : []), WORKER, env.address, taskQueue], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(child);
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ${taskQueue} worker did not start within 60 s: ${err}`)), 60_000);
      child.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('polling')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the ${taskQueue} worker exited (${code}): ${err}`));
      });
    });
    return child;
  }

  it('leaves the stack-trace hook out of the preloaded process’s workflow threads, and only there', async () => {
    await Promise.all([workerProcess('threads-plain', false), workerProcess('threads-preloaded', true)]);
    const start = (taskQueue: string) => env.client.workflow.start('waitsToBeTold', { taskQueue, workflowId: `${taskQueue}-${Date.now()}` });
    const [plain, preloaded] = await Promise.all([start('threads-plain'), start('threads-preloaded')]);

    const trace = await plain.query<string>('__stack_trace');
    assert.match(trace, /waitsToBeTold/, 'the plain worker answers with the workflow’s stack');
    await assert.rejects(preloaded.query('__stack_trace'), /stack traces are not enabled on this worker/);

    // Both still run their workflows to the end.
    await Promise.all([plain.signal(endSignal), preloaded.signal(endSignal)]);
    assert.deepEqual(await Promise.all([plain.result(), preloaded.result()]), ['told', 'told']);
  });
});
