/**
 * The keys file: both shapes, raw and hashed keys, every validation rule, reload semantics (a bad
 * file keeps the previous keys), and the rule that no key, raw or hashed, ever appears in an error
 * message or a log line.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { keyEntry, KeyConflictError, KeyRing } from '../../src/api/auth';
import { KEYS_FILE_SOURCE, KeysFileError, KeysFileWatcher, parseKeysFile, readKeysFile } from '../../src/api/keys-file';
import { ConfigError } from '../../src/config';

const ANN = 'ann-raw-key-0123456789';
const BOB = 'bob-hashed-key-0123456789';
const hex = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

/** Every form in which a key could leak: raw, hex digest (either case), base64 digest. */
function leakForms(keys: readonly string[]): string[] {
  return keys.flatMap((k) => [k, hex(k), hex(k).toUpperCase(), createHash('sha256').update(k).digest('base64')]);
}

function assertNoKey(text: string, keys: readonly string[]): void {
  for (const form of leakForms(keys)) assert.ok(!text.includes(form), `a key leaked into: ${text}`);
}

/** The message of the KeysFileError that parsing `text` throws. */
function problemOf(text: string, keys: readonly string[] = []): string {
  try {
    parseKeysFile(text, '/etc/batchd/keys.json');
  } catch (err) {
    assert.ok(err instanceof KeysFileError, `expected KeysFileError, got ${String(err)}`);
    assert.ok(err instanceof ConfigError, 'a KeysFileError is a ConfigError: main prints just its message');
    assertNoKey(err.message, keys);
    return err.message;
  }
  assert.fail(`expected ${text.slice(0, 60)} to be refused`);
}

