/**
 * The agent that is not root (a laptop's `npm start`): it cannot isolate ranks and says so, but where
 * the kernel allows unprivileged user namespaces it hides DATA_DIR from them and keeps the workspace
 * read-only, in a way the rank cannot undo. Runs the isolation layer in a process of user `nobody`
 * (this test itself needs root to become it), and a real rank under it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const NOBODY = 65534;

/** Runs in the child, as nobody: one rank through the isolation layer; prints the mode, the summary and the rank's output. */
const CHILD = String.raw`
const { RankIsolation } = require(process.argv[1]);
const pino = require(process.argv[2]);
const { spawnSync } = require('node:child_process');
const [dataDir, workspaceDir] = [process.argv[3], process.argv[4]];
const iso = RankIsolation.create({ dataDir, workspaceDir, setting: 'auto', uidRange: { base: 200000, count: 4 }, memoryLimit: undefined, pidsMax: 0, endpoints: [], logger: pino({ level: 'silent' }) });
const workDir = dataDir + '/work/acme/job/rank-0';
const launch = iso.forAgent('h0', 1).launch({ account: 'acme', jobId: 'job', rank: 0, workDir }, { file: 'bash', args: ['-c', process.argv[5]] }, (isolation) => ({ PATH: process.env.PATH, ...isolation }));
const r = spawnSync(launch.file, launch.args, { cwd: workDir, env: launch.env, encoding: 'utf8' });
process.stdout.write(JSON.stringify({ mode: iso.mode, summary: iso.summary, out: r.stdout + r.stderr }));
`;

const PROBES = String.raw`
ls -A "$D" | tr '\n' ' '; echo
cat "$D/api-key" >/dev/null 2>&1 && echo "LEAK api-key" || echo "BLOCKED api-key"
echo x > "$W/planted" 2>/dev/null && echo "LEAK workspace" || echo "BLOCKED workspace"
umount "$D" 2>/dev/null && echo "LEAK umount" || echo "BLOCKED umount"
unshare -Urm umount "$D" 2>/dev/null && cat "$D/api-key" >/dev/null 2>&1 && echo "LEAK nested umount" || echo "BLOCKED nested umount"
echo mine > mine.txt && echo "ALLOWED own folder"
id -u
`;

describe('an agent that is not root', () => {
  let root: string;
  before(() => {
    if (process.getuid?.() !== 0) throw new Error('this test needs root, to run the agent side as user nobody; CI runs as root');
    root = mkdtempSync(join(tmpdir(), 'batchd-unpriv-'));
    for (const d of ['data', 'data/work', 'workspace']) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, 'data', 'api-key'), 'secret\n');
    for (const p of [root, join(root, 'data'), join(root, 'data', 'work'), join(root, 'data', 'api-key'), join(root, 'workspace')]) chownSync(p, NOBODY, NOBODY);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('says ranks are not isolated, and still hides DATA_DIR and keeps the workspace read-only', (t) => {
    if (spawnSync('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', 'unshare', '-Urm', 'true']).status !== 0) {
      t.skip('this kernel allows no unprivileged user namespaces');
      return;
    }
    const data = join(root, 'data');
    const ws = join(root, 'workspace');
    const script = `D='${data}'; W='${ws}'\n${PROBES}`;
    const r = spawnSync(
      'setpriv',
      [
        '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups',
        process.execPath, '-e', CHILD,
        join(__dirname, '..', '..', 'src', 'agent', 'isolation.js'), require.resolve('pino'), data, ws, script,
      ],
      { cwd: root, encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const { mode, summary, out } = JSON.parse(r.stdout) as { mode: string; summary: string; out: string };
    assert.equal(mode, 'userns');
    assert.match(summary, /^ranks are NOT isolated \(the agent does not run as root\)/);
    const lines = out.trim().split('\n');
    assert.equal(lines[0]?.trim(), 'work', `the rank sees only the path to its own folder in DATA_DIR:\n${out}`);
    assert.deepEqual(lines.slice(1, 7), ['BLOCKED api-key', 'BLOCKED workspace', 'BLOCKED umount', 'BLOCKED nested umount', 'ALLOWED own folder', String(NOBODY)], out);
    assert.equal(readFileSync(join(data, 'work', 'acme', 'job', 'rank-0', 'mine.txt'), 'utf8'), 'mine\n');
    assert.equal(existsSync(join(ws, 'planted')), false);
  });
});
