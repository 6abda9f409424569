import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ApiError } from '../../src/domain/errors';
import { FILTER_LIMITS, type FilterExpr, type FilterField, normalizeTimestamp, parseFilter } from '../../src/domain/filter';
import { FILTER_FIELDS } from '../../src/domain/list-fields';

const FIELDS: readonly FilterField[] = [
  { name: 'displayName', type: 'string' },
  { name: 'state', type: 'enum', enumValues: ['RUNNING', 'QUEUED', 'FAILED'] },
  { name: 'createTime', type: 'timestamp' },
  { name: 'numRanks', type: 'int' },
  { name: 'shared', type: 'bool' },
];

const parse = (input: string): FilterExpr | undefined => parseFilter(input, FIELDS);
const cmp = (field: string, op: string, value: string | number | boolean, wildcard?: true): FilterExpr =>
  (wildcard ? { kind: 'cmp', field, op, value, wildcard } : { kind: 'cmp', field, op, value }) as FilterExpr;
const A = cmp('numRanks', '=', 1);
const B = cmp('numRanks', '=', 2);
const C = cmp('numRanks', '=', 3);

/** Asserts a 400 on `filter` whose description matches every pattern. */
function rejects(input: string, ...patterns: RegExp[]): void {
  assert.throws(
    () => parse(input),
    (err: unknown) => {
      assert.ok(err instanceof ApiError, `expected ApiError, got ${String(err)}`);
      assert.equal(err.code, 'INVALID_ARGUMENT');
      assert.equal(err.httpStatus, 400);
      const violation = err.details[0]?.fieldViolations?.[0];
      assert.equal(violation?.field, 'filter');
      for (const p of patterns) assert.match(violation.description, p);
      return true;
    },
  );
}

void describe('parseFilter: structure', () => {
  void it('returns undefined for empty or blank input', () => {
    assert.equal(parse(''), undefined);
    assert.equal(parse('  \t\n '), undefined);
  });

  void it('binds OR tighter than AND, as AIP-160 says', () => {
    assert.deepEqual(parse('numRanks = 1 AND numRanks = 2 OR numRanks = 3'), { kind: 'and', items: [A, { kind: 'or', items: [B, C] }] });
    assert.deepEqual(parse('numRanks = 1 OR numRanks = 2 AND numRanks = 3'), { kind: 'and', items: [{ kind: 'or', items: [A, B] }, C] });
  });

  void it('treats juxtaposition as AND, looser than OR', () => {
    assert.deepEqual(parse('numRanks = 1 numRanks = 2'), { kind: 'and', items: [A, B] });
    assert.deepEqual(parse('numRanks = 1 OR numRanks = 2 numRanks = 3'), { kind: 'and', items: [{ kind: 'or', items: [A, B] }, C] });
    assert.deepEqual(parse('numRanks=1 numRanks=2 AND numRanks=3'), { kind: 'and', items: [A, B, C] });
  });

  void it('keeps an escape attempt inside its own group: state = X OR account = Y AND ...', () => {
    // account is not a filter field at all; the parse fails before any store sees it.
    assert.throws(() => parse('state = RUNNING OR account = "other"'), /unknown field "account"/);
  });

  void it('lets parentheses override precedence', () => {
    assert.deepEqual(parse('numRanks = 1 AND (numRanks = 2 OR numRanks = 3)'), { kind: 'and', items: [A, { kind: 'or', items: [B, C] }] });
    assert.deepEqual(parse('((numRanks = 1))'), A);
  });

  void it('binds NOT and - tightest, and chains them', () => {
    assert.deepEqual(parse('NOT numRanks = 1 AND numRanks = 2'), { kind: 'and', items: [{ kind: 'not', item: A }, B] });
    assert.deepEqual(parse('-numRanks = 1 OR numRanks = 2'), { kind: 'or', items: [{ kind: 'not', item: A }, B] });
    assert.deepEqual(parse('NOT (numRanks = 1 OR numRanks = 2)'), { kind: 'not', item: { kind: 'or', items: [A, B] } });
    assert.deepEqual(parse('NOT -numRanks = 1'), { kind: 'not', item: { kind: 'not', item: A } });
    assert.deepEqual(parse('NOT(numRanks = 1)'), { kind: 'not', item: A });
  });

  void it('keeps keywords case-sensitive: lower-case and/or are not operators', () => {
    rejects('numRanks = 1 and numRanks = 2', /position 14/, /unknown field "and"/, /upper-case/);
    rejects('numRanks = 1 or numRanks = 2', /unknown field "or"/);
  });

  void it('accepts camelCase and snake_case field names, returning the canonical name', () => {
    assert.deepEqual(parse('display_name = x'), cmp('displayName', '=', 'x'));
    assert.deepEqual(parse('create_time >= 2026-01-01T00:00:00Z'), cmp('createTime', '>=', '2026-01-01T00:00:00.000Z'));
    assert.deepEqual(parse('num_ranks<3'), cmp('numRanks', '<', 3));
  });

  void it('works on the real batch job fields', () => {
    const e = parseFilter('state = RUNNING AND node_pool_id = "p1" AND shared = true AND start_time < 2026-02-01T00:00:00Z', FILTER_FIELDS.batchJobs);
    assert.deepEqual(e, {
      kind: 'and',
      items: [cmp('state', '=', 'RUNNING'), cmp('nodePoolId', '=', 'p1'), cmp('shared', '=', true), cmp('startTime', '<', '2026-02-01T00:00:00.000Z')],
    });
    assert.throws(() => parseFilter('state = READY', FILTER_FIELDS.batchJobs), /"READY" is not a valid state/);
    assert.deepEqual(parseFilter('state = READY', FILTER_FIELDS.nodePools), cmp('state', '=', 'READY'));
    assert.throws(() => parseFilter('displayName = x', FILTER_FIELDS.snapshots), /unknown field "displayName"/);
  });
});

