/**
 * The Temporal SDK's process-wide Runtime, installed once per process by every role that runs a
 * worker (the service and the standalone host agent): the SDK's own log lines go to our pino logger.
 */
import { DefaultLogger, type LogLevel, Runtime } from '@temporalio/worker';
import { type Logger } from 'pino';

let runtimeInstalled = false;

/**
 * An activity-only worker (every host agent) is already built without workflows: the SDK then tells
 * its core `taskTypes.enableWorkflows: false`, so nothing polls for workflow tasks. SDK 1.24 still
 * logs this line at WARN for such a worker (worker.ts `workflow$`), where it logs the same fact about
 * Nexus at INFO; it reports the configuration we chose, so it is logged as what it is: debug.
 */
export const NO_WORKFLOWS_MESSAGE = 'No workflows registered, not polling for workflow tasks';

/** Temporal's core logs go to our logger at WARN and above. */
export function installRuntime(logger: Logger): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (l: LogLevel, message: string) => (l === 'ERROR' ? 'error' : l === 'WARN' && message !== NO_WORKFLOWS_MESSAGE ? 'warn' : 'debug');
  Runtime.install({
    // The process decides how to stop on signals (src/main.ts), not the SDK.
    shutdownSignals: [],
    logger: new DefaultLogger('WARN', (entry) => logger[level(entry.level, entry.message)]({ sdk: entry.meta }, entry.message)),
  });
}
