import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BATCH_JOB_STATES, type BatchJobState } from '../../src/domain/batch-job-model';
import { ApiError, type FieldViolation } from '../../src/domain/errors';
import {
  type AllocatedJob,
  applyNodePoolSpec,
  capacityRefusal,
  FAKE_POOL_MAX_NODES,
  isGpuPool,
  type NodePool,
  nodePoolCreateBodySchema,
  type NodePoolSpec,
  planNodePoolUpdate,
  poolCapacityLimit,
  statsWithJobStates,
  ranksPerNodeOf,
} from '../../src/domain/node-pool';
import { parseOrThrow } from '../../src/domain/validation';

const NO_ID = Symbol('no nodePoolId');
const fake = (numNodes = 2, machineType = 'p4d.24xlarge') => ({ machineType, numNodes });

function create(nodePool: unknown, nodePoolId: unknown = 'gpu-a') {
  const body: Record<string, unknown> = {};
  if (nodePool !== undefined) body.nodePool = nodePool;
  if (nodePoolId !== NO_ID) body.nodePoolId = nodePoolId;
  return parseOrThrow(nodePoolCreateBodySchema, body);
}

function invalid(run: () => unknown): FieldViolation[] {
  let error: unknown;
  try {
    run();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ApiError, 'expected an ApiError');
  assert.equal(error.code, 'INVALID_ARGUMENT');
  return error.details[0]?.fieldViolations ?? [];
}

const createFields = (nodePool: unknown, nodePoolId: unknown = 'gpu-a') => invalid(() => create(nodePool, nodePoolId)).map((v) => v.field);

