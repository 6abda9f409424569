/**
 * A host agent and a job's attempts, with real rank processes and a real log store (SQLite): the
 * agent's activities run in Temporal's activity test environment, whose client only records the
 * "ranks started" signal (there is no job workflow here). A stop of attempt 1 refuses a late attempt 1
 * (also one that names no attempt, as today's workflows send) but never attempt 2 of the same job on
 * the same host; a stale stop of attempt 1 does not end a later attempt that runs; and every line a
 * rank writes is stored with its attempt.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { type NativeConnection } from '@temporalio/worker';
import pino from 'pino';
import { type AgentActivities, type HostRunInput } from '../../activities/contracts';
import { HostAgent } from '../../src/agent/agent';
import { RankIsolation } from '../../src/agent/isolation';
import { rankEnvironment } from '../../src/domain/ranks';
import { SqliteLogStore } from '../../src/store/sqlite-log-store';

const JOB_ID = 'retried';
const JOB = `accounts/a/batchJobs/${JOB_ID}`;
type StopInput = Parameters<AgentActivities['stopRanks']>[0];

describe('a host agent and the attempts of a job', () => {
  let dir: string;
  let logs: SqliteLogStore;
  let isolation: RankIsolation;
  let agent: HostAgent;
  /** The "ranks started" signals the agent sent, as `<workflow id> <host>`. */
  const started: string[] = [];
  const client = {
    withAbortSignal: <R>(_signal: AbortSignal, fn: () => R): R => fn(),
    workflow: { getHandle: (id: string) => ({ signal: (_def: unknown, arg: { host: string }) => Promise.resolve(void started.push(`${id} ${arg.host}`)) }) },
  } as unknown as Client;
  /** Runs an activity of the agent in an activity environment of its own, as a worker would. */
  const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => new MockActivityEnvironment({}, { client }).run<A, R, typeof fn>(fn, ...args);
  const runRanks = (i: HostRunInput) => run((x: HostRunInput) => agent.activities().runRanks(x), i);
  const stopRanks = (i: StopInput) => run((x: StopInput) => agent.activities().stopRanks(x), i);

  /** Rank 0 of the job on host h1, running `command`, as the job's workflow would ask for attempt `attempt`. */
  const input = (command: string, attempt: number | undefined): HostRunInput => ({
    jobName: JOB,
    jobId: JOB_ID,
    account: 'a',
    workflowId: JOB,
    host: 'h1',
    executor: { kind: 'shell', shell: { command } },
    ranks: [
      {
        rank: 0,
        env: rankEnvironment({
          jobName: JOB,
          jobId: JOB_ID,
          worldSize: 1,
          nnodes: 1,
          nodeRank: 0,
          localWorldSize: 1,
          rank: { rank: 0, localRank: 0, slot: 0 },
          masterAddr: '127.0.0.1',
          masterPort: 29500,
          gpu: false,
          userEnv: {},
          ...(attempt !== undefined ? { attempt } : {}),
        }),
      },
    ],
    stopGraceMs: 500,
    ...(attempt !== undefined ? { attempt } : {}),
  });
  const lines = async () => (await logs.query({ job: JOB, fromHead: true, pageSize: 100 })).entries.map((e) => [e.attempt, e.message]);
  async function until(what: string, probe: () => Promise<boolean>, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await probe())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'batchd-agent-attempts-'));
    const workspaceDir = join(dir, 'workspace');
    mkdirSync(workspaceDir);
    logs = new SqliteLogStore(join(dir, 'logs.sqlite'));
    const logger = pino({ level: 'silent' });
    isolation = RankIsolation.create({ dataDir: dir, workspaceDir, setting: 'off', uidRange: { base: 200000, count: 4 }, memoryLimit: null, pidsMax: 0, endpoints: [], logger });
    agent = new HostAgent({
      connection: {} as NativeConnection,
      client,
      namespace: 'default',
      poolName: 'accounts/a/nodePools/p',
      host: 'h1',
      address: '127.0.0.1',
      slots: 1,
      dataDir: dir,
      workspaceDir,
      logs,
      logBudgetBytes: 1 << 20,
      logger,
      maxStopGraceMs: 1000,
      heartbeatTimeoutMs: 4000,
      isolation,
    });
  });
  after(async () => {
    isolation.close();
    await logs.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs attempt 2 of a job on the host where attempt 1 was stopped, and refuses a late attempt 1', async () => {
    const first = runRanks(input('echo attempt-1-started; exec sleep 30', 1));
    await until('attempt 1 to run', async () => (await lines()).some(([, m]) => m === 'attempt-1-started'));
    assert.ok((await stopRanks({ jobName: JOB, graceMs: 500, attempt: 1 })).stopped >= 1);
    assert.deepEqual(await first, { outcome: 'stopped' });

    // A runRanks of attempt 1 that arrives after its stop is refused, also when it names no attempt.
    assert.deepEqual(await runRanks(input('echo must-not-run', 1)), { outcome: 'stopped' });
    assert.deepEqual(await runRanks(input('echo must-not-run', undefined)), { outcome: 'stopped' });

    // Attempt 2 of the same job runs here, and says it started.
    started.length = 0;
    assert.deepEqual(await runRanks(input('echo "attempt-$BATCH_JOB_ATTEMPT-ran"', 2)), { outcome: 'succeeded' });
    assert.deepEqual(started, [`${JOB} h1`]);
    assert.deepEqual(await lines(), [
      [1, 'attempt-1-started'],
      [2, 'attempt-2-ran'],
    ]);
  });

  it('lets a later attempt run on when a stale stop of attempt 1 arrives', async () => {
    const third = runRanks(input('echo attempt-3-started; sleep 1.5; echo attempt-3-done', 3));
    await until('attempt 3 to run', async () => (await lines()).some(([, m]) => m === 'attempt-3-started'));
    // The rank carries the job's marker, which the stop's sweep of escaped processes looks for.
    assert.deepEqual(await stopRanks({ jobName: JOB, graceMs: 500, attempt: 1 }), { stopped: 0 });
    assert.deepEqual(await third, { outcome: 'succeeded' });
    assert.deepEqual((await lines()).filter(([a]) => a === 3), [
      [3, 'attempt-3-started'],
      [3, 'attempt-3-done'],
    ]);
  });
});
