/**
 * Entry point. `npm start` runs everything on this machine (the embedded default). Roles can run
 * apart: `node dist/src/main.js worker|api|agents` (several comma-separated), and
 * `node dist/src/main.js agent --pool <name> --host <id>` joins this machine to a node pool.
 *
 * Exit codes (docs/operators.md): 0 stopped by SIGINT/SIGTERM; 1 could not start (the reason on
 * stderr) or could not stop cleanly; 3 the embedded Temporal dev server died and could not be
 * restarted, so a supervisor above should act.
 */
import { ConfigError, loadConfig } from './config';
import { runHostAgent } from './agent/standalone';
import { ALL_ROLES, type Role, type RunningService, startService } from './service';
import { describeError } from './temporal/errors';

export const EXIT_TEMPORAL_LOST = 3;

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  const config = loadConfig();
  if (command === 'agent') {
    await runHostAgent(config, rest);
    return;
  }
  const roles: Role[] = command ? (command.split(',') as Role[]) : [...ALL_ROLES];
  for (const r of roles) {
    if (!ALL_ROLES.includes(r)) throw new ConfigError(`unknown role "${r}"; use ${ALL_ROLES.join(', ')} or agent`);
  }
  const run: { service?: RunningService; stopping: boolean } = { stopping: false };
  // The embedded dev server died for good: stop what runs, and exit so that a supervisor above acts.
  const onFatal = (reason: string) => {
    if (run.stopping) return;
    run.stopping = true;
    process.stderr.write(`batchd is stopping: ${reason}\n`);
    void (run.service?.stop() ?? Promise.resolve()).finally(() => process.exit(EXIT_TEMPORAL_LOST));
  };
  const service: RunningService = await startService({ config, roles, printNewKey: true, onFatal });
  run.service = service;
  if (service.url) {
    process.stdout.write(
      [
        '',
        `batchd is running.`,
        `  API:          ${service.url}   (key in ${config.dataDir}/api-key)`,
        `  Temporal:     ${service.temporalAddress}${service.temporalUiUrl ? `   UI: ${service.temporalUiUrl}` : ''}`,
        `  Health:       ${service.url}/healthz`,
        ...(service.isolation ? [`  Ranks:        ${service.isolation.summary}`, ...service.isolation.warnings.map((w) => `                WARNING: ${w}`)] : []),
        '  Stop with Ctrl-C.',
        '',
      ].join('\n'),
    );
  }
  const shutdown = (signal: string) => {
    if (run.stopping) {
      service.logger.warn('second signal: exiting now');
      process.exit(1);
    }
    run.stopping = true;
    service.logger.info({ signal }, 'stopping');
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        service.logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
  // The reason with its causes, in words; no stack (it says where, not why).
  else process.stderr.write(`batchd failed to start: ${describeError(err)}\n`);
  process.exit(1);
});