void describe('parseFilter: values and operators per type', () => {
  const OPS = ['=', '!=', '<', '>', '<=', '>='] as const;

  void it('string: all six operators, bare, double- and single-quoted', () => {
    for (const op of OPS) assert.deepEqual(parse(`displayName ${op} abc`), cmp('displayName', op, 'abc'));
    assert.deepEqual(parse('displayName = "two words"'), cmp('displayName', '=', 'two words'));
    assert.deepEqual(parse("displayName = 'it s'"), cmp('displayName', '=', 'it s'));
    assert.deepEqual(parse("displayName = 'say \"hi\"'"), cmp('displayName', '=', 'say "hi"'));
    assert.deepEqual(parse('displayName = 42'), cmp('displayName', '=', '42'));
    assert.deepEqual(parse('displayName = ""'), cmp('displayName', '=', ''));
  });

  void it('string: unescapes \\\\ \\" \\\' \\n \\t and \\*', () => {
    assert.deepEqual(parse(String.raw`displayName = "a\\b\"c\'d\ne\tf"`), cmp('displayName', '=', 'a\\b"c\'d\ne\tf'));
    assert.deepEqual(parse(String.raw`displayName = 'x\'y'`), cmp('displayName', '=', "x'y"));
    assert.deepEqual(parse(String.raw`displayName = "a\*b"`), cmp('displayName', '=', 'a*b'));
  });

  void it('string: * makes = and != wildcards; \\* stays literal in the pattern; other operators take * literally', () => {
    assert.deepEqual(parse('displayName = "train-*"'), cmp('displayName', '=', 'train-*', true));
    assert.deepEqual(parse('displayName != *-eval'), cmp('displayName', '!=', '*-eval', true));
    assert.deepEqual(parse(String.raw`displayName = "a\*b*"`), cmp('displayName', '=', String.raw`a\*b*`, true));
    assert.deepEqual(parse(String.raw`displayName = "c:\\dir*"`), cmp('displayName', '=', String.raw`c:\\dir*`, true));
    assert.deepEqual(parse('displayName < "a*"'), cmp('displayName', '<', 'a*'));
  });

  void it('enum: = and != with a listed value only', () => {
    assert.deepEqual(parse('state = RUNNING'), cmp('state', '=', 'RUNNING'));
    assert.deepEqual(parse('state != "FAILED"'), cmp('state', '!=', 'FAILED'));
    for (const op of ['<', '>', '<=', '>=']) rejects(`state ${op} RUNNING`, /position 7/, new RegExp(`operator '${op}' is not supported for state, an enum field; use '=' or '!='`));
    rejects('state = running', /position 9/, /"running" is not a valid state; expected one of RUNNING, QUEUED, FAILED/);
    rejects('state = RUN*', /"RUN\*" is not a valid state/);
  });

  void it('timestamp: all six operators, normalised to fixed-width UTC', () => {
    for (const op of OPS) assert.deepEqual(parse(`createTime ${op} 2026-01-01T00:00:00Z`), cmp('createTime', op, '2026-01-01T00:00:00.000Z'));
    assert.deepEqual(parse('createTime > "2026-01-01T01:30:00+01:30"'), cmp('createTime', '>', '2026-01-01T00:00:00.000Z'));
    assert.deepEqual(parse('createTime > 2025-12-31T23:00:00.123456-02:00'), cmp('createTime', '>', '2026-01-01T01:00:00.123Z'));
    assert.deepEqual(parse('createTime > 2026-03-04t05:06:07.5z'), cmp('createTime', '>', '2026-03-04T05:06:07.500Z'));
  });

  void it('timestamp: rejects what is not RFC 3339', () => {
    for (const bad of ['2026-01-01', '2026-01-01T00:00:00', '2026-13-01T00:00:00Z', '2026-02-29T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T00:00:60Z', '2026-01-01T00:00:00+24:00', 'yesterday']) {
      rejects(`createTime < ${bad}`, /position 14/, /is not a valid RFC 3339 timestamp for createTime; expected e\.g\. 2026-01-01T00:00:00Z/);
    }
  });

  void it('int: all six operators, signed integers only', () => {
    for (const op of OPS) assert.deepEqual(parse(`numRanks ${op} 8`), cmp('numRanks', op, 8));
    assert.deepEqual(parse('numRanks > -3'), cmp('numRanks', '>', -3));
    assert.deepEqual(parse('numRanks = "16"'), cmp('numRanks', '=', 16));
    for (const bad of ['1.5', '1e3', 'four', '0x10', '99999999999999999']) rejects(`numRanks = ${bad}`, /position 12/, /is not an integer; numRanks expects an integer/);
  });

  void it('bool: = and != with true or false', () => {
    assert.deepEqual(parse('shared = true'), cmp('shared', '=', true));
    assert.deepEqual(parse('shared != false'), cmp('shared', '!=', false));
    rejects('shared = yes', /position 10/, /"yes" is not a boolean; shared expects true or false/);
    rejects('shared = TRUE', /is not a boolean/);
    rejects('shared > false', /operator '>' is not supported for shared, a boolean field/);
  });
});

