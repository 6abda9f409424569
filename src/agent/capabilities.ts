/**
 * What a host can run, as its agent finds it at start: which executors (shell needs bash, python
 * python3, notebook jupyter-nbconvert) and the python version. The agent sends it when it joins its
 * pool, so that a job no host of its pool can run is refused at create, naming what is missing, instead
 * of failing on a host later (`jupyter-nbconvert: not found`).
 */
import { execFileSync } from 'node:child_process';
import { type ExecutorKind } from '../domain/control-model';

export interface HostCapabilities {
  executors: ExecutorKind[];
  /** `Python 3.11.2`, when python3 runs. */
  python?: string;
}

function versionOf(file: string, args: string[]): string | undefined {
  try {
    const out = execFileSync(file, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return out.trim().split('\n')[0] || 'present';
  } catch {
    return undefined;
  }
}

let probed: HostCapabilities | undefined;

/** Probes once per process (every in-process agent shares the machine). */
export function hostCapabilities(): HostCapabilities {
  if (probed) return probed;
  const executors: ExecutorKind[] = [];
  if (versionOf('bash', ['-c', 'true']) !== undefined) executors.push('shell');
  const python = versionOf('python3', ['--version']);
  if (python !== undefined) executors.push('python');
  if (versionOf('jupyter-nbconvert', ['--version']) !== undefined) executors.push('notebook');
  probed = { executors, ...(python ? { python } : {}) };
  return probed;
}
