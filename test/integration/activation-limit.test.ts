/**
 * A workflow task that is slow but finite completes. The SDK's watchdog stops an activation after 5 s
 * by default, below Temporal's 10 s workflow task timeout, so such a task failed on every retry (a
 * pool that took thousands of signals at once never moved again) and the watchdog's `vm` timeout could
 * corrupt the worker thread and abort the process. Workers of batchd's workflows share
 * `workflowWorkerOptions()` (src/temporal/workflow-worker.ts); this runs one of them, with a real
 * Temporal server, against an activation of 6 s.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import pino from 'pino';
import { ensureTemporalCli } from '../../src/temporal/cli';
import { installRuntime } from '../../src/temporal/runtime';
import { DEFAULT_WORKFLOW_TASK_TIMEOUT_MS, WORKFLOW_ACTIVATION_LIMIT_MS, workflowWorkerOptions } from '../../src/temporal/workflow-worker';
import { until } from '../support/workflow-testbed';

const ET = temporal.api.enums.v1.EventType;
const SLOW_MS = 6_000;

describe('a workflow activation slower than the SDK’s default 5 s limit', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;

  before(async () => {
    installRuntime(pino({ level: process.env.TEST_LOG_LEVEL ?? 'error' }));
    env = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: ensureTemporalCli() }, log: { format: 'json', level: 'error' } } });
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'activation-limit',
      workflowsPath: join(__dirname, '..', 'support', 'workflows', 'slow-activation.js'),
      ...workflowWorkerOptions(),
      shutdownGraceTime: '1 second',
    });
    running = worker.run();
  });
  after(async () => {
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running;
    await env?.teardown();
  });

  it('completes within the task timeout, its first try, and the worker lives on', async () => {
    assert.ok(WORKFLOW_ACTIVATION_LIMIT_MS > DEFAULT_WORKFLOW_TASK_TIMEOUT_MS, 'the limit is above the task timeout');
    const handle = await env.client.workflow.start('slowActivation', { taskQueue: 'activation-limit', workflowId: `slow-${Date.now()}`, args: [SLOW_MS] });
    const events = await until(
      'the slow workflow closed, or one of its tasks failed',
      async () => {
        const h = (await handle.fetchHistory()).events ?? [];
        const done = h.some((e) => e.eventType === ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
        const failed = h.some((e) => e.eventType === ET.EVENT_TYPE_WORKFLOW_TASK_FAILED || e.eventType === ET.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT);
        return done || failed ? h : undefined;
      },
      60_000,
    );
    const failure = events.find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes?.failure?.message;
    assert.equal(failure, undefined, `a task failed: ${failure}`);
    assert.ok(!events.some((e) => e.eventType === ET.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT), 'no task timed out');
    assert.equal(await handle.result(), 'done');
    // The thread that ran it still serves workflows.
    assert.equal(await env.client.workflow.execute('slowActivation', { taskQueue: 'activation-limit', workflowId: `quick-${Date.now()}`, args: [1] }), 'done');
  });
});
