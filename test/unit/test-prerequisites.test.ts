/**
 * `npm test`'s first step, on the real scripts: nothing to do costs well under a second; a missing
 * Debian package stops a non-root run at once with the exact command (and installs nothing); a missing
 * Temporal CLI stops the runner before any suite, with what to do.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ensureTestPrerequisites } from '../../scripts/test-prerequisites';

const repo = join(__dirname, '..', '..', '..');

/** A copy of the repository's two scripts, the package list replaced. */
function scriptsWith(packages: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'batchd-prereq-'));
  mkdirSync(join(dir, 'scripts'));
  const deps = readFileSync(join(repo, 'scripts', 'install-system-deps.sh'), 'utf8');
  const replaced = deps.replace(/^packages=\(.*\)$/m, `packages=(${packages})`);
  assert.notEqual(replaced, deps, 'the package list line was found');
  writeFileSync(join(dir, 'scripts', 'install-system-deps.sh'), replaced);
  copyFileSync(join(repo, 'scripts', 'ensure-temporal-cli.sh'), join(dir, 'scripts', 'ensure-temporal-cli.sh'));
  return dir;
}

describe('npm test prerequisites', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('passes quickly when everything is installed', () => {
    const dir = scriptsWith('bash coreutils');
    dirs.push(dir);
    const started = process.hrtime.bigint();
    const result = ensureTestPrerequisites(dir, false);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.deepEqual(result, { installed: [] });
    assert.ok(ms < 1000, `took ${ms} ms`);
  });

  it('stops a non-root run at once with the command to run, naming what is missing, and installs nothing', () => {
    const dir = scriptsWith('bash batchd-no-such-package-1 batchd-no-such-package-2');
    dirs.push(dir);
    const result = ensureTestPrerequisites(dir, false);
    assert.deepEqual(result.installed, []);
    assert.equal(
      result.problem,
      'npm test needs Debian packages that are not installed: batchd-no-such-package-1 batchd-no-such-package-2.\nRun:\n\n    sudo bash scripts/install-system-deps.sh\n\nthen npm test again.',
    );
    const check = spawnSync('bash', [join(dir, 'scripts', 'install-system-deps.sh'), '--check'], { encoding: 'utf8' });
    assert.equal(check.status, 1);
    assert.equal(check.stdout, 'batchd-no-such-package-1\nbatchd-no-such-package-2\n');
  });

  it('says what to do on a machine without dpkg', () => {
    const dir = scriptsWith('bash');
    dirs.push(dir);
    const check = spawnSync('/bin/bash', [join(dir, 'scripts', 'install-system-deps.sh'), '--check'], { encoding: 'utf8', env: { PATH: '/nonexistent' } });
    assert.equal(check.status, 2);
    assert.match(check.stderr, /not a Debian system; install the equivalents of: bash/);
  });

  it('the runner stops before any suite when no Temporal CLI can be found', () => {
    const run = spawnSync(process.execPath, [join(repo, 'dist', 'scripts', 'run-tests.js'), 'pool-usage'], {
      encoding: 'utf8',
      env: { ...process.env, TEMPORAL_CLI_PATH: '/nonexistent/temporal' },
      timeout: 30_000,
    });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /TEMPORAL_CLI_PATH=\/nonexistent\/temporal is not an executable file/);
    assert.match(run.stderr, /npm test needs a Temporal CLI[\s\S]*npm run temporal:ensure/);
    assert.doesNotMatch(run.stdout, /=== unit|passed/, 'no suite ran');
  });
});
