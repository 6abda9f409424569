/** Finds the Temporal CLI (building it once when missing) through scripts/ensure-temporal-cli.sh. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export function ensureTemporalCli(): string {
  const script = join(__dirname, '..', '..', '..', 'scripts', 'ensure-temporal-cli.sh');
  const result = spawnSync('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  const path = result.stdout.trim().split('\n').pop();
  if (result.status !== 0 || !path) {
    throw new Error('no Temporal CLI: run `npm run temporal:ensure` (needs Go) or set TEMPORAL_CLI_PATH');
  }
  return path;
}