describe('parseKeysFile', () => {
  it('reads an array and {"keys": [...]}, raw and hashed keys (either hex case); each authenticates as its user', () => {
    const entries = [
      { key: ANN, account: 'acme', email: 'ann@acme.dev' },
      { keySha256: hex(BOB).toUpperCase(), account: 'acme', email: 'bob@acme.dev' },
    ];
    for (const text of [JSON.stringify(entries), JSON.stringify({ keys: entries })]) {
      const ring = new KeyRing(parseKeysFile(text, 'f'));
      assert.deepEqual(
        [ring.authenticate(ANN), ring.authenticate(BOB)].map((p) => p && `${p.account}/${p.email}`),
        ['acme/ann@acme.dev', 'acme/bob@acme.dev'],
      );
      assert.equal(ring.authenticate(hex(BOB)), undefined, 'the digest itself is not a key');
      assert.equal(ring.authenticate(`${ANN}x`), undefined);
    }
    assert.deepEqual(parseKeysFile('[]', 'f'), [], 'an empty file leaves only the bootstrap key');
  });

  const cases: Array<[string, unknown, RegExp]> = [
    ['both key and keySha256', [{ key: ANN, keySha256: hex(ANN), account: 'acme', email: 'a@acme.dev' }], /\[0\]: must have exactly one of "key" and "keySha256"/],
    ['neither key nor keySha256', [{ account: 'acme', email: 'a@acme.dev' }], /\[0\]: must have exactly one of/],
    ['a key of 15 characters', [{ key: ANN.slice(0, 15), account: 'acme', email: 'a@acme.dev' }], /\[0\]\.key: must be at least 16 characters/],
    ['a key with a space', [{ key: `${ANN} x`, account: 'acme', email: 'a@acme.dev' }], /\[0\]\.key: must consist of visible ASCII/],
    ['a key that is a number', [{ key: 1234567890123456, account: 'acme', email: 'a@acme.dev' }], /\[0\]\.key: must be a string/],
    ['a digest of 63 digits', [{ keySha256: hex(ANN).slice(1), account: 'acme', email: 'a@acme.dev' }], /\[0\]\.keySha256: must be the SHA-256/],
    ['a digest that is not hex', [{ keySha256: `z${hex(ANN).slice(1)}`, account: 'acme', email: 'a@acme.dev' }], /\[0\]\.keySha256/],
    ['an account that is not an id', [{ key: ANN, account: 'Acme_Corp', email: 'a@acme.dev' }], /\[0\]\.account: must be an account id/],
    ['no account', [{ key: ANN, email: 'a@acme.dev' }], /\[0\]\.account: is required/],
    ['an email without @', [{ key: ANN, account: 'acme', email: 'ann.acme.dev' }], /\[0\]\.email: must be the email of the user/],
    ['no email', [{ key: ANN, account: 'acme' }], /\[0\]\.email: is required/],
    ['an unknown field', [{ key: ANN, account: 'acme', email: 'a@acme.dev', role: 'admin' }], /\[0\]: unknown field "role"/],
    ['an entry that is a string', [ANN], /\[0\]: must be an object/],
    ['the same key twice, raw then hashed', [{ key: ANN, account: 'acme', email: 'a@acme.dev' }, { keySha256: hex(ANN), account: 'beta', email: 'b@beta.dev' }], /\[1\]: has the same key as \[0\]/],
    ['an object without keys', { entries: [] }, /must be a JSON array of key entries, or an object \{"keys": \[\.\.\.\]\}/],
    ['keys beside another field', { keys: [], extra: 1 }, /must be a JSON array/],
    ['a bare string', ANN, /must be a JSON array/],
  ];
  for (const [what, content, expected] of cases) {
    it(`refuses ${what}, naming the entry and field but never the key`, () => {
      const message = problemOf(JSON.stringify(content), [ANN, ANN.slice(0, 15), `${ANN} x`, hex(ANN).slice(1)]);
      assert.match(message, expected);
      assert.match(message, /^API_KEYS_FILE \/etc\/batchd\/keys\.json was not loaded: /);
    });
  }

  it('names entries inside {"keys": [...]} as keys[i], and reports every problem at once', () => {
    const message = problemOf(JSON.stringify({ keys: [{ key: ANN, account: 'acme', email: 'a@acme.dev' }, { key: 'short', account: 'acme', email: 'x' }] }), [ANN, 'short']);
    assert.match(message, /keys\[1\]\.key: must be at least 16/);
    assert.match(message, /keys\[1\]\.email/);
  });

  it('does not echo an unknown field name long enough to be a key', () => {
    const message = problemOf(JSON.stringify([{ [ANN]: 'x', key: BOB, account: 'acme', email: 'a@acme.dev' }]), [ANN, BOB]);
    assert.match(message, /unknown field a long field name/);
  });

  it('reports malformed JSON by line and column, not by quoting the text around the error', () => {
    for (const text of [`[{"key": ${ANN}}]`, `[\n  {"key": "${ANN}", "account": "acme",}\n]`, `{"keys": [{"key": "${ANN}"`, '']) {
      const message = problemOf(text, [ANN]);
      assert.match(message, /is not valid JSON/);
    }
    assert.match(problemOf(`[\n  {"key": "${ANN}`, [ANN]), /line 2, column/);
  });
});

describe('readKeysFile', () => {
  it('says when the file is missing, as a ConfigError', () => {
    assert.throws(() => readKeysFile('/nonexistent/keys.json'), (err: unknown) => err instanceof KeysFileError && /\/nonexistent\/keys\.json could not be read \(ENOENT\)/.test(err.message));
  });
});

describe('KeyRing sources', () => {
  it('refuses a source whose key is another source\'s key for another user, keeping what it had', () => {
    const ring = new KeyRing();
    ring.set('the bootstrap key', [keyEntry(ANN, 'default', 'admin@localhost')]);
    ring.set(KEYS_FILE_SOURCE, [keyEntry(BOB, 'acme', 'bob@acme.dev')]);
    assert.throws(
      () => ring.set(KEYS_FILE_SOURCE, [keyEntry(ANN, 'acme', 'ann@acme.dev')]),
      (err: unknown) => err instanceof KeyConflictError && /key 1 of API_KEYS_FILE .* already a key of the bootstrap key/.test(err.message) && !err.message.includes(ANN),
    );
    assert.equal(ring.authenticate(BOB)?.email, 'bob@acme.dev', 'the previous file keys stay');
    assert.equal(ring.authenticate(ANN)?.email, 'admin@localhost');
    // The same key for the same user in two sources is harmless.
    ring.set(KEYS_FILE_SOURCE, [keyEntry(ANN, 'default', 'admin@localhost')]);
    assert.equal(ring.authenticate(BOB), undefined, 'a source is replaced as a whole');
    assert.equal(ring.size, 2);
  });
});

