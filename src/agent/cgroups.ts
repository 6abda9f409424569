/**
 * A cgroup per rank, so that stopping a rank stops every process it made — whatever it did to leave
 * its process group or session (setsid, double fork, nohup, env -i) — and so that its memory can be
 * limited and its use measured. Two kernels' interfaces, one shape:
 *   - cgroup v2 (one unified tree at /sys/fs/cgroup): `cgroup.kill`, memory.max/peak, cpu.stat;
 *   - cgroup v1 (a tree per controller): `pids` and `freezer` are required (the kill is freeze →
 *     SIGKILL every member → thaw, so nothing can fork while it is killed); `memory` and `cpuacct`
 *     are used when mounted.
 * Each agent has its own folder `batchd/<agent digest>/` in each tree; a rank's cgroup is a leaf in it.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './processes';

export interface RankCgroupLimits {
  memoryBytes?: number;
  pidsMax?: number;
}

export interface RankCgroupStats {
  cpuSeconds?: number;
  peakMemoryBytes?: number;
  /** Processes the kernel's OOM killer killed in this cgroup. */
  oomKills: number;
}

export interface RankCgroup {
  readonly name: string;
  /** The files a launcher writes its own pid into, before it runs any code of the rank. */
  readonly procsFiles: string[];
  readonly memoryLimit: number | undefined;
  pids(): number[];
  signalAll(signal: NodeJS.Signals): void;
  /** Kills every process in the cgroup; resolves once it is empty (or after `timeoutMs`). */
  killAll(timeoutMs?: number): Promise<boolean>;
  stats(): RankCgroupStats;
  /** Removes the cgroup (it must be empty); retried briefly while the kernel finishes the exits. */
  remove(): Promise<void>;
}

export interface CgroupTree {
  readonly kind: 'v1' | 'v2';
  /** Whether memory can be limited and measured here. */
  readonly memory: boolean;
  create(name: string, limits: RankCgroupLimits): RankCgroup;
  /** The rank cgroups that exist in this agent's folder (a previous life's leftovers, or live ones). */
  list(): string[];
  open(name: string): RankCgroup;
  /** Removes the agent's folder once no rank cgroup is left in it. */
  close(): Promise<void>;
}

const V2_ROOT = '/sys/fs/cgroup';
const V1_ROOT = '/sys/fs/cgroup';

/** Which cgroup interface this machine offers to a root process, or why none is usable. */
export function detectCgroups(): { kind: 'v1' | 'v2'; root: string } | { problem: string } {
  if (existsSync(join(V2_ROOT, 'cgroup.controllers'))) return { kind: 'v2', root: V2_ROOT };
  const missing = ['pids', 'freezer'].filter((c) => !existsSync(join(V1_ROOT, c, 'cgroup.procs')));
  if (missing.length === 0) return { kind: 'v1', root: V1_ROOT };
  return { problem: `no cgroup v2 at ${V2_ROOT} and cgroup v1 controller(s) ${missing.join(', ')} not mounted` };
}

