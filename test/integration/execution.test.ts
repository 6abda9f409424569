/**
 * The three executors on real processes, the rank variables each process sees, the exit-code rules,
 * stop without orphans (setsid escapees included), log paging in both directions and by rank, and the
 * live log stream.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BatchJobBody, processesMatching, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';

interface LogPage {
  entries: Array<{ logTime: string; rank: number; message: string }>;
  nextPageToken: string;
}

describe('executors, exit codes, logs', () => {
  let t: TestService;
  before(async () => {
    t = await startTestService();
    // The workspace (WORKSPACE_DIR) is where relative python and notebook targets resolve.
    writeFileSync(
      join(t.workspaceDir, 'show_args.py'),
      ['import os, sys', 'print("argv", sys.argv[1:])', 'print("env", os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ.get("COLOUR"))', ''].join('\n'),
    );
    writeFileSync(join(t.workspaceDir, 'failing.py'), 'import sys\nprint("about to fail", flush=True)\nsys.exit(7)\n');
    writeFileSync(
      join(t.workspaceDir, 'writes_file.ipynb'),
      JSON.stringify({
        cells: [
          {
            cell_type: 'code',
            execution_count: null,
            id: 'c1',
            metadata: {},
            outputs: [],
            source: ['import os\n', "open('result.txt', 'w').write('notebook rank ' + os.environ['RANK'])\n", "print('notebook done')"],
          },
        ],
        metadata: { kernelspec: { display_name: 'Python 3', language: 'python', name: 'python3' } },
        nbformat: 4,
        nbformat_minor: 5,
      }),
    );
  });
  after(async () => {
    await t?.stop();
  });

  const logsOf = async (id: string, query = 'startFromHead=true&pageSize=1000') =>
    (await t.api.get<LogPage>(`${A}/batchJobs/${id}:getLogs?${query}`)).body.entries.map((e) => `${e.rank}|${e.message}`).sort();

  it('runs a python module with args and env: python3 -m target args...', async () => {
    const r = await t.api.post(`${A}/batchJobs?batchJobId=py-module`, {
      nodePoolId: 'default-cpu',
      numRanks: 2,
      envVars: { COLOUR: 'blue' },
      pythonExecutor: { targetType: 'MODULE', target: 'show_args', args: ['--lr', '0.1', 'two words'] },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitForState(t.api, 'default', 'py-module', 'COMPLETED');
    assert.deepEqual(await logsOf('py-module'), [
      "0|argv ['--lr', '0.1', 'two words']",
      '0|env 0 2 blue',
      "1|argv ['--lr', '0.1', 'two words']",
      '1|env 1 2 blue',
    ]);
  });

  it('runs a python file by relative path with args, and fails with its exit code', async () => {
    await t.api.post(`${A}/batchJobs?batchJobId=py-file`, {
      nodePoolId: 'default-cpu',
      pythonExecutor: { targetType: 'FILENAME', target: 'show_args.py', args: ['x'] },
    });
    await waitForState(t.api, 'default', 'py-file', 'COMPLETED');
    assert.deepEqual(await logsOf('py-file'), ["0|argv ['x']", '0|env 0 1 None']);

    await t.api.post(`${A}/batchJobs?batchJobId=py-fails`, { nodePoolId: 'default-cpu', pythonExecutor: { targetType: 'FILENAME', target: 'failing.py' } });
    const failed = await waitForState(t.api, 'default', 'py-fails', 'FAILED');
    assert.match(failed.status, /rank 0 on host h\d exited with code 7 \(last output: about to fail\)/);
  });

  it('executes a notebook in each rank’s own folder; the notebook writes a file; the executed notebook is kept', async () => {
    const r = await t.api.post(`${A}/batchJobs?batchJobId=notebook`, { nodePoolId: 'default-cpu', numRanks: 2, notebookExecutor: { notebookFilename: 'writes_file.ipynb' } });
    assert.equal(r.status, 200);
    const done = await waitForState(t.api, 'default', 'notebook', ['COMPLETED', 'FAILED'], 90_000);
    assert.equal(done.state, 'COMPLETED', done.status);
    for (const rank of [0, 1]) {
      const dir = join(t.dataDir, 'work', 'default', 'notebook', `rank-${rank}`);
      assert.equal(readFileSync(join(dir, 'result.txt'), 'utf8'), `notebook rank ${rank}`);
      const executed = JSON.parse(readFileSync(join(dir, 'executed.ipynb'), 'utf8')) as { cells: Array<{ outputs: Array<{ text?: string[] }> }> };
      assert.match((executed.cells[0]?.outputs[0]?.text ?? []).join(''), /notebook done/);
    }
  });

  it('fails a job whose rank is killed by a signal, naming the signal', async () => {
    await t.api.post(`${A}/batchJobs?batchJobId=signalled`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'kill -9 $$' } });
    const failed = await waitForState(t.api, 'default', 'signalled', 'FAILED');
    assert.match(failed.status, /rank 0 on host h\d was killed by SIGKILL/);
  });

  it('leaves nothing behind when a rank that started a setsid child (outside its process group) is cancelled', async () => {
    const marker = `303.${Date.now() % 100000}`;
    await t.api.post(`${A}/batchJobs?batchJobId=escapee`, {
      nodePoolId: 'default-cpu',
      shellExecutor: { command: `setsid sleep ${marker} & nohup sleep ${marker} >/dev/null 2>&1 & sleep ${marker}` },
    });
    await waitForState(t.api, 'default', 'escapee', 'RUNNING');
    await waitFor('three sleeps', () => (processesMatching(`sleep ${marker}`).filter((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'sleep').length === 3 ? true : undefined));
    await t.api.post(`${A}/batchJobs/escapee:cancel`, {});
    await waitForState(t.api, 'default', 'escapee', 'CANCELLED');
    assert.deepEqual(processesMatching(`sleep ${marker}`), [], 'the setsid child is found by the rank marker and killed too');
  });

  it('also reaps background children of a rank that exited 0', async () => {
    const marker = `304.${Date.now() % 100000}`;
    await t.api.post(`${A}/batchJobs?batchJobId=leaves-child`, { nodePoolId: 'default-cpu', shellExecutor: { command: `(sleep ${marker} &) ; echo parent done` } });
    await waitForState(t.api, 'default', 'leaves-child', 'COMPLETED');
    await waitFor('the background child to be reaped', () => (processesMatching(`sleep ${marker}`).length === 0 ? true : undefined), 5000);
  });

  it('pages logs newest first by default and oldest first with startFromHead, by rank, from startTime, with a filter', async () => {
    await t.api.post(`${A}/batchJobs?batchJobId=chatty`, {
      nodePoolId: 'default-gpu',
      numRanks: 3,
      shellExecutor: { command: 'for i in $(seq 1 40); do echo "rank $RANK line $i"; done; echo "rank $RANK special"' },
    });
    await waitForState(t.api, 'default', 'chatty', 'COMPLETED');
    const collect = async (query: string) => {
      const out: LogPage['entries'] = [];
      let token = '';
      let pages = 0;
      do {
        const r = await t.api.get<LogPage>(`${A}/batchJobs/chatty:getLogs?${query}${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        out.push(...r.body.entries);
        token = r.body.nextPageToken;
        pages++;
      } while (token && pages < 100);
      return { out, pages };
    };
    const forward = await collect('startFromHead=true&pageSize=25');
    assert.equal(forward.out.length, 123);
    assert.equal(forward.pages, 5);
    const backward = await collect('pageSize=25');
    assert.deepEqual(backward.out, [...forward.out].reverse(), 'newest first is exactly the reverse');
    for (let i = 1; i < forward.out.length; i++) assert.ok(forward.out[i - 1]!.logTime <= forward.out[i]!.logTime);
    // Within a rank, lines keep the order the rank wrote them.
    const rank1 = forward.out.filter((e) => e.rank === 1).map((e) => e.message);
    assert.deepEqual(rank1, [...Array.from({ length: 40 }, (_, i) => `rank 1 line ${i + 1}`), 'rank 1 special']);

    const byRank = await collect('ranks=0&ranks=2&startFromHead=true&pageSize=1000');
    assert.deepEqual([...new Set(byRank.out.map((e) => e.rank))].sort(), [0, 2]);
    assert.equal(byRank.out.length, 82);
    const filtered = await collect('filter=special&pageSize=10');
    assert.deepEqual(filtered.out.map((e) => e.message).sort(), ['rank 0 special', 'rank 1 special', 'rank 2 special']);
    const latest = await t.api.get<LogPage>(`${A}/batchJobs/chatty:getLogs?pageSize=3`);
    assert.deepEqual(latest.body.entries, [...forward.out].reverse().slice(0, 3), 'without startTime: the latest pageSize entries');
    const cut = forward.out[60]!.logTime;
    const since = await collect(`startTime=${encodeURIComponent(cut)}&startFromHead=true&pageSize=1000`);
    assert.ok(since.out.length > 0 && since.out.every((e) => e.logTime >= cut));
    const tooBig = await t.api.get<LogPage>(`${A}/batchJobs/chatty:getLogs?pageSize=20000`);
    assert.equal(tooBig.status, 200);
    assert.equal(tooBig.body.entries.length, 123, 'pageSize above 10000 is coerced');
    const badToken = await t.api.get<{ code: number }>(`${A}/batchJobs/chatty:getLogs?pageToken=abc`);
    assert.equal(badToken.status, 400);
  });

  it('follows a job’s logs live until it ends (server-sent events)', async () => {
    await t.api.post(`${A}/batchJobs?batchJobId=followed`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'for i in 1 2 3; do echo tick $i; sleep 0.4; done' } });
    const res = await fetch(`${t.url}${A}/batchJobs/followed:followLogs`, { headers: { authorization: `Bearer ${t.key}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await res.text(); // the server ends the stream when the job has ended
    const events = text
      .split('\n\n')
      .filter((b) => b.startsWith('event:'))
      .map((b) => {
        const [eventLine, dataLine] = b.split('\n');
        return { event: eventLine!.slice('event: '.length), data: JSON.parse(dataLine!.slice('data: '.length)) as Record<string, unknown> };
      });
    assert.deepEqual(events.filter((e) => e.event === 'log').map((e) => e.data.message), ['tick 1', 'tick 2', 'tick 3']);
    const end = events.at(-1);
    assert.equal(end?.event, 'end');
    assert.equal(end?.data.state, 'COMPLETED');
    // Isolated ranks (the agent runs as root here) also say what they used.
    assert.match(String(end?.data.status), /^all 1 rank exited with code 0(; peak memory [\d.]+ [KMG]?i?B, [\d.]+ CPU seconds)?$/);
  });

  it('keeps each rank in its own working directory under DATA_DIR/work', async () => {
    await t.api.post(`${A}/batchJobs?batchJobId=cwd`, { nodePoolId: 'default-cpu', numRanks: 2, shellExecutor: { command: 'pwd; echo $RANK > mine.txt' } });
    await waitForState(t.api, 'default', 'cwd', 'COMPLETED');
    const lines = await logsOf('cwd');
    assert.deepEqual(lines, [`0|${join(t.dataDir, 'work/default/cwd/rank-0')}`, `1|${join(t.dataDir, 'work/default/cwd/rank-1')}`]);
    assert.ok(existsSync(join(t.dataDir, 'work/default/cwd/rank-1/mine.txt')));
    const job = await t.api.get<BatchJobBody>(`${A}/batchJobs/cwd`);
    assert.equal(job.body.state, 'COMPLETED');
  });
});
