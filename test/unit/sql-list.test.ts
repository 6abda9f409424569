import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { ApiError } from '../../src/domain/errors';
import { type FilterExpr, parseFilter } from '../../src/domain/filter';
import { FILTER_FIELDS } from '../../src/domain/list-fields';
import { type OrderTerm } from '../../src/domain/order-by';
import { compileFilter, compileKeyset, compileOrder, likePattern } from '../../src/store/sql-list';

type Cmp = Extract<FilterExpr, { kind: 'cmp' }>;
const cmp = (field: string, op: Cmp['op'], value: Cmp['value'], wildcard?: true): Cmp =>
  wildcard ? { kind: 'cmp', field, op, value, wildcard } : { kind: 'cmp', field, op, value };

const COLUMNS: Record<string, string> = {
  name: 'name',
  displayName: 'display_name',
  state: 'state',
  createTime: 'create_time',
  startTime: 'start_time',
  numRanks: 'num_ranks',
  shared: 'shared',
};

void describe('compileFilter', () => {
  void it('compiles each operator with the value as a parameter', () => {
    for (const op of ['=', '<', '>', '<=', '>='] as const) {
      assert.deepEqual(compileFilter(cmp('numRanks', op, 4), COLUMNS, 'sqlite'), { sql: `(num_ranks ${op} ?)`, params: [4] });
    }
  });

  void it('makes != null-safe, so that it equals NOT =', () => {
    assert.deepEqual(compileFilter(cmp('state', '!=', 'RUNNING'), COLUMNS, 'sqlite'), { sql: '(state IS NOT ?)', params: ['RUNNING'] });
    assert.deepEqual(compileFilter(cmp('state', '!=', 'RUNNING'), COLUMNS, 'postgres'), { sql: '(state IS DISTINCT FROM $1)', params: ['RUNNING'] });
  });

  void it('binds booleans as 0/1 on SQLite and as booleans on PostgreSQL', () => {
    assert.deepEqual(compileFilter(cmp('shared', '=', true), COLUMNS, 'sqlite').params, [1]);
    assert.deepEqual(compileFilter(cmp('shared', '=', false), COLUMNS, 'sqlite').params, [0]);
    assert.deepEqual(compileFilter(cmp('shared', '=', true), COLUMNS, 'postgres').params, [true]);
  });

  void it('numbers PostgreSQL placeholders from firstParam, in order', () => {
    const expr = parseFilter('numRanks > 1 AND (state = RUNNING OR NOT displayName = "x")', FILTER_FIELDS.batchJobs)!;
    assert.deepEqual(compileFilter(expr, COLUMNS, 'postgres', 3), {
      sql: '((num_ranks > $3) AND ((state = $4) OR (NOT COALESCE((display_name = $5), FALSE))))',
      params: [1, 'RUNNING', 'x'],
    });
    assert.equal(compileFilter(expr, COLUMNS, 'sqlite', 3).sql, '((num_ranks > ?) AND ((state = ?) OR (NOT COALESCE((display_name = ?), FALSE))))');
  });

  void it('turns wildcards into LIKE with %, _ and \\ escaped', () => {
    assert.deepEqual(compileFilter(cmp('displayName', '=', String.raw`50%_off\*\\x*`, true), COLUMNS, 'sqlite'), {
      sql: String.raw`(display_name LIKE ? ESCAPE '\')`,
      params: [String.raw`50\%\_off*\\x%`],
    });
    assert.deepEqual(compileFilter(cmp('displayName', '!=', 'a*', true), COLUMNS, 'postgres'), {
      sql: String.raw`(display_name IS NULL OR NOT (display_name LIKE $1 ESCAPE '\'))`,
      params: ['a%'],
    });
    assert.equal(likePattern('*'), '%');
    assert.equal(likePattern(String.raw`a\*`), 'a*');
  });

  void it('refuses fields without a column, including prototype names', () => {
    assert.throws(() => compileFilter(cmp('owner', '=', 'x'), COLUMNS, 'sqlite'), /no column for field owner/);
    assert.throws(() => compileFilter(cmp('constructor', '=', 'x'), COLUMNS, 'sqlite'), /no column for field constructor/);
    assert.throws(() => compileFilter(cmp('__proto__', '=', 'x'), COLUMNS, 'sqlite'), /no column for field __proto__/);
  });

  void it('keeps injection attempts out of the SQL text', () => {
    const attempts = [
      `RUNNING" OR account="other`,
      `x' OR '1'='1`,
      `'; DROP TABLE batch_jobs; --`,
      String.raw`\'; DROP TABLE batch_jobs; --`,
      `") OR 1=1 --`,
      `%' OR account LIKE '%`,
    ];
    for (const text of attempts) {
      const quoted = `"${text.replace(/[\\"*]/g, (c) => `\\${c}`)}"`;
      for (const op of ['=', '!=', '<'] as const) {
        const expr = parseFilter(`displayName ${op} ${quoted} AND createdBy = ${quoted}`, FILTER_FIELDS.batchJobs)!;
        const { sql, params } = compileFilter(expr, { displayName: 'display_name', createdBy: 'created_by' }, 'sqlite');
        assert.deepEqual(params, [text, text]);
        assert.doesNotMatch(sql, /DROP|account|OR|1=1|'|"|--|;|%/, sql);
      }
    }
    const wild = compileFilter(parseFilter(`displayName = "*'; DROP TABLE x; --*"`, FILTER_FIELDS.batchJobs)!, COLUMNS, 'sqlite');
    assert.equal(wild.sql, String.raw`(display_name LIKE ? ESCAPE '\')`);
  });

  void it('produces SQL text that depends on the structure only, never on the values', () => {
    const value = fc.oneof(fc.string({ unit: 'binary' }), fc.integer(), fc.boolean());
    const leaf = fc
      .tuple(fc.constantFrom(...Object.keys(COLUMNS)), fc.constantFrom('=', '!=', '<', '>', '<=', '>=' as const), value, fc.boolean())
      .map(([field, op, v, wild]) => cmp(field, op, v, wild && typeof v === 'string' && (op === '=' || op === '!=') ? true : undefined));
    const tree = fc.letrec<{ node: FilterExpr }>((tie) => ({
      node: fc.oneof(
        { maxDepth: 4 },
        leaf,
        tie('node').map((item): FilterExpr => ({ kind: 'not', item })),
        fc.tuple(fc.constantFrom<'and' | 'or'>('and', 'or'), fc.array(tie('node'), { minLength: 1, maxLength: 3 })).map(([kind, items]): FilterExpr => ({ kind, items })),
      ),
    })).node;
    const blank = (e: FilterExpr): FilterExpr =>
      e.kind === 'cmp' ? { ...e, value: typeof e.value === 'string' ? '' : typeof e.value === 'number' ? 0 : false } : e.kind === 'not' ? { kind: 'not', item: blank(e.item) } : { kind: e.kind, items: e.items.map(blank) };
    const count = (e: FilterExpr): number => (e.kind === 'cmp' ? 1 : e.kind === 'not' ? count(e.item) : e.items.reduce((n, i) => n + count(i), 0));
    fc.assert(
      fc.property(tree, fc.constantFrom('sqlite', 'postgres' as const), (expr, dialect) => {
        const compiled = compileFilter(expr, COLUMNS, dialect);
        assert.equal(compiled.sql, compileFilter(blank(expr), COLUMNS, dialect).sql);
        assert.equal(compiled.params.length, count(expr));
      }),
      { numRuns: 1000 },
    );
  });
});

// --- Differential test: compiled SQL on a real SQLite table agrees with a reference evaluator. ---

interface Row {
  name: string;
  displayName: string;
  state: string;
  startTime: string | null;
  numRanks: number;
  shared: boolean;
}

function openTable(rows: readonly Row[]): Database.Database {
  const db = new Database(':memory:');
  db.pragma('case_sensitive_like = ON');
  db.exec('CREATE TABLE t (name TEXT PRIMARY KEY, display_name TEXT NOT NULL, state TEXT NOT NULL, start_time TEXT, num_ranks INTEGER NOT NULL, shared INTEGER NOT NULL)');
  const insert = db.prepare('INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)');
  for (const r of rows) insert.run(r.name, r.displayName, r.state, r.startTime, r.numRanks, r.shared ? 1 : 0);
  return db;
}

function patternRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') re += escapeRe(pattern[++i] ?? '\\');
    else re += c === '*' ? '[^]*' : escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

const FIELD_OF: Record<string, keyof Row> = { name: 'name', displayName: 'displayName', state: 'state', startTime: 'startTime', numRanks: 'numRanks', shared: 'shared' };

/** The intended semantics: a comparison with an absent value is false; != is NOT =. */
function matches(e: FilterExpr, row: Row): boolean {
  switch (e.kind) {
    case 'and':
      return e.items.every((i) => matches(i, row));
    case 'or':
      return e.items.some((i) => matches(i, row));
    case 'not':
      return !matches(e.item, row);
    case 'cmp': {
      if (e.op === '!=') return !matches({ ...e, op: '=' }, row);
      const v = row[FIELD_OF[e.field]!];
      if (v === null) return false;
      if (e.wildcard) return patternRegExp(e.value as string).test(v as string);
      const [a, b] = typeof v === 'boolean' ? [Number(v), Number(e.value)] : [v, e.value];
      switch (e.op) {
        case '=':
          return a === b;
        case '<':
          return a < b;
        case '>':
          return a > b;
        case '<=':
          return a <= b;
        case '>=':
          return a >= b;
      }
    }
  }
}

void describe('compileFilter on SQLite agrees with the reference semantics', () => {
  const text = fc.array(fc.constantFrom('a', 'A', 'b', '%', '_', '\\', '*', "'", '"', ' '), { maxLength: 4 }).map((c) => c.join(''));
  const patternPiece = fc.constantFrom('a', 'A', 'b', '%', '_', "'", '\\\\', '\\*', '*');
  const pattern = fc.array(patternPiece, { minLength: 1, maxLength: 4 }).map((p) => p.join(''));
  const time = fc.constantFrom('2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', '2026-01-03T00:00:00.000Z');
  const row = fc.record({
    displayName: text,
    state: fc.constantFrom('RUNNING', 'QUEUED'),
    startTime: fc.option(time, { nil: null }),
    numRanks: fc.integer({ min: 0, max: 3 }),
    shared: fc.boolean(),
  });
  const op = fc.constantFrom('=', '!=', '<', '>', '<=', '>=' as const);
  const leaf: fc.Arbitrary<FilterExpr> = fc.oneof(
    fc.tuple(op, text).map(([o, v]) => cmp('displayName', o, v)),
    fc.tuple(fc.constantFrom('=', '!=' as const), pattern).map(([o, p]) => cmp('displayName', o, p, true)),
    fc.tuple(fc.constantFrom('=', '!=' as const), fc.constantFrom('RUNNING', 'QUEUED')).map(([o, v]) => cmp('state', o, v)),
    fc.tuple(op, time).map(([o, v]) => cmp('startTime', o, v)),
    fc.tuple(op, fc.integer({ min: 0, max: 3 })).map(([o, v]) => cmp('numRanks', o, v)),
    fc.tuple(fc.constantFrom('=', '!=' as const), fc.boolean()).map(([o, v]) => cmp('shared', o, v)),
  );
  const tree = fc.letrec<{ node: FilterExpr }>((tie) => ({
    node: fc.oneof(
      { maxDepth: 3 },
      leaf,
      tie('node').map((item): FilterExpr => ({ kind: 'not', item })),
      fc.tuple(fc.constantFrom<'and' | 'or'>('and', 'or'), fc.array(tie('node'), { minLength: 1, maxLength: 3 })).map(([kind, items]): FilterExpr => ({ kind, items })),
    ),
  })).node;

  void it('selects exactly the rows the reference evaluator selects', () => {
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 12 }), fc.array(tree, { minLength: 1, maxLength: 5 }), (partial, filters) => {
        const rows: Row[] = partial.map((r, i) => ({ ...r, name: `r${i}` }));
        const db = openTable(rows);
        try {
          for (const f of filters) {
            const { sql, params } = compileFilter(f, COLUMNS, 'sqlite');
            const got = (db.prepare(`SELECT name FROM t WHERE ${sql} ORDER BY name`).all(...params) as { name: string }[]).map((r) => r.name);
            const want = rows.filter((r) => matches(f, r)).map((r) => r.name).sort();
            assert.deepEqual(got, want, `${JSON.stringify(f)}\n${sql}\n${JSON.stringify(params)}`);
          }
        } finally {
          db.close();
        }
      }),
      { numRuns: 400 },
    );
  });

  void it('matches wildcards case-sensitively and escapes LIKE metacharacters', () => {
    const rows: Row[] = ['Train-1', 'train-2', 'x%y', 'xzy', 'a_b', 'acb', 'a\\b', 'st*r'].map((displayName, i) => ({
      name: `r${i}`,
      displayName,
      state: 'RUNNING',
      startTime: null,
      numRanks: 1,
      shared: false,
    }));
    const db = openTable(rows);
    const names = (filter: string): string[] => {
      const { sql, params } = compileFilter(parseFilter(filter, FILTER_FIELDS.batchJobs)!, COLUMNS, 'sqlite');
      return (db.prepare(`SELECT display_name FROM t WHERE ${sql} ORDER BY name`).all(...params) as { display_name: string }[]).map((r) => r.display_name);
    };
    assert.deepEqual(names('displayName = "train*"'), ['train-2']);
    assert.deepEqual(names('displayName = "x%*"'), ['x%y']);
    assert.deepEqual(names('displayName = "a_*"'), ['a_b']);
    assert.deepEqual(names(String.raw`displayName = "a\\*"`), ['a\\b']);
    assert.deepEqual(names(String.raw`displayName = "*\**"`), ['st*r']);
    assert.deepEqual(names('displayName != "*-*"'), ['x%y', 'xzy', 'a_b', 'acb', 'a\\b', 'st*r']);
    db.close();
  });
});

