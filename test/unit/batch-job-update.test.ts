import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BatchJob } from '../../src/domain/batch-job';
import {
  applyBatchJobPatch,
  type BatchJobPatch,
  parseUpdateMask,
  patchProblem,
  planBatchJobUpdate,
  sameProto3Value,
  snakeToCamel,
} from '../../src/domain/batch-job-update';
import { ApiError, type FieldViolation } from '../../src/domain/errors';

const T0 = '2026-01-01T00:00:00Z';
const T1 = '2026-01-01T00:05:00Z';

function job(overrides: Partial<BatchJob> = {}): BatchJob {
  return {
    name: 'accounts/acme/batchJobs/train',
    displayName: 'old name',
    nodePoolId: 'gpu-a',
    numRanks: 4,
    envVars: { LR: '0.1' },
    pythonExecutor: { targetType: 'MODULE', target: 'pkg.train' },
    annotations: { 'example.com/team': 'ml' },
    shared: false,
    createTime: T0,
    updateTime: T0,
    createdBy: 'alice@acme.com',
    state: 'RUNNING',
    status: 'running 4 ranks',
    ...overrides,
  };
}

function plan(body: unknown, mask?: string, current: BatchJob = job()): BatchJobPatch {
  return planBatchJobUpdate(current, body, mask);
}

function rejected(body: unknown, mask?: string, current: BatchJob = job()): FieldViolation[] {
  let error: unknown;
  try {
    plan(body, mask, current);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ApiError, 'expected an ApiError');
  assert.equal(error.code, 'INVALID_ARGUMENT');
  return error.details[0]?.fieldViolations ?? [];
}

describe('planBatchJobUpdate without an update mask', () => {
  it('applies each mutable field present in the body, and only those', () => {
    assert.deepEqual(plan({ displayName: 'new name' }), { displayName: 'new name' });
    assert.deepEqual(plan({ shared: true }), { shared: true });
    assert.deepEqual(plan({ annotations: { a: 'b' } }), { annotations: { a: 'b' } });
    assert.deepEqual(plan({}), {});
  });

  it('applies explicit false and empty values (present in JSON means set)', () => {
    assert.deepEqual(plan({ shared: false, annotations: {} }, undefined, job({ shared: true })), { shared: false, annotations: {} });
  });

  it('accepts what the upstream SDK sends: nodePoolId repeated unchanged', () => {
    assert.deepEqual(plan({ nodePoolId: 'gpu-a', displayName: 'x' }), { displayName: 'x' });
  });

  it('accepts other writable fields repeated with their current value', () => {
    const body = {
      nodePoolId: 'gpu-a',
      numRanks: 4,
      envVars: { LR: '0.1' },
      pythonExecutor: { targetType: 'MODULE', target: 'pkg.train', args: [] },
      shared: true,
    };
    assert.deepEqual(plan(body), { shared: true });
  });

  it('accepts a whole GET response echoed back, ignoring output-only fields', () => {
    const echoed = { ...job(), state: 'COMPLETED', status: 'forged', createTime: '1999-01-01T00:00:00Z', name: 'accounts/x/batchJobs/y', displayName: 'renamed' };
    assert.deepEqual(plan(echoed), { displayName: 'renamed', annotations: { 'example.com/team': 'ml' }, shared: false });
  });

  it('ignores proto3 default values of immutable fields (unset in proto3 terms)', () => {
    assert.deepEqual(plan({ numRanks: 0, envVars: {}, environmentId: '', imageRef: '', role: '', pythonExecutor: null, shellExecutor: null, displayName: 'x' }), {
      displayName: 'x',
    });
  });

  it('treats null and "" displayName as absent, like create does', () => {
    assert.deepEqual(plan({ displayName: null }), {});
    assert.deepEqual(plan({ displayName: '' }), {});
  });

  const changes: Array<[string, Record<string, unknown>, string]> = [
    ['nodePoolId', { nodePoolId: 'gpu-b' }, 'nodePoolId'],
    ['numRanks', { numRanks: 8 }, 'numRanks'],
    ['environmentId', { environmentId: 'my-env' }, 'environmentId'],
    ['imageRef', { imageRef: 'ubuntu:24.04' }, 'imageRef'],
    ['role', { role: 'arn:aws:iam::123456789012:role/x' }, 'role'],
    ['the python target', { pythonExecutor: { targetType: 'MODULE', target: 'pkg.eval' } }, 'pythonExecutor'],
    ['the executor kind', { shellExecutor: { command: 'true' } }, 'shellExecutor'],
    ['an envVars value to ""', { envVars: { LR: '' } }, 'envVars'],
    ['envVars by adding a variable', { envVars: { LR: '0.1', SEED: '1' } }, 'envVars'],
  ];
  for (const [what, body, field] of changes) {
    it(`refuses to change ${what}`, () => {
      const v = rejected(body);
      assert.deepEqual(
        v.map((x) => x.field),
        [field],
      );
      assert.match(v[0]?.description ?? '', new RegExp(`^${field} cannot be changed after creation`));
      assert.match(v[0]?.description ?? '', /displayName, annotations, shared/);
    });
  }

  it('reports every immutable change and invalid value at once', () => {
    const v = rejected({ nodePoolId: 'gpu-b', numRanks: 8, displayName: 'x'.repeat(64), annotations: { 'bad key': '1' } });
    assert.deepEqual(v.map((x) => x.field).sort(), ['annotations["bad key"]', 'displayName', 'nodePoolId', 'numRanks']);
  });

  it('validates the new values with the create rules', () => {
    assert.deepEqual(
      rejected({ displayName: 'x'.repeat(64) }).map((x) => x.field),
      ['displayName'],
    );
    assert.deepEqual(plan({ displayName: 'x'.repeat(63) }), { displayName: 'x'.repeat(63) });
    assert.deepEqual(
      rejected({ annotations: { 'fireworks.ai/x': '1' } }).map((x) => x.field),
      ['annotations["fireworks.ai/x"]'],
    );
    assert.deepEqual(
      rejected({ shared: 'yes' }).map((x) => x.field),
      ['shared'],
    );
  });

  it('rejects unknown fields', () => {
    assert.deepEqual(
      rejected({ displayName: 'x', priority: 1 }).map((x) => x.field),
      ['priority'],
    );
  });

  it('rejects a body that is not an object', () => {
    for (const body of [null, [], 'x', 3]) {
      assert.deepEqual(
        rejected(body).map((x) => x.field),
        ['(body)'],
      );
    }
  });
});

