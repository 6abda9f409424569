/**
 * Ports for test servers, picked below the kernel's ephemeral range.
 *
 * A port taken by binding to 0 is free only until it is closed: a suite picks its API port, then binds
 * it seconds later, after Temporal has started. Meanwhile a Temporal dev server of a suite running
 * beside it binds its own internal services to ports the kernel hands out from the same ephemeral range,
 * and can take the one picked (the API then cannot listen, and its suite waits in vain). Ports picked
 * here come from below that range (the kernel never hands them out for port 0), from a block of this
 * process's own so that two suites starting together do not pick the same one, and each is checked
 * free before it is handed out.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const FIRST = 20_000;
const BLOCK = 160;

function ephemeralStart(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && low > FIRST + BLOCK) return low;
  } catch {
    // not Linux: fall back to the usual default below
  }
  return 32_768;
}

const blocks = Math.floor((ephemeralStart() - FIRST) / BLOCK);
const block = FIRST + (process.pid % blocks) * BLOCK;
let next = Math.floor(Math.random() * BLOCK);

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port on 127.0.0.1 that no one listens on now and the kernel will not hand out to others. */
export async function freePort(): Promise<number> {
  for (let tried = 0; tried < BLOCK; tried++) {
    const port = block + (next++ % BLOCK);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${block}-${block + BLOCK - 1}`);
}
