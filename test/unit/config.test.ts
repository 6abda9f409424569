import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config';

describe('configuration', () => {
  it('has working defaults: an embedded Temporal on 7233 and the API on 127.0.0.1:8080', () => {
    const c = loadConfig({});
    assert.equal(c.embeddedTemporal, true);
    assert.equal(c.temporalAddress, '127.0.0.1:7233');
    assert.equal(c.PORT, 8080);
    assert.equal(c.HOST, '127.0.0.1');
    assert.equal(c.TEMPORAL_TLS, false);
  });

  it('has documented limits by default, and refuses limits that would make a feature unusable', () => {
    const c = loadConfig({});
    assert.equal(c.MAX_LIVE_JOBS_PER_ACCOUNT, 5000);
    assert.equal(c.MAX_QUEUED_JOBS_PER_ACCOUNT, 2000);
    assert.equal(c.MAX_NODE_POOLS_PER_ACCOUNT, 20);
    assert.equal(c.MAX_FAKE_HOSTS_PER_ACCOUNT, 128);
    assert.equal(c.MAX_ENVIRONMENTS_PER_ACCOUNT, 100);
    assert.equal(c.MAX_SNAPSHOTS_PER_ACCOUNT, 1000);
    assert.equal(c.API_RATE_LIMIT_PER_SECOND, 100);
    assert.equal(c.API_RATE_LIMIT_BURST, 200);
    assert.equal(c.LOG_BUDGET_BYTES_PER_JOB, 64 * 1024 * 1024);
    assert.equal(c.LOG_PAGE_MAX_BYTES, 4 * 1024 * 1024);
    assert.equal(c.MAX_LOG_STREAMS_PER_ACCOUNT, 16);
    assert.equal(c.METRICS_PORT, undefined);
    assert.equal(loadConfig({ API_RATE_LIMIT_PER_SECOND: '0' }).API_RATE_LIMIT_PER_SECOND, 0, '0 turns the rate limit off');
    assert.equal(loadConfig({ API_RATE_LIMIT_PER_SECOND: '0.5' }).API_RATE_LIMIT_PER_SECOND, 0.5);
    for (const [name, value] of [
      ['MAX_LIVE_JOBS_PER_ACCOUNT', '0'],
      ['MAX_NODE_POOLS_PER_ACCOUNT', '-1'],
      ['API_RATE_LIMIT_PER_SECOND', '-1'],
      ['API_RATE_LIMIT_BURST', '0'],
      ['LOG_BUDGET_BYTES_PER_JOB', '100'],
      ['METRICS_PORT', '70000'],
      ['METRICS_TOKEN', 'short'],
    ] as const) {
      assert.throws(() => loadConfig({ [name]: value }), (e: unknown) => e instanceof ConfigError && e.message.includes(name), `${name}=${value}`);
    }
  });

  it('uses a remote Temporal when TEMPORAL_ADDRESS is set', () => {
    const c = loadConfig({ TEMPORAL_ADDRESS: 'temporal.internal:7233', TEMPORAL_TLS: 'true' });
    assert.equal(c.embeddedTemporal, false);
    assert.equal(c.temporalAddress, 'temporal.internal:7233');
    assert.equal(c.TEMPORAL_TLS, true);
  });

  it('refuses bad values naming the variable, and never starts with half a TLS setup', () => {
    assert.throws(() => loadConfig({ PORT: 'eighty' }), (e: unknown) => e instanceof ConfigError && /PORT/.test(e.message));
    assert.throws(() => loadConfig({ BOOTSTRAP_API_KEY: 'short' }), /BOOTSTRAP_API_KEY must be at least 16 characters/);
    assert.throws(() => loadConfig({ TEMPORAL_TLS_CERT: '/x.pem' }), /TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together/);
    assert.throws(() => loadConfig({ TEMPORAL_TLS_CERT: '/nope/cert.pem', TEMPORAL_TLS_KEY: '/nope/key.pem' }), /TEMPORAL_TLS_CERT=\/nope\/cert.pem is not a readable file/);
    assert.throws(() => loadConfig({ TEMPORAL_API_KEY: 'k' }), /TEMPORAL_API_KEY is set but TEMPORAL_ADDRESS is not/);
    assert.throws(() => loadConfig({ TEMPORAL_TLS: 'maybe' }), /TEMPORAL_TLS/);
  });

  it('accepts readable TLS files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'batchd-tls-'));
    for (const f of ['c.pem', 'k.pem', 'ca.pem']) writeFileSync(join(dir, f), 'x');
    const c = loadConfig({ TEMPORAL_ADDRESS: 'h:7233', TEMPORAL_TLS_CERT: join(dir, 'c.pem'), TEMPORAL_TLS_KEY: join(dir, 'k.pem'), TEMPORAL_TLS_CA: join(dir, 'ca.pem') });
    assert.equal(c.TEMPORAL_TLS_CA, join(dir, 'ca.pem'));
  });
});