describe('planBatchJobUpdate with an update mask', () => {
  it('applies only the masked fields', () => {
    assert.deepEqual(plan({ displayName: 'n', shared: true, annotations: { a: 'b' } }, 'displayName'), { displayName: 'n' });
  });

  it('clears or resets a masked field absent from the body', () => {
    assert.deepEqual(plan({}, 'displayName'), { displayName: null });
    assert.deepEqual(plan({ displayName: '' }, 'displayName'), { displayName: null });
    assert.deepEqual(plan({ displayName: null }, 'displayName'), { displayName: null });
    assert.deepEqual(plan({}, 'annotations,shared'), { annotations: {}, shared: false });
  });

  it('expands * to every mutable field', () => {
    assert.deepEqual(plan({ shared: true }, '*'), { displayName: null, annotations: {}, shared: true });
  });

  it('accepts snake_case and spaces around paths', () => {
    assert.deepEqual(plan({ displayName: 'n', shared: true }, 'display_name, shared'), { displayName: 'n', shared: true });
  });

  it('treats a blank mask as no mask', () => {
    assert.deepEqual(plan({ shared: true }, ''), { shared: true });
    assert.deepEqual(plan({ shared: true }, '  '), { shared: true });
  });

  it('ignores fields outside the mask, even immutable ones that differ', () => {
    assert.deepEqual(plan({ displayName: 'n', numRanks: 99, nodePoolId: 'elsewhere' }, 'displayName'), { displayName: 'n' });
  });

  it('still rejects unknown fields and invalid masked values', () => {
    assert.deepEqual(
      rejected({ displayName: 'n', bogus: 1 }, 'displayName').map((x) => x.field),
      ['bogus'],
    );
    assert.deepEqual(
      rejected({ displayName: 'x'.repeat(64) }, 'displayName').map((x) => x.field),
      ['displayName'],
    );
  });

  const badMasks: Array<[string, string, RegExp]> = [
    ['an immutable field', 'numRanks', /^"numRanks" cannot be changed after creation/],
    ['an immutable field in snake_case, named as written', 'node_pool_id', /^"node_pool_id" cannot be changed after creation/],
    ['a nested immutable field', 'pythonExecutor.target', /cannot be changed after creation/],
    ['an output-only field', 'state', /^"state" is output only/],
    ['an unknown field', 'colour', /^"colour" is not a field of a batch job/],
    ['a path into a map', 'annotations.team', /names part of a field/],
    ['an empty path', 'displayName,,shared', /empty path/],
  ];
  for (const [what, mask, says] of badMasks) {
    it(`rejects a mask naming ${what}`, () => {
      const v = rejected({ displayName: 'n' }, mask);
      assert.deepEqual(
        v.map((x) => x.field),
        ['updateMask'],
      );
      assert.match(v[0]?.description ?? '', says);
    });
  }

  it('lists what may be updated when a mask path is refused', () => {
    assert.match(rejected({}, 'numRanks')[0]?.description ?? '', /the fields an update may change are displayName, annotations, shared/);
  });
});

