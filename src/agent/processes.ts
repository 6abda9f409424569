/**
 * Process-table facts the agent needs to kill exactly what it started: a process's start time (so a
 * recycled pid is never mistaken for a rank), and the processes that carry a marker variable in their
 * environment (so children that left their process group with setsid are still found).
 */
import { readFileSync, readdirSync } from 'node:fs';

/** Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined if gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after its closing paren.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Predicates on environment variables; a process matches when every named variable is set and passes. */
export type EnvMatch = Record<string, (value: string) => boolean>;

export function pidsWithEnv(match: EnvMatch): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  const names = Object.keys(match);
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
    } catch {
      continue;
    }
    const seen = new Map<string, string>();
    for (const item of environ.split('\0')) {
      const eq = item.indexOf('=');
      if (eq > 0 && names.includes(item.slice(0, eq))) seen.set(item.slice(0, eq), item.slice(eq + 1));
    }
    if (names.every((n) => seen.has(n) && match[n]!(seen.get(n)!))) out.push(pid);
  }
  return out;
}

/** Kills every process whose environment matches, repeating until none is left (or 5 rounds). */
export function killByEnv(match: EnvMatch): number {
  let killed = 0;
  for (let round = 0; round < 5; round++) {
    const pids = pidsWithEnv(match);
    if (pids.length === 0) break;
    for (const pid of pids) signalProcess(pid, 'SIGKILL');
    killed += pids.length;
  }
  return killed;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
