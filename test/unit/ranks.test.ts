import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RANK_ENV_VARS } from '../../src/domain/batch-job';
import { type HostAssignment, placeGang } from '../../src/domain/packing';
import { type HostRanks, numberRanks, type RankEnvInput, rankEnvironment } from '../../src/domain/ranks';

function input(overrides: Partial<RankEnvInput> = {}): RankEnvInput {
  return {
    jobName: 'accounts/acme/batchJobs/train',
    jobId: 'train',
    worldSize: 4,
    nnodes: 2,
    nodeRank: 1,
    localWorldSize: 2,
    rank: { rank: 3, localRank: 1, slot: 6 },
    masterAddr: '10.0.0.1',
    masterPort: 29501,
    gpu: true,
    userEnv: {},
    ...overrides,
  };
}

/** Every rank's environment, computed the way a job's placement is turned into processes. */
function environments(hosts: HostRanks[], gpu: boolean, userEnv: Record<string, string> = {}): Array<{ host: string; env: Record<string, string> }> {
  const worldSize = hosts.reduce((n, h) => n + h.ranks.length, 0);
  const masterAddr = hosts[0]?.host ?? '';
  return hosts.flatMap((h) =>
    h.ranks.map((rank) => ({
      host: h.host,
      env: rankEnvironment({
        jobName: 'accounts/acme/batchJobs/j',
        jobId: 'j',
        worldSize,
        nnodes: hosts.length,
        nodeRank: h.nodeRank,
        localWorldSize: h.ranks.length,
        rank,
        masterAddr,
        masterPort: 29500,
        gpu,
        userEnv,
      }),
    })),
  );
}

describe('numberRanks', () => {
  it('numbers ranks host by host in placement order, local ranks from 0 on each host', () => {
    const hosts = numberRanks([
      { host: 'h1', slots: [2, 3, 5] },
      { host: 'h2', slots: [0, 1] },
    ]);
    assert.deepEqual(hosts, [
      {
        host: 'h1',
        nodeRank: 0,
        ranks: [
          { rank: 0, localRank: 0, slot: 2 },
          { rank: 1, localRank: 1, slot: 3 },
          { rank: 2, localRank: 2, slot: 5 },
        ],
      },
      {
        host: 'h2',
        nodeRank: 1,
        ranks: [
          { rank: 3, localRank: 0, slot: 0 },
          { rank: 4, localRank: 1, slot: 1 },
        ],
      },
    ]);
  });

  it('gives one rank per host on a CPU pool (slot 0 everywhere)', () => {
    const hosts = numberRanks(['c1', 'c2', 'c3'].map((host) => ({ host, slots: [0] })));
    assert.deepEqual(
      hosts.map((h) => [h.host, h.nodeRank, h.ranks.map((r) => [r.rank, r.localRank, r.slot])]),
      [
        ['c1', 0, [[0, 0, 0]]],
        ['c2', 1, [[1, 0, 0]]],
        ['c3', 2, [[2, 0, 0]]],
      ],
    );
  });

  it('returns nothing for an empty placement', () => {
    assert.deepEqual(numberRanks([]), []);
  });

  it('refuses a placement that would break the rank contract', () => {
    assert.throws(() => numberRanks([{ host: 'h1', slots: [0] }, { host: 'h2', slots: [] }]), /no slot/);
    assert.throws(() => numberRanks([{ host: 'h1', slots: [0] }, { host: 'h1', slots: [1] }]), /twice/);
    assert.throws(() => numberRanks([{ host: 'h1', slots: [3, 3] }]), /slot on host h1 twice/);
  });

  it('numbers a real gang placement consistently: ranks 0..n-1, each GPU used once', () => {
    const free = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from);
    const placement = placeGang(
      [
        { host: 'a', free: free(3, 5) },
        { host: 'b', free: free(8) },
        { host: 'c', free: free(8) },
        { host: 'd', free: free(2) },
      ],
      11,
    );
    assert.ok(placement);
    const hosts = numberRanks(placement);
    const ranks = hosts.flatMap((h) => h.ranks.map((r) => r.rank));
    assert.deepEqual(ranks, Array.from({ length: 11 }, (_, i) => i));
    assert.deepEqual(
      hosts.map((h) => h.nodeRank),
      hosts.map((_, i) => i),
    );
    for (const h of hosts) {
      const given: HostAssignment | undefined = placement.find((p) => p.host === h.host);
      assert.deepEqual(
        h.ranks.map((r) => r.slot),
        given?.slots,
      );
    }
  });
});

