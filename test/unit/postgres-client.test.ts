import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

/**
 * A server that shuts down while a connection is being checked out. The backend completes the
 * startup (AuthenticationOk, ReadyForQuery) and, in the same TCP segment, sends the FATAL 57P01 that
 * PostgreSQL sends every backend when it stops. node-postgres parses both messages in one 'data'
 * event: the pool hands the connection out on the first, and the client emits 'error' on the second,
 * before any promise continuation of the caller's has run. The connection must already be held by a
 * listener then, or the process dies of an unhandled 'error' event (as a worker did when the cluster
 * test stopped its PostgreSQL).
 *
 * The check runs in its own process so an unhandled error ends that process, not the test runner.
 */
const CHILD = `
const { createServer } = require('node:net');
const { Pool } = require(${JSON.stringify(require.resolve('pg'))});
const { withClient, inTransaction } = require(${JSON.stringify(require.resolve('../../src/store/postgres-client'))});

function message(type, body) {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const authOk = message('R', Buffer.from([0, 0, 0, 0]));
const ready = message('Z', Buffer.from('I'));
const fatal = message('E', Buffer.from('SFATAL\\0C57P01\\0Mterminating connection due to administrator command\\0\\0', 'latin1'));

const server = createServer((socket) => {
  socket.once('data', () => socket.end(Buffer.concat([authOk, ready, fatal])));
  socket.on('error', () => {});
});
server.listen(0, '127.0.0.1', async () => {
  const pool = new Pool({ host: '127.0.0.1', port: server.address().port, user: 'u', database: 'd', password: 'p' });
  pool.on('error', () => {});
  const outcomes = [];
  for (const [name, run] of [
    ['withClient', () => withClient(pool, (client) => client.query('SELECT 1'))],
    ['inTransaction', () => inTransaction(pool, 'READ COMMITTED', (client) => client.query('SELECT 1'))],
  ]) {
    outcomes.push(await run().then(() => name + ': answered', (e) => name + ': failed: ' + e.message));
  }
  await pool.end();
  server.close();
  process.stdout.write(JSON.stringify(outcomes));
});
`;

describe('a PostgreSQL connection that dies as it is checked out', () => {
  it('fails the caller\'s work with the error, and the process lives on', () => {
    const run = spawnSync(process.execPath, ['-e', CHILD], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 0, `the process ended: ${run.stderr.slice(0, 600)}`);
    const outcomes = JSON.parse(run.stdout) as string[];
    assert.equal(outcomes.length, 2);
    for (const outcome of outcomes) assert.match(outcome, /^(withClient|inTransaction): failed: /);
  });
});
