import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ACCOUNT_LIMITS, limitRefusal } from '../../src/domain/account-limits';

describe('account limits', () => {
  it('lets an account reach its limit, and refuses one more with 429 naming the limit', () => {
    assert.equal(limitRefusal('nodePools', 'acme', 3, 2), undefined);
    const refusal = limitRefusal('nodePools', 'acme', 3, 3);
    assert.ok(refusal);
    assert.equal(refusal.code, 'RESOURCE_EXHAUSTED');
    assert.equal(refusal.httpStatus, 429);
    assert.match(refusal.message, /^limit MAX_NODE_POOLS_PER_ACCOUNT reached: account "acme" has 3 node pools; the limit is 3\. Nothing was created/);
  });

  it('counts what a request adds (hosts of a fake pool)', () => {
    assert.equal(limitRefusal('fakeHosts', 'a', 10, 6, 4), undefined);
    const refusal = limitRefusal('fakeHosts', 'a', 10, 6, 5);
    assert.match(refusal?.message ?? '', /MAX_FAKE_HOSTS_PER_ACCOUNT.*has 6 fake hosts .* and this request adds 5; the limit is 10/);
  });

  it('refuses everything once an account is past a lowered limit', () => {
    assert.ok(limitRefusal('liveJobs', 'a', 2, 5));
  });

  it('names a configuration variable for every limit', () => {
    for (const [name, rule] of Object.entries(ACCOUNT_LIMITS)) {
      assert.match(rule.variable, /^MAX_[A-Z_]+_PER_ACCOUNT$/, name);
      assert.match(limitRefusal(name as keyof typeof ACCOUNT_LIMITS, 'a', 1, 1)?.message ?? '', new RegExp(rule.variable));
    }
  });
});
