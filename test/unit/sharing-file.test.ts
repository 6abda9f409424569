/**
 * SHARING_FILE on disk (src/control/sharing-file.ts): a file that does not load stops the start; a
 * change is picked up; a change that does not load keeps the previous file in force, saying why.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { ConfigError } from '../../src/config';
import { SharingFile } from '../../src/control/sharing-file';
import { mayUsePool } from '../../src/domain/sharing-config';

const BIG = 'accounts/acme/nodePools/big';
const shared = (accounts: string[]) => JSON.stringify({ pools: { [BIG]: { accounts: Object.fromEntries(accounts.map((a) => [a, {}])) } } });

describe('the sharing file on disk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'batchd-sharing-file-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const lines: Array<{ msg: string; problem?: string }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as { msg: string }) });

  it('without SHARING_FILE, every pool is its owner\'s alone', () => {
    const file = SharingFile.open(undefined, logger);
    assert.deepEqual(file.current(), { pools: {} });
  });

  it('refuses to start on a file that does not load, naming it and the problem', () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify({ pools: { [BIG]: { accounts: { beta: { quota: -1 } } } } }));
    assert.throws(() => SharingFile.open(path, logger), (err: Error) => err instanceof ConfigError && /bad\.json was not loaded: .*beta\.quota: must be 0 or more/.test(err.message));
    assert.throws(() => SharingFile.open(join(dir, 'missing.json'), logger), /could not be read \(ENOENT\)/);
  });

  it('picks up a change, and keeps the previous file in force when a change does not load', () => {
    const path = join(dir, 'sharing.json');
    writeFileSync(path, shared(['beta']));
    const file = SharingFile.open(path, logger);
    let now = Date.now();
    assert.equal(mayUsePool(file.current(now), 'gamma', BIG), false);
    writeFileSync(path, shared(['beta', 'gamma']) + '\n');
    assert.equal(mayUsePool(file.current(now), 'gamma', BIG), false, 'looked at no more than once a second');
    now += 1000;
    assert.equal(mayUsePool(file.current(now), 'gamma', BIG), true);
    assert.ok(lines.some((l) => l.msg === 'sharing file reloaded'));
    writeFileSync(path, '{ "pools": ');
    now += 1000;
    assert.equal(mayUsePool(file.current(now), 'gamma', BIG), true, 'the previous file stays in force');
    const warning = lines.find((l) => l.msg === 'sharing file not reloaded; the previous one stays in force');
    assert.match(warning?.problem ?? '', /is not valid JSON/);
  });
});
