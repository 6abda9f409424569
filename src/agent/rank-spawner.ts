/**
 * Ranks are started by a small long-lived process, not by the process of the agent: a fork of the
 * service blocks its event loop (the API's too, in the embedded stack) for as long as the kernel
 * copies its page tables, milliseconds to tens of them per rank (docs/performance.md).
 * One RankSpawner per process (its RankIsolation holds it, shared by the process's agents: the
 * embedded stack runs every fake host's agent in one process, and a spawner costs ~45 MiB RSS) forks
 * rank-spawner-child.js once, at the first rank, with a 32 MiB heap and an empty environment, and
 * sends it each rank's launch (file, arguments, folder, environment) over the IPC channel; the child
 * spawns it and sends back the pid, the output and the end. Signals to ranks (stop, kill, the cgroup's
 * kill) still go from the agent, by pid and cgroup.
 *
 * If the spawner dies, every rank it had not yet started fails to start (exit 127, with a line that
 * says why) and every rank it was running is killed and fails (its output and exit status can no
 * longer be read); a new spawner is forked for the next rank, and the log says so. A rank whose start
 * the spawner has not answered within `startTimeoutMs` means it is stuck: it is killed, with the same
 * outcome. It ends with close(), or by itself when its agent's process dies (its channel closes).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { type Logger } from 'pino';

export interface SpawnRequest {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  detached: boolean;
}

/** Agent → spawner. */
export type SpawnerRequest = { t: 'spawn'; id: number } & SpawnRequest;

/** Spawner → agent, in the order they happened for each rank; `done` is the last. */
export type SpawnerEvent =
  | { t: 'spawned'; id: number; pid: number }
  | { t: 'out'; id: number; s: 'stdout' | 'stderr'; d: string }
  | { t: 'end'; id: number; s: 'stdout' | 'stderr' }
  | { t: 'error'; id: number; message: string }
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { t: 'done'; id: number };

/** What a rank's start reports, in order: spawned or error, data and end, exit; or lost at any point. */
export interface SpawnHandlers {
  spawned(pid: number): void;
  data(stream: 'stdout' | 'stderr', chunk: string): void;
  end(stream: 'stdout' | 'stderr'): void;
  /** The executable could not be started (Node's spawn error, e.g. `spawn python3 ENOENT`). */
  error(message: string): void;
  exit(code: number | null, signal: NodeJS.Signals | null): void;
  /** The spawner died, was closed or is stuck: nothing more comes of this rank. */
  lost(reason: string): void;
}

/** What starts a rank's process: the RankSpawner (bench/rank-start.ts compares it with a spawn in-process). */
export interface RankStarter {
  /** Starts a rank; the handlers hear of it asynchronously, never from within this call. */
  spawn(request: SpawnRequest, handlers: SpawnHandlers): void;
}

/** Runs one command through a starter to its end: its exit and the tail of its stderr. */
export function runToEnd(starter: RankStarter, request: SpawnRequest): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve) => {
    let stderr = '';
    starter.spawn(request, {
      spawned: () => undefined,
      data: (stream, chunk) => {
        if (stream === 'stderr') stderr = (stderr + chunk).slice(-4096);
      },
      end: () => undefined,
      error: (message) => resolve({ code: 127, signal: null, stderr: message }),
      exit: (code, signal) => resolve({ code, signal, stderr }),
      lost: (reason) => resolve({ code: null, signal: null, stderr: reason }),
    });
  });
}

export interface RankSpawnerOptions {
  logger: Logger;
  /** Put on the spawner's command line, so an operator (and a test) can tell whose it is. */
  tag: string;
  /** How long the spawner may take to answer a start before it is held stuck and killed. */
  startTimeoutMs?: number;
}

const SCRIPT = join(__dirname, 'rank-spawner-child.js');
const HEAP_MB = 32;

interface Pending {
  handlers: SpawnHandlers;
  timer: NodeJS.Timeout | undefined;
}

export class RankSpawner implements RankStarter {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly ranks = new Map<number, Pending>();
  private closed = false;
  private readonly startTimeoutMs: number;

  constructor(private readonly o: RankSpawnerOptions) {
    this.startTimeoutMs = o.startTimeoutMs ?? 30_000;
  }

