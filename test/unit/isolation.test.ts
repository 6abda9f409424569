import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config';
import {
  allocateRankUid,
  defaultRankMemoryLimit,
  firewallChainName,
  firewallRuleArgs,
  formatBytes,
  jobCgroupPrefix,
  parseByteSize,
  rankCgroupName,
  rankFailureMessage,
  rankUidMapProblem,
  rankUsageLine,
} from '../../src/domain/isolation';

const RANGE = { base: 200_000, count: 3 };

describe('rank uids', () => {
  it('gives each account the lowest free uid once, and the same uid ever after', () => {
    let map = {};
    const seen: number[] = [];
    for (const account of ['acme', 'default', 'zeta']) {
      const r = allocateRankUid(map, account, RANGE);
      assert.equal(r.added, true);
      map = r.map;
      seen.push(r.uid);
    }
    assert.deepEqual(seen, [200_000, 200_001, 200_002]);
    const again = allocateRankUid(map, 'default', RANGE);
    assert.deepEqual([again.uid, again.added], [200_001, false]);
    assert.equal(again.map, map, 'a known account changes nothing');
  });

  it('never hands out a uid another account holds, even one outside the order it would choose', () => {
    const r = allocateRankUid({ old: 200_000, other: 200_002 }, 'new', RANGE);
    assert.equal(r.uid, 200_001);
    assert.throws(() => allocateRankUid(r.map, 'fourth', RANGE), /no free rank uid for account fourth: all 3 uids from 200000 are taken \(raise RANK_UID_COUNT\)/);
  });

  it('refuses a map file in which two accounts share a uid, or a uid is not a whole number', () => {
    assert.equal(rankUidMapProblem({ a: 200_000, b: 200_001 }), undefined);
    assert.equal(rankUidMapProblem({ a: 200_000, b: 200_000 }), 'accounts a and b share uid 200000');
    assert.match(rankUidMapProblem({ a: '200000' }) ?? '', /account a: uid "200000" is not a positive whole number/);
    assert.match(rankUidMapProblem([1]) ?? '', /not a JSON object/);
  });
});

describe('rank cgroup names', () => {
  it('are <account>.<job>.<rank>, and one job’s share a prefix no other job’s has', () => {
    assert.equal(rankCgroupName('acme', 'train-1', 3), 'acme.train-1.3');
    assert.ok(rankCgroupName('acme', 'train-1', 12).startsWith(jobCgroupPrefix('acme', 'train-1')));
    // ids are [a-z0-9-]: no other (account, job) pair produces a name with this prefix
    assert.ok(!rankCgroupName('acme', 'train-10', 0).startsWith(jobCgroupPrefix('acme', 'train-1')));
    assert.ok(!rankCgroupName('acme-x', 'y', 0).startsWith(jobCgroupPrefix('acme', 'x')));
  });
});

