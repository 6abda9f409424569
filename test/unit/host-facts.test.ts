/**
 * Which executors a pool can run, from what its hosts reported (src/domain/control-model.ts), the same
 * reports as the pool's stored snapshot holds them (src/domain/pool-queue.ts), and admission reading
 * the snapshot before the pool's workflow (src/control/executor-admission.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admitExecutor, type HostFactsSources } from '../../src/control/executor-admission';
import { type BatchJobSpec } from '../../src/domain/batch-job-model';
import { executorProblem, type ExecutorKind } from '../../src/domain/control-model';
import { ApiError } from '../../src/domain/errors';
import { PoolQueue, snapshotHostFacts } from '../../src/domain/pool-queue';
import { addHost } from '../../src/domain/scheduler';

describe('executorProblem', () => {
  const ready = (host: string, executors?: Array<'shell' | 'python' | 'notebook'>) => ({ host, status: 'ready', ...(executors ? { executors } : {}) });

  it('names the pool, the executor, what is missing and the hosts, when no ready host can run it', () => {
    assert.equal(
      executorProblem('notebook', [ready('h0', ['shell', 'python']), ready('h1', ['shell'])], 'cpus'),
      'no ready host of node pool cpus can run notebook jobs: jupyter-nbconvert (Debian: jupyter-nbconvert python3-nbclient python3-ipykernel) is not installed on h0, h1',
    );
    assert.match(executorProblem('python', [ready('h0', ['shell'])], 'cpus') ?? '', /python3 is not installed on h0/);
  });

  it('admits when one ready host can, when hosts have not reported (older agents), or when no host has joined yet', () => {
    assert.equal(executorProblem('notebook', [ready('h0', ['shell']), ready('h1', ['shell', 'notebook'])], 'p'), undefined);
    assert.equal(executorProblem('notebook', [ready('h0')], 'p'), undefined);
    assert.equal(executorProblem('notebook', [], 'p'), undefined);
  });

  it('counts only ready hosts: a lost or draining host that could run it does not', () => {
    const hosts = [ready('h0', ['shell']), { host: 'h1', status: 'unreachable', executors: ['shell', 'notebook'] as Array<'shell' | 'notebook'> }];
    assert.match(executorProblem('notebook', hosts, 'p') ?? '', /not installed on h0$/);
  });
});

describe('host facts in the pool store', () => {
  it('a recovery snapshot holds each host with its status and its report, as the pool’s query answers them', () => {
    const q = PoolQueue.fresh(10);
    addHost(q.scheduler, 'h0', 2);
    addHost(q.scheduler, 'h1', 2);
    q.hosts.h0 = { address: '10.0.0.1', taskQueue: 'node/a/p/h0', executors: ['shell', 'python'], python: 'Python 3.11.2', isolation: 'isolated' };
    q.hosts.h1 = { address: '10.0.0.2', taskQueue: 'node/a/p/h1' };
    const h1 = q.scheduler.hosts.find((h) => h.id === 'h1');
    if (h1) h1.status = 'unreachable';
    // Through JSON, as the store keeps it.
    const stored: unknown = JSON.parse(JSON.stringify(q.recoverySnapshot()));
    assert.deepEqual(snapshotHostFacts(stored), [
      { host: 'h0', status: 'ready', executors: ['shell', 'python'], python: 'Python 3.11.2', isolation: 'isolated' },
      { host: 'h1', status: 'unreachable' },
    ]);
  });

  it('reads nothing else: no snapshot, or one of another format', () => {
    assert.equal(snapshotHostFacts(undefined), undefined);
    assert.equal(snapshotHostFacts({ format: 1, scheduler: { hosts: [] }, hosts: {} }), undefined);
    assert.equal(snapshotHostFacts({ grants: [] }), undefined);
  });
});

describe('admitExecutor: the stored snapshot first, the pool’s workflow to confirm a refusal', () => {
  const snapshotOf = (hosts: Record<string, ExecutorKind[]>): unknown => {
    const q = PoolQueue.fresh(10);
    for (const [host, executors] of Object.entries(hosts)) {
      addHost(q.scheduler, host, 1);
      q.hosts[host] = { address: '127.0.0.1', taskQueue: `node/a/p/${host}`, executors };
    }
    return JSON.parse(JSON.stringify(q.recoverySnapshot()));
  };
  const python = { nodePoolId: 'p', numRanks: 1, pythonExecutor: { targetType: 'MODULE', target: 'm' } } as unknown as BatchJobSpec;
  const shell = { nodePoolId: 'p', numRanks: 1, shellExecutor: { command: 'true' } } as unknown as BatchJobSpec;
  /** Sources that count their reads; `live` undefined: the pool's workflow does not answer. */
  const sources = (stored: unknown, live: Record<string, ExecutorKind[]> | undefined) => {
    const reads = { stored: 0, live: 0 };
    const read: HostFactsSources = {
      stored: () => {
        reads.stored++;
        return stored instanceof Error ? Promise.reject(stored) : Promise.resolve(stored);
      },
      live: () => {
        reads.live++;
        if (!live) return Promise.reject(new Error('deadline exceeded'));
        return Promise.resolve(Object.entries(live).map(([host, executors]) => ({ host, status: 'ready', executors })));
      },
    };
    return { read, reads };
  };

  it('admits from the snapshot without asking the pool when a ready host there can run the job', async () => {
    const { read, reads } = sources(snapshotOf({ h0: ['shell', 'python'] }), { h0: ['shell'] });
    await admitExecutor(python, 'p', read);
    assert.deepEqual(reads, { stored: 1, live: 0 });
  });

  it('reads nothing for a shell job', async () => {
    const { read, reads } = sources(snapshotOf({ h0: ['shell'] }), { h0: ['shell'] });
    await admitExecutor(shell, 'p', read);
    assert.deepEqual(reads, { stored: 0, live: 0 });
  });

  it('asks the pool before refusing: a host that can run the job may have joined since the snapshot', async () => {
    const { read, reads } = sources(snapshotOf({ h0: ['shell'] }), { h0: ['shell'], h1: ['shell', 'python'] });
    await admitExecutor(python, 'p', read);
    assert.deepEqual(reads, { stored: 1, live: 1 });
  });

  it('refuses when the pool confirms, naming what is missing', async () => {
    const { read } = sources(snapshotOf({ h0: ['shell'] }), { h0: ['shell'] });
    await assert.rejects(admitExecutor(python, 'p', read), (err: unknown) => err instanceof ApiError && err.code === 'FAILED_PRECONDITION' && /python3 is not installed on h0/.test(err.message));
  });

  it('asks the pool when there is no snapshot, or the store does not answer', async () => {
    for (const stored of [undefined, new Error('database is locked')]) {
      const { read, reads } = sources(stored, { h0: ['shell'] });
      await assert.rejects(admitExecutor(python, 'p', read), ApiError);
      assert.deepEqual(reads, { stored: 1, live: 1 });
    }
  });

  it('admits when the snapshot names a problem and the pool does not answer (the host reports it later)', async () => {
    const { read } = sources(snapshotOf({ h0: ['shell'] }), undefined);
    await admitExecutor(python, 'p', read);
  });
});
