/**
 * Determinism guard: histories of real jobs, pools, environments and parent workflows replay against
 * the current workflow bundle without a non-determinism error.
 *
 * - Fresh histories, made here, check this build: a completed, a failed, a cancelled-while-running,
 *   a cancelled-while-queued and a deleted-while-running job; one retried, one stopped by its run
 *   limit, one that waited on another (which then told it of its end); a pool run that granted several
 *   jobs in one pass and continued as new; a pool whose lost host its probe brought back; an
 *   environment with snapshots; a sweep of child jobs.
 * - The committed fixtures (test/fixtures/histories/<name>@<commit>.binpb) check that a change to
 *   workflow code still replays the workflows that were running before it. Change such code with
 *   `patched()`. Fixtures are append-only: `BATCHD_WRITE_HISTORY_FIXTURES=1 npm test -- replay` adds
 *   this build's histories under the current commit and never replaces a file.
 * - Every workflow type the control worker registers must have at least one committed fixture.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import * as registered from '../../workflows';
import { getNodePoolInternalsQuery, hostLostSignal } from '../../workflows/messages';
import { startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const fixtures = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'histories');
const bundle = { workflowBundle: { codePath: join(__dirname, '..', '..', 'workflow-bundle.js') } };
type History = temporal.api.history.v1.IHistory;

function workflowTypeOf(history: History): string | undefined {
  return history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? undefined;
}

/** The sequence numbers of a history's local activity markers, in the order they were written. */
function localActivitySeqs(history: History): number[] {
  const seqs: number[] = [];
  for (const e of history.events ?? []) {
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName !== 'core_local_activity') continue;
    const data = marker.details?.data?.payloads?.[0]?.data;
    if (data) seqs.push((JSON.parse(Buffer.from(data).toString('utf8')) as { seq: number }).seq);
  }
  return seqs;
}

function currentCommit(): string {
  if (process.env.BATCHD_FIXTURE_COMMIT) return process.env.BATCHD_FIXTURE_COMMIT;
  return execFileSync('git', ['rev-parse', '--short=7', 'HEAD'], { cwd: fixtures, encoding: 'utf8' }).trim();
}