describe('sizes', () => {
  it('reads binary sizes, none, and refuses the rest', () => {
    assert.equal(parseByteSize('512M'), 512 * 2 ** 20);
    assert.equal(parseByteSize('1.5g'), 1.5 * 2 ** 30);
    assert.equal(parseByteSize('2GiB'), 2 * 2 ** 30);
    assert.equal(parseByteSize('1073741824'), 2 ** 30);
    assert.equal(parseByteSize('none'), undefined);
    assert.equal(parseByteSize('0'), undefined);
    assert.deepEqual(parseByteSize('lots'), { error: '"lots" is not a size (e.g. 512M, 2G, 1073741824, or none)' });
    assert.deepEqual(parseByteSize('100K'), { error: '"100K" is below 1 MiB' });
  });

  it('writes them for people', () => {
    assert.equal(formatBytes(11.5 * 2 ** 30), '11.5 GiB');
    assert.equal(formatBytes(2 * 2 ** 30), '2 GiB');
    assert.equal(formatBytes(64 * 2 ** 20), '64 MiB');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(12), '12 B');
  });

  it('shares the host’s memory evenly by slots, in whole MiB', () => {
    assert.equal(defaultRankMemoryLimit(92 * 2 ** 30, 8), 11.5 * 2 ** 30);
    assert.equal(defaultRankMemoryLimit(2 ** 30 + 5, 1), 2 ** 30);
    assert.equal(defaultRankMemoryLimit(2 ** 30, 0), 2 ** 30, 'a host without slots is treated as one');
  });

  it('RANK_MEMORY_LIMIT is read at start, and a bad one stops it naming the variable', () => {
    assert.equal(loadConfig({ RANK_MEMORY_LIMIT: '256M' }).rankMemoryLimit, 256 * 2 ** 20);
    assert.equal(loadConfig({ RANK_MEMORY_LIMIT: 'none' }).rankMemoryLimit, null);
    assert.equal(loadConfig({}).rankMemoryLimit, undefined);
    assert.throws(() => loadConfig({ RANK_MEMORY_LIMIT: 'big' }), /RANK_MEMORY_LIMIT: "big" is not a size/);
    assert.throws(() => loadConfig({ RANK_ISOLATION: 'maybe' }), /RANK_ISOLATION/);
    assert.throws(() => loadConfig({ RANK_UID_BASE: '0' }), /RANK_UID_BASE/);
  });
});

describe('what a job’s status says about a rank’s end', () => {
  const base = { rank: 3, host: 'h1', code: null, signal: 'SIGKILL', oomKills: 0 } as const;
  it('names an out-of-memory kill and the limit, instead of a bare SIGKILL', () => {
    assert.equal(rankFailureMessage({ ...base, oomKills: 1, memoryLimit: 11.5 * 2 ** 30 }), 'rank 3 on host h1 was killed: out of memory (limit 11.5 GiB)');
    assert.equal(rankFailureMessage({ ...base, code: 137, signal: null, oomKills: 2, memoryLimit: 2 ** 30 }), 'rank 3 on host h1 was killed: out of memory (limit 1 GiB)');
  });
  it('says when a process of the rank was killed for memory but the rank itself exited', () => {
    assert.equal(
      rankFailureMessage({ ...base, code: 1, signal: null, oomKills: 1, memoryLimit: 2 ** 30, lastOutput: 'Killed' }),
      'rank 3 on host h1 exited with code 1 after a process of it was killed: out of memory (limit 1 GiB) (last output: Killed)',
    );
  });
  it('keeps the plain wording otherwise', () => {
    assert.equal(rankFailureMessage(base), 'rank 3 on host h1 was killed by SIGKILL');
    assert.equal(rankFailureMessage({ ...base, code: 7, signal: null, lastOutput: 'x'.repeat(300) }), `rank 3 on host h1 exited with code 7 (last output: ${'x'.repeat(200)}…)`);
  });
  it('reports what a rank used', () => {
    assert.equal(rankUsageLine(0, { cpuSeconds: 1.234, peakMemoryBytes: 45 * 2 ** 20 }), 'rank 0 used 1.23 CPU seconds, peak memory 45 MiB');
    assert.equal(rankUsageLine(1, {}), undefined);
  });
});

describe('packet rules', () => {
  it('reset TCP to every local address on a port, or to one remote address, once each', () => {
    assert.deepEqual(firewallRuleArgs([{ port: 7233 }, { port: 7233 }, { address: '10.0.0.5', port: 8080 }]), [
      ['-p', 'tcp', '-m', 'addrtype', '--dst-type', 'LOCAL', '--dport', '7233', '-j', 'REJECT', '--reject-with', 'tcp-reset'],
      ['-p', 'tcp', '-d', '10.0.0.5', '--dport', '8080', '-j', 'REJECT', '--reject-with', 'tcp-reset'],
    ]);
    assert.equal(firewallChainName('0123456789abcdef'), 'BATCHD-0123456789AB');
    assert.ok(firewallChainName('0123456789abcdef').length <= 28);
  });
});
