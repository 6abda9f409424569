/**
 * One rank: a process in its own session and process group, started (by the process's rank spawner,
 * rank-spawner.ts, not by a fork of this process) with the rank's environment on top of a minimal
 * base (the agent's own secrets never reach user code), its stdout and stderr split
 * into lines for the log store, and a stop: SIGTERM, the grace period, then SIGKILL to what is left.
 * An isolated rank (src/agent/isolation.ts) lives in a cgroup of its own: the stop reaches every
 * process in it, whatever left the group, and its end reads what the rank used (CPU, peak memory,
 * out-of-memory kills). Without a cgroup, the stop signals the process group and then sweeps the
 * process table for the rank's marker variable — which a child can drop, so only the cgroup is sure.
 */
import { mkdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { type Executor } from '../domain/batch-job';
import { type RankCgroupStats } from './cgroups';
import { type RankEnvironment, type RankLaunch } from './isolation';
import { groupAlive, killByEnv, signalGroup, sleep } from './processes';
import { type RankStarter } from './rank-spawner';

/** Variables passed through from the agent's environment; everything else comes from the job. */
const BASE_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'USER', 'LOGNAME', 'SHELL', 'TERM', 'PYENV_ROOT', 'PYENV_VERSION'];

export const RANK_MARKER = 'BATCHD_RANK_ID';
export const AGENT_MARKER = 'BATCHD_AGENT';

export interface RankSpec {
  rank: number;
  env: Record<string, string>;
  executor: Executor;
  workDir: string;
  workspaceDir: string;
  /** Identifies the agent that owns this rank, so a restarted agent can find its leftovers. */
  agentKey: string;
  /**
   * Wraps the rank's command in its isolation (uid, cgroup, mounts), given the rank's environment
   * for the variables the isolation sets; none: run it as it is.
   */
  launch?: (command: { file: string; args: string[] }, env: RankEnvironment) => RankLaunch;
  /** Starts the rank's process: the process's rank spawner (rank-spawner.ts). */
  spawner: RankStarter;
}

/** What an isolated rank used, read from its cgroup when it ended. */
export interface RankUsage extends RankCgroupStats {
  memoryLimit?: number;
}

export interface RankExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface OutputLine {
  stream: 'stdout' | 'stderr';
  line: string;
}

/** Lines longer than this are split, so one runaway line cannot exhaust memory or a log page. */
const MAX_LINE = 64 * 1024;

export function commandFor(executor: Executor, workspaceDir: string): { file: string; args: string[] } {
  const inWorkspace = (p: string) => (isAbsolute(p) ? p : resolve(workspaceDir, p));
  switch (executor.kind) {
    case 'shell':
      return { file: 'bash', args: ['-c', executor.shell.command] };
    case 'python':
      return executor.python.targetType === 'MODULE'
        ? { file: 'python3', args: ['-u', '-m', executor.python.target, ...(executor.python.args ?? [])] }
        : { file: 'python3', args: ['-u', inWorkspace(executor.python.target), ...(executor.python.args ?? [])] };
    case 'notebook':
      // The kernel runs in the notebook's folder: execute a copy in the rank's own folder, so each rank
      // writes its files there, and keep the executed notebook (executed.ipynb) as the rank's output.
      return {
        file: 'bash',
        args: [
          '-c',
          'cp -- "$1" ./notebook.ipynb && exec jupyter-nbconvert --to notebook --execute --output executed.ipynb notebook.ipynb',
          'notebook',
          inWorkspace(executor.notebook.notebookFilename),
        ],
      };
  }
}

export class RankProcess {
  /** Resolves with the rank's pid once it started, or undefined when it could not be started. */
  readonly started: Promise<number | undefined>;
  readonly exited: Promise<RankExit>;
  private exit: RankExit | undefined;
  private startedPid: number | undefined;
  private lastLine = '';
  private readonly launch: RankLaunch;
  private finished: Promise<void> | undefined;
  /** Set once an isolated rank has ended and its cgroup was read. */
  usage: RankUsage | undefined;