void describe('compileOrder and compileKeyset', () => {
  const terms: OrderTerm[] = [
    { field: 'createTime', desc: true },
    { field: 'name', desc: false },
  ];

  void it('orders by the mapped expressions and directions', () => {
    assert.equal(compileOrder(terms, COLUMNS), 'ORDER BY create_time DESC, name ASC');
    assert.equal(compileOrder([{ field: 'startTime', desc: false }], { startTime: "COALESCE(start_time, '')" }), "ORDER BY COALESCE(start_time, '') ASC");
    assert.throws(() => compileOrder([], COLUMNS), /at least one term/);
    assert.throws(() => compileOrder([{ field: 'owner', desc: false }], COLUMNS), /no column for field owner/);
  });

  void it('expands the cursor into an OR chain with one strict comparison per branch', () => {
    assert.deepEqual(compileKeyset(terms, COLUMNS, ['2026-01-01T00:00:00.000Z', 'n1'], 'sqlite'), {
      sql: '(create_time <= ? AND ((create_time < ?) OR (create_time = ? AND name > ?)))',
      params: ['2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'n1'],
    });
    assert.deepEqual(compileKeyset(terms, COLUMNS, ['t', 'n1'], 'postgres', 4), {
      sql: '(create_time <= $4 AND ((create_time < $4) OR (create_time = $4 AND name > $5)))',
      params: ['t', 'n1'],
    });
  });

  void it('rejects a cursor that does not fit the order', () => {
    for (const after of [['only-one'], ['a', 'b', 'c'], [{}, 'n'], [null, 'n'], [Number.NaN, 'n']]) {
      assert.throws(
        () => compileKeyset(terms, COLUMNS, after, 'sqlite'),
        (e: unknown) => e instanceof ApiError && e.details[0]?.fieldViolations?.[0]?.field === 'pageToken',
      );
    }
  });

  void it('selects exactly the rows after the cursor, for any mixed-direction order with ties and NULLs', () => {
    const orderCols = { a: 'a', b: "COALESCE(b, '')", name: 'name' };
    const rowArb = fc.record({ a: fc.integer({ min: 0, max: 2 }), b: fc.option(fc.constantFrom('x', 'y', 'Y'), { nil: null }) });
    const termsArb = fc
      .tuple(fc.subarray(['a', 'b']), fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), fc.boolean())
      .chain(([fields, dirs, swap]) => fc.constant([...(swap ? fields.reverse() : fields), 'name'].map((field, i) => ({ field, desc: dirs[i]! }))));
    fc.assert(
      fc.property(fc.array(rowArb, { minLength: 1, maxLength: 15 }), termsArb, (rows, order) => {
        const db = new Database(':memory:');
        try {
          db.exec('CREATE TABLE t (name TEXT PRIMARY KEY, a INTEGER NOT NULL, b TEXT)');
          const insert = db.prepare('INSERT INTO t VALUES (?, ?, ?)');
          rows.forEach((r, i) => insert.run(`n${String(i).padStart(2, '0')}`, r.a, r.b));
          const keys = order.map((t, i) => `${orderCols[t.field as keyof typeof orderCols]} AS k${i}`).join(', ');
          const sorted = db.prepare(`SELECT name, ${keys} FROM t ${compileOrder(order, orderCols)}`).all() as Record<string, string | number>[];
          sorted.forEach((cursorRow, i) => {
            const after = order.map((_t, j) => cursorRow[`k${j}`]);
            const ks = compileKeyset(order, orderCols, after, 'sqlite');
            const rest = db.prepare(`SELECT name FROM t WHERE ${ks.sql} ${compileOrder(order, orderCols)}`).all(...ks.params) as { name: string }[];
            assert.deepEqual(
              rest.map((r) => r.name),
              sorted.slice(i + 1).map((r) => r.name),
            );
          });
        } finally {
          db.close();
        }
      }),
      { numRuns: 300 },
    );
  });
});
