/**
 * The two launchers of an isolated rank, on the real kernel: batchd-rank-launch (native/rank-launch.c,
 * what `npm run build` makes and the agent uses) and the shell launcher it replaces where no C
 * compiler built it (unshare, sh, mount, setpriv). Each starts a rank the way the agent does
 * (AgentIsolation.launch, then a spawn with its working directory and environment), and the rank
 * must end up the same: its account's uid with no groups, no capability in any set, no_new_privs, in
 * its cgroup from its first instruction, the workspace and /tmp read-only, its own /var/tmp and
 * /dev/shm, its folder writable, and none of its mounts seen outside. A rank that cannot be placed
 * runs nothing. So that a launcher that forgot a step fails here, the agent's process is given what
 * must not reach the rank (supplementary groups, inheritable and ambient capabilities), DATA_DIR is a
 * shared mount (a bind in a namespace that is not private would show outside), and the workspace is
 * writable by everyone (only the read-only mount keeps the rank out). And a job's variables must reach
 * the rank but nothing that runs before the privileges are dropped: a job that sets PATH to a folder
 * of fake `unshare`, `sh`, `mount`, `setpriv` and `env`, and LD_PRELOAD to a library that records
 * who loaded it, must see them used only by its own uid. The service-level attacks are in isolation.test.ts. Needs root.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { type AgentIsolation, BUILT_LAUNCHER, RankIsolation } from '../../src/agent/isolation';
import { rankCgroupName } from '../../src/domain/isolation';
import { plantAttackKit } from '../support/attack-kit';

/** What the rank reports about itself; each write it tries prints ALLOWED/BLOCKED <what>. */
const PROBE = String.raw`
echo "pid $$"
echo "uid $(id -u) gid $(id -g) groups $(id -G)"
grep -E '^(NoNewPrivs|Cap[A-Za-z]+):' /proc/self/status
sed 's/^/cgroup /' /proc/self/cgroup
w() { if eval "$2" 2>/dev/null; then echo "ALLOWED $1"; else echo "BLOCKED $1"; fi; }
w workspace "echo x > '$WS/planted'"
w tmp "echo mine > /tmp/batchd-launch-planted-tmp"
w var-tmp "echo mine > /var/tmp/batchd-launch-planted-var"
w shm "echo mine > /dev/shm/batchd-launch-planted"
w folder "echo mine > '$HOME/mine'"
w tmpdir "echo mine > '$TMPDIR/mine'"
`;

const mounts = () => readFileSync('/proc/self/mountinfo', 'utf8');

const launchers: Array<[string, string | null]> = [
  ['batchd-rank-launch', BUILT_LAUNCHER],
  ['the shell launcher', null],
];
/**
 * Where DATA_DIR lies decides the mounts: below /tmp, /tmp is read-only to the rank and its folder is
 * bound writable again (ro, rw); elsewhere, the rank gets a private /tmp (bind).
 */
const places: Array<[string, string]> = [
  ['DATA_DIR below /tmp', tmpdir()],
  ['DATA_DIR in /var/lib', '/var/lib'],
];