export function openCgroupTree(kind: 'v1' | 'v2', root: string, agentDigest: string): CgroupTree {
  return kind === 'v2' ? new V2Tree(root, agentDigest) : new V1Tree(root, agentDigest);
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function tryWrite(path: string, value: string): boolean {
  try {
    writeFileSync(path, value);
    return true;
  } catch {
    return false;
  }
}

function pidsIn(procsFile: string): number[] {
  const text = readText(procsFile) ?? '';
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

function signalEach(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** `key value` lines (memory.events, cpu.stat, memory.oom_control) to a lookup. */
function keyed(text: string | undefined, key: string): number | undefined {
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k === key && v !== undefined) return Number(v);
  }
  return undefined;
}

function numberIn(path: string): number | undefined {
  const t = readText(path)?.trim();
  return t === undefined || t === '' || t === 'max' ? undefined : Number(t);
}

async function removeDirs(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    for (let attempt = 0; attempt < 40; attempt++) {
      try {
        rmdirSync(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        // EBUSY: the last members are still exiting.
        await sleep(25);
      }
    }
  }
}

class V2Tree implements CgroupTree {
  readonly kind = 'v2' as const;
  readonly memory: boolean;
  private readonly dir: string;

  constructor(
    private readonly root: string,
    agentDigest: string,
  ) {
    this.dir = join(root, 'batchd', agentDigest);
    mkdirSync(this.dir, { recursive: true });
    // Hand the controllers down to the rank leaves (best effort: a controller not offered stays off).
    for (const d of [root, join(root, 'batchd'), this.dir]) {
      for (const c of ['memory', 'pids', 'cpu']) tryWrite(join(d, 'cgroup.subtree_control'), `+${c}`);
    }
    this.memory = (readText(join(this.dir, 'cgroup.subtree_control')) ?? '').includes('memory');
  }

  create(name: string, limits: RankCgroupLimits): RankCgroup {
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    let memoryLimit: number | undefined;
    if (limits.memoryBytes !== undefined && this.memory) {
      if (!tryWrite(join(dir, 'memory.max'), String(limits.memoryBytes))) throw new Error(`cannot set memory.max of ${dir}`);
      tryWrite(join(dir, 'memory.swap.max'), '0');
      memoryLimit = limits.memoryBytes;
    }
    if (limits.pidsMax) tryWrite(join(dir, 'pids.max'), String(limits.pidsMax));
    return new V2Cgroup(name, dir, memoryLimit);
  }

  list(): string[] {
    return readdirSync(this.dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  }

  open(name: string): RankCgroup {
    return new V2Cgroup(name, join(this.dir, name), numberIn(join(this.dir, name, 'memory.max')));
  }

  async close(): Promise<void> {
    if (this.list().length === 0) await removeDirs([this.dir]);
  }
}

class V2Cgroup implements RankCgroup {
  readonly procsFiles: string[];

  constructor(
    readonly name: string,
    private readonly dir: string,
    readonly memoryLimit: number | undefined,
  ) {
    this.procsFiles = [join(dir, 'cgroup.procs')];
  }

  pids(): number[] {
    return pidsIn(join(this.dir, 'cgroup.procs'));
  }

  signalAll(signal: NodeJS.Signals): void {
    signalEach(this.pids(), signal);
  }

  async killAll(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pids().length > 0) {
      if (!tryWrite(join(this.dir, 'cgroup.kill'), '1')) signalEach(this.pids(), 'SIGKILL');
      if (Date.now() > deadline) return false;
      await sleep(10);
    }
    return true;
  }

  stats(): RankCgroupStats {
    const usec = keyed(readText(join(this.dir, 'cpu.stat')), 'usage_usec');
    return {
      cpuSeconds: usec === undefined ? undefined : usec / 1e6,
      peakMemoryBytes: numberIn(join(this.dir, 'memory.peak')),
      oomKills: keyed(readText(join(this.dir, 'memory.events')), 'oom_kill') ?? 0,
    };
  }

  remove(): Promise<void> {
    return removeDirs([this.dir]);
  }
}

/** v1: the same leaf name in each controller's tree. pids and freezer always; memory and cpuacct if mounted. */
class V1Tree implements CgroupTree {
  readonly kind = 'v1' as const;
  readonly memory: boolean;
  private readonly controllers: string[];

  constructor(
    private readonly root: string,
    private readonly agentDigest: string,
  ) {
    this.controllers = ['pids', 'freezer', ...['memory', 'cpuacct'].filter((c) => existsSync(join(root, c, 'cgroup.procs')))];
    this.memory = this.controllers.includes('memory');
    for (const c of this.controllers) mkdirSync(this.folder(c), { recursive: true });
  }

  private folder(controller: string): string {
    return join(this.root, controller, 'batchd', this.agentDigest);
  }

  private dirs(name: string): Record<string, string> {
    return Object.fromEntries(this.controllers.map((c) => [c, join(this.folder(c), name)]));
  }

  create(name: string, limits: RankCgroupLimits): RankCgroup {
    const dirs = this.dirs(name);
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    let memoryLimit: number | undefined;
    if (limits.memoryBytes !== undefined && dirs.memory) {
      if (!tryWrite(join(dirs.memory, 'memory.limit_in_bytes'), String(limits.memoryBytes))) throw new Error(`cannot set the memory limit of ${dirs.memory}`);
      // With swap accounting, memory + swap gets the same limit: a rank cannot swap its way past it.
      tryWrite(join(dirs.memory, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
      memoryLimit = limits.memoryBytes;
    }
    if (limits.pidsMax) tryWrite(join(dirs.pids!, 'pids.max'), String(limits.pidsMax));
    return new V1Cgroup(name, dirs, memoryLimit);
  }

  list(): string[] {
    const names = new Set<string>();
    for (const c of this.controllers) {
      try {
        for (const e of readdirSync(this.folder(c), { withFileTypes: true })) if (e.isDirectory()) names.add(e.name);
      } catch {
        // folder gone
      }
    }
    return [...names];
  }

  async close(): Promise<void> {
    if (this.list().length === 0) await removeDirs(this.controllers.map((c) => this.folder(c)));
  }

  open(name: string): RankCgroup {
    const dirs = this.dirs(name);
    return new V1Cgroup(name, dirs, dirs.memory ? numberIn(join(dirs.memory, 'memory.limit_in_bytes')) : undefined);
  }
}

class V1Cgroup implements RankCgroup {
  readonly procsFiles: string[];

  constructor(
    readonly name: string,
    private readonly dirs: Record<string, string>,
    readonly memoryLimit: number | undefined,
  ) {
    this.procsFiles = Object.values(dirs).map((d) => join(d, 'cgroup.procs'));
  }

  pids(): number[] {
    return pidsIn(join(this.dirs.pids!, 'cgroup.procs'));
  }

  signalAll(signal: NodeJS.Signals): void {
    signalEach(this.pids(), signal);
  }

  /** Freeze (nothing can fork or run), SIGKILL every member, thaw (the kills take effect); until empty. */
  async killAll(timeoutMs = 10_000): Promise<boolean> {
    const freezer = join(this.dirs.freezer!, 'freezer.state');
    const deadline = Date.now() + timeoutMs;
    while (this.pids().length > 0) {
      tryWrite(freezer, 'FROZEN');
      for (let i = 0; i < 100 && readText(freezer)?.trim() !== 'FROZEN'; i++) await sleep(2);
      signalEach(this.pids(), 'SIGKILL');
      tryWrite(freezer, 'THAWED');
      if (Date.now() > deadline) return false;
      await sleep(5);
    }
    return true;
  }

  stats(): RankCgroupStats {
    const ns = this.dirs.cpuacct ? numberIn(join(this.dirs.cpuacct, 'cpuacct.usage')) : undefined;
    const mem = this.dirs.memory;
    return {
      cpuSeconds: ns === undefined ? undefined : ns / 1e9,
      peakMemoryBytes: mem ? numberIn(join(mem, 'memory.max_usage_in_bytes')) : undefined,
      oomKills: mem ? (keyed(readText(join(mem, 'memory.oom_control')), 'oom_kill') ?? 0) : 0,
    };
  }

  remove(): Promise<void> {
    return removeDirs(Object.values(this.dirs));
  }
}
