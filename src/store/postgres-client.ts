/**
 * A connection checked out of a node-postgres pool, held safely. While checked out, a pooled client
 * has no 'error' listener of the pool's (pg-pool removes its idle listener at checkout), and the
 * client emits 'error' whenever its socket dies — a PostgreSQL restart, a terminated backend — even
 * while a query is running. With no listener that error is thrown at the event loop and ends the
 * process: one restart of the database would kill every API replica and worker that was inside a
 * transaction at that moment. Here the error is kept, the running query fails with it as usual, and
 * the connection is released as broken, so the pool drops it instead of handing it out again.
 */
import { type Pool, type PoolClient } from 'pg';

/** Runs `work` on one connection of `pool`; a connection that failed underneath is dropped, not reused. */
export function withClient<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return held(pool, work);
}

/**
 * Runs `work` in one transaction (`BEGIN ISOLATION LEVEL <mode>` … `COMMIT`); any failure rolls back
 * and is thrown. A connection that cannot even roll back is dropped from the pool rather than reused.
 */
export function inTransaction<T>(pool: Pool, mode: string, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return held(pool, async (client, drop) => {
    await client.query(`BEGIN ISOLATION LEVEL ${mode}`);
    try {
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      // The rollback's own failure would hide `error`: it only tells the pool to drop the connection.
      await client.query('ROLLBACK').catch(drop);
      throw error;
    }
  });
}

async function held<T>(pool: Pool, work: (client: PoolClient, drop: (error: unknown) => void) => Promise<T>): Promise<T> {
  const { client, drop, broken } = await checkOut(pool);
  try {
    return await work(client, drop);
  } finally {
    client.removeListener('error', drop);
    client.release(broken());
  }
}

/**
 * Checks a connection out with its 'error' listener already on. The listener goes on inside
 * pg-pool's callback, not after `await pool.connect()`: the pool hands a new connection out while
 * parsing its ReadyForQuery, and a FATAL in the same TCP segment (a server stopping) is emitted before
 * any promise continuation runs.
 */
function checkOut(pool: Pool): Promise<{ client: PoolClient; drop: (error: unknown) => void; broken: () => Error | undefined }> {
  return new Promise((resolve, reject) => {
    pool.connect((error, client) => {
      if (error !== undefined && error !== null) return reject(error instanceof Error ? error : new Error(String(error)));
      if (client === undefined) return reject(new Error('the PostgreSQL pool answered no connection'));
      let broken: Error | undefined;
      const drop = (failure: unknown) => {
        broken ??= failure instanceof Error ? failure : new Error(String(failure));
      };
      client.on('error', drop);
      resolve({ client, drop, broken: () => broken });
    });
  });
}