void describe('parseFilter: errors name the position and what was expected', () => {
  void it('unknown field, listing the known ones', () => {
    rejects('numRanks = 1 AND owner = me', /^at position 18: unknown field "owner"; filterable fields are displayName, state, createTime, numRanks, shared$/);
  });

  void it('an injection attempt through an unknown field', () => {
    rejects('state="RUNNING" OR account="other"', /position 20/, /unknown field "account"/);
  });

  void it('unbalanced parentheses', () => {
    rejects('(numRanks = 1', /position 14: expected '\)' to close the '\(' at position 1, found the end of the filter/);
    rejects('(numRanks = 1 OR (numRanks = 2)', /position 32: expected '\)' to close the '\(' at position 1/);
    rejects('numRanks = 1)', /position 13: unexpected '\)' with no matching '\('/);
  });

  void it('unbalanced quotes', () => {
    rejects('displayName = "abc', /position 15: unterminated string: the " at position 15 has no closing "/);
    rejects("displayName = 'abc\\'", /position 15: unterminated string: the ' at position 15 has no closing '/);
  });

  void it('trailing input after a complete comparison', () => {
    rejects('numRanks = 1 = 2', /position 14: unexpected "=" after a complete comparison; expected AND, OR, '\)' or the end of the filter/);
    rejects('displayName = "a""b"', /position 18: unexpected "\\"b\\"" after a complete comparison/);
    rejects("displayName = 'it''s'", /position 19: unexpected "'s'" after a complete comparison/);
  });

  void it('empty operands', () => {
    rejects('numRanks = 1 AND', /position 17: expected a comparison after AND .*found the end of the filter/);
    rejects('numRanks = 1 OR', /position 16: expected a comparison after OR/);
    rejects('NOT', /position 4: expected a comparison after NOT/);
    rejects('()', /position 2: expected a comparison after '\(' .*found "\)"/);
    rejects('- numRanks = 1', /position 1: '-' \(NOT\) must be followed directly by a comparison or '\(', found whitespace/);
    rejects('AND numRanks = 1', /position 1: expected a comparison \(a field name, '\(' or NOT\), found the keyword AND/);
    rejects('numRanks =', /position 11: expected a value after '=', found the end of the filter/);
    rejects('numRanks = )', /position 12: expected a value after '=', found "\)"/);
    rejects('numRanks 1', /position 10: expected a comparison operator \(=, !=, <, >, <=, >=\) after "numRanks", found "1"/);
    rejects('"x" = 1', /position 1: expected a comparison/);
    rejects('displayName = OR', /position 15: expected a value after '=', found the keyword OR; quote it/);
  });

  void it('unsupported syntax: the has operator, stray escapes', () => {
    rejects('displayName:x', /position 12: the ':' \(has\) operator is not supported/);
    rejects(String.raw`displayName = "a\qb"`, /position 17: unknown escape "\\\\q"/);
    rejects(String.raw`displayName = a\*`, /position 16: backslash escapes are only allowed inside a quoted value/);
  });

  void it('limits: length, comparisons and nesting', () => {
    const long = `displayName = "${'x'.repeat(FILTER_LIMITS.maxLength - 16)}"`;
    assert.equal(long.length, FILTER_LIMITS.maxLength);
    assert.ok(parse(long));
    rejects(`${long} `, /is 4097 characters long; the limit is 4096/);

    const many = (n: number): string => Array.from({ length: n }, (_, i) => `numRanks = ${i}`).join(' OR ');
    assert.equal((parse(many(64)) as { items: unknown[] }).items.length, 64);
    rejects(many(65), new RegExp(`position ${many(64).length + ' OR '.length + 1}: too many comparisons; the limit is 64`));

    const nest = (n: number): string => `${'('.repeat(n)}numRanks = 1${')'.repeat(n)}`;
    assert.deepEqual(parse(nest(32)), A);
    rejects(nest(33), /position 33: nesting is too deep; the limit is 32/);
    let notChain = parse(`${'NOT '.repeat(32)}numRanks = 1`);
    for (let i = 0; i < 32; i++) notChain = notChain?.kind === 'not' ? notChain.item : undefined;
    assert.deepEqual(notChain, A);
    rejects(`${'-'.repeat(33)}numRanks = 1`, /nesting is too deep/);
  });

  void it('rejects a non-string input with an ApiError', () => {
    assert.throws(() => parseFilter(['a'] as unknown as string, FIELDS), (e: unknown) => e instanceof ApiError && /must be a string/.test(e.message));
  });
});