describe('workflow histories replay against this build', () => {
  let t: TestService;
  const histories = new Map<string, History>();
  const job = (id: string) => t.service.client.workflow.getHandle(`accounts/default/batchJobs/${id}`);

  before(async () => {
    // A pool continues as new every 100 events, so a short run makes a continue-as-new history.
    t = await startTestService({ env: { POOL_CONTINUE_AS_NEW_EVENTS: '100' } });
    const post = async (id: string, body: Record<string, unknown>) => {
      const r = await t.api.post(`${A}/batchJobs?batchJobId=${id}`, body);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    };
    // The GPU pool is held whole while three jobs queue, then granted them in one pass.
    await post('replay-holder', { nodePoolId: 'default-gpu', numRanks: 16, shellExecutor: { command: 'sleep 2' } });
    await waitForState(t.api, 'default', 'replay-holder', 'RUNNING');
    // Queued behind the holder, then cancelled.
    await post('replay-cancelled-queued', { nodePoolId: 'default-gpu', numRanks: 16, shellExecutor: { command: 'true' } });
    await waitForState(t.api, 'default', 'replay-cancelled-queued', 'QUEUED');
    await t.api.post(`${A}/batchJobs/replay-cancelled-queued:cancel`, {});
    for (const id of ['replay-g1', 'replay-g2', 'replay-g3']) await post(id, { nodePoolId: 'default-gpu', numRanks: 4, shellExecutor: { command: 'echo $RANK' } });
    await post('replay-done', { nodePoolId: 'default-gpu', numRanks: 12, shellExecutor: { command: 'echo $RANK' } });
    await post('replay-fails', { nodePoolId: 'default-cpu', numRanks: 2, shellExecutor: { command: '[ $RANK = 1 ] && exit 2; sleep 30' } });
    await post('replay-cancelled', { nodePoolId: 'default-cpu', shellExecutor: { command: 'sleep 30' } });
    await waitForState(t.api, 'default', 'replay-cancelled', 'RUNNING');
    await t.api.post(`${A}/batchJobs/replay-cancelled:cancel`, {});
    // Retries, time limits and dependencies: a job retried once (its timers), one stopped by its run
    // limit, and one that waited for another's end.
    await post('replay-retried', {
      nodePoolId: 'default-cpu',
      retryPolicy: { maxAttempts: 2, exitCodes: ['3'], initialBackoff: '0.2s' },
      maxRunDuration: '60s',
      maxQueueDuration: '600s',
      shellExecutor: { command: '[ $BATCH_JOB_ATTEMPT = 2 ] || exit 3' },
    });
    await post('replay-run-limit', { nodePoolId: 'default-cpu', maxRunDuration: '0.5s', shellExecutor: { command: 'sleep 30' } });
    await post('replay-dependent', { nodePoolId: 'default-cpu', dependsOn: [{ batchJob: 'replay-done', condition: 'COMPLETED' }], shellExecutor: { command: 'true' } });
    // One deleted while it runs.
    await post('replay-deleted', { nodePoolId: 'default-cpu', shellExecutor: { command: 'sleep 30' } });
    await waitForState(t.api, 'default', 'replay-deleted', 'RUNNING');
    const deleted = job('replay-deleted');
    await t.api.delete(`${A}/batchJobs/replay-deleted`);
    await deleted.result();
    // An environment with snapshots.
    assert.equal((await t.api.post(`${A}/environments`, { environmentId: 'replay-env', environment: { imageRef: 'example.com/img:1' } })).status, 200);
    const snap = await t.api.post<{ name: string }>(`${A}/snapshots`, { environmentId: 'replay-env' });
    assert.equal(snap.status, 200, JSON.stringify(snap.body));
    await t.api.post(`${A}/snapshots`, { environmentId: 'replay-env' });
    // A parent workflow with child jobs.
    const sweep = await t.service.client.workflow.start('sweepWorkflow', {
      workflowId: 'replay-sweep',
      taskQueue: t.service.config.TASK_QUEUE,
      args: [{ account: 'default', jobs: [1, 2].map((i) => ({ batchJobId: `replay-sweep-${i}`, body: { nodePoolId: 'default-cpu', shellExecutor: { command: 'true' } } })) }],
    });
    await sweep.result();

    for (const id of ['replay-g1', 'replay-g2', 'replay-g3', 'replay-done']) await waitForState(t.api, 'default', id, 'COMPLETED');
    await waitForState(t.api, 'default', 'replay-fails', 'FAILED');
    await waitForState(t.api, 'default', 'replay-retried', 'COMPLETED');
    await waitForState(t.api, 'default', 'replay-run-limit', 'FAILED');
    await waitForState(t.api, 'default', 'replay-dependent', 'COMPLETED');
    await waitForState(t.api, 'default', 'replay-cancelled', 'CANCELLED');
    await waitForState(t.api, 'default', 'replay-cancelled-queued', 'CANCELLED');
    for (const id of ['replay-done', 'replay-fails', 'replay-cancelled', 'replay-cancelled-queued', 'replay-deleted', 'replay-retried', 'replay-run-limit', 'replay-dependent']) {
      histories.set(`batch-job-${id}`, await closedHistory(id));
    }
    histories.set('environment-with-snapshots', await atRest(t.service.client.workflow.getHandle('accounts/default/environments/replay-env')));
    histories.set('sweep', await sweep.fetchHistory());
    // The GPU pool's runs: the first one that continued as new (with the one-pass grants in it).
    const gpu = 'accounts/default/nodePools/default-gpu';
    const first = await waitFor('the GPU pool continued as new', async () => {
      const runs: string[] = [];
      for await (const w of t.service.client.workflow.list({ query: `WorkflowId = '${gpu}'` })) runs.push(w.runId);
      for (const runId of runs) {
        const h = await t.service.client.workflow.getHandle(gpu, runId).fetchHistory();
        if (h.events?.some((e) => e.workflowExecutionContinuedAsNewEventAttributes)) return h;
      }
      // Enough short jobs make the history long enough: two that each take the whole pool, so that the
      // second asks the pool's workflow (a job that fits an idle pool claims it in the store, unseen there).
      const filler = `replay-filler-${Date.now()}`;
      for (const n of [1, 2]) await post(`${filler}-${n}`, { nodePoolId: 'default-gpu', numRanks: 16, shellExecutor: { command: 'true' } });
      return undefined;
    }, 120_000, 500);
    histories.set('node-pool-continued-as-new', first);
    histories.set('node-pool-default-cpu', await atRest(t.service.client.workflow.getHandle('accounts/default/nodePools/default-cpu')));
    // A pool told that one of its hosts was lost (as a job tells it), whose agent answers its probe.
    assert.equal((await t.api.post(`${A}/nodePools`, { nodePoolId: 'replay-lost', nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes: 2 } } })).status, 200);
    const lossy = t.service.client.workflow.getHandle('accounts/default/nodePools/replay-lost');
    const statusOf = async (host: string) => (await lossy.query(getNodePoolInternalsQuery)).hosts.find((h) => h.host === host)?.status;
    await waitFor('both hosts joined', async () => ((await statusOf('h0')) === 'ready' && (await statusOf('h1')) === 'ready' ? true : undefined), 60_000);
    await lossy.signal(hostLostSignal, { host: 'h1', reason: 'replay: host h1 was lost' });
    await waitFor('h1 probed back to ready', async () => ((await statusOf('h1')) === 'ready' ? true : undefined), 60_000);
    const returned = await atRest(lossy);
    assert.ok(returned.events?.some((e) => e.activityTaskCompletedEventAttributes), 'the probe was answered');
    histories.set('node-pool-host-returns', returned);

    // A shared pass: a job of priority 5 preempts a preemptible job on a one-host pool, which retries.
    assert.equal((await t.api.post(`${A}/nodePools`, { nodePoolId: 'replay-prio', nodePool: { fakeNodePool: { machineType: 'g5.12xlarge', numNodes: 1 } } })).status, 200);
    await post('replay-preempted', {
      nodePoolId: 'replay-prio',
      numRanks: 4,
      retryPolicy: { maxAttempts: 2, conditions: ['PREEMPTED'], initialBackoff: '0.2s' },
      shellExecutor: { command: '[ $BATCH_JOB_ATTEMPT = 2 ] || sleep 30' },
    });
    await waitForState(t.api, 'default', 'replay-preempted', 'RUNNING');
    await post('replay-preempts', { nodePoolId: 'replay-prio', numRanks: 4, priority: 5, shellExecutor: { command: 'true' } });
    await waitForState(t.api, 'default', 'replay-preempts', 'COMPLETED');
    const requeued = await waitForState(t.api, 'default', 'replay-preempted', 'COMPLETED');
    assert.equal(requeued.attempt, 2);
    for (const id of ['replay-preempted', 'replay-preempts']) histories.set(`batch-job-${id}`, await closedHistory(id));
    histories.set('node-pool-preempted', await atRest(t.service.client.workflow.getHandle('accounts/default/nodePools/replay-prio')));
  });

  /**
   * A job's whole history. The API says a job's end as soon as its last step wrote the record, before
   * the workflow task that ran that step completes and records its marker; a history fetched in between
   * ends without it, and its replay would run the step for real.
   */
  async function closedHistory(id: string): Promise<History> {
    const handle = job(id);
    await handle.result();
    return handle.fetchHistory();
  }

  /** A workflow's history once it is done for now: no workflow task in flight, nothing new for a moment. */
  async function atRest(handle: { fetchHistory(): Promise<History> }): Promise<History> {
    let seen = -1;
    return waitFor('the workflow at rest', async () => {
      const h = await handle.fetchHistory();
      const last = h.events?.at(-1);
      const still = h.events?.length === seen && !last?.workflowTaskScheduledEventAttributes && !last?.workflowTaskStartedEventAttributes;
      seen = h.events?.length ?? -1;
      return still ? h : undefined;
    }, 30_000, 500);
  }
  after(async () => {
    await t?.stop();
  });

  it('replays fresh histories of every kind of job ending, a pool that granted in one pass and continued as new, an environment and a sweep', async () => {
    // The three 4-GPU jobs queued behind the 16-GPU holder fit together once it ended: one pass granted
    // them all. Grants leave from the pool's syncPool step now, so its history has no event per grant.
    const granted = await Promise.all(['replay-g1', 'replay-g2', 'replay-g3'].map((id) => job(id).fetchHistory()));
    for (const h of granted) assert.ok(h.events?.some((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'capacityGranted'), 'each was granted');
    for (const [name, history] of histories) {
      assert.ok((history.events?.length ?? 0) > 5, `${name} has a history`);
      // One local activity in flight at a time (workflows/control.ts): markers in schedule order.
      const seqs = localActivitySeqs(history);
      if (name.startsWith('batch-job-') || name.startsWith('node-pool-')) assert.ok(seqs.length > 0, `${name} ran local activities`);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `${name}: local activity markers out of schedule order: ${seqs.join(',')}`);
      await Worker.runReplayHistory(bundle, history, name).catch((err: Error) => assert.fail(`${name} did not replay: ${err.message}`));
    }
    if (process.env.BATCHD_WRITE_HISTORY_FIXTURES === '1') {
      const commit = currentCommit();
      for (const [name, history] of histories) {
        const file = join(fixtures, `${name}@${commit}.binpb`);
        if (!existsSync(file)) writeFileSync(file, temporal.api.history.v1.History.encode(history).finish());
      }
    }
  });

  it('replays every committed fixture, and there is one for every registered workflow type', async () => {
    const files = readdirSync(fixtures).filter((f) => f.endsWith('.binpb'));
    const covered = new Set<string>();
    for (const f of files) {
      assert.match(f, /^[a-z0-9-]+@[0-9a-f]{7,}\.binpb$/, `${f}: fixtures are named <name>@<commit>.binpb`);
      const history = temporal.api.history.v1.History.decode(readFileSync(join(fixtures, f)));
      const type = workflowTypeOf(history);
      if (type) covered.add(type);
      await Worker.runReplayHistory(bundle, history, f);
    }
    const missing = Object.keys(registered).filter((type) => !covered.has(type));
    assert.deepEqual(missing, [], `workflow types without a fixture history; add one with BATCHD_WRITE_HISTORY_FIXTURES=1 npm test -- replay`);
  });
});
