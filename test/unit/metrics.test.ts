/**
 * The metrics registry as Prometheus reads it: the request counters and histogram, the totals kept
 * outside prom-client (rank usage, dropped log lines) under their names, prom-client's process and
 * event-loop metrics beside them, and two services in one process kept apart.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recordRankUsage } from '../../src/agent/usage-metrics';
import { Metrics, type MetricsSources } from '../../src/api/metrics';

// The registry alone: render() would also read the stores, which the integration suites cover.
const registryOnly = () => new Metrics({} as MetricsSources);

describe('metrics', () => {
  it('counts requests, errors and latency by route', async () => {
    const m = registryOnly();
    m.observe('GET /v1/x', 'GET', 200, 0.02);
    m.observe('GET /v1/x', 'GET', 404, 0.3);
    const text = await m.registry.metrics();
    assert.match(text, /^batchd_api_requests_total\{route="GET \/v1\/x",method="GET",status="200"\} 1$/m);
    assert.match(text, /^batchd_api_errors_total\{route="GET \/v1\/x",method="GET",status="404"\} 1$/m);
    assert.doesNotMatch(text, /^batchd_api_errors_total\{[^}]*status="200"/m);
    assert.match(text, /^batchd_api_request_duration_seconds_bucket\{le="0\.025",route="GET \/v1\/x",method="GET"\} 1$/m);
    assert.match(text, /^batchd_api_request_duration_seconds_count\{route="GET \/v1\/x",method="GET"\} 2$/m);
    assert.match(text, /^process_cpu_user_seconds_total \d/m);
    assert.match(text, /^nodejs_eventloop_lag_p99_seconds \d/m);
    assert.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  });

  it('shows rank usage as counters and an already-bucketed histogram', async () => {
    recordRankUsage('metrics-test', 'p', { cpuSeconds: 1.5, peakMemoryBytes: 300 * 2 ** 20, oomKills: 1 });
    const text = await registryOnly().registry.metrics();
    const labels = 'account="metrics-test",pool="p"';
    assert.ok(text.includes(`batchd_rank_cpu_seconds_total{${labels}} 1.5\n`));
    assert.ok(text.includes(`batchd_rank_oom_kills_total{${labels}} 1\n`));
    assert.match(text, /^# TYPE batchd_rank_peak_memory_bytes histogram$/m);
    assert.ok(text.includes(`batchd_rank_peak_memory_bytes_bucket{${labels},le="268435456"} 0\n`));
    assert.ok(text.includes(`batchd_rank_peak_memory_bytes_bucket{${labels},le="1073741824"} 1\n`));
    assert.ok(text.includes(`batchd_rank_peak_memory_bytes_bucket{${labels},le="+Inf"} 1\n`));
    assert.ok(text.includes(`batchd_rank_peak_memory_bytes_sum{${labels}} 314572800\n`));
    assert.match(text, /^batchd_log_lines_dropped_total\{reason="budget"\} \d+$/m);
  });

  it('keeps two services in one process apart', async () => {
    const a = registryOnly();
    const b = registryOnly();
    a.observe('GET /a', 'GET', 200, 0.01);
    assert.match(await a.registry.metrics(), /route="GET \/a"/);
    assert.doesNotMatch(await b.registry.metrics(), /route="GET \/a"/);
  });
});
