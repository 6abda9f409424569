/**
 * Entry point. `npm start` runs everything on this machine (the embedded default). Roles can run
 * apart: `node dist/src/main.js worker|api|agents` (several comma-separated), and
 * `node dist/src/main.js agent --pool <name> --host <id>` joins this machine to a node pool.
 */
import { ConfigError, loadConfig } from './config';
import { runHostAgent } from './agent/standalone';
import { ALL_ROLES, type Role, type RunningService, startService } from './service';

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
  const service: RunningService = await startService({ config, roles, printNewKey: true });
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
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      service.logger.warn('second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
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
  else process.stderr.write(`batchd failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