describe('node pool create body', () => {
  it('normalises a fake pool: defaults 0 / max(1, numNodes) / 0, no annotations', () => {
    assert.deepEqual(create({ fakeNodePool: fake(3) }), {
      nodePoolId: 'gpu-a',
      nodePool: { minNodeCount: 0, maxNodeCount: 3, overprovisionNodeCount: 0, annotations: {}, fakeNodePool: fake(3) },
    });
  });

  it('normalises an EKS pool: maxNodeCount defaults to 1', () => {
    assert.deepEqual(create({ eksNodePool: { instanceType: 'p5.48xlarge' } }).nodePool, {
      minNodeCount: 0,
      maxNodeCount: 1,
      overprovisionNodeCount: 0,
      annotations: {},
      eksNodePool: { instanceType: 'p5.48xlarge' },
    });
  });

  it('keeps every writable field', () => {
    const eksNodePool = {
      instanceType: 'g5.12xlarge',
      nodeRole: 'arn:aws:iam::123456789012:role/eks-node',
      spot: true,
      nodeGroupName: 'ng_1',
      subnetIds: ['subnet-0123456789abcdef0'],
      zone: 'us-east-1a',
      placementGroup: 'pg-1',
      launchTemplate: 'lt-0abc',
    };
    const spec = create({
      displayName: 'x'.repeat(63),
      minNodeCount: 2,
      maxNodeCount: 10,
      overprovisionNodeCount: 2,
      eksNodePool,
      annotations: { 'example.com/team': 'ml' },
    }).nodePool;
    assert.deepEqual(spec, {
      displayName: 'x'.repeat(63),
      minNodeCount: 2,
      maxNodeCount: 10,
      overprovisionNodeCount: 2,
      eksNodePool,
      annotations: { 'example.com/team': 'ml' },
    });
  });

  it('accepts and ignores output-only fields', () => {
    const spec = create({
      fakeNodePool: fake(),
      name: 'accounts/x/nodePools/y',
      createTime: '2020-01-01T00:00:00Z',
      updateTime: '2020-01-01T00:00:00Z',
      state: 'READY',
      status: { code: 'OK', message: '' },
      nodePoolStats: { nodeCount: 99 },
    }).nodePool;
    assert.deepEqual(spec, create({ fakeNodePool: fake() }).nodePool);
  });

  it('accepts a proto3 client that emits default values', () => {
    const spec = create({
      name: '',
      displayName: '',
      minNodeCount: 0,
      maxNodeCount: 4,
      overprovisionNodeCount: 0,
      eksNodePool: null,
      fakeNodePool: { machineType: 'm5.xlarge', numNodes: 4, serviceAccount: '' },
      annotations: {},
      state: 'STATE_UNSPECIFIED',
      status: null,
      nodePoolStats: null,
    }).nodePool;
    assert.deepEqual(spec, { minNodeCount: 0, maxNodeCount: 4, overprovisionNodeCount: 0, annotations: {}, fakeNodePool: { machineType: 'm5.xlarge', numNodes: 4 } });
  });

  const cases: Array<[string, unknown, unknown, string[]]> = [
    ['no nodePool', undefined, 'gpu-a', ['nodePool']],
    ['no nodePoolId', { fakeNodePool: fake() }, NO_ID, ['nodePoolId']],
    ['a null nodePool', null, 'gpu-a', ['nodePool']],
    ['a nodePool that is not an object', 'gpu-a', 'gpu-a', ['nodePool']],
    ['a bad nodePoolId', { fakeNodePool: fake() }, 'GPU_A', ['nodePoolId']],
    ['no backend', {}, 'gpu-a', ['nodePool']],
    ['both backends', { fakeNodePool: fake(), eksNodePool: { instanceType: 'p5.48xlarge' } }, 'gpu-a', ['nodePool.eksNodePool']],
    ['an unknown field', { fakeNodePool: fake(), size: 3 }, 'gpu-a', ['nodePool.size']],
    ['an unknown fakeNodePool field', { fakeNodePool: { ...fake(), gpus: 8 } }, 'gpu-a', ['nodePool.fakeNodePool.gpus']],
    ['an unknown machine type', { fakeNodePool: fake(2, 'p9.mega') }, 'gpu-a', ['nodePool.fakeNodePool.machineType']],
    ['a missing machine type', { fakeNodePool: { numNodes: 2 } }, 'gpu-a', ['nodePool.fakeNodePool.machineType']],
    ['a missing numNodes', { fakeNodePool: { machineType: 'm5.xlarge' } }, 'gpu-a', ['nodePool.fakeNodePool.numNodes']],
    ['numNodes 0', { fakeNodePool: fake(0) }, 'gpu-a', ['nodePool.fakeNodePool.numNodes']],
    ['numNodes over the fake limit', { fakeNodePool: fake(FAKE_POOL_MAX_NODES + 1), maxNodeCount: 100 }, 'gpu-a', ['nodePool.fakeNodePool.numNodes']],
    ['numNodes 1.5', { fakeNodePool: fake(1.5) }, 'gpu-a', ['nodePool.fakeNodePool.numNodes']],
    ['an unknown instance type', { eksNodePool: { instanceType: 't2.micro' } }, 'gpu-a', ['nodePool.eksNodePool.instanceType']],
    ['a bad nodeRole', { eksNodePool: { instanceType: 'm5.xlarge', nodeRole: 'eks-node' } }, 'gpu-a', ['nodePool.eksNodePool.nodeRole']],
    ['a bad subnet id', { eksNodePool: { instanceType: 'm5.xlarge', subnetIds: ['subnet-0123456789abcdef0', 'vpc-1'] } }, 'gpu-a', ['nodePool.eksNodePool.subnetIds[1]']],
    ['spot as a string', { eksNodePool: { instanceType: 'm5.xlarge', spot: 'yes' } }, 'gpu-a', ['nodePool.eksNodePool.spot']],
    ['a displayName of 64 chars', { fakeNodePool: fake(), displayName: 'x'.repeat(64) }, 'gpu-a', ['nodePool.displayName']],
    ['a reserved annotation', { fakeNodePool: fake(), annotations: { 'fireworks.ai/x': '' } }, 'gpu-a', ['nodePool.annotations["fireworks.ai/x"]']],
    ['minNodeCount -1', { eksNodePool: { instanceType: 'm5.xlarge' }, minNodeCount: -1 }, 'gpu-a', ['nodePool.minNodeCount']],
    ['maxNodeCount 0', { eksNodePool: { instanceType: 'm5.xlarge' }, maxNodeCount: 0 }, 'gpu-a', ['nodePool.maxNodeCount']],
    ['minNodeCount above maxNodeCount', { eksNodePool: { instanceType: 'm5.xlarge' }, minNodeCount: 3, maxNodeCount: 2 }, 'gpu-a', ['nodePool.minNodeCount']],
    ['minNodeCount above the default maxNodeCount', { eksNodePool: { instanceType: 'm5.xlarge' }, minNodeCount: 3 }, 'gpu-a', ['nodePool.minNodeCount']],
    ['overprovision above minNodeCount', { eksNodePool: { instanceType: 'm5.xlarge' }, minNodeCount: 1, maxNodeCount: 4, overprovisionNodeCount: 2 }, 'gpu-a', ['nodePool.overprovisionNodeCount']],
    ['overprovision above max - min', { eksNodePool: { instanceType: 'm5.xlarge' }, minNodeCount: 2, maxNodeCount: 3, overprovisionNodeCount: 2 }, 'gpu-a', ['nodePool.overprovisionNodeCount']],
    ['overprovision -1', { eksNodePool: { instanceType: 'm5.xlarge' }, overprovisionNodeCount: -1 }, 'gpu-a', ['nodePool.overprovisionNodeCount']],
    ['fake numNodes below minNodeCount', { fakeNodePool: fake(2), minNodeCount: 3, maxNodeCount: 4 }, 'gpu-a', ['nodePool.fakeNodePool.numNodes']],
    ['fake numNodes above maxNodeCount', { fakeNodePool: fake(5), maxNodeCount: 4 }, 'gpu-a', ['nodePool.fakeNodePool.numNodes']],
  ];
  for (const [what, nodePool, id, fields] of cases) {
    it(`rejects ${what}`, () => assert.deepEqual(createFields(nodePool, id), fields));
  }

  it('rejects a body that is not an object, and an unknown top-level field', () => {
    assert.deepEqual(
      invalid(() => parseOrThrow(nodePoolCreateBodySchema, [])).map((v) => v.field),
      ['(body)'],
    );
    assert.deepEqual(
      invalid(() => parseOrThrow(nodePoolCreateBodySchema, { nodePool: { fakeNodePool: fake() }, nodePoolId: 'p', validateOnly: true })).map((v) => v.field),
      ['validateOnly'],
    );
  });

  it('lists the known machine types when one is unknown', () => {
    const [v] = invalid(() => create({ fakeNodePool: fake(2, 'p9.mega') }));
    assert.match(v?.description ?? '', /"p9\.mega" is not a known machine type; use one of: .*p4d\.24xlarge.*m5\.xlarge/);
  });

  it('explains the bounds, defaults included', () => {
    const [min] = invalid(() => create({ eksNodePool: { instanceType: 'm5.xlarge' }, minNodeCount: 3 }));
    assert.match(min?.description ?? '', /maxNodeCount \(1, its default\)/);
    const [num] = invalid(() => create({ fakeNodePool: fake(5), maxNodeCount: 4 }));
    assert.match(num?.description ?? '', /\[0, 4\]/);
  });

  it('accepts the edges of the published sizing rules', () => {
    assert.equal(create({ eksNodePool: { instanceType: 'm5.xlarge' }, minNodeCount: 2, maxNodeCount: 4, overprovisionNodeCount: 2 }).nodePool.overprovisionNodeCount, 2);
    assert.equal(create({ eksNodePool: { instanceType: 'm5.xlarge' }, minNodeCount: 5, maxNodeCount: 5 }).nodePool.minNodeCount, 5);
    assert.equal(create({ fakeNodePool: fake(FAKE_POOL_MAX_NODES) }).nodePool.maxNodeCount, FAKE_POOL_MAX_NODES);
    assert.equal(create({ fakeNodePool: fake(1), minNodeCount: 1 }).nodePool.maxNodeCount, 1);
  });
});

