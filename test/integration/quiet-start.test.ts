/**
 * A normal start says nothing alarming: the whole service as one process (what `npm start` runs),
 * logging at info, writes no warning or error line from start until its hosts' agents poll.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { killAndWait, spawnRole, testEnv, waitFor } from '../support/harness';

describe('a normal start', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-quiet-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('logs no warning or error', async () => {
    const env = await testEnv(dataDir, { LOG_LEVEL: 'info' });
    const child = spawnRole('temporal,worker,agents,api', env);
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    try {
      // Six fake hosts (4 CPU, 2 GPU) each start an activity-only worker: the case that used to warn.
      await waitFor('every host agent polling', () => ((output.match(/host agent polling/g) ?? []).length >= 6 ? true : undefined), 60_000);
      // The API may start listening after the agents poll.
      await waitFor('the API answers healthy', () => fetch(`http://127.0.0.1:${env.PORT}/healthz`).then((r) => (r.status === 200 ? true : undefined), () => undefined), 60_000);
    } finally {
      await killAndWait(child, 'SIGTERM');
    }
    const lines = output.split('\n').filter((l) => l.startsWith('{'));
    assert.ok(lines.length > 6, 'the service logged at info');
    const loud = lines.filter((l) => (JSON.parse(l) as { level: number }).level >= 40);
    assert.deepEqual(loud, [], 'no warning or error at start');
  });
});
