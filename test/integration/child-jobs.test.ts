/**
 * Batch jobs started by other workflows: the example sweep starts N jobs as children and succeeds when
 * all complete; a bad job fails the parent fast, before any job exists; a failing job fails the sweep
 * and its siblings are cancelled; child jobs are first-class for the API; cancelling the parent cancels
 * its jobs cleanly.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { SweepInput, SweepResult } from '../../workflows/sweep';
import { type BatchJobBody, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';

describe('batch jobs as child workflows', () => {
  let t: TestService;
  before(async () => {
    // ann is a user of account default (a job must act for a user its account knows); mallory is of another account.
    const keys = join(mkdtempSync(join(tmpdir(), 'batchd-keys-')), 'keys.json');
    writeFileSync(
      keys,
      JSON.stringify([
        { key: 'ann-key-0123456789abcdef', account: 'default', email: 'ann@example.com' },
        { key: 'mallory-key-0123456789ab', account: 'other', email: 'mallory@example.com' },
      ]),
    );
    t = await startTestService({ env: { API_KEYS_FILE: keys } });
  });
  after(async () => {
    await t?.stop();
  });

  const sweep = (id: string, input: SweepInput) =>
    t.service.client.workflow.start<(i: SweepInput) => Promise<SweepResult>>('sweepWorkflow', { workflowId: id, taskQueue: 'batchd-control', args: [input] });

  const failureOf = async (p: Promise<unknown>): Promise<ApplicationFailure> => {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      assert.ok(err.cause instanceof ApplicationFailure, String(err.cause));
      return err.cause;
    }
    throw new Error('the workflow succeeded');
  };

  it('runs a sweep of three jobs to completion; each is an ordinary job for the API', async () => {
    const h = await sweep('sweep-ok', {
      account: 'default',
      createdBy: 'ann@example.com',
      jobs: [1, 2, 3].map((i) => ({ batchJobId: `sweep-ok-${i}`, body: { nodePoolId: 'default-cpu', envVars: { LR: `0.${i}` }, shellExecutor: { command: 'echo lr=$LR' } } })),
    });
    const result = await h.result();
    assert.deepEqual(result.jobs.map((j) => [j.name, j.state]), [1, 2, 3].map((i) => [`accounts/default/batchJobs/sweep-ok-${i}`, 'COMPLETED']));
    for (const j of result.jobs) {
      const described = await t.service.client.workflow.getHandle(j.name).describe();
      assert.equal(described.type, 'batchJobWorkflowV3', `${j.name} runs as the API's jobs do, claiming in the pool's store`);
    }
    const job = await t.api.get<BatchJobBody>(`${A}/batchJobs/sweep-ok-2`);
    assert.equal(job.status, 200);
    assert.equal(job.body.createdBy, 'ann@example.com');
    assert.equal(job.body.state, 'COMPLETED');
    const logs = await t.api.get<{ entries: Array<{ message: string }> }>(`${A}/batchJobs/sweep-ok-2:getLogs`);
    assert.deepEqual(logs.body.entries.map((e) => e.message), ['lr=0.2']);
    const listed = await waitFor('the sweep’s jobs in list', async () => {
      const r = await t.api.get<{ totalSize: number }>(`${A}/batchJobs?filter=${encodeURIComponent('createdBy = "ann@example.com"')}`);
      return r.body.totalSize === 3 ? r : undefined;
    });
    assert.equal(listed.status, 200);
  });

  it('fails fast on a bad job, before any job is created, with the API’s field path', async () => {
    const before = (await t.api.get<{ totalSize: number }>(`${A}/batchJobs`)).body.totalSize;
    const bad = await sweep('sweep-bad', {
      account: 'default',
      jobs: [
        { batchJobId: 'fine', body: { nodePoolId: 'default-cpu', shellExecutor: { command: 'true' } } },
        { batchJobId: 'broken', body: { nodePoolId: 'default-cpu', numRanks: 0, shellExecutor: { command: 'true' } } },
      ],
    });
    const failure = await failureOf(bad.result());
    assert.equal(failure.type, 'ApiError:INVALID_ARGUMENT');
    assert.match(failure.message, /numRanks/);
    const noPool = await sweep('sweep-no-pool', { account: 'default', jobs: [{ batchJobId: 'nowhere', body: { nodePoolId: 'no-such-pool', shellExecutor: { command: 'true' } } }] });
    const notFound = await failureOf(noPool.result());
    assert.equal(notFound.type, 'ApiError:NOT_FOUND');
    assert.match(notFound.message, /node pool "no-such-pool" not found/);
    const taken = await sweep('sweep-taken', { account: 'default', jobs: [{ batchJobId: 'sweep-ok-1', body: { nodePoolId: 'default-cpu', shellExecutor: { command: 'true' } } }] });
    assert.equal((await failureOf(taken.result())).type, 'ApiError:ALREADY_EXISTS');
    // 'fine' was checked and started before 'broken' failed the check: the sweep starts jobs in order.
    assert.equal((await t.api.get(`${A}/batchJobs/broken`)).status, 404);
    const afterCount = (await t.api.get<{ totalSize: number }>(`${A}/batchJobs`)).body.totalSize;
    assert.ok(afterCount <= before + 1, 'at most the one valid job before the bad one exists');
  });

  it('refuses a job whose createdBy is not a user of its account, before it is created', async () => {
    for (const createdBy of ['nobody@example.com', 'mallory@example.com']) {
      const id = `as-${createdBy.split('@')[0] ?? ''}`;
      const h = await sweep(`sweep-${id}`, { account: 'default', createdBy, jobs: [{ batchJobId: id, body: { nodePoolId: 'default-cpu', shellExecutor: { command: 'true' } } }] });
      const failure = await failureOf(h.result());
      assert.equal(failure.type, 'ApiError:PERMISSION_DENIED');
      assert.match(failure.message, new RegExp(`createdBy "${createdBy}" is not a user of account "default"`));
      assert.equal((await t.api.get(`${A}/batchJobs/${id}`)).status, 404, 'nothing was created');
    }
  });

  it('fails the sweep when one job fails, and cancels its siblings', async () => {
    const h = await sweep('sweep-one-fails', {
      account: 'default',
      jobs: [
        { batchJobId: 'sibling-long', body: { nodePoolId: 'default-cpu', shellExecutor: { command: 'sleep 600' } } },
        { batchJobId: 'sibling-fails', body: { nodePoolId: 'default-cpu', shellExecutor: { command: 'sleep 1; exit 4' } } },
      ],
    });
    const failure = await failureOf(h.result());
    assert.equal(failure.type, 'SweepFailed');
    assert.match(failure.message, /sibling-fails ended FAILED: rank 0 on host h\d exited with code 4/);
    const long = await waitForState(t.api, 'default', 'sibling-long', 'CANCELLED');
    assert.match(long.status, /cancelled by its parent workflow sweep-one-fails/);
  });

  it('lets the API cancel a child job, and cancelling the parent cancels its jobs cleanly', async () => {
    const h = await sweep('sweep-cancelled', {
      account: 'default',
      jobs: [
        { batchJobId: 'child-a', body: { nodePoolId: 'default-cpu', shellExecutor: { command: 'sleep 600' } } },
        { batchJobId: 'child-b', body: { nodePoolId: 'default-cpu', shellExecutor: { command: 'sleep 600' } } },
      ],
    });
    await waitForState(t.api, 'default', 'child-a', 'RUNNING');
    await waitForState(t.api, 'default', 'child-b', 'RUNNING');
    await h.cancel();
    for (const id of ['child-a', 'child-b']) {
      const job = await waitForState(t.api, 'default', id, 'CANCELLED');
      assert.match(job.status, /cancelled by its parent workflow sweep-cancelled/);
    }
    const pool = await t.api.get<{ nodePoolStats: { batchJobCount: Record<string, number> } }>(`${A}/nodePools/default-cpu`);
    assert.deepEqual(pool.body.nodePoolStats.batchJobCount, {}, 'the cancelled children hold no capacity');

    // Jobs a workflow starts belong to `workflow:<its id>` unless it names a user: a private one is not
    // admin's to cancel; a shared one is.
    const h2 = await sweep('sweep-api-cancel', {
      account: 'default',
      jobs: [
        { batchJobId: 'child-c', body: { nodePoolId: 'default-cpu', shared: true, shellExecutor: { command: 'sleep 600' } } },
        { batchJobId: 'child-d', body: { nodePoolId: 'default-cpu', shellExecutor: { command: 'sleep 600' } } },
      ],
    });
    await waitForState(t.api, 'default', 'child-c', 'RUNNING');
    const d = await waitForState(t.api, 'default', 'child-d', 'RUNNING');
    assert.equal(d.createdBy, 'workflow:sweep-api-cancel');
    assert.equal((await t.api.post(`${A}/batchJobs/child-d:cancel`, {})).status, 403);
    assert.equal((await t.api.post(`${A}/batchJobs/child-c:cancel`, {})).status, 200);
    const failure = await failureOf(h2.result());
    assert.match(failure.message, /child-c ended CANCELLED: cancelled by admin@localhost/);
    assert.match((await waitForState(t.api, 'default', 'child-d', 'CANCELLED')).status, /cancelled by its parent workflow sweep-api-cancel/);
  });
});
