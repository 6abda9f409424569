/**
 * Determinism guard: histories of real jobs and pools replay against the current workflow bundle
 * without a non-determinism error. Fresh histories check this build; the committed fixtures in
 * test/fixtures/histories (binary protobuf) check that a change to workflow code still replays workflows that were
 * running before it (change such code with `patched()`, then refresh the fixtures with
 * `BATCHD_WRITE_HISTORY_FIXTURES=1 npm test -- replay`).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { startTestService, type TestService, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const fixtures = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'histories');
const bundle = { workflowBundle: { codePath: join(__dirname, '..', '..', 'workflow-bundle.js') } };

describe('workflow histories replay against this build', () => {
  let t: TestService;
  const histories = new Map<string, temporal.api.history.v1.IHistory>();

  before(async () => {
    t = await startTestService();
    await t.api.post(`${A}/batchJobs?batchJobId=replay-done`, { nodePoolId: 'default-gpu', numRanks: 12, shellExecutor: { command: 'echo $RANK' } });
    await t.api.post(`${A}/batchJobs?batchJobId=replay-fails`, { nodePoolId: 'default-cpu', numRanks: 2, shellExecutor: { command: '[ $RANK = 1 ] && exit 2; sleep 30' } });
    await t.api.post(`${A}/batchJobs?batchJobId=replay-cancelled`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'sleep 30' } });
    await waitForState(t.api, 'default', 'replay-cancelled', 'RUNNING');
    await t.api.post(`${A}/batchJobs/replay-cancelled:cancel`, {});
    await waitForState(t.api, 'default', 'replay-done', 'COMPLETED');
    await waitForState(t.api, 'default', 'replay-fails', 'FAILED');
    await waitForState(t.api, 'default', 'replay-cancelled', 'CANCELLED');
    for (const id of ['replay-done', 'replay-fails', 'replay-cancelled']) {
      histories.set(`batch-job-${id}`, await t.service.client.workflow.getHandle(`accounts/default/batchJobs/${id}`).fetchHistory());
    }
    histories.set('node-pool-default-cpu', await t.service.client.workflow.getHandle('accounts/default/nodePools/default-cpu').fetchHistory());
  });
  after(async () => {
    await t?.stop();
  });

  it('replays fresh histories of a completed, a failed and a cancelled job, and of a pool', async () => {
    for (const [name, history] of histories) {
      assert.ok((history.events?.length ?? 0) > 5, `${name} has a history`);
      await Worker.runReplayHistory(bundle, history, name);
    }
    if (process.env.BATCHD_WRITE_HISTORY_FIXTURES === '1') {
      for (const [name, history] of histories) writeFileSync(join(fixtures, `${name}.binpb`), temporal.api.history.v1.History.encode(history).finish());
    }
  });

  it('replays the committed fixture histories', async () => {
    const files = readdirSync(fixtures).filter((f) => f.endsWith('.binpb'));
    assert.ok(files.length >= 4, `fixtures present (${files.length}); write them with BATCHD_WRITE_HISTORY_FIXTURES=1`);
    for (const f of files) {
      const history = temporal.api.history.v1.History.decode(readFileSync(join(fixtures, f)));
      await Worker.runReplayHistory(bundle, history, f);
    }
  });
});
