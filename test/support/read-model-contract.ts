/**
 * The read model's behavioural contract: every case here runs against each backend (SQLite, PostgreSQL)
 * through the ReadModel interface alone, each case on a fresh, empty store.
 */
import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import { decodePageToken, encodePageToken, queryFingerprint } from '../../src/api/page-token';
import { ApiError } from '../../src/domain/errors';
import { type FilterExpr, parseFilter } from '../../src/domain/filter';
import { FILTER_FIELDS, type ListKind, ORDER_FIELDS, orderSpecOf } from '../../src/domain/list-fields';
import { type OrderTerm, parseOrderBy } from '../../src/domain/order-by';
import { type BatchJobRecord, type ReadModel, type ResourceKind, type StoredResource } from '../../src/store/read-model';
import { filterColumns, orderColumns, TABLES } from '../../src/store/read-model-tables';
import { type QueueRow } from '../../src/store/pool-store';

const SECRET = Buffer.from('test-secret-test-secret');
const T0 = Date.parse('2026-01-01T00:00:00Z');
export const at = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString();

export function job(account: string, id: string, fields: Partial<BatchJobRecord> = {}): BatchJobRecord {
  return {
    name: `accounts/${account}/batchJobs/${id}`,
    nodePoolId: 'pool-1',
    numRanks: 1,
    envVars: {},
    annotations: {},
    shared: false,
    shellExecutor: { command: 'true' },
    createTime: at(0),
    updateTime: at(0),
    createdBy: 'u@example.com',
    state: 'QUEUED',
    status: '',
    ...fields,
  };
}

export const filterOf = (text: string, kind: ListKind = 'batchJobs'): FilterExpr | undefined => parseFilter(text, FILTER_FIELDS[kind]);
export const orderOf = (text: string | undefined, kind: ListKind = 'batchJobs'): OrderTerm[] => parseOrderBy(text, orderSpecOf(kind));
export const idOf = (r: StoredResource): string => r.name.split('/').pop()!;

/** What the contract needs to see beneath the interface, for the store open() returned last. */
/**
 * A pool queue of schema 2 migrated to the current one (both stores' migration tests): the row the old
 * schema held (`SCHEMA_2_ROW_SQL`), the rows written after the migration, and the queue read back.
 */
export const SCHEMA_2_ROW_SQL = "INSERT INTO pool_queue (pool, seq, job_name, workflow_id, ranks, enqueued_at) VALUES ('p', 1, 'old', 'old', 2, '2026-01-01T00:00:00.000Z')";
export const MIGRATED_INSERTS: QueueRow[] = [
  { jobName: 'retry', workflowId: 'retry', ranks: 1, seq: 2, enqueuedAt: '2026-01-01T00:00:01.000Z', avoidHosts: ['h0'] },
  { jobName: 'urgent', workflowId: 'urgent', ranks: 1, seq: 3, enqueuedAt: '2026-01-01T00:00:02.000Z', priority: 5, account: 'a' },
];
export const MIGRATED_QUEUE: QueueRow[] = [
  { jobName: 'urgent', workflowId: 'urgent', ranks: 1, seq: 3, enqueuedAt: '2026-01-01T00:00:02.000Z', priority: 5, account: 'a' },
  { jobName: 'old', workflowId: 'old', ranks: 2, seq: 1, enqueuedAt: '2026-01-01T00:00:00.000Z' },
  { jobName: 'retry', workflowId: 'retry', ranks: 1, seq: 2, enqueuedAt: '2026-01-01T00:00:01.000Z', avoidHosts: ['h0'] },
];

export interface ContractBackend {
  /** A column's stored values, `ORDER BY` that column, read straight from the backend. */
  storedColumn(table: string, column: string): Promise<unknown[]>;
}

/**
 * Registers the contract's suites under `name`. `open` returns a fresh, empty store for each case (the
 * previous one is closed first); `cleanup` runs once after the last case.
 */
