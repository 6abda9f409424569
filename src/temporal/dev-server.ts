/**
 * The embedded Temporal server: `temporal server start-dev` with a SQLite file, as a child process we
 * own. Search attributes are registered on the command line (effective for a new database) and again
 * through the operator service (for a database created before an attribute existed).
 *
 * `superviseDevServer` keeps it running: a server that dies is started again on the same SQLite file
 * and port (everything durable is in the file, and every connection to it reconnects), after a
 * backoff, a bounded number of times in a row; past that the owner is told, and ends the service.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { type Logger } from 'pino';
import { describeError } from './errors';

export interface DevServerOptions {
  cliPath: string;
  /** Folder of the SQLite file; undefined keeps the database in memory (tests that need no restart). */
  dataDir?: string;
  port: number;
  /** Listen address (default 127.0.0.1). */
  ip?: string;
  /** undefined: headless. */
  uiPort?: number;
  namespace: string;
  searchAttributes: ReadonlyArray<{ name: string; type: string }>;
  extraArgs?: string[];
  /** Where the server's own log lines go. */
  onLog?: (line: string) => void;
  readyTimeoutMs?: number;
}

export interface DevServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  process: ChildProcess;
  /** Resolves when the process has exited, however it ended. */
  exited: Promise<DevServerExit>;
  stop(): Promise<void>;
}

const SA_TYPE_NAME: Record<string, string> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const address = `127.0.0.1:${options.port}`;
  const args = ['server', 'start-dev', '--ip', options.ip ?? '127.0.0.1', '--port', String(options.port), '--namespace', options.namespace];
  if (options.dataDir !== undefined) {
    mkdirSync(options.dataDir, { recursive: true });
    args.push('--db-filename', join(options.dataDir, 'temporal.sqlite'));
  }
  if (options.uiPort !== undefined) args.push('--ui-port', String(options.uiPort));
  else args.push('--headless');
  for (const sa of options.searchAttributes) args.push('--search-attribute', `${sa.name}=${SA_TYPE_NAME[sa.type] ?? sa.type}`);
  args.push('--log-level', 'warn', '--log-format', 'json', ...(options.extraArgs ?? []));

  const child = spawn(options.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      // The server logs JSON (--log-format json); a reason reads better as its message alone.
      tail.push(messageOf(line));
      if (tail.length > 20) tail.shift();
      options.onLog?.(line);
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let exited: DevServerExit | undefined;
  const exitPromise = new Promise<DevServerExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) {
      throw new Error(`the Temporal dev server ${exitText(exited)} during start: ${tail.slice(-3).join(' | ')}`);
    }
    if (await namespaceReady(address, options.namespace)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exitPromise;
      throw new Error(`the Temporal dev server at ${address} was not ready within ${options.readyTimeoutMs ?? 60_000} ms: ${tail.slice(-3).join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    address,
    uiUrl: options.uiPort !== undefined ? `http://127.0.0.1:${options.uiPort}` : undefined,
    process: child,
    exited: exitPromise,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exitPromise;
      clearTimeout(timer);
    },
  };
}

async function namespaceReady(address: string, namespace: string): Promise<boolean> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: 1000 });
    await connection.withDeadline(Date.now() + 1000, () => connection!.workflowService.describeNamespace({ namespace }));
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

function messageOf(line: string): string {
  try {
    const parsed = JSON.parse(line) as { msg?: unknown };
    return typeof parsed.msg === 'string' ? parsed.msg : line;
  } catch {
    return line;
  }
}

/** How a process ended, in words: `was killed by SIGKILL`, `exited with code 1`. */
export function exitText(exit: DevServerExit): string {
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

export interface SupervisionOptions {
  logger: Logger;
  /** Restarts in a row before giving up; a server that then runs for stableMs resets the count. */
  maxRestarts: number;
  /** Told once, when the server cannot be restarted; the service cannot go on without it. */
  onGiveUp: (reason: string) => void;
  /** Wait before restart n (1-based): 1 s, 2 s, 4 s… at most 30 s. */
  backoffMs?: (attempt: number) => number;
  stableMs?: number;
}

/** The embedded dev server, kept running (see the file's comment). */
export interface SupervisedDevServer {
  address: string;
  uiUrl?: string;
  /** The server's process now (a new one after each restart). */
  readonly current: DevServer;
  stop(): Promise<void>;
}

export async function superviseDevServer(options: DevServerOptions, s: SupervisionOptions): Promise<SupervisedDevServer> {
  const backoffMs = s.backoffMs ?? ((n: number) => Math.min(30_000, 1000 * 2 ** (n - 1)));
  const stableMs = s.stableMs ?? 60_000;
  let current = await startDevServer(options);
  let startedAt = Date.now();
  let restartsInARow = 0;
  let stopping = false;
  let recovering: Promise<void> | undefined;
  let wake: (() => void) | undefined;

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const recover = async (exit: DevServerExit): Promise<void> => {
    const diedAt = Date.now();
    if (diedAt - startedAt >= stableMs) restartsInARow = 0;
    const how = exitText(exit);
    s.logger.warn({ code: exit.code, signal: exit.signal }, `the Temporal dev server ${how}; restarting it on the same database`);
    let lastReason = `it ${how}`;
    while (!stopping) {
      if (restartsInARow >= s.maxRestarts) {
        const reason = `the Temporal dev server ${how} and could not be restarted (${s.maxRestarts} attempts in a row): ${lastReason}`;
        s.logger.fatal({ attempts: s.maxRestarts }, reason);
        s.onGiveUp(reason);
        return;
      }
      restartsInARow += 1;
      const waitMs = backoffMs(restartsInARow);
      s.logger.info({ attempt: restartsInARow, of: s.maxRestarts, inMs: waitMs }, 'restarting the Temporal dev server');
      await pause(waitMs);
      if (stopping) return;
      try {
        const server = await startDevServer(options);
        if (stopping) {
          await server.stop();
          return;
        }
        current = server;
        startedAt = Date.now();
        s.logger.info({ attempt: restartsInARow, downMs: Date.now() - diedAt, address: server.address }, 'the Temporal dev server restarted on the same database');
        watch(server);
        return;
      } catch (err) {
        lastReason = describeError(err);
        s.logger.warn({ attempt: restartsInARow, of: s.maxRestarts, reason: lastReason }, 'the Temporal dev server did not restart');
      }
    }
  };

  const watch = (server: DevServer) => {
    void server.exited.then((exit) => {
      if (stopping || server !== current) return;
      recovering = recover(exit).finally(() => {
        recovering = undefined;
      });
    });
  };
  watch(current);

  return {
    address: current.address,
    uiUrl: current.uiUrl,
    get current() {
      return current;
    },
    async stop() {
      stopping = true;
      wake?.();
      await recovering;
      await current.stop();
    },
  };
}
