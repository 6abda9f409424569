/**
 * The rank firewall's rules on the real netfilter (iptables as root): rules that a dead instance left
 * behind are removed by the next instance that installs its own, whether or not the dead one's
 * DATA_DIR is still there; a live instance's rules, and a chain a live jump still uses, stay. Stale
 * rules reset ranks' connections to ports later handed out to others (a notebook kernel's, a
 * MASTER_PORT): 178 of them had piled up on the CI machine from agents that tests kill.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { processStamp, RankFirewall } from '../../src/agent/firewall';

// A uid range no rank uses, so the rules touch no other suite's ranks.
const UIDS = { uidFirst: 3_900_000, uidLast: 3_900_009 };
const endpoints = [{ address: '127.0.0.1', port: 1 }];
const CHAINS = ['BATCHD-7E57000000D1', 'BATCHD-7E57000000D2', 'BATCHD-7E57000000D3', 'BATCHD-7E57000000D4'] as const;

function output(): string[] {
  return execFileSync('iptables', ['-w', '5', '-S', 'OUTPUT'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => CHAINS.some((c) => l.endsWith(`-j ${c}`)));
}

function chainRules(chain: string): string[] | undefined {
  const r = spawnSync('iptables', ['-w', '5', '-S', chain], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n').filter((l) => l.startsWith('-A')) : undefined;
}

/** The stamp of a process that ran and exited. */
function deadStamp(): string {
  const child = spawnSync('true');
  assert.equal(child.status, 0);
  assert.equal(processStamp(child.pid ?? 0), undefined, 'it has exited');
  return `${child.pid}@1`;
}

describe('rank firewall rules of dead instances', () => {
  const dirs = Array.from({ length: 3 }, (_, i) => mkdtempSync(join(tmpdir(), `batchd-firewall-${i}-`)));
  const [d1 = '', d2 = '', d3 = ''] = dirs;

  after(() => {
    for (const line of output()) spawnSync('iptables', ['-w', '5', '-D', ...line.replace(/^-A /, '').split(' ').map((w) => w.replace(/^"|"$/g, ''))]);
    for (const c of CHAINS) {
      spawnSync('iptables', ['-w', '5', '-F', c]);
      spawnSync('iptables', ['-w', '5', '-X', c]);
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('needs root and iptables (CI runs as root)', () => {
    assert.equal(process.getuid?.(), 0, 'this suite needs root');
    assert.equal(spawnSync('iptables', ['--version']).status, 0, 'iptables is installed');
  });

  it("removes a dead instance's rules though its DATA_DIR is still there, and keeps a live one's", () => {
    const dead = new RankFirewall({ chain: CHAINS[0], dataDir: d1, ...UIDS, endpoints, owner: deadStamp() });
    assert.equal(dead.install(), undefined);
    assert.equal(output().length, 1);
    assert.equal(chainRules(CHAINS[0])?.length, 1, 'its chain resets connections to the endpoint');

    const live = new RankFirewall({ chain: CHAINS[1], dataDir: d2, ...UIDS, endpoints });
    assert.equal(live.install(), undefined);
    const jumps = output();
    assert.equal(jumps.length, 1, jumps.join('\n'));
    assert.match(jumps[0] ?? '', new RegExp(`batchd:${d2}#${process.pid}@\\d+.* -j ${CHAINS[1]}$`));
    assert.equal(chainRules(CHAINS[0]), undefined, "the dead instance's chain is gone");

    // Installing again (a restart of the live one) changes nothing; removing takes out its own.
    assert.equal(live.install(), undefined);
    assert.equal(output().length, 1);
    live.remove();
    assert.deepEqual(output(), []);
    assert.equal(chainRules(CHAINS[1]), undefined);
  });

  it('a new life of the same DATA_DIR replaces the dead life’s jump and keeps the chain it shares', () => {
    const before = new RankFirewall({ chain: CHAINS[2], dataDir: d1, ...UIDS, endpoints, owner: deadStamp() });
    assert.equal(before.install(), undefined);
    const again = new RankFirewall({ chain: CHAINS[2], dataDir: d1, ...UIDS, endpoints });
    assert.equal(again.install(), undefined);
    const jumps = output();
    assert.equal(jumps.length, 1, jumps.join('\n'));
    assert.match(jumps[0] ?? '', new RegExp(`#${process.pid}@`));
    assert.equal(chainRules(CHAINS[2])?.length, 1, 'the chain has its rules');

    // A stale jump that shares the live one's chain goes; the chain and its rules stay.
    const stale = ['OUTPUT', '-m', 'owner', '--uid-owner', `${UIDS.uidFirst}-${UIDS.uidLast}`, '-m', 'comment', '--comment', `batchd:${d1}#${deadStamp()}`, '-j', CHAINS[2]];
    execFileSync('iptables', ['-w', '5', '-I', ...stale]);
    assert.equal(output().length, 2);
    const other = new RankFirewall({ chain: CHAINS[1], dataDir: d2, ...UIDS, endpoints });
    assert.equal(other.install(), undefined);
    assert.equal(output().filter((l) => l.endsWith(CHAINS[2])).length, 1);
    assert.equal(chainRules(CHAINS[2])?.length, 1);
    other.remove();
    again.remove();
    assert.deepEqual(output(), []);
  });

  it('a jump from before owners were written stays while its DATA_DIR exists, and goes with it', () => {
    execFileSync('iptables', ['-w', '5', '-N', CHAINS[3]]);
    execFileSync('iptables', ['-w', '5', '-I', 'OUTPUT', '-m', 'owner', '--uid-owner', `${UIDS.uidFirst}-${UIDS.uidLast}`, '-m', 'comment', '--comment', `batchd:${d3}`, '-j', CHAINS[3]]);
    const live = new RankFirewall({ chain: CHAINS[1], dataDir: d2, ...UIDS, endpoints });
    assert.equal(live.install(), undefined);
    assert.equal(output().filter((l) => l.endsWith(CHAINS[3])).length, 1, 'its DATA_DIR is there');
    rmSync(d3, { recursive: true });
    assert.equal(live.install(), undefined);
    assert.equal(output().filter((l) => l.endsWith(CHAINS[3])).length, 0, 'gone with its DATA_DIR');
    assert.equal(chainRules(CHAINS[3]), undefined);
    live.remove();
  });
});