  /** The spawner's pid while one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  spawn(request: SpawnRequest, handlers: SpawnHandlers): void {
    if (this.closed) {
      process.nextTick(() => handlers.lost('the rank spawner is closed (the agent is stopping)'));
      return;
    }
    const child = this.ensure();
    const id = this.nextId++;
    const timer = setTimeout(() => this.stuck(child, id), this.startTimeoutMs);
    timer.unref();
    this.ranks.set(id, { handlers, timer });
    // While ranks are in flight the spawner keeps this process alive, as their pipes used to.
    if (this.ranks.size === 1) this.hold(child, true);
    const message: SpawnerRequest = { t: 'spawn', id, ...request };
    // A send to a spawner that just died fails here; its death (below) fails this rank with the others.
    child.send(message, (err) => {
      if (err) this.o.logger.debug({ err: String(err) }, 'could not send a start to the rank spawner');
    });
  }

  /** Closes the channel; the spawner exits (killed if it has not within 2 s). Ranks still in flight are lost. */
  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    if (!child) return;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.disconnect();
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(kill);
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const child = fork(SCRIPT, [this.o.tag], {
      // A small heap, and a small young generation: the output it relays is short-lived strings.
      execArgv: [`--max-old-space-size=${HEAP_MB}`, '--max-semi-space-size=1'],
      // Nothing of the agent's environment: the spawner needs none, and each rank's comes with its start.
      env: {},
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    this.hold(child, false);
    let exit: string | undefined;
    let disconnected = false;
    // Lost once both the exit and the channel's end were seen: every message it sent has been read.
    const gone = () => {
      if (exit !== undefined && disconnected) this.lost(child, exit);
    };
    child.on('message', (event: SpawnerEvent) => this.event(event));
    child.on('exit', (code, signal) => {
      exit = `the rank spawner (pid ${child.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`;
      gone();
    });
    child.on('disconnect', () => {
      disconnected = true;
      gone();
    });
    child.on('error', (err) => {
      // Only a failed fork reaches here (sends have their callback).
      if (child.pid === undefined) {
        exit = `the rank spawner could not be started: ${err.message}`;
        disconnected = true;
        gone();
      }
    });
    this.o.logger.debug({ pid: child.pid }, 'rank spawner started');
    return child;
  }

  private event(e: SpawnerEvent): void {
    const p = this.ranks.get(e.id);
    if (!p) return;
    const h = p.handlers;
    switch (e.t) {
      case 'spawned':
        clearTimeout(p.timer);
        h.spawned(e.pid);
        break;
      case 'out':
        h.data(e.s, e.d);
        break;
      case 'end':
        h.end(e.s);
        break;
      case 'error':
        clearTimeout(p.timer);
        h.error(e.message);
        break;
      case 'exit':
        h.exit(e.code, e.signal);
        break;
      case 'done':
        this.forget(e.id);
        break;
    }
  }

  private forget(id: number): void {
    const p = this.ranks.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    this.ranks.delete(id);
    if (this.ranks.size === 0 && this.child) this.hold(this.child, false);
  }

  /** Whether the spawner's channel and its exit keep this process's event loop alive. */
  private hold(child: ChildProcess, on: boolean): void {
    if (on) {
      child.ref();
      child.channel?.ref();
    } else {
      child.unref();
      child.channel?.unref();
    }
  }

  /** A start the spawner has not answered in time: it is stuck, and is killed (its death fails its ranks). */
  private stuck(child: ChildProcess, id: number): void {
    if (!this.ranks.has(id) || this.child !== child) return;
    this.o.logger.error({ pid: child.pid, timeoutMs: this.startTimeoutMs }, 'the rank spawner did not answer a rank start in time; killing it');
    child.kill('SIGKILL');
  }

  private lost(child: ChildProcess, reason: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    const lost = [...this.ranks.values()];
    this.ranks.clear();
    if (this.closed) {
      if (lost.length > 0) this.o.logger.warn({ ranks: lost.length }, 'the rank spawner was closed with ranks in flight; they are lost');
    } else {
      this.o.logger.error(
        { reason, ranks: lost.length },
        `${reason}: the ${lost.length} rank(s) it was starting or running fail; a new spawner starts with the next rank`,
      );
    }
    for (const p of lost) {
      clearTimeout(p.timer);
      p.handlers.lost(this.closed ? 'the rank spawner was closed (the agent is stopping)' : reason);
    }
  }
}