export function readModelContract(name: string, open: () => Promise<ReadModel>, cleanup: () => Promise<void> | void, backend: ContractBackend): void {
  describe(name, () => {
    let store: ReadModel;

    beforeEach(async () => {
      await store?.close().catch(() => undefined);
      store = await open();
    });
    after(async () => {
      await store?.close().catch(() => undefined);
      await cleanup();
    });

    async function names(kind: ResourceKind, account: string, filter?: string, orderBy?: string, pageSize = 200): Promise<string[]> {
      const page = await store.list(kind, { account, filter: filter === undefined ? undefined : filterOf(filter, kind), orderBy: orderOf(orderBy, kind), pageSize });
      return page.items.map(idOf);
    }

    describe('tables', () => {
      it('has a column for every filterable and orderable field of every kind', () => {
        for (const kind of Object.keys(TABLES) as ResourceKind[]) {
          const fcols = filterColumns(kind);
          const ocols = orderColumns(kind);
          for (const f of FILTER_FIELDS[kind]) assert.ok(Object.hasOwn(fcols, f.name), `${kind} filter ${f.name}`);
          for (const f of ORDER_FIELDS[kind]) assert.ok(Object.hasOwn(ocols, f), `${kind} order ${f}`);
        }
      });
    });

    describe('jobCounts', () => {
      it('counts jobs per account, pool and state across all accounts', async () => {
        await store.put('batchJobs', 'a', job('a', 'j1', { state: 'RUNNING', nodePoolId: 'p' }), 1);
        await store.put('batchJobs', 'a', job('a', 'j2', { state: 'RUNNING', nodePoolId: 'p' }), 1);
        await store.put('batchJobs', 'a', job('a', 'j3', { state: 'QUEUED', nodePoolId: 'p' }), 1);
        await store.put('batchJobs', 'b', job('b', 'j1', { state: 'RUNNING', nodePoolId: 'p' }), 1);
        const counts = await store.jobCounts();
        const mine = counts.filter((c) => (c.account === 'a' || c.account === 'b') && c.nodePoolId === 'p');
        assert.deepEqual(mine, [
          { account: 'a', nodePoolId: 'p', state: 'QUEUED', count: 1 },
          { account: 'a', nodePoolId: 'p', state: 'RUNNING', count: 2 },
          { account: 'b', nodePoolId: 'p', state: 'RUNNING', count: 1 },
        ]);
      });
    });

    describe('writes', () => {
      it('round-trips the full resource JSON with its version', async () => {
        const j = job('a', 'j1', { displayName: 'Train "big" \\ model', annotations: { 'x/y': 'z' }, startTime: at(5) });
        assert.equal(await store.put('batchJobs', 'a', j, 3), true);
        assert.deepEqual(await store.get('batchJobs', j.name), { resource: j, version: 3 });
        assert.equal(await store.get('batchJobs', 'accounts/a/batchJobs/none'), undefined);
        assert.equal(await store.get('nodePools', j.name), undefined);
      });

      it('writes only versions newer than the stored one', async () => {
        const name = 'accounts/a/batchJobs/j1';
        assert.equal(await store.put('batchJobs', 'a', job('a', 'j1', { state: 'RUNNING' }), 2), true);
        assert.equal(await store.put('batchJobs', 'a', job('a', 'j1', { state: 'QUEUED' }), 1), false, 'older');
        assert.equal(await store.put('batchJobs', 'a', job('a', 'j1', { state: 'FAILED' }), 2), false, 'same');
        assert.deepEqual((await store.get<BatchJobRecord>('batchJobs', name))?.resource.state, 'RUNNING');
        assert.deepEqual(await names('batchJobs', 'a', 'state = QUEUED'), []);
        assert.equal(await store.put('batchJobs', 'a', job('a', 'j1', { state: 'COMPLETED', numRanks: 4 }), 3), true);
        const got = await store.get<BatchJobRecord>('batchJobs', name);
        assert.equal(got?.version, 3);
        assert.equal(got?.resource.state, 'COMPLETED');
        // The typed columns moved with the body.
        assert.deepEqual(await names('batchJobs', 'a', 'state = COMPLETED AND numRanks = 4'), ['j1']);
        assert.deepEqual(await names('batchJobs', 'a', 'state = RUNNING'), []);
      });

      it('putIfAbsent inserts once and never overwrites', async () => {
        const name = 'accounts/a/batchJobs/j1';
        assert.equal(await store.putIfAbsent('batchJobs', 'a', job('a', 'j1', { state: 'CREATING' }), 0), true);
        assert.equal(await store.putIfAbsent('batchJobs', 'a', job('a', 'j1', { state: 'RUNNING' }), 9), false);
        assert.deepEqual(await store.get('batchJobs', name), { resource: job('a', 'j1', { state: 'CREATING' }), version: 0 });
        assert.equal(await store.put('batchJobs', 'a', job('a', 'j1', { state: 'QUEUED' }), 1), true);
        assert.equal(await store.putIfAbsent('batchJobs', 'a', job('a', 'j1', { state: 'CREATING' }), 0), false);
        assert.equal((await store.get<BatchJobRecord>('batchJobs', name))?.resource.state, 'QUEUED');
      });

      it('removes, reporting whether anything was there', async () => {
        await store.put('batchJobs', 'a', job('a', 'j1'), 1);
        assert.equal(await store.remove('batchJobs', 'accounts/a/batchJobs/j1'), true);
        assert.equal(await store.remove('batchJobs', 'accounts/a/batchJobs/j1'), false);
        assert.equal(await store.get('batchJobs', 'accounts/a/batchJobs/j1'), undefined);
      });

      it('refuses a resource whose name is in another account, and bad field values', async () => {
        await assert.rejects(store.put('batchJobs', 'a', job('b', 'j1'), 1), /does not belong to account a/);
        await assert.rejects(store.put('batchJobs', 'ab', job('a', 'j1'), 1), /does not belong to account ab/);
        await assert.rejects(store.put('batchJobs', 'a', job('a', 'j1', { createTime: 'yesterday' }), 1), /createTime must be an RFC 3339 timestamp/);
        await assert.rejects(store.put('batchJobs', 'a', job('a', 'j1'), 1.5), /version must be an integer/);
        assert.equal(await store.count('batchJobs', 'a'), 0);
      });

      it('stores timestamps as fixed-width UTC, so offsets and precision sort by time', async () => {
        await store.put('batchJobs', 'a', job('a', 'late', { createTime: '2026-01-01T00:30:00Z' }), 1);
        await store.put('batchJobs', 'a', job('a', 'early', { createTime: '2026-01-01T02:00:00+02:00' }), 1);
        await store.put('batchJobs', 'a', job('a', 'mid', { createTime: '2026-01-01T00:00:00.5Z' }), 1);
        assert.deepEqual(await names('batchJobs', 'a', undefined, 'createTime'), ['early', 'mid', 'late']);
        assert.deepEqual(await names('batchJobs', 'a', 'createTime > 2026-01-01T00:00:00Z'), ['late', 'mid']);
        const stored = await backend.storedColumn('batch_jobs', 'create_time');
        assert.deepEqual(stored, ['2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.500Z', '2026-01-01T00:30:00.000Z']);
        // The resource itself comes back as written.
        assert.equal((await store.get<BatchJobRecord>('batchJobs', 'accounts/a/batchJobs/early'))?.resource.createTime, '2026-01-01T02:00:00+02:00');
      });
    });

    describe('filters', () => {
      beforeEach(async () => {
        const rows: [string, Partial<BatchJobRecord>][] = [
          ['j1', { state: 'RUNNING', numRanks: 8, shared: true, displayName: 'Train-large', nodePoolId: 'gpu', startTime: at(10), createTime: at(1) }],
          ['j2', { state: 'QUEUED', numRanks: 2, displayName: 'train-small', nodePoolId: 'gpu', createTime: at(2) }],
          ['j3', { state: 'COMPLETED', numRanks: 1, displayName: 'eval', nodePoolId: 'cpu', startTime: at(3), endTime: at(30), createTime: at(3), createdBy: 'v@example.com' }],
          ['j4', { state: 'FAILED', numRanks: 4, nodePoolId: 'cpu', startTime: at(50), endTime: at(60), createTime: at(4) }],
        ];
        for (const [id, fields] of rows) await store.put('batchJobs', 'a', job('a', id, fields), 1);
        await store.put('batchJobs', 'b', job('b', 'other', { state: 'RUNNING', numRanks: 8, displayName: 'Train-large', nodePoolId: 'gpu' }), 1);
      });

      it('filters on every column type', async () => {
        assert.deepEqual(await names('batchJobs', 'a', 'state = RUNNING OR state = FAILED', 'name'), ['j1', 'j4']);
        assert.deepEqual(await names('batchJobs', 'a', 'node_pool_id = "cpu"', 'name'), ['j3', 'j4']);
        assert.deepEqual(await names('batchJobs', 'a', 'numRanks >= 4', 'name'), ['j1', 'j4']);
        assert.deepEqual(await names('batchJobs', 'a', 'shared = true'), ['j1']);
        assert.deepEqual(await names('batchJobs', 'a', 'shared != true', 'name'), ['j2', 'j3', 'j4']);
        assert.deepEqual(await names('batchJobs', 'a', `create_time >= "${at(2)}" AND createTime < "${at(4)}"`, 'name'), ['j2', 'j3']);
        assert.deepEqual(await names('batchJobs', 'a', 'createdBy = "v@example.com"'), ['j3']);
        assert.deepEqual(await names('batchJobs', 'a', 'name = "accounts/a/batchJobs/j2"'), ['j2']);
      });

      it('matches wildcards case-sensitively', async () => {
        assert.deepEqual(await names('batchJobs', 'a', 'displayName = "train*"'), ['j2']);
        assert.deepEqual(await names('batchJobs', 'a', 'displayName = "*-*"', 'name'), ['j1', 'j2']);
        assert.deepEqual(await names('batchJobs', 'a', 'displayName != "*ain*"', 'name'), ['j3', 'j4']);
      });

      it('treats an absent displayName as empty and an absent timestamp as matching no comparison', async () => {
        assert.deepEqual(await names('batchJobs', 'a', 'displayName = ""'), ['j4']);
        assert.deepEqual(await names('batchJobs', 'a', `startTime < "${at(20)}"`, 'name'), ['j1', 'j3']);
        assert.deepEqual(await names('batchJobs', 'a', `NOT startTime < "${at(20)}"`, 'name'), ['j2', 'j4']);
        assert.deepEqual(await names('batchJobs', 'a', `endTime != "${at(30)}"`, 'name'), ['j1', 'j2', 'j4']);
      });

      it('never reaches another account, whatever the filter', async () => {
        assert.deepEqual(await names('batchJobs', 'a', 'state = RUNNING OR NOT state = RUNNING', 'name'), ['j1', 'j2', 'j3', 'j4']);
        assert.deepEqual(await names('batchJobs', 'a', 'displayName = "Train-large"'), ['j1']);
        assert.deepEqual(await names('batchJobs', 'b', 'numRanks > 0'), ['other']);
        for (const attack of [`x" OR account = "b`, `') OR account = 'b' --`, `'; DROP TABLE batch_jobs; --`, `*' OR '1'='1`]) {
          const value = `"${attack.replace(/["\\]/g, (c) => `\\${c}`)}"`;
          assert.deepEqual(await names('batchJobs', 'a', `displayName = ${value} OR displayName != ${value}`, 'name'), ['j1', 'j2', 'j3', 'j4']);
          assert.deepEqual(await names('batchJobs', 'a', `displayName = ${value}`), []);
        }
        assert.equal(await store.count('batchJobs', 'b'), 1);
        assert.throws(() => filterOf('state = RUNNING OR account = "b"'), ApiError);
      });

      it('counts matches per account', async () => {
        assert.equal(await store.count('batchJobs', 'a'), 4);
        assert.equal(await store.count('batchJobs', 'a', filterOf('node_pool_id = "gpu"')), 2);
        assert.equal(await store.count('batchJobs', 'b', filterOf('node_pool_id = "gpu"')), 1);
        assert.equal(await store.count('batchJobs', 'c'), 0);
      });
    });

    describe('paging', () => {
      const STATES = ['QUEUED', 'RUNNING', 'COMPLETED', 'FAILED'] as const;

      /** Deterministic varied rows: ties on every order field, gaps in the optional ones. */
      function seeded(i: number, prefix = 'j'): BatchJobRecord {
        const id = `${prefix}${String(i).padStart(3, '0')}`;
        const fields: Partial<BatchJobRecord> = {
          createTime: at(Math.floor(i / 3)),
          updateTime: at(500 - ((i * 7) % 41)),
          numRanks: 1 + ((i * 5) % 4),
          state: STATES[i % 4]!,
        };
        if (i % 5 !== 0) fields.displayName = `run-${i % 7}`;
        if (i % 3 !== 0) fields.startTime = at(100 + (i % 11));
        if (i % 4 === 0) fields.endTime = at(200 + (i % 9));
        return job('a', id, fields);
      }

      /** The order's sort key of a record, as the store defines it (absent optional values sort as ''). */
      function compare(terms: readonly OrderTerm[], x: BatchJobRecord, y: BatchJobRecord): number {
        for (const t of terms) {
          const a = (x as object as Record<string, unknown>)[t.field] ?? '';
          const b = (y as object as Record<string, unknown>)[t.field] ?? '';
          if (a !== b) return (a < b ? -1 : 1) * (t.desc ? -1 : 1);
        }
        return 0;
      }

      /** Pages through with real page tokens, calling `between` after each page. */
      async function pageAll(
        orderBy: string | undefined,
        pageSize: number,
        filter?: string,
        between?: (last: BatchJobRecord, page: number) => Promise<void>,
      ): Promise<{ items: BatchJobRecord[]; totals: number[]; pages: number }> {
        const q = queryFingerprint({ account: 'a', filter, orderBy });
        const items: BatchJobRecord[] = [];
        const totals: number[] = [];
        let token: string | undefined;
        let pages = 0;
        do {
          const page = await store.list<BatchJobRecord>('batchJobs', {
            account: 'a',
            filter: filter === undefined ? undefined : filterOf(filter),
            orderBy: orderOf(orderBy),
            pageSize,
            after: token === undefined ? undefined : decodePageToken(SECRET, token, q),
          });
          pages++;
          items.push(...page.items);
          totals.push(page.totalSize);
          token = page.nextAfter && encodePageToken(SECRET, { q, after: page.nextAfter });
          assert.ok(page.items.length <= pageSize);
          if (token) assert.equal(page.items.length, pageSize, 'only the last page may be short');
          if (token && between) await between(page.items[page.items.length - 1]!, pages);
        } while (token && pages < 1000);
        return { items, totals, pages };
      }

      for (const orderBy of [undefined, 'numRanks desc, displayName', 'start_time', 'state, update_time desc', 'end_time desc, create_time', 'name desc']) {
        it(`pages 120 rows by ${orderBy ?? 'the default order'} with no skip or repeat while rows are created`, async () => {
          const originals = Array.from({ length: 120 }, (_, i) => seeded(i));
          for (const r of originals) await store.put('batchJobs', 'a', r, 1);
          const terms = orderOf(orderBy);
          const mustAppear = new Set<string>();
          const mustNotAppear = new Set<string>();
          let created = 0;
          const { items, totals, pages } = await pageAll(orderBy, 25, undefined, async (last) => {
            // New rows that land on both sides of the cursor: those after it must show up, those before must not.
            for (let k = 0; k < 4; k++) {
              const r = seeded(created * 13 + k * 31);
              // Names interleave with the originals' (j042 < j042-new7 < j043), so name orders see both sides too.
              r.name = `${r.name}-new${created++}`;
              await store.put('batchJobs', 'a', r, 1);
              (compare(terms, r, last) > 0 ? mustAppear : mustNotAppear).add(idOf(r));
            }
          });
          const ids = items.map(idOf);
          assert.equal(new Set(ids).size, ids.length, 'no repeats');
          for (const r of originals) assert.ok(ids.includes(idOf(r)), `original ${idOf(r)} skipped`);
          for (const id of mustAppear) assert.ok(ids.includes(id), `new ${id} after the cursor skipped`);
          for (const id of mustNotAppear) assert.ok(!ids.includes(id), `new ${id} before the cursor appeared`);
          for (let i = 1; i < items.length; i++) assert.ok(compare(terms, items[i - 1]!, items[i]!) < 0, `out of order at ${i}`);
          assert.ok(pages >= 5);
          assert.equal(totals[0], 120);
          assert.equal(totals[totals.length - 1], 120 + created);
          assert.ok(mustAppear.size > 0, 'some new rows landed after the cursor');
          assert.ok(mustNotAppear.size > 0, 'some new rows landed before the cursor');
        });
      }

      it('reports totalSize for the whole filter, not the page, and stops exactly at the end', async () => {
        for (let i = 0; i < 60; i++) await store.put('batchJobs', 'a', seeded(i), 1);
        const running = Array.from({ length: 60 }, (_, i) => seeded(i)).filter((r) => r.state === 'RUNNING');
        const { items, totals, pages } = await pageAll(undefined, 5, 'state = RUNNING');
        assert.equal(items.length, running.length);
        assert.deepEqual(totals, Array.from({ length: pages }, () => running.length));
        assert.equal(pages, Math.ceil(running.length / 5));

        const exact = await store.list('batchJobs', { account: 'a', orderBy: orderOf(undefined), pageSize: 60 });
        assert.equal(exact.items.length, 60);
        assert.equal(exact.nextAfter, undefined, 'no cursor when nothing follows');
        const oneShort = await store.list('batchJobs', { account: 'a', orderBy: orderOf(undefined), pageSize: 59 });
        assert.equal(oneShort.items.length, 59);
        assert.ok(oneShort.nextAfter);
        const rest = await store.list('batchJobs', { account: 'a', orderBy: orderOf(undefined), pageSize: 59, after: oneShort.nextAfter });
        assert.equal(rest.items.length, 1);
        assert.equal(rest.totalSize, 60);
        assert.equal(rest.nextAfter, undefined);
      });

      it('takes a page and its totalSize from one snapshot while rows are written concurrently', async () => {
        let writing = true;
        let written = 0;
        const writers = Array.from({ length: 3 }, async (_, w) => {
          while (writing) {
            await store.put('batchJobs', 'a', seeded(written++, `w${w}-`), 1);
            // Yield to the event loop even where a call completes synchronously (SQLite).
            await new Promise((r) => setImmediate(r));
          }
        });
        try {
          for (let i = 0; i < 30; i++) {
            const page = await store.list('batchJobs', { account: 'a', filter: filterOf('numRanks > 0'), orderBy: orderOf(undefined), pageSize: 100_000 });
            assert.equal(page.totalSize, page.items.length, `list ${i}: the count and the page saw different rows`);
            await new Promise((r) => setImmediate(r));
          }
        } finally {
          writing = false;
          await Promise.all(writers);
        }
        assert.ok(written > 0);
      });

      it('appends the name tiebreaker itself when an order lacks it', async () => {
        for (let i = 0; i < 9; i++) await store.put('batchJobs', 'a', seeded(i), 1);
        const first = await store.list('batchJobs', { account: 'a', orderBy: [{ field: 'createTime', desc: false }], pageSize: 4 });
        assert.equal(first.nextAfter?.length, 2);
        assert.deepEqual(first.nextAfter, [at(1), 'accounts/a/batchJobs/j003']);
      });

      it('rejects a cursor that does not fit the order, and a bad page size', async () => {
        await assert.rejects(store.list('batchJobs', { account: 'a', orderBy: orderOf(undefined), pageSize: 5, after: ['x'] }), (e: unknown) => e instanceof ApiError && /pageToken/.test(e.message));
        await assert.rejects(store.list('batchJobs', { account: 'a', orderBy: orderOf(undefined), pageSize: 0 }), (e: unknown) => e instanceof ApiError && /pageSize/.test(e.message));
      });
    });

    describe('other kinds', () => {
      const resource = (account: string, collection: string, id: string, fields: Record<string, unknown>): StoredResource => ({
        name: `accounts/${account}/${collection}/${id}`,
        createTime: at(0),
        updateTime: at(0),
        ...fields,
      });

      it('orders text by code point, not by language rules, across pages too', async () => {
        // Byte (code point) order; a linguistic collation would put '_x' and the lower-case names first.
        const sorted = ['B', 'Z', '_x', 'a', 'a-b', 'ab', 'é'];
        for (const [i, displayName] of ['ab', 'é', 'Z', 'a-b', '_x', 'B', 'a'].entries()) {
          await store.put('nodePools', 'a', resource('a', 'nodePools', `p${i}`, { state: 'READY', displayName }), 1);
        }
        const shown: string[] = [];
        let after: unknown[] | undefined;
        do {
          const page = await store.list<StoredResource & { displayName: string }>('nodePools', { account: 'a', orderBy: orderOf('displayName', 'nodePools'), pageSize: 2, after });
          shown.push(...page.items.map((p) => p.displayName));
          after = page.nextAfter;
        } while (after);
        assert.deepEqual(shown, sorted);
        assert.equal(await store.count('nodePools', 'a', filterOf('displayName > "Z"', 'nodePools')), 5);
        assert.equal(await store.count('nodePools', 'a', filterOf('displayName = "A*"', 'nodePools')), 0, 'wildcards match case exactly');
      });

      it('lists node pools by name, environments by creator, snapshots by create time', async () => {
        for (const id of ['pool-c', 'pool-a', 'pool-b']) await store.put('nodePools', 'a', resource('a', 'nodePools', id, { state: id === 'pool-b' ? 'READY' : 'CREATING' }), 1);
        assert.deepEqual(await names('nodePools', 'a'), ['pool-a', 'pool-b', 'pool-c']);
        assert.deepEqual(await names('nodePools', 'a', 'state = READY'), ['pool-b']);

        await store.put('environments', 'a', resource('a', 'environments', 'e1', { state: 'CONNECTED', createdBy: 'u@x' }), 1);
        await store.put('environments', 'a', resource('a', 'environments', 'e2', { state: 'DISCONNECTED', createdBy: 'v@x' }), 1);
        assert.deepEqual(await names('environments', 'a', 'created_by = "v@x"'), ['e2']);
        assert.deepEqual(await names('environments', 'a', undefined, 'createdBy desc'), ['e2', 'e1']);

        await store.put('snapshots', 'a', resource('a', 'snapshots', 's2', { state: 'READY', createTime: at(2) }), 1);
        await store.put('snapshots', 'a', resource('a', 'snapshots', 's1', { state: 'READY', createTime: at(1) }), 1);
        assert.deepEqual(await names('snapshots', 'a'), ['s1', 's2']);
        await store.put('nodePools', 'b', resource('b', 'nodePools', 'pool-0', { state: 'READY' }), 1);
        const all = await store.listAll('nodePools');
        assert.deepEqual(all.map((r) => r.name), ['accounts/a/nodePools/pool-a', 'accounts/a/nodePools/pool-b', 'accounts/a/nodePools/pool-c', 'accounts/b/nodePools/pool-0']);
        assert.deepEqual(all[1], resource('a', 'nodePools', 'pool-b', { state: 'READY' }));
        // Kinds live in separate tables: a node pool name is not a batch job.
        assert.equal(await store.count('batchJobs', 'a'), 0);
        assert.equal(await store.get('batchJobs', 'accounts/a/nodePools/pool-a'), undefined);
      });
    });

    describe('pool store (the queue and capacity snapshot of each pool)', () => {
      const row = (n: number, ranks = 1) => ({ jobName: `accounts/a/batchJobs/j${n}`, workflowId: `accounts/a/batchJobs/j${n}`, ranks, seq: n, enqueuedAt: at(n) });
      const P = 'accounts/a/nodePools/p';

      it('writes, dedupes, removes and reads a queue in seq order, with its totals, in one step', async () => {
        const first = await store.syncPool({ pool: P, inserts: [row(1), row(2, 4), row(3)], removes: [], read: { afterSeq: 0, limit: 2 } });
        assert.deepEqual(first, { inserted: 3, removed: 0, length: 3, ranks: 6, maxRanks: 4, rows: [row(1), row(2, 4)], step: 0 });
        // A job queued again (a new seq) stays where it was; a removal of an unknown job counts nothing.
        const second = await store.syncPool({ pool: P, inserts: [{ ...row(1), seq: 9 }, row(4)], removes: ['accounts/a/batchJobs/j2', 'nope'], read: { afterSeq: 1, limit: 10 } });
        assert.deepEqual(second, { inserted: 1, removed: 1, length: 3, ranks: 3, maxRanks: 1, rows: [row(3), row(4)], step: 0 });
        // Inserted and removed in one step (granted at once): nothing stays.
        const third = await store.syncPool({ pool: P, inserts: [row(5)], removes: ['accounts/a/batchJobs/j5'] });
        assert.equal(third.length, 3);
        assert.deepEqual(await store.queuedJobs(P, 10), ['accounts/a/batchJobs/j1', 'accounts/a/batchJobs/j3', 'accounts/a/batchJobs/j4']);
        // Another pool's queue is its own.
        assert.equal((await store.syncPool({ pool: `${P}2`, inserts: [row(1)], removes: [] })).length, 1);
        assert.equal((await store.loadPool(P, 0)).length, 3);
      });

      it('keeps the hosts a request avoids with its row, wherever the row is read, and none for a request that avoids nothing', async () => {
        const avoiding = { ...row(1, 2), avoidHosts: ['h1', 'gpu-7'] };
        const first = await store.syncPool({ pool: P, inserts: [avoiding, row(2)], removes: [], read: { afterSeq: 0, limit: 10 } });
        assert.deepEqual(first.rows, [avoiding, row(2)]);
        assert.equal(Object.hasOwn(first.rows[1]!, 'avoidHosts'), false);
        // A refill past the window and a recovery read the rows the same way.
        assert.deepEqual((await store.syncPool({ pool: P, inserts: [], removes: [], read: { afterSeq: 0, limit: 1 } })).rows, [avoiding]);
        assert.deepEqual((await store.loadPool(P, 10)).rows, [avoiding, row(2)]);
        // An empty list is stored as none.
        await store.syncPool({ pool: P, inserts: [{ ...row(3), avoidHosts: [] }], removes: [] });
        assert.deepEqual((await store.loadPool(P, 10)).rows[2], row(3));
        const stored = await backend.storedColumn('pool_queue', 'CAST(avoid_hosts AS TEXT)');
        assert.deepEqual(stored.filter((v) => v !== null), ['["h1","gpu-7"]'], 'a JSON array');
        assert.equal(stored.filter((v) => v === null).length, 2, 'NULL for the two that avoid nothing');
      });

      it('reads, loads and places rows in priority then arrival order, after a key, keeping their sharing terms', async () => {
        const urgent = { ...row(3), priority: 100, account: 'a', preemptible: true, maxRunMs: 60_000 };
        const low = { ...row(4), priority: -5 };
        await store.syncPool({ pool: P, inserts: [row(1), row(2), urgent, low, row(5)], removes: [] });
        const order = ['j3', 'j1', 'j2', 'j5', 'j4'].map((j) => `accounts/a/batchJobs/${j}`);
        assert.deepEqual((await store.loadPool(P, 10)).rows.map((r) => r.jobName), order);
        assert.deepEqual((await store.loadPool(P, 1)).rows, [urgent], 'terms come back as written');
        // A refill after the key (0, 1) (a window that holds j3 and j1), and after (100, 3).
        const after = await store.syncPool({ pool: P, inserts: [], removes: [], read: { afterSeq: 1, limit: 10 } });
        assert.deepEqual(after.rows.map((r) => r.jobName), order.slice(2));
        const afterUrgent = await store.syncPool({ pool: P, inserts: [], removes: [], read: { afterSeq: 3, afterPriority: 100, limit: 2 } });
        assert.deepEqual(afterUrgent.rows.map((r) => r.jobName), order.slice(1, 3));
        const afterLow = await store.syncPool({ pool: P, inserts: [], removes: [], read: { afterSeq: 4, afterPriority: -5, limit: 2 } });
        assert.deepEqual(afterLow.rows, []);
        assert.deepEqual((await store.queuePositions(P, order)).positions, Object.fromEntries(order.map((n, i) => [n, i + 1])));
        assert.deepEqual(await store.queuedJobs(P, 3), order.slice(0, 3));
        assert.equal(Object.hasOwn(after.rows[0]!, 'priority'), false, 'priority 0 reads as absent');
      });

      it('answers positions, keeps the newest snapshot, loads it with the head of the queue, and forgets a dropped pool', async () => {
        await store.syncPool({ pool: P, inserts: [row(1), row(2), row(3)], removes: [], snapshot: { version: 5, state: { hosts: ['h0'] } } });
        assert.deepEqual(await store.queuePositions(P, ['accounts/a/batchJobs/j3', 'accounts/a/batchJobs/j1', 'accounts/a/batchJobs/gone']), {
          length: 3,
          positions: { 'accounts/a/batchJobs/j3': 3, 'accounts/a/batchJobs/j1': 1 },
        });
        await store.syncPool({ pool: P, inserts: [], removes: [], snapshot: { version: 4, state: { hosts: ['stale'] } } });
        const loaded = await store.loadPool(P, 2);
        assert.deepEqual(loaded, { snapshot: { version: 5, state: { hosts: ['h0'] }, step: 1 }, length: 3, ranks: 3, maxRanks: 1, maxSeq: 3, rows: [row(1), row(2)] });
        await store.dropPool(P);
        assert.deepEqual(await store.loadPool(P, 2), { length: 0, ranks: 0, maxRanks: 0, maxSeq: 0, rows: [] });
      });

      it('a checked step that follows a later stored snapshot (a lost step) writes and reads nothing and answers what that step wrote', async () => {
        // Step 1 writes the queue and the first snapshot; a step of a task that was never kept writes step 2.
        const first = await store.syncPool({ pool: P, inserts: [row(1), row(2)], removes: [], snapshot: { version: 3, state: { grants: [] } }, expectStep: 0 });
        assert.equal(first.step, 1);
        const lostStep = await store.syncPool({ pool: P, inserts: [], removes: ['accounts/a/batchJobs/j1'], snapshot: { version: 4, state: { grants: ['j1'] } }, expectStep: 1 });
        assert.equal(lostStep.step, 2);
        // The retried task decides again from step 1: its step is refused whole.
        const retry = await store.syncPool({ pool: P, inserts: [row(3)], removes: ['accounts/a/batchJobs/j2'], snapshot: { version: 4, state: { grants: ['j2'] } }, expectStep: 1, read: { afterSeq: 0, limit: 10 } });
        assert.deepEqual(retry, { inserted: 0, removed: 0, length: 1, ranks: 1, maxRanks: 1, rows: [], step: 2, lost: { version: 4, state: { grants: ['j1'] }, step: 2 } });
        assert.deepEqual(await store.queuedJobs(P, 10), ['accounts/a/batchJobs/j2'], 'neither its insert nor its removal was written');
        // Following step 2, it is written, whatever its version: the step number orders checked snapshots.
        const next = await store.syncPool({ pool: P, inserts: [row(3)], removes: [], snapshot: { version: 4, state: { grants: ['j1', 'j2'] } }, expectStep: 2 });
        assert.equal(next.step, 3);
        assert.equal(next.lost, undefined);
        assert.deepEqual((await store.loadPool(P, 10)).snapshot, { version: 4, state: { grants: ['j1', 'j2'] }, step: 3 });
        assert.deepEqual(await store.poolSnapshot(P), { version: 4, state: { grants: ['j1', 'j2'] }, step: 3 }, 'the snapshot alone reads the same');
        assert.equal(await store.poolSnapshot('accounts/a/nodePools/none'), undefined);
        // A step without a snapshot is checked too, and leaves the number as it is.
        assert.equal((await store.syncPool({ pool: P, inserts: [], removes: [], expectStep: 2 })).lost?.step, 3);
        assert.equal((await store.syncPool({ pool: P, inserts: [], removes: [], expectStep: 3 })).step, 3);
        // An unchecked step (a run from before the check) is written as before, and counts a step.
        assert.equal((await store.syncPool({ pool: P, inserts: [], removes: [], snapshot: { version: 9, state: {} } })).step, 4);
        assert.equal((await store.syncPool({ pool: P, inserts: [], removes: [], snapshot: { version: 8, state: { stale: true } } })).step, 4, 'an older version is not written');
      });

      it('amendPoolSnapshot: a job\'s claim writes the state and counts the step one up; the pool\'s next step follows it', async () => {
        const P = 'accounts/a/nodePools/amended';
        await store.syncPool({ pool: P, inserts: [], removes: [], snapshot: { version: 3, state: { held: [] } }, expectStep: 0 });
        const seen: unknown[] = [];
        const answer = await store.amendPoolSnapshot(P, (state) => {
          seen.push(state);
          return { answer: 'claimed', write: { held: ['j1'] } };
        });
        assert.equal(answer, 'claimed');
        assert.deepEqual(seen, [{ held: [] }], 'it reads the stored state');
        assert.deepEqual(await store.poolSnapshot(P), { version: 3, state: { held: ['j1'] }, step: 2 }, 'written one step on, the version kept');
        // An amendment that writes nothing leaves the step; one of a pool without a snapshot reads undefined.
        assert.equal(await store.amendPoolSnapshot(P, () => ({ answer: 1 })), 1);
        assert.equal((await store.poolSnapshot(P))?.step, 2);
        assert.equal(await store.amendPoolSnapshot('accounts/a/nodePools/none', (state) => ({ answer: state })), undefined);
        // The pool's step that followed step 1 is refused and answers the claim.
        const refused = await store.syncPool({ pool: P, inserts: [], removes: [], snapshot: { version: 4, state: { held: [] } }, expectStep: 1 });
        assert.deepEqual(refused.lost, { version: 3, state: { held: ['j1'] }, step: 2 });
        // Claims that race each other are applied one after the other: none is lost.
        await Promise.all(
          ['j2', 'j3', 'j4', 'j5'].map((job) =>
            store.amendPoolSnapshot(P, (state) => ({ answer: undefined, write: { held: [...(state as { held: string[] }).held, job] } })),
          ),
        );
        const after = await store.poolSnapshot(P);
        assert.deepEqual(((after?.state as { held: string[] }).held).sort(), ['j1', 'j2', 'j3', 'j4', 'j5']);
        assert.equal(after?.step, 6);
      });
    });
  });
}