describe('node pool capacity helpers', () => {
  const spec = (pool: unknown): NodePoolSpec => create(pool).nodePool;

  it('ranksPerNode is GPUs per host on GPU types and 1 on CPU types', () => {
    assert.equal(ranksPerNodeOf(spec({ fakeNodePool: fake(2, 'p4d.24xlarge') })), 8);
    assert.equal(ranksPerNodeOf(spec({ fakeNodePool: fake(2, 'g5.12xlarge') })), 4);
    assert.equal(ranksPerNodeOf(spec({ fakeNodePool: fake(2, 'g5.xlarge') })), 1);
    assert.equal(ranksPerNodeOf(spec({ eksNodePool: { instanceType: 'm5.xlarge' } })), 1);
  });

  it('isGpuPool follows the machine type', () => {
    assert.equal(isGpuPool(spec({ fakeNodePool: fake(2, 'g5.xlarge') })), true);
    assert.equal(isGpuPool(spec({ fakeNodePool: fake(2, 'c5.4xlarge') })), false);
    assert.equal(isGpuPool(spec({ eksNodePool: { instanceType: 'p5.48xlarge' } })), true);
  });

  it('poolCapacityLimit: fake = numNodes × ranksPerNode, EKS = maxNodeCount × ranksPerNode', () => {
    assert.equal(poolCapacityLimit(spec({ fakeNodePool: fake(2, 'p4d.24xlarge'), maxNodeCount: 10 })), 16);
    assert.equal(poolCapacityLimit(spec({ fakeNodePool: fake(4, 'm5.xlarge') })), 4);
    assert.equal(poolCapacityLimit(spec({ eksNodePool: { instanceType: 'p5.48xlarge' }, maxNodeCount: 3 })), 24);
    assert.equal(poolCapacityLimit(spec({ eksNodePool: { instanceType: 'm5.xlarge' } })), 1);
  });

  it('capacityRefusal: a pool being deleted, or a request past its capacity limit, is refused outright', () => {
    const pool = { name: 'accounts/a/nodePools/p', ...spec({ fakeNodePool: fake(2, 'g5.12xlarge') }) };
    assert.equal(capacityRefusal(pool, 8, false), undefined);
    assert.equal(capacityRefusal(pool, 9, false), 'node pool accounts/a/nodePools/p can never hold 9 ranks: it has at most 8');
    assert.equal(capacityRefusal(pool, 1, true), 'node pool accounts/a/nodePools/p is being deleted');
  });

  it('throws on a spec that never passed validation', () => {
    assert.throws(() => ranksPerNodeOf({ fakeNodePool: { machineType: 'nope', numNodes: 1 } }), /no known machine type/);
  });
});

