import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANNOTATIONS_MAX_BYTES, annotationKeyProblem, annotationsSize } from '../../src/domain/annotations';
import { ApiError } from '../../src/domain/errors';
import { annotationsSchema } from '../../src/domain/fields';
import { parseOrThrow } from '../../src/domain/validation';

/** A DNS subdomain of exactly `length` characters, in labels of at most 63. */
function subdomain(length: number): string {
  const labels: string[] = [];
  let left = length;
  while (left > 0) {
    const take = Math.min(63, left === 64 ? 62 : left); // never leave a lone "." or a 0-char label
    labels.push('a'.repeat(take));
    left -= take + 1;
  }
  const out = labels.join('.');
  assert.equal(out.length, length);
  return out;
}

function fieldsOf(annotations: unknown): string[] {
  try {
    parseOrThrow(annotationsSchema, annotations, ['annotations']);
  } catch (e) {
    assert.ok(e instanceof ApiError);
    assert.equal(e.code, 'INVALID_ARGUMENT');
    return (e.details[0]?.fieldViolations ?? []).map((v) => v.field);
  }
  return [];
}

describe('annotation keys (Kubernetes syntax)', () => {
  const valid: Array<[string, string]> = [
    ['a one-character name', 'a'],
    ['a name of 63 characters', 'n'.repeat(63)],
    ['a name with ".", "-", "_" inside', 'a.b-c_d'],
    ['upper case in the name', 'MyKey'],
    ['a prefixed key', 'example.com/team'],
    ['a prefix of 253 characters', `${subdomain(253)}/x`],
    ['a prefix whose one label is over 63 characters (Kubernetes caps only the whole prefix)', `${'b'.repeat(100)}.com/x`],
    ['upper case in the prefix (Kubernetes checks keys case-insensitively)', 'Example.COM/Key'],
    ['a prefix that merely contains fireworks.ai', 'fireworks.ai.evil.com/x'],
    ['a prefix ending in fireworks.ai without a dot before it', 'notfireworks.ai/x'],
    ['a digit-only prefix label', '123.example/x'],
  ];
  for (const [what, key] of valid) {
    it(`accepts ${what}`, () => assert.equal(annotationKeyProblem(key), undefined));
  }

  const invalid: Array<[string, string, RegExp]> = [
    ['a name of 64 characters', 'n'.repeat(64), /at most 63/],
    ['a prefixed name of 64 characters', `example.com/${'n'.repeat(64)}`, /at most 63/],
    ['a prefix of 254 characters', `${subdomain(254)}/x`, /at most 253/],
    ['the empty key', '', /name must not be empty/],
    ['an empty prefix', '/x', /prefix before "\/" must not be empty/],
    ['an empty name after a prefix', 'example.com/', /name must not be empty/],
    ['the reserved prefix', 'fireworks.ai/x', /reserved/],
    ['a subdomain of the reserved prefix', 'a.fireworks.ai/x', /reserved/],
    ['the reserved prefix in upper case', 'FIREWORKS.AI/x', /reserved/],
    ['two slashes', 'a/b/c', /at most one "\/"/],
    ['a name starting with "-"', '-a', /begin and end/],
    ['a name ending with "."', 'a.', /begin and end/],
    ['a space in the name', 'bad key', /name must consist/],
    ['an underscore in the prefix', 'ex_ample.com/x', /DNS subdomain/],
    ['an empty prefix label', 'example..com/x', /DNS subdomain/],
    ['a prefix ending in "."', 'example.com./x', /DNS subdomain/],
    ['a prefix label starting with "-"', '-example.com/x', /DNS subdomain/],
    ['a non-ASCII name', 'ключ', /name must consist/],
    ['a Kelvin sign (lower-cases to "k" outside ASCII)', '\u212Aey', /name must consist/],
  ];
  for (const [what, key, says] of invalid) {
    it(`rejects ${what}`, () => {
      const problem = annotationKeyProblem(key);
      assert.ok(problem !== undefined, `"${key}" should be rejected`);
      assert.match(problem, says);
    });
  }

  it('names the offending key in the field path', () => {
    assert.deepEqual(fieldsOf({ ok: '1', 'fireworks.ai/x': '2', 'bad key': '3' }), ['annotations["fireworks.ai/x"]', 'annotations["bad key"]']);
  });

  it('accepts any value, empty and non-ASCII included', () => {
    assert.deepEqual(fieldsOf({ a: '', b: 'with spaces / and "quotes"', c: 'ünïcödé 🚀', d: 'x\ny' }), []);
  });
});

describe('annotations total size (256 KiB of UTF-8, keys and values)', () => {
  it('accepts exactly 256 KiB and rejects one byte more', () => {
    const key = 'k';
    const atLimit = { [key]: 'v'.repeat(ANNOTATIONS_MAX_BYTES - key.length) };
    assert.equal(annotationsSize(atLimit), ANNOTATIONS_MAX_BYTES);
    assert.deepEqual(fieldsOf(atLimit), []);
    const justUnder = { [key]: 'v'.repeat(ANNOTATIONS_MAX_BYTES - key.length - 1) };
    assert.deepEqual(fieldsOf(justUnder), []);
    const over = { [key]: 'v'.repeat(ANNOTATIONS_MAX_BYTES - key.length + 1) };
    assert.deepEqual(fieldsOf(over), ['annotations']);
  });

  it('counts keys as well as values, over several entries', () => {
    const half = ANNOTATIONS_MAX_BYTES / 2;
    assert.deepEqual(fieldsOf({ a: 'v'.repeat(half - 1), b: 'v'.repeat(half - 1) }), []);
    assert.deepEqual(fieldsOf({ a: 'v'.repeat(half - 1), b: 'v'.repeat(half) }), ['annotations']);
  });

  it('counts bytes, not characters', () => {
    assert.equal(annotationsSize({ k: 'é' }), 3);
    assert.equal(annotationsSize({ k: '€' }), 4);
    assert.equal(annotationsSize({ k: '🚀' }), 5);
    // 87,382 "€" are fewer characters than the limit but 262,146 bytes, which with the key exceed it.
    const value = '€'.repeat(87_382);
    assert.ok(value.length + 1 < ANNOTATIONS_MAX_BYTES);
    assert.deepEqual(fieldsOf({ k: value }), ['annotations']);
  });

  it('says how big the annotations are and what the limit is', () => {
    try {
      parseOrThrow(annotationsSchema, { k: 'v'.repeat(ANNOTATIONS_MAX_BYTES) }, ['annotations']);
      assert.fail('expected INVALID_ARGUMENT');
    } catch (e) {
      assert.ok(e instanceof ApiError);
      assert.match(e.message, /262145 bytes.*256 KiB/);
    }
  });
});
