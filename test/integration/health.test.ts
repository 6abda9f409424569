/**
 * GET /healthz is 200 only when the API, Temporal and the workers are ready, and 503 with the reason
 * otherwise — also for an API process whose control workers run elsewhere.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { killAndWait, spawnRole, startTestService, type TestService, waitFor } from '../support/harness';

interface Health {
  status?: string;
  code?: number;
  message?: string;
  checks: Record<string, string>;
}

describe('health', () => {
  let t: TestService | undefined;
  after(async () => {
    await t?.stop();
  });

  it('is 200 with every check ok when everything runs in one process', async () => {
    const one = await startTestService({ defaultPools: false });
    try {
      const r = await fetch(`${one.url}/healthz`);
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { status: 'ok', checks: { temporal: 'ok', controlWorker: 'ok', agents: 'ok' } });
    } finally {
      await one.stop();
    }
  });

  it('is 503 naming the reason while no control worker polls, and 200 once one does', async () => {
    t = await startTestService({ roles: ['temporal', 'api'], defaultPools: false });
    const down = await fetch(`${t.url}/healthz`);
    assert.equal(down.status, 503);
    const body = (await down.json()) as Health;
    assert.equal(body.code, 14, 'UNAVAILABLE');
    assert.match(body.message ?? '', /controlWorker: no control worker is polling task queue batchd-control/);
    assert.equal(body.checks.temporal, 'ok');

    const worker = spawnRole('worker', { ...t.env, TEMPORAL_ADDRESS: t.service.temporalAddress, DEFAULT_POOLS: 'false' });
    try {
      await waitFor('the worker to poll', async () => ((await fetch(`${t!.url}/healthz`)).status === 200 ? true : undefined), 60_000);
    } finally {
      await killAndWait(worker, 'SIGTERM');
    }
  });
});