describe('planBatchJobUpdate and priority (a batchd extension, fixed at create)', () => {
  it('refuses a changed priority, as it does any immutable field', () => {
    for (const [current, body, now] of [
      [job(), { priority: 5 }, 'unset'],
      [job({ priority: 5 }), { priority: 7 }, '5'],
      [job({ priority: 5 }), { priority: -5, shared: true }, '5'],
    ] as const) {
      const v = rejected(body, undefined, current);
      assert.deepEqual(
        v.map((x) => x.field),
        ['priority'],
      );
      assert.match(v[0]?.description ?? '', new RegExp(`^priority cannot be changed after creation \\(it is ${now}\\)`));
    }
  });

  it('accepts priority repeated with its current value, or sent as 0 (unset in proto3 terms)', () => {
    assert.deepEqual(plan({ priority: 5, shared: true }, undefined, job({ priority: 5 })), { shared: true });
    assert.deepEqual(plan({ priority: 0, shared: true }), { shared: true });
    assert.deepEqual(plan({ priority: 0, shared: true }, undefined, job({ priority: 5 })), { shared: true });
    const echoed = { ...job({ priority: -3 }), displayName: 'renamed' };
    assert.deepEqual(plan(echoed, undefined, job({ priority: -3 })), { displayName: 'renamed', annotations: { 'example.com/team': 'ml' }, shared: false });
  });

  it('refuses a mask naming priority, and leaves it out of *', () => {
    for (const mask of ['priority', 'displayName,priority']) {
      const v = rejected({ priority: 9, displayName: 'n' }, mask, job({ priority: 5 }));
      assert.deepEqual(
        v.map((x) => x.field),
        ['updateMask'],
      );
      assert.match(v[0]?.description ?? '', /^"priority" cannot be changed after creation; the fields an update may change are displayName, annotations, shared/);
    }
    assert.deepEqual(plan({ priority: 9, shared: true }, '*', job({ priority: 5 })), { displayName: null, annotations: {}, shared: true });
  });
});

describe('planBatchJobUpdate and job state', () => {
  it('allows updates in every state but DELETING', () => {
    for (const state of ['CREATING', 'QUEUED', 'PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLING', 'CANCELLED'] as const) {
      assert.deepEqual(plan({ shared: true }, undefined, job({ state })), { shared: true });
    }
  });

  it('refuses a job being deleted with FAILED_PRECONDITION', () => {
    assert.throws(
      () => plan({ shared: true }, undefined, job({ state: 'DELETING' })),
      (e: unknown) => e instanceof ApiError && e.code === 'FAILED_PRECONDITION' && /being deleted/.test(e.message),
    );
  });
});

describe('applyBatchJobPatch and patchProblem', () => {
  it('applies a patch and moves updateTime', () => {
    const next = applyBatchJobPatch(job(), { displayName: 'n', annotations: { a: 'b' }, shared: true }, T1);
    assert.equal(next.displayName, 'n');
    assert.deepEqual(next.annotations, { a: 'b' });
    assert.equal(next.shared, true);
    assert.equal(next.updateTime, T1);
  });

  it('clears displayName on null, leaving no key behind', () => {
    const next = applyBatchJobPatch(job(), { displayName: null }, T1);
    assert.ok(!('displayName' in next));
    assert.equal(next.updateTime, T1);
  });

  it('leaves updateTime alone when nothing changes, and never mutates its input', () => {
    const before = job();
    const copy = structuredClone(before);
    const next = applyBatchJobPatch(before, { displayName: 'old name', annotations: { 'example.com/team': 'ml' }, shared: false }, T1);
    assert.equal(next.updateTime, T0);
    assert.deepEqual(before, copy);
  });

  it('patchProblem accepts what planBatchJobUpdate produces and refuses anything else', () => {
    assert.equal(patchProblem(plan({}, '*')), undefined);
    assert.equal(patchProblem({ displayName: 'x' }), undefined);
    assert.match(patchProblem({ displayName: 'x'.repeat(64) }) ?? '', /displayName: must be fewer than 64/);
    assert.match(patchProblem({ numRanks: 2 }) ?? '', /numRanks: unknown field/);
    assert.match(patchProblem({ annotations: { 'fireworks.ai/x': '' } }) ?? '', /reserved/);
    assert.ok(patchProblem(null) !== undefined);
  });
});

describe('update mask helpers', () => {
  it('converts snake_case per segment', () => {
    assert.equal(snakeToCamel('fake_node_pool.num_nodes'), 'fakeNodePool.numNodes');
    assert.equal(snakeToCamel('displayName'), 'displayName');
  });

  it('parseUpdateMask returns undefined without a mask and the set of paths with one', () => {
    const rules = { resource: 'a thing', mutable: ['a', 'bC'], reason: () => undefined };
    assert.equal(parseUpdateMask(undefined, rules), undefined);
    assert.deepEqual([...(parseUpdateMask('b_c,a', rules) ?? [])].sort(), ['a', 'bC']);
    assert.deepEqual([...(parseUpdateMask('*', { ...rules, star: ['a'] }) ?? [])], ['a']);
  });

  it('sameProto3Value ignores unset members but not real differences', () => {
    assert.ok(sameProto3Value({ target: 'm', args: [] }, { target: 'm' }));
    assert.ok(sameProto3Value({ spot: false }, {}));
    assert.ok(!sameProto3Value({ target: 'm', args: ['x'] }, { target: 'm' }));
    assert.ok(!sameProto3Value({ a: ['x', 'y'] }, { a: ['y', 'x'] }));
  });
});
