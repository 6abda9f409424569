/**
 * The agent's probe of what its host can run, against real programs: fake `python3` and
 * `jupyter-nbconvert` scripts on a PATH of the test's own, beside the real bash. It finds each executor
 * whose program runs, reads python's version, leaves out what is missing, and keeps the event loop
 * turning while a slow program answers (in the embedded service the loop is the API's too).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { probeCapabilities } from '../../src/agent/capabilities';

describe('host capabilities probe', () => {
  let dir: string;
  const bin = (name: string, script: string) => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${script}\n`);
    chmodSync(path, 0o755);
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'batchd-probe-'));
    symlinkSync('/bin/bash', join(dir, 'bash'));
    symlinkSync('/bin/sleep', join(dir, 'sleep'));
    bin('python3', 'echo "Python 3.99.1"');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the executors whose programs run and python’s version, and leaves out a missing one', async () => {
    const found = await probeCapabilities({ PATH: dir });
    assert.deepEqual(found, { executors: ['shell', 'python'], python: 'Python 3.99.1' });
  });

  it('counts a program that fails as missing', async () => {
    bin('jupyter-nbconvert', 'exit 3');
    assert.deepEqual((await probeCapabilities({ PATH: dir })).executors, ['shell', 'python']);
  });

  it('keeps the event loop turning while a slow program answers', async () => {
    bin('jupyter-nbconvert', 'sleep 0.6; echo 7.16.4');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    try {
      const found = await probeCapabilities({ PATH: dir });
      assert.deepEqual(found.executors, ['shell', 'python', 'notebook']);
    } finally {
      clearInterval(timer);
    }
    // A probe that blocked the loop (execFileSync, as before) lets no timer fire until it returns.
    assert.ok(ticks >= 5, `the loop turned ${ticks} times during a 0.6 s probe`);
  });
});
