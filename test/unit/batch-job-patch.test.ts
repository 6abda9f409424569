/**
 * The job workflow checks update patches without zod (batchJobPatchViolations); the API checks the
 * same fields with zod (batchJobPatchSchema). Both must give the same answer, field by field and word
 * by word, or a patch the API accepts could be refused by the workflow (or the reverse).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchJobPatchSchema, batchJobPatchViolations, patchProblem } from '../../src/domain/batch-job-update';
import { type FieldViolation } from '../../src/domain/errors';
import { safeParseFields } from '../../src/domain/validation';

function sorted(violations: readonly FieldViolation[]): FieldViolation[] {
  return [...violations].sort((a, b) => `${a.field}\0${a.description}`.localeCompare(`${b.field}\0${b.description}`));
}

function zodViolations(patch: unknown): FieldViolation[] {
  const result = safeParseFields(batchJobPatchSchema, patch);
  return result.success ? [] : result.violations;
}

const big = 'v'.repeat(256 * 1024);

const CASES: ReadonlyArray<[string, unknown]> = [
  ['an empty patch', {}],
  ['every field valid', { displayName: 'new name', annotations: { 'example.com/team': 'ml', plain: '' }, shared: true }],
  ['displayName cleared', { displayName: null }],
  ['displayName of 63 characters', { displayName: 'x'.repeat(63) }],
  ['displayName of 64 characters', { displayName: 'x'.repeat(64) }],
  ['displayName a number', { displayName: 7 }],
  ['annotations an array', { annotations: ['a'] }],
  ['annotations null', { annotations: null }],
  ['an annotation value that is not a string', { annotations: { a: 1, b: 'ok', c: false } }],
  ['annotation keys that break each rule', { annotations: { '-bad': '', 'a/b/c': '', '/x': '', 'fireworks.ai/x': '', 'Sub.FIREWORKS.AI/y': '', ['n'.repeat(64)]: '' } }],
  ['a "__proto__" annotation key', JSON.parse('{"annotations":{"__proto__":"x"}}') as unknown],
  ['annotations over 256 KiB', { annotations: { a: big } }],
  ['shared a string', { shared: 'yes' }],
  ['unknown fields', { state: 'RUNNING', numRanks: 3 }],
  ['several problems at once', { displayName: false, shared: 1, nodePoolId: 'x', annotations: { 'a b': 'c' } }],
  ['a patch that is an array', []],
  ['a patch that is null', null],
  ['a patch that is a string', 'displayName'],
];

describe('batch job patch: the workflow check agrees with the API schema', () => {
  for (const [title, patch] of CASES) {
    it(title, () => {
      const expected = zodViolations(patch);
      assert.deepEqual(sorted(batchJobPatchViolations(patch)), sorted(expected));
      assert.equal(patchProblem(patch) === undefined, expected.length === 0);
    });
  }

  it('the cases include both accepted and refused patches (the comparison is not vacuous)', () => {
    const refused = CASES.filter(([, patch]) => zodViolations(patch).length > 0).length;
    assert.ok(refused >= 10, `only ${refused} refused cases`);
    assert.ok(CASES.length - refused >= 3, 'too few accepted cases');
  });

  it('a refusal names the field in the API words', () => {
    assert.deepEqual(batchJobPatchViolations({ shared: 'yes' }), [{ field: 'shared', description: 'must be true or false, not a string' }]);
    assert.match(patchProblem({ annotations: { 'fireworks.ai/x': '' } }) ?? '', /annotations\["fireworks\.ai\/x"\]/);
  });
});
