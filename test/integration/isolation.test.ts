/**
 * Rank isolation, attacked as a tenant would (docs/security.md): ranks of account `acme` try to read
 * every secret and SQLite file in DATA_DIR, the keys file, another account's rank folder, the
 * agent's environment and the rank spawner's (their parent), and signal the spawner; connect to
 * Temporal's gRPC port, its UI and the API; write into the workspace and the shared temporary
 * folders; escape a cancel by setsid + env -i, a double fork,
 * nohup and a daemon; and allocate past their memory limit. Every attempt must fail — each probe
 * has a control that must succeed, so a probe that cannot fail is caught — and the service stays up
 * and runs ordinary jobs of each executor. Needs root (CI runs as root): the isolated path is the
 * one `npm start` takes there.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { plantAttackKit } from '../support/attack-kit';
import { Api, type BatchJobBody, processesMatching, startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const ACME = '/v1/accounts/acme';
const ACME_KEY = 'acme-key-0123456789abcdef';
const LIMIT = '300M';

interface LogPage {
  entries: Array<{ rank: number; message: string }>;
}

/** Each probe prints BLOCKED <what> or LEAK <what>; controls print ALLOWED <what> or BROKEN <what>. */
const ATTACK = String.raw`
D="$VICTIM_DATA"
try() { if eval "$2" >/dev/null 2>&1; then echo "LEAK $1"; else echo "BLOCKED $1"; fi; }
control() { if eval "$2" >/dev/null 2>&1; then echo "ALLOWED $1"; else echo "BROKEN $1"; fi; }
for f in api-key agent-token page-token.secret batchd.sqlite logs.sqlite temporal.sqlite temporal.sqlite-wal rank-uids.json; do
  try "read $f" "cat '$D/$f'"
done
try "list DATA_DIR" "ls '$D' | grep -q ."
try "list work" "ls '$D/work' | grep -q ."
try "list another account" "ls '$D/work/default' | grep -q ."
try "read another account's rank folder" "cat '$D/work/default/victim/rank-0/secret.txt'"
try "read the keys file" "cat '$KEYS_FILE'"
try "read the agent's environment" "cat /proc/$AGENT_PID/environ | grep -q ."
try "read the rank spawner's environment" "cat /proc/$PPID/environ >/dev/null"
try "signal the rank spawner" "kill -0 $PPID"
try "write the workspace" "echo 'print(1)' > '$WS/planted.py'"
try "write /tmp" "echo x > /tmp/batchd-planted-$$"
for pair in "TEMPORAL $TEMPORAL_PORT" "UI $UI_PORT" "API $API_PORT"; do
  set -- $pair
  try "connect to $1" "timeout 5 python3 -c 'import socket,sys; socket.create_connection((\"127.0.0.1\", int(sys.argv[1])), timeout=3)' $2"
  try "bash /dev/tcp to $1" "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$2'"
done
control "read the workspace" "cat '$WS/ordinary.py'"
control "see that its parent is the rank spawner" "grep -q rank-spawner-child /proc/$PPID/cmdline"
control "write the rank folder" "echo mine > ./mine.txt"
control "write TMPDIR" "echo mine > \"\$TMPDIR/mine\""
control "write /dev/shm (its job's own)" "echo mine > /dev/shm/batchd-planted-$$"
control "write /var/tmp (its own)" "echo mine > /var/tmp/batchd-planted-$$"
control "connect to another local port" "timeout 5 python3 -c 'import socket,sys; socket.create_connection((\"127.0.0.1\", int(sys.argv[1])), timeout=3)' $OPEN_PORT"
echo "uid $(id -u) gid $(id -g) groups $(id -G)"
grep -E '^(NoNewPrivs|CapEff|CapBnd):' /proc/self/status
`;

