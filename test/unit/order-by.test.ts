import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../src/domain/errors';
import { DEFAULT_ORDER, orderSpecOf } from '../../src/domain/list-fields';
import { parseOrderBy } from '../../src/domain/order-by';

const jobs = orderSpecOf('batchJobs');
const NAME = { field: 'name', desc: false };

function rejects(input: string, pattern: RegExp): void {
  assert.throws(
    () => parseOrderBy(input, jobs),
    (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.code, 'INVALID_ARGUMENT');
      const violation = err.details[0]?.fieldViolations?.[0];
      assert.equal(violation?.field, 'orderBy');
      assert.match(violation.description, pattern);
      return true;
    },
  );
}

void describe('parseOrderBy', () => {
  void it('uses the collection default, plus the name tiebreaker, when absent or blank', () => {
    for (const input of [undefined, '', '   ']) {
      assert.deepEqual(parseOrderBy(input, jobs), [{ field: 'createTime', desc: true }, NAME]);
    }
    assert.deepEqual(parseOrderBy(undefined, orderSpecOf('snapshots')), [{ field: 'createTime', desc: false }, NAME]);
    assert.deepEqual(parseOrderBy(undefined, orderSpecOf('nodePools')), [NAME]);
  });

  void it('never lets a caller mutate the default', () => {
    const first = parseOrderBy(undefined, jobs);
    first.push({ field: 'numRanks', desc: true });
    first[0]!.desc = false;
    assert.deepEqual(DEFAULT_ORDER.batchJobs, [{ field: 'createTime', desc: true }]);
    assert.deepEqual(parseOrderBy(undefined, jobs), [{ field: 'createTime', desc: true }, NAME]);
  });

  void it('accepts snake_case and camelCase, with desc/asc in any case', () => {
    assert.deepEqual(parseOrderBy('create_time desc', jobs), [{ field: 'createTime', desc: true }, NAME]);
    assert.deepEqual(parseOrderBy('createTime DESC', jobs), [{ field: 'createTime', desc: true }, NAME]);
    assert.deepEqual(parseOrderBy(' num_ranks  Desc ,display_name, update_time asc ', jobs), [
      { field: 'numRanks', desc: true },
      { field: 'displayName', desc: false },
      { field: 'updateTime', desc: false },
      NAME,
    ]);
  });

  void it('keeps an explicit name where it is, without a second one', () => {
    assert.deepEqual(parseOrderBy('name desc, createTime', jobs), [
      { field: 'name', desc: true },
      { field: 'createTime', desc: false },
    ]);
  });

  void it('rejects unknown fields, listing the sortable ones', () => {
    rejects('owner', /^unknown field "owner"; sortable fields are createTime, updateTime, startTime, endTime, displayName, state, name, numRanks$/);
    rejects('createdBy', /unknown field "createdBy"/);
    assert.deepEqual(parseOrderBy('createdBy', orderSpecOf('environments')), [{ field: 'createdBy', desc: false }, NAME]);
  });

  void it('rejects a field listed twice, in either spelling', () => {
    rejects('createTime, create_time desc', /field createTime appears more than once/);
  });

  void it('rejects empty and malformed terms', () => {
    rejects('createTime,,name', /term 2 is empty/);
    rejects('createTime,', /term 2 is empty/);
    rejects('createTime descending', /term 1 "createTime descending" is malformed; expected "field", "field asc" or "field desc"/);
    rejects('createTime desc name', /term 1 .* is malformed/);
    rejects(['createTime', 'name'] as unknown as string, /must be a string/);
  });
});