for (const [name, launcher] of launchers) for (const [where, base] of places) {
  const tmpIsPrivate = base !== tmpdir();
  describe(`an isolated rank started by ${name}, ${where}`, () => {
    let dataDir = '';
    let iso: RankIsolation;
    let agent: AgentIsolation;
    let n = 0;

    before(() => {
      if (process.getuid?.() !== 0) throw new Error('this suite needs root (ranks are isolated only by a root agent); CI runs as root');
      // What an earlier failed run may have left where the rank must not write.
      for (const f of ['/tmp/batchd-launch-planted-tmp', '/var/tmp/batchd-launch-planted-var', '/dev/shm/batchd-launch-planted']) rmSync(f, { force: true });
      dataDir = mkdtempSync(join(base, 'batchd-launch-'));
      execFileSync('mount', ['--bind', dataDir, dataDir]);
      execFileSync('mount', ['--make-shared', dataDir]);
      // Writable by everyone: only the read-only mount can keep the rank out.
      mkdirSync(join(dataDir, 'workspace'), { mode: 0o777 });
      chmodSync(join(dataDir, 'workspace'), 0o777);
      iso = RankIsolation.create({
        dataDir,
        workspaceDir: join(dataDir, 'workspace'),
        setting: 'required',
        uidRange: { base: 210_000, count: 8 },
        memoryLimit: undefined,
        pidsMax: 256,
        endpoints: [],
        launcher,
        logger: pino({ level: 'silent' }),
      });
      agent = iso.forAgent(`launch-test-${process.pid}`, 1);
    });
    after(async () => {
      await agent?.killCgroups();
      await agent?.cgroups?.close();
      await iso?.close();
      if (dataDir) spawnSync('umount', ['--lazy', dataDir]);
      rmSync(dataDir, { recursive: true, force: true });
    });

    /**
     * Places rank 0 of a new job of `acme` and runs `command` in it as the agent would (without the
     * spawner): the rank's environment is the agent's PATH, then the isolation's variables, then the job's.
     */
    function run(file: string, args: string[], o: { jobId?: string; jobEnv?: Record<string, string>; prepare?: (cgroup: { remove(): Promise<void> }) => Promise<void> } = {}) {
      const jobId = o.jobId ?? `job-${n++}`;
      const workDir = join(dataDir, 'work', 'acme', jobId, 'rank-0');
      const env = (isolation: Record<string, string>) => ({ PATH: '/usr/bin:/bin', ...isolation, WS: join(dataDir, 'workspace'), ...o.jobEnv });
      const launch = agent.launch({ account: 'acme', jobId, rank: 0, workDir }, { file, args }, env);
      return { jobId, workDir, launch, result: async () => {
        if (o.prepare && launch.cgroup) await o.prepare(launch.cgroup);
        const agentLike = ['--groups=0,100', '--inh-caps=+chown,+kill', '--ambient-caps=+chown,+kill', '--'];
        const r = spawnSync('setpriv', [...agentLike, launch.file, ...launch.args], { cwd: workDir, env: launch.env, encoding: 'utf8', timeout: 30_000 });
        await launch.cgroup?.remove().catch(() => undefined);
        return r;
      } };
    }

    it('is said in the isolation summary', () => {
      assert.match(iso.summary, launcher ? /; started by batchd-rank-launch$/ : /; started by the shell launcher$/);
      if (launcher) assert.equal(launcher, BUILT_LAUNCHER);
    });

    it('runs the rank as its account’s uid, without groups or capabilities, in its cgroup, seeing only what it may write', async () => {
      const before = mounts();
      const { jobId, workDir, launch, result } = run('/bin/sh', ['-c', PROBE]);
      assert.equal(launch.file, launcher ?? 'unshare');
      const r = await result();
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      const uid = iso.uidOf('acme');
      assert.equal(lines[0], `pid ${r.pid}`, 'the rank is the launcher’s own process (setpriv execs it)');
      assert.equal(lines[1], `uid ${uid} gid ${uid} groups ${uid}`);
      for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.ok(lines.includes(`${set}:\t0000000000000000`), `${set} empty:\n${r.stdout}`);
      assert.ok(lines.includes('NoNewPrivs:\t1'), r.stdout);
      const cgroups = lines.filter((l) => l.startsWith('cgroup ') && l.endsWith(`/${rankCgroupName('acme', jobId, 0)}`));
      assert.equal(cgroups.length, launch.cgroup?.procsFiles.length, `in its cgroup in every tree:\n${r.stdout}`);
      assert.deepEqual(
        lines.filter((l) => /^(ALLOWED|BLOCKED) /.test(l)),
        ['BLOCKED workspace', tmpIsPrivate ? 'ALLOWED tmp' : 'BLOCKED tmp', 'ALLOWED var-tmp', 'ALLOWED shm', 'ALLOWED folder', 'ALLOWED tmpdir'],
        r.stdout,
      );
      // What it wrote went to its own folders, not the machine's.
      assert.equal(readFileSync(join(workDir, 'mine'), 'utf8'), 'mine\n');
      assert.equal(readFileSync(join(workDir, 'tmp', 'mine'), 'utf8'), 'mine\n');
      assert.equal(readFileSync(join(workDir, 'tmp', 'batchd-launch-planted-var'), 'utf8'), 'mine\n', '/var/tmp is its own');
      assert.equal(existsSync(join(workDir, 'tmp', 'batchd-launch-planted-tmp')), tmpIsPrivate, tmpIsPrivate ? '/tmp is its own' : '/tmp is read-only');
      for (const f of ['/tmp/batchd-launch-planted-tmp', '/var/tmp/batchd-launch-planted-var']) assert.equal(existsSync(f), false, `nothing in the real ${f}`);
      assert.equal(existsSync('/dev/shm/batchd-launch-planted'), false);
      assert.deepEqual(readdirSync(join(dataDir, 'workspace')), []);
      assert.equal(mounts(), before, 'no mount of the rank is seen outside it');
      agent.releaseJob('acme', jobId);
    });

    it('hands the job’s variables to the rank alone: PATH and LD_PRELOAD reach nothing that runs before the drop', async () => {
      const kit = mkdtempSync(join(dataDir, 'kit-'));
      chmodSync(kit, 0o755);
      const secret = `s3cret-${process.pid}-${Date.now()}`;
      const { workDir, launch, result } = run('/bin/sh', ['-c', 'echo "PATH=$PATH"; echo "LD_PRELOAD=$LD_PRELOAD"; echo "TOKEN=$TOKEN"; /usr/bin/env | grep -c ^BATCHD_RANK_ENV_ || true'], {
        jobEnv: { PATH: `${kit}:/usr/bin:/bin`, LD_PRELOAD: join(kit, 'evil.so'), TOKEN: secret },
      });
      // Any user of the host may read a process's arguments (/proc/<pid>/cmdline): no value of the job's is among them.
      assert.deepEqual(launch.args.filter((a) => a.includes(secret) || a.includes('evil.so') || a.includes(kit)), [], 'the job’s variables are not in the arguments');
      // In the rank's folder, the one place it can write wherever DATA_DIR is.
      const ran = join(workDir, 'ran');
      plantAttackKit(kit, ran);
      const r = await result();
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), [`PATH=${kit}:/usr/bin:/bin`, `LD_PRELOAD=${join(kit, 'evil.so')}`, `TOKEN=${secret}`, '0'], 'the rank has the job’s variables, under their own names only');
      const uid = iso.uidOf('acme');
      const loads = readFileSync(ran, 'utf8').trim().split('\n');
      assert.ok(loads.includes(`so ${uid}`), `the library was loaded by the rank (so the probe can fire):\n${loads.join('\n')}`);
      assert.deepEqual(loads.filter((l) => !l.endsWith(` ${uid}`)), [], 'nothing of the job ran as anyone but the rank');
    });

    it('replaces, and does not follow, a link that an earlier attempt of the job left for its tmp', async () => {
      // Root's, and not the rank's to take: what a chown that followed the link would hand over.
      const victim = mkdtempSync(join(dataDir, 'victim-'));
      chmodSync(victim, 0o755);
      const first = run('/bin/sh', ['-c', `rm -rf "$TMPDIR" && ln -s '${victim}' "$TMPDIR"`]);
      assert.equal((await first.result()).status, 0);
      assert.ok(lstatSync(join(first.workDir, 'tmp')).isSymbolicLink(), 'the first attempt left a link');
      const again = run('/bin/sh', ['-c', 'echo mine > "$TMPDIR/mine"'], { jobId: first.jobId });
      const r = await again.result();
      assert.equal(r.status, 0, r.stderr);
      const st = statSync(victim);
      assert.deepEqual([st.uid, st.mode & 0o777], [0, 0o755], 'the link’s target kept its owner and mode');
      assert.ok(lstatSync(join(first.workDir, 'tmp')).isDirectory(), 'tmp is a folder again');
      assert.equal(readFileSync(join(first.workDir, 'tmp', 'mine'), 'utf8'), 'mine\n');
      assert.deepEqual(readdirSync(victim), []);
    });

    it('has the job’s folder removed without following the links its ranks left in it', async () => {
      const victim = mkdtempSync(join(dataDir, 'victim-'));
      writeFileSync(join(victim, 'keep'), 'root’s\n');
      const { jobId, workDir, result } = run('/bin/sh', ['-c', `mkdir -p deep/er && ln -s '${victim}' link && ln -s '${victim}' deep/er/link && ln -s '${join(victim, 'keep')}' file-link`]);
      assert.equal((await result()).status, 0);
      assert.ok(lstatSync(join(workDir, 'deep', 'er', 'link')).isSymbolicLink());
      await agent.removeFolder(dirname(workDir));
      assert.equal(existsSync(join(dataDir, 'work', 'acme', jobId)), false, 'the job’s folder is gone');
      assert.deepEqual(readdirSync(victim), ['keep']);
      assert.equal(readFileSync(join(victim, 'keep'), 'utf8'), 'root’s\n');
    });

    it('says so and exits 127 when the command is not found', async () => {
      const r = await run('batchd-no-such-command', []).result();
      assert.equal(r.status, 127);
      // batchd-rank-launch: "failed to execute batchd-no-such-command: No such file or directory"; the shell launcher's sh: "exec: batchd-no-such-command: not found".
      assert.match(r.stderr, /batchd-no-such-command: (No such file or directory|not found)/);
    });

    it('runs nothing of the rank when it cannot join its cgroup', async () => {
      const marker = join(dataDir, `ran-${process.pid}`);
      const r = await run('/bin/sh', ['-c', `touch ${marker}`], { prepare: (cgroup) => cgroup.remove() }).result();
      assert.notEqual(r.status, 0, 'the launch failed');
      assert.match(r.stderr, /No such file or directory|nonexistent|cannot/);
      assert.equal(existsSync(marker), false, 'the command never ran');
    });
  });
}

