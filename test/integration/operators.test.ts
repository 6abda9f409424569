/**
 * The operator's page runs as written: every `temporal` command in docs/operators.md's sh blocks is
 * executed, in order, against a real service, and a cancel or delete sent from the CLI behaves like
 * the API's. Also: /metrics tells the truth, and a terminated job's capacity is still released.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ensureTemporalCli } from '../../src/temporal/cli';
import { processesMatching, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const run = promisify(execFile);
const A = '/v1/accounts/default';

/** The `temporal …` commands of the page's sh blocks, continuation lines joined. */
export function operatorCommands(markdown: string): string[] {
  const out: string[] = [];
  for (const block of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const joined = (block[1] ?? '').replace(/\\\n\s*/g, ' ');
    for (const line of joined.split('\n')) if (line.trim().startsWith('temporal ')) out.push(line.trim());
  }
  return out;
}

interface Stats {
  batchJobCount: Record<string, number>;
}

describe('operating batchd from the Temporal CLI', () => {
  let t: TestService;
  let env: NodeJS.ProcessEnv;
  const marker = `306.${process.pid % 100000}`;

  before(async () => {
    t = await startTestService({ env: { USAGE_SAMPLE_MS: '1000' } });
    env = { ...process.env, PATH: `${dirname(ensureTemporalCli())}:${process.env.PATH ?? ''}`, TEMPORAL_ADDRESS: t.service.temporalAddress };
    for (const [id, ranks] of [['hello', 12], ['scratch', 1]] as const) {
      const r = await t.api.post(`${A}/batchJobs?batchJobId=${id}`, { nodePoolId: 'default-gpu', numRanks: ranks, shellExecutor: { command: `sleep ${marker}` } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await waitForState(t.api, 'default', id, 'RUNNING');
    }
  });
  after(async () => {
    await t?.stop();
  });

  it('reports jobs, queues and capacity in /metrics', async () => {
    assert.equal((await fetch(`${t.url}/no-such-path`)).status, 404);
    const text = await waitFor('metrics with both jobs', async () => {
      const token = readFileSync(join(t.dataDir, 'metrics-token'), 'utf8').trim();
      const body = await (await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
      return body.includes('batchd_batch_jobs{account="default",node_pool="default-gpu",state="RUNNING"} 2') ? body : undefined;
    });
    assert.match(text, /^# TYPE batchd_batch_jobs gauge$/m);
    assert.match(text, /^batchd_ranks_in_use\{pool="accounts\/default\/nodePools\/default-gpu"\} 13$/m);
    assert.match(text, /^batchd_rank_capacity\{pool="accounts\/default\/nodePools\/default-gpu"\} 16$/m);
    assert.match(text, /^batchd_queue_length\{pool="accounts\/default\/nodePools\/default-gpu"\} 0$/m);
    assert.match(text, /^batchd_hosts\{pool="accounts\/default\/nodePools\/default-cpu",status="ready"\} 4$/m);
    assert.match(text, /^batchd_api_requests_total\{route="POST \/v1\/accounts\/\{account\}\/batchJobs",method="POST",status="200"\} 2$/m);
    assert.match(text, /^batchd_api_request_duration_seconds_count\{route="GET \/v1\/accounts\/\{account\}\/batchJobs\/\{batchJob\}",method="GET"\} \d+$/m);
    assert.match(text, /^batchd_log_bytes_stored \d+$/m);
    assert.match(text, /^batchd_queue_oldest_wait_seconds\{pool="accounts\/default\/nodePools\/default-gpu"\} 0$/m);
    assert.match(text, /^batchd_api_errors_total\{route="unmatched",method="GET",status="404"\} 1$/m, 'the unknown path probed below, counted as an error');
    // prom-client's process and event-loop metrics come with the service's own.
    assert.match(text, /^# TYPE process_cpu_user_seconds_total counter$/m);
    assert.match(text, /^process_resident_memory_bytes \d+$/m);
    assert.match(text, /^nodejs_eventloop_lag_seconds [\d.e-]+$/m);
    assert.match(text, /^nodejs_heap_size_used_bytes \d+$/m);
    // Every sample line is `name{labels} value`, as Prometheus parses it.
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) assert.match(line, /^[a-zA-Z_:][\w:]*(\{.*\})? (-?[\d.e+-]+|NaN|[+-]Inf)$/, line);
  });

  it('shows where a job runs and what each host holds, and samples the pool into the last hour', async () => {
    const placement = await t.api.get<{ ranks: Array<{ rank: number; host: string; slot: number }>; masterAddr: string }>(`${A}/batchJobs/hello:getPlacement`);
    assert.equal(placement.status, 200, JSON.stringify(placement.body));
    assert.deepEqual(placement.body.ranks.map((r) => r.rank), [...Array(12).keys()]);
    assert.equal(new Set(placement.body.ranks.map((r) => r.host)).size, 2, '8 + 4 on two hosts');
    assert.equal(new Set(placement.body.ranks.map((r) => `${r.host}/${r.slot}`)).size, 12, 'one slot each');
    const usage = await t.api.get<{ hosts: Array<{ host: string; slotsInUse: number; slotJobs: Array<string | null> }>; ranksInUse: number; rankCapacity: number; queueLength: number }>(
      `${A}/nodePools/default-gpu:getUsage`,
    );
    assert.equal(usage.status, 200, JSON.stringify(usage.body));
    assert.equal(usage.body.ranksInUse, 13);
    assert.equal(usage.body.rankCapacity, 16);
    assert.deepEqual(usage.body.hosts.map((h) => h.slotsInUse).sort(), [5, 8]);
    assert.equal(usage.body.hosts.flatMap((h) => h.slotJobs).filter((j) => j === 'hello').length, 12);
    const history = await waitFor('a sample with both jobs', async () => {
      const r = await t.api.get<{ samples: Array<{ ranksInUse: number; rankCapacity: number; queueLength: number }>; sampleIntervalSeconds: number }>(`${A}/nodePools/default-gpu:getUsageHistory`);
      return r.body.samples.some((s) => s.ranksInUse === 13) ? r.body : undefined;
    });
    assert.equal(history.sampleIntervalSeconds, 1);
    assert.ok(history.samples.every((s) => s.rankCapacity === 16 && s.queueLength === 0));
    for (const path of [`${A}/nodePools/nope:getUsage`, `${A}/nodePools/nope:getUsageHistory`, `${A}/batchJobs/nope:getPlacement`]) {
      assert.equal((await t.api.get(path)).status, 404, path);
    }
    assert.equal((await t.api.get(`/v1/accounts/other/nodePools/default-gpu:getUsageHistory`)).status, 403);
  });

  it('runs every command of docs/operators.md as written; the CLI’s cancel and delete act like the API’s', async () => {
    const commands = operatorCommands(readFileSync(join(__dirname, '..', '..', '..', 'docs', 'operators.md'), 'utf8'));
    assert.ok(commands.length >= 12, `found ${commands.length} commands`);
    for (const command of commands) {
      const { stdout } = await run('bash', ['-c', command], { env, timeout: 30_000 }).catch((err: { stderr?: string; message: string }) => {
        throw new Error(`"${command}" failed: ${err.stderr ?? err.message}`);
      });
      assert.ok(stdout.trim().length > 0, `"${command}" printed nothing`);
      if (command.includes('--type getBatchJob')) {
        assert.match(stdout, /"placement"/);
        assert.match(stdout, /"masterPort"/);
      }
      if (command.includes("BatchJobState=\"RUNNING\" AND BatchdAccount")) assert.match(stdout, /accounts\/default\/batchJobs\/hello/);
      if (command.includes('--name cancel')) {
        const job = await waitForState(t.api, 'default', 'hello', 'CANCELLED');
        assert.match(job.status, /cancelled by ops@example.com/);
      }
    }
    await waitFor('scratch to be deleted', async () => ((await t.api.get(`${A}/batchJobs/scratch`)).status === 404 ? true : undefined));
    const stats = await waitFor('the pool to be empty', async () => {
      const s = (await t.api.get<Stats>(`${A}/nodePools/default-gpu:getStats`)).body;
      return Object.keys(s.batchJobCount).length === 0 ? s : undefined;
    });
    assert.deepEqual(stats.batchJobCount, {});
    assert.deepEqual(processesMatching(`sleep ${marker}`), [], 'no rank of either job is left');
  });

  it('still frees the ranks and the capacity of a job whose workflow an operator terminated', async () => {
    const m = `307.${process.pid % 100000}`;
    await t.api.post(`${A}/batchJobs?batchJobId=terminated`, { nodePoolId: 'default-gpu', numRanks: 4, shellExecutor: { command: `sleep ${m}` } });
    await waitForState(t.api, 'default', 'terminated', 'RUNNING');
    await run('temporal', ['workflow', 'terminate', '--workflow-id', 'accounts/default/batchJobs/terminated', '--reason', 'test'], { env });
    await waitFor('the agent to stop the ranks', () => (processesMatching(`sleep ${m}`).length === 0 ? true : undefined), 20_000);
    await waitFor('the capacity to be released', async () => {
      const s = (await t.api.get<Stats>(`${A}/nodePools/default-gpu:getStats`)).body;
      return Object.keys(s.batchJobCount).length === 0 ? true : undefined;
    }, 20_000);
    const job = await t.api.get<{ state: string; status: string }>(`${A}/batchJobs/terminated`);
    assert.equal(job.body.state, 'FAILED');
    assert.match(job.body.status, /workflow ended without finishing the job \(its workflow terminated\)/);
  });
});