describe('KeysFileWatcher', () => {
  const dir = mkdtempSync(join(tmpdir(), 'batchd-keys-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function capture(): { logger: pino.Logger; lines: string[] } {
    const lines: string[] = [];
    return { lines, logger: pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) }) };
  }

  it('loads at start, reloads on change, keeps the previous keys when the new file is bad, and never logs a key', () => {
    const path = join(dir, 'keys.json');
    const CAT = 'cat-raw-key-0123456789';
    writeFileSync(path, JSON.stringify({ keys: [{ key: ANN, account: 'acme', email: 'ann@acme.dev' }] }));
    const ring = new KeyRing();
    const { logger, lines } = capture();
    const watcher = new KeysFileWatcher(ring, { path, reloadMs: 3_600_000, logger, signal: null }).start();
    try {
      assert.equal(ring.authenticate(ANN)?.email, 'ann@acme.dev');
      watcher.poll();
      assert.equal(lines.filter((l) => l.includes('reloaded')).length, 0, 'an unchanged file is not reloaded');

      // A new key in, the old one out (array form, hashed).
      writeFileSync(path, JSON.stringify([{ keySha256: hex(CAT), account: 'beta', email: 'cat@beta.dev' }]));
      watcher.poll();
      assert.equal(ring.authenticate(CAT)?.account, 'beta');
      assert.equal(ring.authenticate(ANN), undefined, 'a removed key stops working');

      // A broken file with a key in it: logged without the key; the previous keys stay.
      writeFileSync(path, `[{"key": "${BOB}", "account": "Bad Account", "email": "b@x.dev"}, {"key": ${ANN}}]`);
      watcher.poll();
      assert.equal(ring.authenticate(CAT)?.account, 'beta', 'the previous keys stay in force');
      assert.equal(ring.authenticate(BOB), undefined);
      const errors = lines.filter((l) => l.includes('not reloaded'));
      assert.equal(errors.length, 1);
      assert.match(errors[0] ?? '', /is not valid JSON/);
      watcher.poll();
      assert.equal(lines.filter((l) => l.includes('not reloaded')).length, 1, 'a bad file is reported once, not at every poll');

      // An explicit reload (what SIGHUP does) tries again even though nothing changed.
      assert.equal(watcher.reload('test'), false);
      writeFileSync(path, `[{"key": "${BOB}", "account": "Bad Account", "email": "b@x.dev"}]`);
      watcher.poll();
      assert.match(lines.at(-1) ?? '', /\[0\]\.account: must be an account id/);

      rmSync(path);
      watcher.poll();
      assert.match(lines.at(-1) ?? '', /ENOENT/);
      assert.equal(ring.authenticate(CAT)?.account, 'beta', 'a vanished file keeps the previous keys');
    } finally {
      watcher.stop();
    }
    assertNoKey(lines.join('\n'), [ANN, BOB, CAT]);
  });

  it('refuses to start on a file that does not load', () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify([{ key: 'too-short', account: 'acme', email: 'ann@acme.dev' }]));
    const { logger, lines } = capture();
    assert.throws(() => new KeysFileWatcher(new KeyRing(), { path, reloadMs: 1000, logger, signal: null }).start(), (err: unknown) => err instanceof KeysFileError && /\[0\]\.key: must be at least 16/.test(err.message));
    assertNoKey(lines.join('\n'), ['too-short']);
  });

  it('reloads on its signal, and stops listening when stopped', () => {
    const path = join(dir, 'signalled.json');
    writeFileSync(path, JSON.stringify([{ key: ANN, account: 'acme', email: 'ann@acme.dev' }]));
    const ring = new KeyRing();
    const before = process.listenerCount('SIGUSR2');
    const watcher = new KeysFileWatcher(ring, { path, reloadMs: 3_600_000, logger: capture().logger, signal: 'SIGUSR2' }).start();
    assert.equal(process.listenerCount('SIGUSR2'), before + 1);
    writeFileSync(path, JSON.stringify([{ key: BOB, account: 'acme', email: 'bob@acme.dev' }]));
    process.emit('SIGUSR2', 'SIGUSR2');
    assert.equal(ring.authenticate(BOB)?.email, 'bob@acme.dev');
    watcher.stop();
    assert.equal(process.listenerCount('SIGUSR2'), before);
  });
});
