/**
 * Nothing accepted is lost: the control worker killed mid-job (SIGKILL) and replaced, the job still
 * finishes; the whole service stopped and started again on the same DATA_DIR keeps every job, and a job
 * that was running when it stopped ends with a status that says what happened.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { BatchJobRecord } from '../../src/store/read-model';
import { type BatchJobBody, killAndWait, processesMatching, spawnRole, startTestService, testEnv, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';

describe('the control worker dies mid-job', () => {
  let t: TestService | undefined;
  after(async () => {
    await t?.stop();
  });

  it('a job that was running when the worker was killed still completes under a new worker', async () => {
    // Temporal, agents and API in this process; the control worker (workflows) in a child we can kill.
    t = await startTestService({ roles: ['temporal', 'agents', 'api'] });
    const workerEnv = { ...t.env, TEMPORAL_ADDRESS: t.service.temporalAddress };
    let worker = spawnRole('worker', workerEnv);
    try {
      // The worker role creates the default pools when it starts.
      await waitFor('the default pools', async () => ((await t!.api.get(`${A}/nodePools/default-cpu`)).status === 200 ? true : undefined), 60_000);
      const r = await t.api.post<BatchJobBody>(`${A}/batchJobs?batchJobId=survivor`, {
        nodePoolId: 'default-cpu',
        numRanks: 2,
        shellExecutor: { command: 'sleep 3; echo finished rank $RANK' },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await waitForState(t.api, 'default', 'survivor', 'RUNNING', 60_000);
      // GET reads the read model, which the workflow writes within the task that made the change;
      // check the record itself before the kill, so the answer without a worker below is exact.
      await waitFor('RUNNING in the read model', async () => ((await t!.service.store.get<BatchJobRecord>('batchJobs', 'accounts/default/batchJobs/survivor'))?.resource.state === 'RUNNING' ? true : undefined), 30_000);
      await killAndWait(worker, 'SIGKILL');
      // While no worker runs, get still answers, at once (from the read model).
      const during = await t.api.get<BatchJobBody>(`${A}/batchJobs/survivor`);
      assert.equal(during.status, 200);
      assert.equal(during.body.state, 'RUNNING');
      worker = spawnRole('worker', workerEnv);
      const done = await waitForState(t.api, 'default', 'survivor', 'COMPLETED', 60_000);
      assert.match(done.status, /all 2 ranks exited with code 0/);
      const logs = await t.api.get<{ entries: Array<{ message: string }> }>(`${A}/batchJobs/survivor:getLogs`);
      assert.deepEqual(logs.body.entries.map((e) => e.message).sort(), ['finished rank 0', 'finished rank 1']);
    } finally {
      await killAndWait(worker, 'SIGTERM');
    }
  });
});

describe('the whole service restarts on the same DATA_DIR', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-restart-'));
  let t: TestService | undefined;
  after(async () => {
    await t?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps ended and queued jobs; a job running at shutdown ends FAILED saying why; queued jobs then run', async () => {
    t = await startTestService({ dataDir });
    await t.api.post(`${A}/batchJobs?batchJobId=done-before`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'echo kept' } });
    await waitForState(t.api, 'default', 'done-before', 'COMPLETED');
    await t.api.post(`${A}/batchJobs?batchJobId=long-runner`, { nodePoolId: 'default-gpu', numRanks: 16, shellExecutor: { command: 'sleep 600' } });
    await waitForState(t.api, 'default', 'long-runner', 'RUNNING');
    await t.api.post(`${A}/batchJobs?batchJobId=queued-behind`, { nodePoolId: 'default-gpu', numRanks: 8, shellExecutor: { command: 'echo ran after restart' } });
    await waitForState(t.api, 'default', 'queued-behind', 'QUEUED');

    await t.stop();
    t = await startTestService({ dataDir });

    const kept = await t.api.get<BatchJobBody>(`${A}/batchJobs/done-before`);
    assert.equal(kept.status, 200);
    assert.equal(kept.body.state, 'COMPLETED');
    const ended = await waitForState(t.api, 'default', 'long-runner', 'FAILED', 60_000);
    assert.match(ended.status, /host h\d/, 'the status names the host whose ranks were lost');
    const ran = await waitForState(t.api, 'default', 'queued-behind', 'COMPLETED', 60_000);
    assert.match(ran.status, /all 8 ranks exited with code 0/);
    const list = await t.api.get<{ totalSize: number }>(`${A}/batchJobs`);
    assert.equal(list.body.totalSize, 3);
  });
});

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function descendantsOf(pid: number): number[] {
  return childrenOf(pid).flatMap((c) => [c, ...descendantsOf(c)]);
}

describe('npm start', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-npm-start-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('stops its whole process tree on SIGTERM to npm, as a supervisor sends it', async () => {
    const root = join(__dirname, '..', '..', '..');
    const env = await testEnv(dataDir, { DEFAULT_POOLS: 'false' });
    // --ignore-scripts skips prestart's build (the suite runs on a built tree) and nothing else.
    const npm = spawn('npm', ['start', '--ignore-scripts'], { cwd: root, env: { ...process.env, ...env }, stdio: 'ignore' });
    const npmExited = new Promise<number | null>((r) => npm.once('exit', (code) => r(code)));
    let tree: number[] = [];
    try {
      await waitFor('npm start healthy', async () => ((await fetch(`http://127.0.0.1:${env.PORT}/healthz`).then((r) => r.status, () => 0)) === 200 ? true : undefined), 90_000, 500);
      tree = descendantsOf(npm.pid!);
      const children = childrenOf(npm.pid!);
      assert.equal(children.length, 1, 'npm runs one child');
      const service = children[0]!;
      const argv = readFileSync(`/proc/${service}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
      // The service itself, not a shell around it, with the workflow-thread preload (src/temporal/workflow-threads.ts).
      assert.match(argv.join(' '), /^node --require \.\/dist\/src\/temporal\/workflow-threads\.js dist\/src\/main\.js$/, 'the child is the service itself, not a shell around it');
      // The dev server's command line names the data folder.
      assert.equal(processesMatching(dataDir).length, 1, 'the embedded dev server runs');

      npm.kill('SIGTERM');
      assert.equal(await npmExited, 0, 'npm start exits cleanly');
      await waitFor('the service and its dev server gone', () => {
        let alive = true;
        try {
          process.kill(service, 0);
        } catch {
          alive = false;
        }
        return !alive && processesMatching(dataDir).length === 0 ? true : undefined;
      }, 15_000, 200);
    } finally {
      // On failure, leave nothing behind: npm, what it started, and the dev server.
      if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL');
      for (const pid of [...tree, ...processesMatching(dataDir)]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
});