describe('batchd-rank-launch on its own', () => {
  const launch = (...args: string[]) => spawnSync(BUILT_LAUNCHER, args, { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
  const marker = join(tmpdir(), `batchd-launch-ran-${process.pid}`);

  it('refuses bad arguments before doing anything', () => {
    for (const [args, message] of [
      [['210000', '210000', 'mount', '/x', '--', 'touch', marker], /bad launcher argument mount/],
      [['210000', '210000', 'ro', 'relative', '--', 'touch', marker], /ro needs 1 absolute path/],
      [['210000', '210000', 'bind', '/a', '--', 'touch', marker], /bind needs 2 absolute paths/],
      [['0', '210000', '--', 'touch', marker], /UID must be a whole number above 0, not '0'/],
      [['210000', '-1', '--', 'touch', marker], /GID must be a whole number above 0/],
      [['210000', '21e4', '--', 'touch', marker], /GID must be a whole number above 0/],
      [['210000', '210000', 'cg', '/nonexistent/cgroup.procs', '--'], /no command after --/],
    ] as const) {
      const r = launch(...args);
      assert.equal(r.status, 126, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(existsSync(marker), false, `${args.join(' ')} ran its command`);
    }
  });

  it('answers --version, which is how the agent checks it runs', () => {
    const r = launch('--version');
    assert.equal(r.status, 0);
    assert.equal(r.stdout, 'batchd-rank-launch\n');
  });
});
