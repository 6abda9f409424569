/**
 * The operator's sharing file (src/domain/sharing-config.ts): what it accepts and refuses, who may use a
 * pool, the policy a pool's passes apply; and the numbers a job waiting on its account's quota or
 * share gives in its status (sharing.ts shareStanding, queue-status.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { queuedStatus } from '../../src/domain/queue-status';
import { addHost, emptyScheduler, enqueue, scheduleShared, standing } from '../../src/domain/scheduler';
import { shareStanding } from '../../src/domain/sharing';
import { mayUsePool, parseSharingConfig, poolNameOf, poolSharingPolicy } from '../../src/domain/sharing-config';

const BIG = 'accounts/acme/nodePools/big';
const FILE = JSON.stringify({
  pools: { [BIG]: { accounts: { acme: { weight: 2 }, beta: { quota: 4 } }, fairShareHalfLife: '3600s' } },
});

describe('the sharing file', () => {
  it('parses pools, accounts with quotas and weights, and a half-life', () => {
    const config = parseSharingConfig(FILE, 'sharing.json');
    assert.deepEqual(poolSharingPolicy(config, BIG), { quotas: { beta: 4 }, fairShare: { halfLifeMs: 3_600_000, weights: { acme: 2 } } });
    assert.equal(poolSharingPolicy(config, 'accounts/acme/nodePools/other'), undefined, 'a pool not listed has no policy');
    assert.deepEqual(poolSharingPolicy(parseSharingConfig(JSON.stringify({ pools: { [BIG]: { accounts: { beta: {} } } } }), 'f'), BIG), {}, 'shared, nothing more');
  });

  it('refuses a file that is not JSON, or names what is wrong with each entry', () => {
    assert.throws(() => parseSharingConfig('{', 'f.json'), /SHARING_FILE f\.json is not valid JSON/);
    const bad = { pools: { 'acme/big': { accounts: {} }, [BIG]: { accounts: { Beta: {}, beta: { quota: -1, weight: 0, extra: 1 } }, fairShareHalfLife: 'soon' } } };
    assert.throws(() => parseSharingConfig(JSON.stringify(bad), 'f.json'), (err: Error) => {
      for (const want of [
        /pools\.acme\/big: each key must be a node pool name/,
        /Beta: each account must be an account id/,
        /beta\.quota: must be 0 or more/,
        /beta\.weight: must be more than 0/,
        /beta: Unrecognized key: "extra"/,
        /fairShareHalfLife: /,
      ])
        assert.match(err.message, want);
      return true;
    });
    assert.throws(() => parseSharingConfig('{"pool": {}}', 'f.json'), /Unrecognized key: "pool"/);
  });

  it('lets a pool be used by its owner always, and by other accounts only when listed', () => {
    const config = parseSharingConfig(FILE, 'f');
    assert.equal(mayUsePool(config, 'acme', BIG), true);
    assert.equal(mayUsePool(config, 'beta', BIG), true);
    assert.equal(mayUsePool(config, 'gamma', BIG), false);
    assert.equal(mayUsePool(config, 'gamma', 'accounts/gamma/nodePools/own'), true);
    assert.equal(mayUsePool(parseSharingConfig('{"pools": {}}', 'f'), 'beta', BIG), false);
  });

  it('names a pool by id in the job\'s account, or in full', () => {
    assert.equal(poolNameOf('beta', 'gpus'), 'accounts/beta/nodePools/gpus');
    assert.equal(poolNameOf('beta', BIG), BIG);
  });
});

describe('why a job waits on a shared pool, in numbers', () => {
  const pool = () => {
    const s = emptyScheduler();
    addHost(s, 'h0', 8);
    return s;
  };

  it('a job past its account\'s quota says how much the account holds, its quota, and what must be freed', () => {
    const s = pool();
    const policy = { quotas: { beta: 4 } };
    enqueue(s, 'b1', 3, undefined, { account: 'beta' });
    enqueue(s, 'b2', 2, undefined, { account: 'beta' });
    const { grants } = scheduleShared(s, { now: 0, ...policy });
    assert.deepEqual(grants.map((g) => g.id), ['b1'], 'b2 would take beta to 5 of 4');
    const standingB2 = { ...standing(s, 'b2')!, ...shareStanding(s, 'b2', policy) };
    assert.deepEqual(standingB2.quota, { account: 'beta', held: 3, limit: 4 });
    assert.equal(
      queuedStatus('big', true, standingB2),
      "waiting for 2 GPUs in node pool big; account beta holds 3 GPUs of its quota of 4 on this pool, and this job would take it past that: it waits until the account's jobs free 1 GPU",
    );
  });

  it('with fair share on and two accounts active, a waiting job gives its account\'s holding beside its fair part', () => {
    const s = pool();
    const policy = { fairShare: { halfLifeMs: 3_600_000, weights: { acme: 3 } } };
    enqueue(s, 'a1', 8, undefined, { account: 'acme' });
    scheduleShared(s, { now: 0, ...policy });
    enqueue(s, 'b1', 2, undefined, { account: 'beta' });
    scheduleShared(s, { now: 1000, ...policy });
    const numbers = shareStanding(s, 'b1', policy);
    assert.deepEqual(numbers, { share: { account: 'beta', held: 0, fairSlots: 2, weight: 1, totalWeight: 4 } });
    assert.match(queuedStatus('big', true, { ...standing(s, 'b1')!, ...numbers }), /; fair share: account beta holds 0 GPUs, its fair part is 2 \(weight 1 of 4\), and accounts furthest below their part go first$/);
    assert.deepEqual(shareStanding(s, 'b1', undefined), {}, 'no policy, no numbers');
  });
});
