/**
 * BatchJobService.update's paths that a live server cannot hit on demand: the job's workflow closing
 * between the read and the update (fall back to the ended-job path), the workflow's own refusal
 * (kept), a transient failure while the workflow still runs (not retried as ended), and the
 * versioned, change-only write of an ended job. And get's answer for a live job: from its record,
 * never by a query of its workflow, unless its workflow closed without its final report (FAILED) or
 * the server is away (503).
 * Temporal is a stub; the read model is in memory with the real store's rule (a write lands only when
 * its version is newer).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import pino from 'pino';
import { type Principal } from '../../src/api/auth';
import { BatchJobService } from '../../src/api/batch-job-service';
import { type BatchJob } from '../../src/domain/batch-job';
import { ApiError } from '../../src/domain/errors';
import { type LogStore } from '../../src/store/log-store';
import { type ReadModel, type ResourceKind, type StoredResource } from '../../src/store/read-model';

const NAME = 'accounts/acme/batchJobs/job';
const ANN: Principal = { account: 'acme', email: 'ann@acme.dev', keyId: 'k1' };
const BOB: Principal = { account: 'acme', email: 'bob@acme.dev', keyId: 'k2' };
const T0 = '2026-01-01T00:00:00.000Z';

function job(overrides: Partial<BatchJob> = {}): BatchJob {
  return {
    name: NAME,
    displayName: 'before',
    nodePoolId: 'cpu',
    numRanks: 1,
    envVars: {},
    shellExecutor: { command: 'true' },
    annotations: {},
    shared: false,
    createTime: T0,
    updateTime: T0,
    createdBy: ANN.email,
    state: 'RUNNING',
    status: 'running',
    ...overrides,
  };
}

class MemoryReadModel implements ReadModel {
  rows = new Map<string, { resource: StoredResource; version: number }>();
  writes = 0;
  put(_kind: ResourceKind, _account: string, resource: StoredResource, version: number): Promise<boolean> {
    const row = this.rows.get(resource.name);
    if (row && row.version >= version) return Promise.resolve(false);
    this.rows.set(resource.name, { resource: structuredClone(resource), version });
    this.writes++;
    return Promise.resolve(true);
  }
  putIfAbsent(kind: ResourceKind, account: string, resource: StoredResource, version: number): Promise<boolean> {
    return this.rows.has(resource.name) ? Promise.resolve(false) : this.put(kind, account, resource, version);
  }
  get<T extends StoredResource>(_kind: ResourceKind, name: string): Promise<{ resource: T; version: number } | undefined> {
    const row = this.rows.get(name);
    return Promise.resolve(row ? { resource: structuredClone(row.resource) as T, version: row.version } : undefined);
  }
  remove(_kind: ResourceKind, name: string): Promise<boolean> {
    return Promise.resolve(this.rows.delete(name));
  }
  list(): never {
    throw new Error('not used');
  }
  listAll(): never {
    throw new Error('not used');
  }
  count(): never {
    throw new Error('not used');
  }
  jobCounts(): never {
    throw new Error('not used');
  }
  syncPool(): never {
    throw new Error('not used');
  }
  loadPool(): never {
    throw new Error('not used');
  }
  poolSnapshot(): never {
    throw new Error('not used');
  }
  amendPoolSnapshot(): never {
    throw new Error('not used');
  }
  queuePositions(): never {
    throw new Error('not used');
  }
  queuedJobs(): never {
    throw new Error('not used');
  }
  dropPool(): never {
    throw new Error('not used');
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface Stub {
  /** What the workflow's query answers. */
  live: () => BatchJob;
  executeUpdate: () => Promise<BatchJob>;
  status: () => string;
}

