/**
 * Host identity within a pool: the task queue its agent polls, and for fake pools the host id and a
 * loopback address of its own (the whole of 127.0.0.0/8 reaches this machine), so ranks of different
 * fake hosts bind MASTER_PORT on different addresses as they would on different machines.
 */
import { parseResourceName } from './names';

export function hostTaskQueue(poolName: string, host: string): string {
  const parsed = parseResourceName(poolName);
  if (!parsed || parsed.collection !== 'nodePools') throw new Error(`not a node pool name: ${poolName}`);
  return `node/${parsed.account}/${parsed.id}/${host}`;
}

export function fakeHostId(index: number): string {
  return `h${index}`;
}

export function fakeHostIndex(host: string): number | undefined {
  const m = /^h(\d+)$/.exec(host);
  return m ? Number(m[1]) : undefined;
}

/** 127.A.B.(index+1), A.B from a hash of the pool name. */
export function fakeHostAddress(poolName: string, index: number): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < poolName.length; i++) {
    h ^= poolName.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  const a = 1 + ((h >>> 8) % 254);
  const b = h % 256;
  return `127.${a}.${b}.${(index % 254) + 1}`;
}

/** Host ids an agent may choose: the id rule, so they fit task-queue names and log lines. */
export const HOST_ID_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