describe('planNodePoolUpdate', () => {
  const fakePool: NodePoolSpec = { displayName: 'gpus', minNodeCount: 0, maxNodeCount: 4, overprovisionNodeCount: 0, annotations: { a: '1' }, fakeNodePool: fake(2) };
  const eksPool: NodePoolSpec = {
    minNodeCount: 1,
    maxNodeCount: 4,
    overprovisionNodeCount: 1,
    annotations: {},
    eksNodePool: { instanceType: 'p5.48xlarge', spot: true, subnetIds: ['subnet-0123456789abcdef0'] },
  };
  const updateFields = (current: NodePoolSpec, body: unknown, mask?: string) => invalid(() => planNodePoolUpdate(current, body, mask)).map((v) => v.field);

  it('without a mask applies the writable fields present and keeps the rest', () => {
    assert.deepEqual(planNodePoolUpdate(fakePool, { displayName: 'renamed', maxNodeCount: 8 }), { ...fakePool, displayName: 'renamed', maxNodeCount: 8 });
    assert.deepEqual(planNodePoolUpdate(fakePool, { fakeNodePool: { numNodes: 4 } }), { ...fakePool, fakeNodePool: fake(4) });
    assert.deepEqual(planNodePoolUpdate(fakePool, {}), fakePool);
  });

  it('accepts a GET response echoed back unchanged', () => {
    const pool: NodePool = {
      ...eksPool,
      name: 'accounts/acme/nodePools/p5',
      createTime: '2026-01-01T00:00:00Z',
      updateTime: '2026-01-01T00:00:00Z',
      state: 'READY',
      status: { code: 'OK', message: '' },
      nodePoolStats: { nodeCount: 4, ranksPerNode: 8, environmentCount: 0, environmentRanks: 0, batchJobCount: {}, batchJobRanks: {} },
    };
    assert.deepEqual(planNodePoolUpdate(eksPool, pool), eksPool);
    assert.deepEqual(planNodePoolUpdate(eksPool, { ...pool, eksNodePool: { instanceType: 'p5.48xlarge', spot: true, subnetIds: ['subnet-0123456789abcdef0'], zone: '' } }), eksPool);
  });

  it('re-validates the result with the create rules', () => {
    assert.deepEqual(updateFields(fakePool, { minNodeCount: 5 }), ['minNodeCount']);
    assert.equal(planNodePoolUpdate(fakePool, { fakeNodePool: { numNodes: 6 } }).maxNodeCount, 6, 'growth raises a fake pool’s bound');
    assert.deepEqual(updateFields(fakePool, { maxNodeCount: 5, fakeNodePool: { numNodes: 6 } }), ['fakeNodePool.numNodes']);
    assert.deepEqual(planNodePoolUpdate(fakePool, { maxNodeCount: 6, fakeNodePool: { numNodes: 6 } }).fakeNodePool, fake(6));
    assert.deepEqual(updateFields(fakePool, { fakeNodePool: { numNodes: FAKE_POOL_MAX_NODES + 1 }, maxNodeCount: 100 }), ['fakeNodePool.numNodes']);
    assert.deepEqual(updateFields(fakePool, { displayName: 'x'.repeat(64) }), ['displayName']);
    assert.deepEqual(updateFields(fakePool, { annotations: { 'a.fireworks.ai/x': '' } }), ['annotations["a.fireworks.ai/x"]']);
    assert.deepEqual(updateFields(eksPool, { overprovisionNodeCount: 2 }), ['overprovisionNodeCount']);
  });

  it('refuses to switch between fake and EKS', () => {
    assert.deepEqual(updateFields(fakePool, { eksNodePool: { instanceType: 'p4d.24xlarge' } }), ['eksNodePool']);
    assert.deepEqual(updateFields(eksPool, { fakeNodePool: fake(2) }), ['fakeNodePool']);
    const [v] = invalid(() => planNodePoolUpdate(eksPool, { fakeNodePool: fake(2) }));
    assert.match(v?.description ?? '', /cannot switch between fakeNodePool and eksNodePool.*create a new pool/);
  });

  it('refuses to change the machine type or instance type, saying why', () => {
    const [v] = invalid(() => planNodePoolUpdate(fakePool, { fakeNodePool: { machineType: 'p5.48xlarge', numNodes: 2 } }));
    assert.equal(v?.field, 'fakeNodePool.machineType');
    assert.match(v?.description ?? '', /cannot be changed after creation \(it would change the rank slots under running jobs\)/);
    assert.deepEqual(updateFields(eksPool, { eksNodePool: { instanceType: 'p4d.24xlarge' } }), ['eksNodePool.instanceType']);
  });

  it('refuses to change other backend fields', () => {
    assert.deepEqual(updateFields(eksPool, { eksNodePool: { instanceType: 'p5.48xlarge', spot: false, zone: 'us-east-1b' } }), ['eksNodePool.spot', 'eksNodePool.zone']);
    assert.deepEqual(updateFields(fakePool, { fakeNodePool: { serviceAccount: 'sa' } }), ['fakeNodePool.serviceAccount']);
  });

  it('rejects unknown fields, at the top and inside a backend', () => {
    assert.deepEqual(updateFields(fakePool, { size: 1 }), ['size']);
    assert.deepEqual(updateFields(fakePool, { fakeNodePool: { gpus: 1 } }), ['fakeNodePool.gpus']);
  });

  it('with a mask applies only masked fields and resets absent ones to their defaults', () => {
    assert.deepEqual(planNodePoolUpdate(fakePool, { displayName: 'n', maxNodeCount: 9 }, 'displayName'), { ...fakePool, displayName: 'n' });
    const cleared = planNodePoolUpdate(fakePool, {}, 'display_name,annotations');
    assert.ok(!('displayName' in cleared));
    assert.deepEqual(cleared.annotations, {});
    // maxNodeCount resets to its default: max(1, numNodes) on a fake pool, 1 on an EKS pool.
    assert.equal(planNodePoolUpdate(fakePool, {}, 'maxNodeCount').maxNodeCount, 2);
    // eksPool has overprovisionNodeCount 1, which no longer fits in maxNodeCount − minNodeCount = 0.
    assert.deepEqual(updateFields(eksPool, {}, 'maxNodeCount'), ['overprovisionNodeCount']);
    assert.deepEqual(updateFields({ ...eksPool, minNodeCount: 2, overprovisionNodeCount: 0 }, {}, 'maxNodeCount'), ['minNodeCount']);
    assert.deepEqual(planNodePoolUpdate(eksPool, {}, 'minNodeCount,overprovisionNodeCount,maxNodeCount'), {
      ...eksPool,
      minNodeCount: 0,
      maxNodeCount: 1,
      overprovisionNodeCount: 0,
    });
  });

  it('with a mask on fakeNodePool.numNodes (either spelling) sets it, and requires it', () => {
    assert.deepEqual(planNodePoolUpdate(fakePool, { fakeNodePool: { numNodes: 3 } }, 'fake_node_pool.num_nodes').fakeNodePool, fake(3));
    assert.deepEqual(planNodePoolUpdate(fakePool, { fakeNodePool: { numNodes: 3 } }, 'fakeNodePool').fakeNodePool, fake(3));
    assert.deepEqual(updateFields(fakePool, {}, 'fakeNodePool.numNodes'), ['fakeNodePool.numNodes']);
    assert.deepEqual(updateFields(fakePool, {}, 'fakeNodePool'), ['fakeNodePool']);
  });

  it('* stands for every writable field of the pool', () => {
    assert.deepEqual(planNodePoolUpdate(eksPool, { maxNodeCount: 2 }, '*'), { ...eksPool, minNodeCount: 0, maxNodeCount: 2, overprovisionNodeCount: 0 });
    assert.deepEqual(planNodePoolUpdate(fakePool, { fakeNodePool: { numNodes: 1 } }, '*'), {
      minNodeCount: 0,
      maxNodeCount: 1,
      overprovisionNodeCount: 0,
      annotations: {},
      fakeNodePool: fake(1),
    });
  });

  const badMasks: Array<[string, NodePoolSpec, string, RegExp]> = [
    ['machineType', fakePool, 'fakeNodePool.machineType', /rank slots/],
    ['instanceType', eksPool, 'eks_node_pool.instance_type', /rank slots/],
    ['another EKS field', eksPool, 'eksNodePool.spot', /cannot be changed after creation/],
    ['the other backend', eksPool, 'fakeNodePool.numNodes', /cannot switch/],
    ['an output-only field', fakePool, 'nodePoolStats', /output only/],
    ['an unknown field', fakePool, 'size', /is not a field of a node pool/],
  ];
  for (const [what, current, mask, says] of badMasks) {
    it(`rejects a mask naming ${what}`, () => {
      const v = invalid(() => planNodePoolUpdate(current, {}, mask));
      assert.deepEqual(
        v.map((x) => x.field),
        ['updateMask'],
      );
      assert.match(v[0]?.description ?? '', says);
    });
  }

  it('applyNodePoolSpec replaces the spec, so a cleared displayName is gone', () => {
    const pool: NodePool = {
      ...fakePool,
      name: 'accounts/acme/nodePools/gpus',
      createTime: '2026-01-01T00:00:00Z',
      updateTime: '2026-01-01T00:00:00Z',
      state: 'READY',
      status: { code: 'OK', message: '' },
      nodePoolStats: { nodeCount: 2, ranksPerNode: 8, environmentCount: 0, environmentRanks: 0, batchJobCount: {}, batchJobRanks: {} },
    };
    const spec = planNodePoolUpdate(fakePool, {}, 'displayName');
    const next = applyNodePoolSpec(pool, spec, '2026-01-02T00:00:00Z');
    assert.ok(!('displayName' in next));
    assert.equal(next.updateTime, '2026-01-02T00:00:00Z');
    assert.equal(next.state, 'READY');
    assert.deepEqual(next.fakeNodePool, fake(2));
  });
});