describe('rankEnvironment', () => {
  it('sets every rank variable from the placement', () => {
    const env = rankEnvironment(input({ imageRef: 'ghcr.io/acme/train:1' }));
    assert.deepEqual(env, {
      RANK: '3',
      WORLD_SIZE: '4',
      LOCAL_RANK: '1',
      LOCAL_WORLD_SIZE: '2',
      NODE_RANK: '1',
      NNODES: '2',
      MASTER_ADDR: '10.0.0.1',
      MASTER_PORT: '29501',
      BATCH_JOB_NAME: 'accounts/acme/batchJobs/train',
      BATCH_JOB_ID: 'train',
      BATCH_JOB_ATTEMPT: '1',
      BATCHD_RANK_ID: 'accounts/acme/batchJobs/train#3',
      BATCH_JOB_IMAGE_REF: 'ghcr.io/acme/train:1',
      CUDA_VISIBLE_DEVICES: '6',
    });
  });

  it('on a GPU pool shows each rank exactly its own GPU', () => {
    const hosts = numberRanks([
      { host: 'g1', slots: [1, 4, 7] },
      { host: 'g2', slots: [0, 2] },
    ]);
    const all = environments(hosts, true);
    assert.deepEqual(
      all.map(({ host, env }) => [host, env.RANK, env.CUDA_VISIBLE_DEVICES]),
      [
        ['g1', '0', '1'],
        ['g1', '1', '4'],
        ['g1', '2', '7'],
        ['g2', '3', '0'],
        ['g2', '4', '2'],
      ],
    );
    assert.deepEqual(
      all.map(({ env }) => [env.LOCAL_WORLD_SIZE, env.NODE_RANK, env.NNODES, env.WORLD_SIZE, env.MASTER_ADDR]),
      [
        ['3', '0', '2', '5', 'g1'],
        ['3', '0', '2', '5', 'g1'],
        ['3', '0', '2', '5', 'g1'],
        ['2', '1', '2', '5', 'g1'],
        ['2', '1', '2', '5', 'g1'],
      ],
    );
  });

  it('on a CPU pool sets no CUDA_VISIBLE_DEVICES at all', () => {
    const hosts = numberRanks([
      { host: 'c1', slots: [0] },
      { host: 'c2', slots: [0] },
    ]);
    for (const { env } of environments(hosts, false, { CUDA_VISIBLE_DEVICES: '0' })) {
      assert.ok(!('CUDA_VISIBLE_DEVICES' in env));
    }
  });

  it('adds the job envVars, which cannot override any rank variable', () => {
    const userEnv: Record<string, string> = { LR: '0.1', PATH_EXTRA: '/opt/bin', EMPTY: '' };
    for (const name of RANK_ENV_VARS) userEnv[name] = 'user-value';
    const env = rankEnvironment(input({ userEnv }));
    assert.equal(env.LR, '0.1');
    assert.equal(env.PATH_EXTRA, '/opt/bin');
    assert.equal(env.EMPTY, '');
    for (const name of RANK_ENV_VARS) assert.notEqual(env[name], 'user-value', `${name} was overridden by the job's envVars`);
    // Without an image the rank gets no BATCH_JOB_IMAGE_REF, and the job cannot make one up.
    assert.ok(!('BATCH_JOB_IMAGE_REF' in env));
    assert.equal(env.RANK, '3');
    assert.equal(env.CUDA_VISIBLE_DEVICES, '6');
  });

  it('passes a variable named __proto__ through as data, and never mutates the job envVars', () => {
    const userEnv = JSON.parse('{"__proto__":"x","A":"1"}') as Record<string, string>;
    const before = JSON.stringify(userEnv);
    const env = rankEnvironment(input({ userEnv }));
    assert.ok(Object.prototype.hasOwnProperty.call(env, '__proto__'));
    assert.equal(Object.getPrototypeOf(env), Object.prototype);
    assert.equal(env.A, '1');
    assert.equal(JSON.stringify(userEnv), before);
  });
});
