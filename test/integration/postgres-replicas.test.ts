/**
 * Two API replicas of one deployment on a real PostgreSQL (DATABASE_URL) and a real Temporal dev
 * server: a job created through the first runs on its fake hosts, whose agents write the log store;
 * the second replica, an API process with a data folder of its own, follows, pages and deletes that
 * job's logs, and neither replica keeps a log file on its disk.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import pino from 'pino';
import { loadConfig } from '../../src/config';
import { type RunningService, startService } from '../../src/service';
import { Api, startTestService, TEST_KEY, type TestService, testEnv, waitFor } from '../support/harness';
import { followLogs } from '../support/log-store-contract';
import { startPostgres, type TestPostgres } from '../support/postgres';

const A = '/v1/accounts/default';
const SECRET = 'replicas-share-this-page-secret';

interface LogsBody {
  entries: Array<{ rank: number; message: string; attempt: number }>;
  nextPageToken: string;
}

describe('two API replicas on one PostgreSQL', () => {
  let pg: TestPostgres;
  let first: TestService;
  let second: RunningService;
  let secondDir: string;
  let api2: Api;

  before(async () => {
    pg = await startPostgres();
    first = await startTestService({ env: { DATABASE_URL: pg.url, PAGE_TOKEN_SECRET: SECRET } });
    secondDir = mkdtempSync(join(tmpdir(), 'batchd-replica-'));
    const env = await testEnv(secondDir, { TEMPORAL_ADDRESS: first.service.temporalAddress, DATABASE_URL: pg.url, PAGE_TOKEN_SECRET: SECRET, DEFAULT_POOLS: 'false' });
    second = await startService({ config: loadConfig(env), roles: ['api'], logger: pino({ level: 'warn' }) });
    api2 = new Api(second.url ?? '', TEST_KEY);
  });
  after(async () => {
    await second?.stop();
    await first?.stop();
    await pg?.stop();
    if (secondDir) rmSync(secondDir, { recursive: true, force: true });
  });

  it('follows, pages and deletes on one replica the logs of a job run through the other; no replica keeps a log file', async () => {
    const created = await first.api.post(`${A}/batchJobs?batchJobId=shared-logs`, {
      nodePoolId: 'default-cpu',
      numRanks: 2,
      shellExecutor: { command: 'for i in 1 2 3; do echo "rank $RANK line $i"; done' },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const stream = followLogs(second.url ?? '', TEST_KEY, `${A}/batchJobs/shared-logs:followLogs`);
    try {
      await stream.done;
    } finally {
      stream.close();
    }
    const expected = [0, 1].flatMap((rank) => [1, 2, 3].map((i) => `rank ${rank} line ${i}`)).sort();
    assert.deepEqual(stream.events.filter((e) => e.event === 'log').map((e) => e.data.message).sort(), expected);
    assert.ok(stream.events.filter((e) => e.event === 'log').every((e) => e.data.attempt === 1));
    assert.equal(stream.events.at(-1)?.event, 'end');
    assert.equal(stream.events.at(-1)?.data.state, 'COMPLETED');

    // A page from one replica, the rest from the other.
    const page1 = await api2.get<LogsBody>(`${A}/batchJobs/shared-logs:getLogs?startFromHead=true&pageSize=4`);
    assert.equal(page1.status, 200, JSON.stringify(page1.body));
    assert.equal(page1.body.entries.length, 4);
    const page2 = await first.api.get<LogsBody>(`${A}/batchJobs/shared-logs:getLogs?startFromHead=true&pageSize=4&pageToken=${encodeURIComponent(page1.body.nextPageToken)}`);
    assert.equal(page2.status, 200, JSON.stringify(page2.body));
    assert.deepEqual([...page1.body.entries, ...page2.body.entries].map((e) => e.message).sort(), expected);
    assert.equal(page2.body.nextPageToken, '');

    for (const dir of [first.dataDir, secondDir]) assert.equal(existsSync(join(dir, 'logs.sqlite')), false, `no log file in ${dir}`);

    // Deleted through the second replica (an ended job is purged by the API process itself): its lines leave PostgreSQL.
    assert.equal((await api2.delete(`${A}/batchJobs/shared-logs`)).status, 200);
    await waitFor('the job to be gone', async () => ((await api2.get(`${A}/batchJobs/shared-logs`)).status === 404 ? true : undefined), 30_000);
    const db = new Client({ connectionString: pg.url });
    await db.connect();
    try {
      const rows = await db.query<{ n: string }>("SELECT COUNT(*) AS n FROM log_entries WHERE job = 'accounts/default/batchJobs/shared-logs'");
      assert.equal(Number(rows.rows[0]?.n), 0);
    } finally {
      await db.end();
    }
  });
});