void describe('normalizeTimestamp', () => {
  void it('handles years below 100 and the edges of the four-digit range', () => {
    assert.equal(normalizeTimestamp('0050-06-01T00:00:00Z'), '0050-06-01T00:00:00.000Z');
    assert.equal(normalizeTimestamp('2024-02-29T00:00:00Z'), '2024-02-29T00:00:00.000Z');
    assert.equal(normalizeTimestamp('9999-12-31T23:00:00-01:00'), undefined);
    assert.equal(normalizeTimestamp('0000-01-01T00:30:00+01:00'), undefined);
  });
});

// A vocabulary that hits the parser's corners far more often than uniform random text does.
const TOKENS = [
  'displayName', 'display_name', 'state', 'createTime', 'numRanks', 'shared', 'nope', 'AND', 'OR', 'NOT', 'and', '-', '(', ')',
  '=', '!=', '<', '>', '<=', '>=', ':', '"', "'", '\\', '*', 'RUNNING', 'true', '42', '-7', '1.5', '2026-01-01T00:00:00Z',
  '"a\\"b"', "'x\\'", '"\\*"', ' ', '\t', '\u{1F600}', '\ud800', '__proto__', 'constructor',
];

void describe('parseFilter: properties', () => {
  void it('never throws anything but an ApiError, on arbitrary text', () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((t) => t.join('')),
      fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((t) => t.join(' ')),
    );
    fc.assert(
      fc.property(text, (input) => {
        try {
          parse(input);
        } catch (err) {
          return err instanceof ApiError && err.code === 'INVALID_ARGUMENT';
        }
        return true;
      }),
      { numRuns: 3000 },
    );
  });

  void it('parses back any expression printed with full parentheses', () => {
    const literal = fc.string({ unit: 'binary', maxLength: 12 });
    const leaf: fc.Arbitrary<{ expr: FilterExpr; text: string }> = fc.oneof(
      fc.tuple(fc.constantFrom('=', '!=', '<', '>', '<=', '>='), literal).map(([op, v]) => ({
        expr: cmp('displayName', op, v),
        text: `display_name ${op} "${v.replace(/[\\"*]/g, (c) => `\\${c}`)}"`,
      })),
      fc.tuple(fc.constantFrom('=', '!='), fc.constantFrom('RUNNING', 'QUEUED', 'FAILED')).map(([op, v]) => ({ expr: cmp('state', op, v), text: `state ${op} ${v}` })),
      fc.tuple(fc.constantFrom('=', '<', '>='), fc.integer({ min: -1e6, max: 1e6 })).map(([op, v]) => ({ expr: cmp('numRanks', op, v), text: `numRanks ${op} ${v}` })),
      fc.tuple(fc.constantFrom('<', '>'), fc.date({ min: new Date('1970-01-01'), max: new Date('2999-12-31'), noInvalidDate: true })).map(([op, d]) => ({
        expr: cmp('createTime', op, d.toISOString()),
        text: `createTime ${op} ${d.toISOString()}`,
      })),
      fc.boolean().map((b) => ({ expr: cmp('shared', '=', b), text: `shared = ${b}` })),
    );
    const tree = fc.letrec<{ node: { expr: FilterExpr; text: string } }>((tie) => ({
      node: fc.oneof(
        { maxDepth: 3, withCrossShrink: true },
        leaf,
        tie('node').map((n): { expr: FilterExpr; text: string } => ({ expr: { kind: 'not', item: n.expr }, text: `NOT ${n.text}` })),
        fc.tuple(fc.constantFrom<'and' | 'or'>('and', 'or'), fc.array(tie('node'), { minLength: 2, maxLength: 3 })).map(([kind, items]): { expr: FilterExpr; text: string } => ({
          expr: { kind, items: items.map((i) => i.expr) },
          text: `(${items.map((i) => i.text).join(kind === 'and' ? ' AND ' : ' OR ')})`,
        })),
      ),
    })).node;
    fc.assert(
      fc.property(tree, ({ expr, text }) => {
        assert.deepEqual(parse(text), expr);
      }),
      { numRuns: 1500 },
    );
  });
});