function service(store: MemoryReadModel, stub: Stub, temporalProblem?: () => Promise<string | undefined>): { service: BatchJobService; updates: () => number; queries: () => number } {
  let updates = 0;
  let queries = 0;
  const handle = {
    query: () => {
      queries++;
      return Promise.resolve({ job: stub.live(), version: 1 });
    },
    executeUpdate: () => {
      updates++;
      return stub.executeUpdate();
    },
    describe: () => Promise.resolve({ status: { name: stub.status() } }),
    signal: () => Promise.resolve(),
  };
  const client = {
    workflow: { getHandle: () => handle },
    withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn(),
  } as unknown as Client;
  const svc = new BatchJobService({
    client,
    store,
    logs: {} as LogStore,
    config: { TASK_QUEUE: 'q', HOST_HEARTBEAT_TIMEOUT_MS: 1000, HOST_START_TIMEOUT_MS: 1000, RANK_STOP_GRACE_MS: 1000, dataDir: '/tmp', POOL_QUEUE_WINDOW: 1000 },
    logger: pino({ level: 'silent' }),
    ...(temporalProblem ? { temporalProblem } : {}),
  });
  return { service: svc, updates: () => updates, queries: () => queries };
}

async function rejects(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ApiError, `expected ApiError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe('BatchJobService.update', () => {
  it('falls back to the ended-job path when the workflow closed in between: plans against the stored job, writes version + 1', async () => {
    const store = new MemoryReadModel();
    await store.put('batchJobs', 'acme', job(), 3);
    const { service: svc, updates } = service(store, {
      live: () => job(),
      executeUpdate: async () => {
        // The job completes and its workflow closes before the update lands.
        await store.put('batchJobs', 'acme', job({ state: 'COMPLETED', status: 'done', endTime: T0 }), 5);
        throw new WorkflowNotFoundError('workflow execution already completed', NAME, undefined);
      },
      status: () => 'COMPLETED',
    });
    const updated = await svc.update(ANN, 'job', { displayName: 'after' }, undefined);
    assert.equal(updates(), 1);
    assert.equal(updated.displayName, 'after');
    assert.equal(updated.state, 'COMPLETED', 'the final state is kept');
    assert.ok(updated.updateTime > T0, 'updateTime moved');
    const row = await store.get<BatchJob>('batchJobs', NAME);
    assert.equal(row?.version, 6);
    assert.equal(row?.resource.displayName, 'after');
  });

  it('falls back too when the update fails for a transient reason and the workflow turns out to be closed', async () => {
    const store = new MemoryReadModel();
    await store.put('batchJobs', 'acme', job(), 3);
    const { service: svc } = service(store, {
      live: () => job(),
      executeUpdate: async () => {
        await store.put('batchJobs', 'acme', job({ state: 'FAILED', status: 'rank 0 exited with code 1' }), 4);
        throw new Error('Workflow Update was aborted');
      },
      status: () => 'COMPLETED',
    });
    assert.equal((await svc.update(ANN, 'job', { shared: true }, undefined)).shared, true);
    assert.equal((await store.get('batchJobs', NAME))?.version, 5);
  });

  it('does not fall back while the workflow still runs, and keeps the workflow\'s own refusal', async () => {
    const store = new MemoryReadModel();
    await store.put('batchJobs', 'acme', job(), 3);
    const transient = service(store, { live: () => job(), executeUpdate: () => Promise.reject(new Error('connection reset')), status: () => 'RUNNING' });
    await assert.rejects(transient.service.update(ANN, 'job', { displayName: 'x' }, undefined), /connection reset/);
    const refused = service(store, {
      live: () => job(),
      executeUpdate: () =>
        Promise.reject(new WorkflowUpdateFailedError('Workflow Update failed', ApplicationFailure.create({ type: 'ApiError:FAILED_PRECONDITION', message: 'the job is being deleted', nonRetryable: true }))),
      status: () => 'COMPLETED',
    });
    await rejects(refused.service.update(ANN, 'job', { displayName: 'x' }, undefined), 'FAILED_PRECONDITION', /being deleted/);
    assert.equal(store.writes, 1, 'nothing was written to the read model');
  });

  it('changes an ended job in the read model only when something changes; updateTime moves only then', async () => {
    const store = new MemoryReadModel();
    await store.put('batchJobs', 'acme', job({ state: 'CANCELLED', shared: true }), 7);
    const { service: svc, updates } = service(store, { live: () => assert.fail('an ended job is not queried'), executeUpdate: () => assert.fail('no workflow update'), status: () => 'COMPLETED' });
    const same = await svc.update(BOB, 'job', { displayName: 'before', nodePoolId: 'cpu' }, undefined);
    assert.equal(same.updateTime, T0);
    assert.equal((await store.get('batchJobs', NAME))?.version, 7, 'nothing changed, nothing written');
    const cleared = await svc.update(BOB, 'job', {}, 'display_name');
    assert.equal(cleared.displayName, undefined);
    assert.notEqual(cleared.updateTime, T0);
    assert.equal((await store.get('batchJobs', NAME))?.version, 8);
    await rejects(svc.update(BOB, 'job', { numRanks: 2 }, undefined), 'INVALID_ARGUMENT', /numRanks cannot be changed/);
    assert.equal(updates(), 0);
  });

  it('refuses a private job to anyone but its creator, live or ended, before planning anything', async () => {
    const store = new MemoryReadModel();
    await store.put('batchJobs', 'acme', job(), 3);
    const live = service(store, { live: () => job(), executeUpdate: () => assert.fail('no update for a refused caller'), status: () => 'RUNNING' });
    await rejects(live.service.update(BOB, 'job', { numRanks: 5 }, undefined), 'PERMISSION_DENIED', /only ann@acme\.dev, who created batch job "job"/);
    await store.put('batchJobs', 'acme', job({ state: 'COMPLETED' }), 4);
    await rejects(live.service.update(BOB, 'job', { displayName: 'x' }, undefined), 'PERMISSION_DENIED', /not shared/);
    await rejects(live.service.update(ANN, 'nope', { displayName: 'x' }, undefined), 'NOT_FOUND');
  });

  it('refuses a DELETING job with FAILED_PRECONDITION', async () => {
    const store = new MemoryReadModel();
    await store.put('batchJobs', 'acme', job({ state: 'DELETING' }), 3);
    const { service: svc, updates } = service(store, { live: () => job({ state: 'DELETING' }), executeUpdate: () => assert.fail('planned first'), status: () => 'RUNNING' });
    await rejects(svc.update(ANN, 'job', { displayName: 'x' }, undefined), 'FAILED_PRECONDITION', /being deleted/);
    assert.equal(updates(), 0);
  });
});

describe('BatchJobService.get of a live job', () => {
  const accepted = () => job({ state: 'CREATING', status: 'accepted; waiting for its workflow to queue it in node pool cpu' });

  it('answers its record, whatever its version, without querying the workflow', async () => {
    for (const [version, record] of [
      [0, accepted()],
      [1, accepted()],
      [4, job({ state: 'PENDING', status: 'starting 1 rank on 1 host' })],
      [9, job({ state: 'RUNNING', status: 'running' })],
    ] as const) {
      const store = new MemoryReadModel();
      await store.put('batchJobs', 'acme', record, version);
      const { service: svc, queries } = service(store, { live: () => job({ state: 'CANCELLING' }), executeUpdate: () => assert.fail('no update'), status: () => 'RUNNING' });
      assert.deepEqual(await svc.get(ANN, 'job'), record, `version ${version}`);
      assert.equal(queries(), 0, `version ${version}: no query`);
    }
  });

  it('says FAILED when the workflow closed without its final report, and writes nothing', async () => {
    const store = new MemoryReadModel();
    await store.put('batchJobs', 'acme', accepted(), 0);
    const writes = store.writes;
    const { service: svc, queries } = service(store, { live: () => assert.fail('not queried'), executeUpdate: () => assert.fail('no update'), status: () => 'TERMINATED' });
    const got = await svc.get(ANN, 'job');
    assert.equal(got.state, 'FAILED');
    assert.match(got.status, /the job's workflow ended without finishing the job \(its workflow terminated\)/);
    assert.equal(queries(), 0);
    assert.equal(store.writes, writes, 'a read never writes');
  });

  it('answers 503 when the server does not describe the workflow and is away; the record when it is not away', async () => {
    const store = new MemoryReadModel();
    await store.put('batchJobs', 'acme', accepted(), 0);
    const silent: Stub = {
      live: () => assert.fail('not queried'),
      executeUpdate: () => assert.fail('no update'),
      status: () => {
        throw new Error('14 UNAVAILABLE: connection refused');
      },
    };
    await rejects(service(store, silent, () => Promise.resolve('the Temporal server at 127.0.0.1:7233 does not answer')).service.get(ANN, 'job'), 'UNAVAILABLE', /does not answer/);
    assert.deepEqual(await service(store, silent, () => Promise.resolve(undefined)).service.get(ANN, 'job'), accepted());
  });
});
