/**
 * What `npm test` needs beyond node_modules, checked before any suite starts: the Debian packages of
 * scripts/install-system-deps.sh and a Temporal CLI (scripts/ensure-temporal-cli.sh). Installed when
 * this process can (root: apt-get; the CLI: built from its Go module into the user's cache);
 * otherwise the run stops at once with the exact command to run, instead of a list of failed suites.
 * When everything is there this costs a few tens of milliseconds (one dpkg-query, a file test).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export interface Prerequisites {
  /** The command that failed to find or install something, and what to do: undefined when all is there. */
  problem?: string;
  /** What was installed or built on the way. */
  installed: string[];
}

export function ensureTestPrerequisites(root: string, isRoot = process.getuid?.() === 0): Prerequisites {
  const installed: string[] = [];
  const depsScript = join(root, 'scripts', 'install-system-deps.sh');
  const check = spawnSync('bash', [depsScript, '--check'], { encoding: 'utf8' });
  if (check.status === 2) return { installed, problem: `${check.stderr.trim()}\n(then run npm test again)` };
  const missing = check.stdout.split('\n').filter(Boolean);
  if (check.status !== 0 && missing.length === 0) return { installed, problem: `bash ${depsScript} --check failed: ${check.stderr.trim()}` };
  if (missing.length > 0) {
    if (!isRoot) {
      return {
        installed,
        problem: `npm test needs Debian packages that are not installed: ${missing.join(' ')}.\nRun:\n\n    sudo bash scripts/install-system-deps.sh\n\nthen npm test again.`,
      };
    }
    process.stderr.write(`[npm test] installing the Debian packages the suites need: ${missing.join(' ')}\n`);
    const install = spawnSync('bash', [depsScript], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (install.status !== 0) return { installed, problem: `bash scripts/install-system-deps.sh failed (exit ${install.status ?? 'signal'}); fix what it printed above, then run npm test again.` };
    installed.push(...missing);
    // The build (npm test's pretest) ran before gcc may have been here: compile the rank launcher now.
    spawnSync('bash', [join(root, 'scripts', 'build-native.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  // Prints the CLI's path when it is there; builds it (minutes, once) when Go is; else says what is missing.
  const cli = spawnSync('bash', [join(root, 'scripts', 'ensure-temporal-cli.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (cli.status !== 0) {
    return {
      installed,
      problem: 'npm test needs a Temporal CLI and could not find or build one (see above). Install Go (https://go.dev/dl) and run\n\n    npm run temporal:ensure\n\nor set TEMPORAL_CLI_PATH to a temporal binary, then run npm test again.',
    };
  }
  return { installed };
}