  constructor(
    readonly spec: RankSpec,
    onLine: (line: OutputLine) => void,
  ) {
    const command = commandFor(spec.executor, spec.workspaceDir);
    const rankEnv: RankEnvironment = (isolation) => {
      const env: Record<string, string> = {};
      for (const k of BASE_ENV) {
        const v = process.env[k];
        if (v !== undefined) env[k] = v;
      }
      Object.assign(env, isolation, spec.env, { [AGENT_MARKER]: spec.agentKey });
      // Python modules and files of the workspace import each other as they would from its root.
      env.PYTHONPATH = env.PYTHONPATH ? `${spec.workspaceDir}:${env.PYTHONPATH}` : spec.workspaceDir;
      return env;
    };
    if (spec.launch) {
      this.launch = spec.launch(command, rankEnv);
    } else {
      mkdirSync(spec.workDir, { recursive: true });
      this.launch = { ...command, env: rankEnv({}) };
    }
    const { file } = command;
    const partial = { stdout: '', stderr: '' };
    const split = (stream: 'stdout' | 'stderr', chunk: string) => {
      partial[stream] += chunk;
      let nl: number;
      while ((nl = partial[stream].indexOf('\n')) >= 0 || partial[stream].length > MAX_LINE) {
        const cut = nl >= 0 && nl <= MAX_LINE ? nl : MAX_LINE;
        const line = partial[stream].slice(0, cut);
        partial[stream] = partial[stream].slice(nl >= 0 && cut === nl ? cut + 1 : cut);
        this.note(stream, line, onLine);
      }
    };
    const flush = (stream: 'stdout' | 'stderr') => {
      if (partial[stream]) this.note(stream, partial[stream], onLine);
      partial[stream] = '';
    };
    let resolveStarted: (pid: number | undefined) => void = () => undefined;
    this.started = new Promise((r) => (resolveStarted = r));
    this.exited = new Promise((resolveExit) => {
      // The rank is spawned by the process's rank spawner (rank-spawner.ts), never by forking this one.
      spec.spawner.spawn(
        { file: this.launch.file, args: this.launch.args, cwd: spec.workDir, env: this.launch.env, detached: true },
        {
          spawned: (pid) => {
            this.startedPid = pid;
            resolveStarted(pid);
          },
          data: split,
          end: flush,
          error: (message) => {
            // The executable could not be started (e.g. python3 or jupyter-nbconvert missing).
            this.note('stderr', `batchd: could not start ${file}: ${message}`, onLine);
            this.exit = { code: 127, signal: null };
            resolveStarted(this.startedPid);
            resolveExit(this.exit);
          },
          exit: (code, signal) => {
            this.exit ??= { code, signal };
            resolveStarted(this.startedPid);
            resolveExit(this.exit);
          },
          lost: (reason) => {
            flush('stdout');
            flush('stderr');
            resolveStarted(this.startedPid);
            if (this.exit) return;
            const pid = this.startedPid;
            if (pid === undefined) {
              this.note('stderr', `batchd: could not start ${file}: ${reason}`, onLine);
              this.exit = { code: 127, signal: null };
            } else {
              // Nothing reads its output or its exit any more: it is killed (its cgroup, if any, when its leftovers are reaped).
              signalGroup(pid, 'SIGKILL');
              this.note('stderr', `batchd: ${reason}; the rank was killed, its exit status and further output are lost`, onLine);
              this.exit = { code: null, signal: 'SIGKILL' };
            }
            resolveExit(this.exit);
          },
        },
      );
    });
  }

  private note(stream: 'stdout' | 'stderr', line: string, onLine: (l: OutputLine) => void): void {
    if (line.trim()) this.lastLine = line;
    onLine({ stream, line });
  }

  /** Undefined until the rank started (see `started`), and when it could not be started. */
  get pid(): number | undefined {
    return this.startedPid;
  }

  get lastOutput(): string {
    return this.lastLine;
  }

  get done(): boolean {
    return this.exit !== undefined;
  }

  /**
   * SIGTERM to the group, up to `graceMs` for it to go, SIGKILL to what is left, then anything that
   * carries this rank's marker elsewhere in the process table. Resolves when the rank is reaped.
   * An isolated rank: the same, to every process of its cgroup, and the kill is the cgroup's.
   */
  async stop(graceMs: number): Promise<void> {
    const pgid = await this.started;
    if (pgid === undefined) return;
    const cgroup = this.launch.cgroup;
    if (cgroup) {
      if (this.finished) return this.finished;
      if (!this.done || cgroup.pids().length > 0) {
        cgroup.signalAll('SIGTERM');
        signalGroup(pgid, 'SIGTERM'); // a launcher that has not joined its cgroup yet
        const deadline = Date.now() + graceMs;
        while ((!this.done || cgroup.pids().length > 0) && Date.now() < deadline) await sleep(50);
        await cgroup.killAll();
        signalGroup(pgid, 'SIGKILL');
      }
      await this.exited;
      return this.finish();
    }
    if (!this.done || groupAlive(pgid)) {
      signalGroup(pgid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while ((!this.done || groupAlive(pgid)) && Date.now() < deadline) await sleep(50);
      signalGroup(pgid, 'SIGKILL');
    }
    await this.exited;
    this.sweep();
  }

  /** Kills leftovers of a rank that ended by itself (background children in its group, session or cgroup). */
  async reapLeftovers(): Promise<void> {
    const cgroup = this.launch.cgroup;
    if (cgroup) {
      if (this.finished) return this.finished;
      if (cgroup.pids().length > 0) {
        cgroup.signalAll('SIGTERM');
        await sleep(200);
        await cgroup.killAll();
      }
      return this.finish();
    }
    const pgid = await this.started;
    if (pgid !== undefined && groupAlive(pgid)) {
      signalGroup(pgid, 'SIGTERM');
      await sleep(200);
      signalGroup(pgid, 'SIGKILL');
    }
    this.sweep();
  }

  /** Once, after the last process of an isolated rank is gone: read what it used, then remove the cgroup. */
  private finish(): Promise<void> {
    const cgroup = this.launch.cgroup;
    if (!cgroup) return Promise.resolve();
    this.finished ??= (async () => {
      this.usage = { ...cgroup.stats(), memoryLimit: cgroup.memoryLimit };
      await cgroup.remove();
    })();
    return this.finished;
  }

  private sweep(): void {
    const id = this.spec.env[RANK_MARKER];
    if (id !== undefined) killByEnv({ [RANK_MARKER]: (v) => v === id, [AGENT_MARKER]: (v) => v === this.spec.agentKey });
  }
}

export function rankWorkDir(dataDir: string, account: string, jobId: string, rank: number): string {
  return join(dataDir, 'work', account, jobId, `rank-${rank}`);
}
