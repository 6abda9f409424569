/**
 * What a host can run, as its agent finds it at start: which executors (shell needs bash, python
 * python3, notebook jupyter-nbconvert) and the python version. The agent sends it when it joins its
 * pool, so that a job no host of its pool can run is refused at create, naming what is missing, instead
 * of failing on a host later (`jupyter-nbconvert: not found`).
 *
 * The probes run as child processes, all three at once, without blocking the event loop: in the
 * embedded service the agents share it with the API and the workers. One after another they held it
 * for about 1.5 s on a small machine (`jupyter-nbconvert --version` alone, which starts Python and
 * imports Jupyter, takes 0.8 s there).
 */
import { execFile } from 'node:child_process';
import { type ExecutorKind } from '../domain/control-model';

export interface HostCapabilities {
  executors: ExecutorKind[];
  /** `Python 3.11.2`, when python3 runs. */
  python?: string;
}

/** How long one probe may take before the program counts as missing. */
const PROBE_TIMEOUT_MS = 10_000;

/** The first line the program prints (`present` when it prints nothing), or undefined when it cannot run. */
function versionOf(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS, env }, (err, stdout) => {
      if (err) resolve(undefined);
      else resolve(stdout.trim().split('\n')[0] || 'present');
    });
  });
}

/** Probes the machine (with `env`'s PATH): the executors whose programs run, and python's version. */
export async function probeCapabilities(env: NodeJS.ProcessEnv = process.env): Promise<HostCapabilities> {
  const [bash, python, nbconvert] = await Promise.all([
    versionOf('bash', ['-c', 'true'], env),
    versionOf('python3', ['--version'], env),
    versionOf('jupyter-nbconvert', ['--version'], env),
  ]);
  const executors: ExecutorKind[] = [];
  if (bash !== undefined) executors.push('shell');
  if (python !== undefined) executors.push('python');
  if (nbconvert !== undefined) executors.push('notebook');
  return { executors, ...(python !== undefined ? { python } : {}) };
}

let probed: Promise<HostCapabilities> | undefined;

/** Probes once per process (every in-process agent shares the machine); agents that join meanwhile share the probe. */
export function hostCapabilities(): Promise<HostCapabilities> {
  probed ??= probeCapabilities();
  return probed;
}
