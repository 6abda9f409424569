/**
 * Rank cgroups on the real kernel, both interfaces: a process that joined its cgroup and then left
 * its session and process group every way it can is still found and killed, and the cgroup is
 * removed. cgroup v1 (pids + freezer) where mounted; cgroup v2 at /sys/fs/cgroup, or the unified
 * tree of a hybrid machine at /sys/fs/cgroup/unified (no controllers there, but listing and
 * cgroup.kill are what stopping needs). Needs root.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { openCgroupTree } from '../../src/agent/cgroups';
import { waitFor } from '../support/harness';

const roots: Array<{ kind: 'v1' | 'v2'; root: string }> = [];
if (existsSync('/sys/fs/cgroup/pids/cgroup.procs') && existsSync('/sys/fs/cgroup/freezer/cgroup.procs')) roots.push({ kind: 'v1', root: '/sys/fs/cgroup' });
if (existsSync('/sys/fs/cgroup/cgroup.controllers')) roots.push({ kind: 'v2', root: '/sys/fs/cgroup' });
else if (existsSync('/sys/fs/cgroup/unified/cgroup.procs')) roots.push({ kind: 'v2', root: '/sys/fs/cgroup/unified' });

describe('rank cgroups', () => {
  it('this machine offers at least one cgroup interface to test', () => {
    if (process.getuid?.() !== 0) throw new Error('this suite needs root; CI runs as root');
    assert.ok(roots.length > 0);
  });

  for (const { kind, root } of roots) {
    it(`${kind} at ${root}: kills every process of a rank, escapees included, and removes its cgroup`, async () => {
      const tree = openCgroupTree(kind, root, `test${process.pid}`);
      const cg = tree.create('acme.job.0', { pidsMax: 64 });
      const marker = `98.${process.pid % 1000}`;
      const procs = cg.procsFiles.map((f) => `echo $$ > '${f}'`).join('; ');
      const child = spawn('sh', ['-c', `${procs}; setsid env -i sleep ${marker} & ( ( sleep ${marker} & ) & ); nohup sleep ${marker} >/dev/null 2>&1 & exec sleep ${marker}`], { stdio: 'ignore', detached: true });
      const exited = new Promise((r) => child.once('exit', r));
      await waitFor('four sleeps in the cgroup', () => (cg.pids().length === 4 ? true : undefined), 10_000);
      assert.deepEqual(tree.list(), ['acme.job.0']);
      assert.equal(await cg.killAll(), true);
      assert.deepEqual(cg.pids(), []);
      await exited;
      const stats = cg.stats();
      assert.equal(stats.oomKills, 0);
      await cg.remove();
      assert.deepEqual(tree.list(), []);
      await tree.close();
    });
  }
});