describe('rank isolation: ranks that attack the service', () => {
  let t: TestService;
  let acme: Api;
  let open: Server;
  let openPort = 0;
  let keysFile = '';

  before(async () => {
    if (process.getuid?.() !== 0) throw new Error('this suite needs root (the agent isolates ranks only as root); CI runs as root');
    // A port ranks may reach: proves the connection probe can succeed.
    open = createServer((s) => s.end());
    await new Promise<void>((r) => open.listen(0, '127.0.0.1', r));
    openPort = (open.address() as { port: number }).port;
    const dataDir = mkdtempSync(join(tmpdir(), 'batchd-isolation-'));
    keysFile = join(dataDir, 'keys.json');
    writeFileSync(keysFile, JSON.stringify({ keys: [{ key: ACME_KEY, account: 'acme', email: 'eve@acme.dev' }] }), { mode: 0o644 });
    t = await startTestService({ dataDir, env: { API_KEYS_FILE: keysFile, RANK_MEMORY_LIMIT: LIMIT } });
    acme = new Api(t.url, ACME_KEY);
    const pool = await acme.post(`${ACME}/nodePools`, { nodePoolId: 'cpu', nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes: 2 } } });
    assert.equal(pool.status, 200, JSON.stringify(pool.body));
    writeFileSync(join(t.workspaceDir, 'ordinary.py'), 'import os\nprint("ordinary python rank", os.environ["RANK"])\n');
    writeFileSync(join(t.workspaceDir, 'attack.sh'), ATTACK);
  });
  after(async () => {
    await t?.stop();
    open?.close();
  });

  const logsOf = async (api: Api, base: string, id: string) =>
    (await api.get<LogPage>(`${base}/batchJobs/${id}:getLogs?startFromHead=true&pageSize=1000`)).body.entries.map((e) => e.message);

  it('runs the service with ranks isolated, and says so', () => {
    assert.equal(t.service.isolation?.mode, 'isolated');
    assert.match(t.service.isolation?.summary ?? '', /^ranks are isolated: uids 200000-265535 \(one per account\), cgroup v[12] per rank, memory limited to 300 MiB, no route to Temporal or the API/);
    assert.match(t.service.isolation?.summary ?? '', /; started by batchd-rank-launch$/, 'the launcher `npm run build` compiled (scripts/install-system-deps.sh installs gcc)');
    assert.equal(statSync(t.dataDir).mode & 0o777, 0o711);
    for (const f of ['api-key', 'agent-token', 'batchd.sqlite', 'logs.sqlite', 'temporal.sqlite']) {
      if (existsSync(join(t.dataDir, f))) assert.equal(statSync(join(t.dataDir, f)).mode & 0o077, 0, `${f} is closed to other users`);
    }
    assert.equal(statSync(keysFile).mode & 0o007, 0, 'the keys file lost its permissions for other users');
  });

  it('fails every attack of a rank of another account, while its controls succeed', async () => {
    // The victim: account default leaves a file in its rank folder.
    await t.api.post(`${A}/batchJobs?batchJobId=victim`, { nodePoolId: 'default-cpu', shellExecutor: { command: 'echo confidential > secret.txt; id -u' } });
    const victim = await waitForState(t.api, 'default', 'victim', ['COMPLETED', 'FAILED']);
    assert.equal(victim.state, 'COMPLETED', victim.status);
    const [victimUid] = await logsOf(t.api, A, 'victim');

    const r = await acme.post(`${ACME}/batchJobs?batchJobId=attack`, {
      nodePoolId: 'cpu',
      envVars: {
        VICTIM_DATA: t.dataDir,
        WS: t.workspaceDir,
        KEYS_FILE: keysFile,
        AGENT_PID: String(process.pid),
        TEMPORAL_PORT: t.env.TEMPORAL_PORT!,
        UI_PORT: t.env.TEMPORAL_UI_PORT!,
        API_PORT: t.env.PORT!,
        OPEN_PORT: String(openPort),
      },
      shellExecutor: { command: `bash ${join(t.workspaceDir, 'attack.sh')}` },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const done = await waitForState(acme, 'acme', 'attack', ['COMPLETED', 'FAILED'], 60_000);
    const lines = await logsOf(acme, ACME, 'attack');
    assert.equal(done.state, 'COMPLETED', `${done.status}\n${lines.join('\n')}`);
    assert.deepEqual(
      lines.filter((l) => /^(LEAK|BROKEN) /.test(l)),
      [],
      `every attack blocked, every control allowed:\n${lines.join('\n')}`,
    );
    assert.equal(lines.filter((l) => l.startsWith('BLOCKED ')).length, 24, lines.join('\n'));
    assert.equal(lines.filter((l) => l.startsWith('ALLOWED ')).length, 7, lines.join('\n'));
    // Its own uid, not root, not the victim account's; no groups; no privileges to gain.
    const who = /^uid (\d+) gid (\d+) groups (.*)$/.exec(lines.find((l) => l.startsWith('uid ')) ?? '');
    assert.ok(who, lines.join('\n'));
    assert.ok(Number(who[1]) >= 200_000 && Number(who[1]) !== Number(victimUid), `acme runs as ${who[1]}, default as ${victimUid}`);
    assert.equal(who[2], who[1]);
    assert.equal(who[3], who[1], 'no supplementary groups');
    assert.ok(lines.includes('NoNewPrivs:\t1'), lines.join('\n'));
    assert.ok(lines.includes('CapEff:\t0000000000000000'), lines.join('\n'));
    assert.ok(lines.includes('CapBnd:\t0000000000000000'), lines.join('\n'));
    assert.equal(existsSync(join(t.workspaceDir, 'planted.py')), false);
    for (const shared of ['/tmp', '/var/tmp', '/dev/shm']) {
      assert.deepEqual(readdirSync(shared).filter((f) => f.startsWith('batchd-planted')), [], `nothing of the rank in the real ${shared}`);
    }
    // The rank's own folder has what it wrote; it belongs to the rank's uid and nobody else may enter.
    const own = join(t.dataDir, 'work', 'acme', 'attack', 'rank-0');
    assert.equal(readFileSync(join(own, 'mine.txt'), 'utf8'), 'mine\n');
    assert.equal(statSync(own).uid, Number(who[1]));
    assert.equal(statSync(own).mode & 0o777, 0o700);
  });

  it('leaves no process behind after a cancel: setsid + env -i, a double fork, nohup and a daemon', async () => {
    const marker = `97.${process.pid % 1000}${Date.now() % 1000}`;
    const daemon = `import os\nif os.fork(): os._exit(0)\nos.setsid()\nif os.fork(): os._exit(0)\nos.execvp("sleep", ["sleep", "${marker}"])`;
    await acme.post(`${ACME}/batchJobs?batchJobId=escapes`, {
      nodePoolId: 'cpu',
      envVars: { DAEMON_PY: daemon },
      shellExecutor: {
        command: `setsid env -i sleep ${marker} & ( ( sleep ${marker} & ) & ) ; nohup sleep ${marker} >/dev/null 2>&1 & python3 -c "$DAEMON_PY"; sleep ${marker}`,
      },
    });
    await waitForState(acme, 'acme', 'escapes', 'RUNNING');
    const sleeps = () => processesMatching(`sleep ${marker}`).filter((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'sleep');
    await waitFor('five sleeps', () => (sleeps().length === 5 ? true : undefined), 15_000);
    const escaped = sleeps().filter((p) => !readFileSync(`/proc/${p}/environ`, 'latin1').includes('BATCHD_RANK_ID='));
    assert.ok(escaped.length >= 1, 'at least one sleep carries no marker variable: the environment sweep could not find it');
    const c = await acme.post(`${ACME}/batchJobs/escapes:cancel`, {});
    assert.equal(c.status, 200, JSON.stringify(c.body));
    await waitForState(acme, 'acme', 'escapes', 'CANCELLED');
    assert.deepEqual(sleeps(), [], 'no process of the job survives its cancel');
  });

  it('lets a job’s PATH and LD_PRELOAD reach its rank, and nothing that runs as root before it', async () => {
    // What a tenant could leave on the host: a library that records who loads it, and fake tools
    // named as the launchers' (the workspace stands in for any folder a rank could write before).
    const kit = join(t.workspaceDir, 'kit');
    mkdirSync(kit, { recursive: true });
    // Its log in the rank's folder (made before anything of the rank is spawned).
    const ran = join(t.dataDir, 'work', 'acme', 'preload', 'rank-0', 'ran');
    plantAttackKit(kit, ran);
    const r = await acme.post(`${ACME}/batchJobs?batchJobId=preload`, {
      nodePoolId: 'cpu',
      envVars: { PATH: `${kit}:/usr/bin:/bin`, LD_PRELOAD: join(kit, 'evil.so') },
      shellExecutor: { command: 'echo "$LD_PRELOAD"' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const done = await waitForState(acme, 'acme', 'preload', ['COMPLETED', 'FAILED'], 60_000);
    assert.equal(done.state, 'COMPLETED', done.status);
    assert.deepEqual(await logsOf(acme, ACME, 'preload'), [join(kit, 'evil.so')]);
    const uid = (JSON.parse(readFileSync(join(t.dataDir, 'rank-uids.json'), 'utf8')) as Record<string, number>).acme;
    const loads = readFileSync(ran, 'utf8').trim().split('\n');
    assert.ok(loads.includes(`so ${uid}`), `the rank loaded the library (so the probe can fire):\n${loads.join('\n')}`);
    assert.deepEqual(loads.filter((l) => l !== `so ${uid}`), [], 'nothing of the job ran as root');
  });

  it('fails a rank that allocates past its memory limit, saying it ran out of memory', async () => {
    await t.api.post(`${A}/batchJobs?batchJobId=hungry`, { nodePoolId: 'default-cpu', shellExecutor: { command: `exec python3 -c "x = b'x' * (1024 << 20); print(len(x))"` } });
    const failed = await waitForState(t.api, 'default', 'hungry', ['FAILED', 'COMPLETED'], 60_000);
    assert.equal(failed.state, 'FAILED');
    assert.match(failed.status, /^rank 0 on host h\d was killed: out of memory \(limit 300 MiB\)$/);
  });

  it('stays up, and still runs an ordinary python, shell and notebook job', async () => {
    writeFileSync(
      join(t.workspaceDir, 'ordinary.ipynb'),
      JSON.stringify({
        cells: [{ cell_type: 'code', execution_count: null, id: 'c1', metadata: {}, outputs: [], source: ["print('notebook ran')"] }],
        metadata: { kernelspec: { display_name: 'Python 3', language: 'python', name: 'python3' } },
        nbformat: 4,
        nbformat_minor: 5,
      }),
    );
    const jobs: Array<[string, Record<string, unknown>]> = [
      ['ordinary-python', { pythonExecutor: { targetType: 'MODULE', target: 'ordinary' } }],
      ['ordinary-shell', { shellExecutor: { command: 'echo shell ran in $PWD; mktemp' } }],
      ['ordinary-notebook', { notebookExecutor: { notebookFilename: 'ordinary.ipynb' } }],
    ];
    for (const [id, body] of jobs) {
      const r = await acme.post(`${ACME}/batchJobs?batchJobId=${id}`, { nodePoolId: 'cpu', ...body });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    for (const [id] of jobs) {
      const done = await waitForState(acme, 'acme', id, ['COMPLETED', 'FAILED'], 90_000);
      assert.equal(done.state, 'COMPLETED', `${id}: ${done.status}`);
    }
    assert.deepEqual(await logsOf(acme, ACME, 'ordinary-python'), ['ordinary python rank 0']);
    const shell = await logsOf(acme, ACME, 'ordinary-shell');
    assert.equal(shell[0], `shell ran in ${join(t.dataDir, 'work', 'acme', 'ordinary-shell', 'rank-0')}`);
    assert.ok(shell[1]?.startsWith(join(t.dataDir, 'work', 'acme', 'ordinary-shell', 'rank-0', 'tmp', 'tmp.')), 'mktemp uses the private TMPDIR');
    const health = await fetch(`${t.url}/healthz`);
    assert.equal(health.status, 200);
  });

  it('removes a job’s rank folders, private tmp included, when the job is deleted', async () => {
    const dir = join(t.dataDir, 'work', 'acme', 'ordinary-shell');
    assert.ok(existsSync(join(dir, 'rank-0', 'tmp')));
    const d = await acme.delete(`${ACME}/batchJobs/ordinary-shell`);
    assert.equal(d.status, 200, JSON.stringify(d.body));
    await waitFor('the job’s folder to go', () => (existsSync(dir) ? undefined : true), 30_000);
    const gone = await acme.get<BatchJobBody>(`${ACME}/batchJobs/ordinary-shell`);
    assert.equal(gone.status, 404);
  });
});