describe('planNodePoolUpdate: growing a fake pool', () => {
  const current = {
    minNodeCount: 0,
    maxNodeCount: 2,
    overprovisionNodeCount: 0,
    fakeNodePool: { machineType: 'g5.12xlarge', numNodes: 2 },
    annotations: {},
  };
  it('raises maxNodeCount with numNodes when the update does not set it', () => {
    const next = planNodePoolUpdate(current, { fakeNodePool: { numNodes: 5 } });
    assert.equal(next.fakeNodePool?.numNodes, 5);
    assert.equal(next.maxNodeCount, 5);
  });
  it('keeps an explicit maxNodeCount and refuses numNodes beyond it', () => {
    assert.throws(() => planNodePoolUpdate(current, { maxNodeCount: 3, fakeNodePool: { numNodes: 5 } }), /must lie within/);
    assert.throws(() => planNodePoolUpdate(current, { maxNodeCount: 3, fakeNodePool: { numNodes: 5 } }, 'maxNodeCount,fakeNodePool.numNodes'), /must lie within/);
  });
  it('leaves maxNodeCount alone when shrinking', () => {
    assert.equal(planNodePoolUpdate(current, { fakeNodePool: { numNodes: 1 } }).maxNodeCount, 2);
  });
});

describe('statsWithJobStates', () => {
  const base = { nodeCount: 1, ranksPerNode: 8, environmentCount: 0, environmentRanks: 0 };

  it("counts a granted job in its record's state once the record is further on, and keeps the pool's otherwise", () => {
    const stats = { ...base, batchJobCount: { QUEUED: 2, PENDING: 3 }, batchJobRanks: { QUEUED: 5, PENDING: 7 } };
    const allocated: AllocatedJob[] = [
      { jobName: 'a', ranks: 4, state: 'PENDING' },
      { jobName: 'b', ranks: 2, state: 'PENDING' },
      { jobName: 'c', ranks: 1, state: 'PENDING' },
    ];
    const recorded = new Map<string, BatchJobState | undefined>([
      ['a', 'RUNNING'],
      ['b', 'QUEUED'], // its record lags the grant
      ['c', 'COMPLETED'], // ended; its release is on its way
    ]);
    assert.deepEqual(statsWithJobStates(stats, allocated, recorded), {
      ...base,
      batchJobCount: { QUEUED: 2, PENDING: 2, RUNNING: 1 },
      batchJobRanks: { QUEUED: 5, PENDING: 3, RUNNING: 4 },
    });
  });

  it('omits a state that no job is left in, and changes nothing when every record agrees', () => {
    const stats = { ...base, batchJobCount: { PENDING: 1 }, batchJobRanks: { PENDING: 8 } };
    const allocated: AllocatedJob[] = [{ jobName: 'a', ranks: 8, state: 'PENDING' }];
    assert.deepEqual(statsWithJobStates(stats, allocated, new Map<string, BatchJobState>([['a', 'CANCELLING']])).batchJobCount, { CANCELLING: 1 });
    assert.deepEqual(statsWithJobStates(stats, allocated, new Map<string, BatchJobState>([['a', 'PENDING']])), stats);
    assert.deepEqual(statsWithJobStates(stats, allocated, new Map()), stats);
  });

  it('matches a reference: each granted job counted once, in its own live state or else the pool\'s (property)', () => {
    const job = fc.record({ ranks: fc.integer({ min: 1, max: 8 }), pool: fc.constantFrom<BatchJobState>('PENDING', 'RUNNING', 'CANCELLING'), own: fc.option(fc.constantFrom(...BATCH_JOB_STATES), { nil: undefined }) });
    fc.assert(
      fc.property(fc.array(job, { maxLength: 12 }), fc.nat({ max: 5 }), (jobs, queued) => {
        const tally = (states: Array<[string, number]>) => {
          const count: Record<string, number> = {};
          const ranks: Record<string, number> = {};
          for (const [s, r] of states) {
            count[s] = (count[s] ?? 0) + 1;
            ranks[s] = (ranks[s] ?? 0) + r;
          }
          return { count, ranks };
        };
        const queuedStates: Array<[string, number]> = Array.from({ length: queued }, () => ['QUEUED', 1]);
        const byPool = tally([...queuedStates, ...jobs.map((j): [string, number] => [j.pool, j.ranks])]);
        const live = new Set<BatchJobState>(['PENDING', 'RUNNING', 'CANCELLING', 'DELETING']);
        const expected = tally([...queuedStates, ...jobs.map((j): [string, number] => [j.own !== undefined && live.has(j.own) ? j.own : j.pool, j.ranks])]);
        const got = statsWithJobStates(
          { ...base, batchJobCount: byPool.count, batchJobRanks: byPool.ranks },
          jobs.map((j, i) => ({ jobName: `j${i}`, ranks: j.ranks, state: j.pool })),
          new Map(jobs.map((j, i) => [`j${i}`, j.own])),
        );
        assert.deepEqual(got.batchJobCount, expected.count);
        assert.deepEqual(got.batchJobRanks, expected.ranks);
      }),
      { numRuns: 300 },
    );
  });
});
