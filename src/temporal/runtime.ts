/**
 * The Temporal SDK's process-wide Runtime, installed once per process by every role that runs a
 * worker (the service and the standalone host agent): the SDK's own log lines go to our pino logger,
 * the native core's included (by default it writes its own colored lines to stderr).
 *
 * While the server is away, core warns at every retry of every poller, heartbeat and completion —
 * dozens of lines a second from a fleet of agents. The first line of each kind is logged; its repeats
 * within REPEAT_WINDOW_MS go to debug and are counted on the next one logged (`repeats`). The monitor
 * (src/temporal/monitor.ts) says once that the server is away and once that it is back.
 */
import { DefaultLogger, type LogEntry, type LogLevel, Runtime } from '@temporalio/worker';
import { type Logger } from 'pino';

let runtimeInstalled = false;

/**
 * An activity-only worker (every host agent) is already built without workflows: the SDK then tells
 * its core `taskTypes.enableWorkflows: false`, so nothing polls for workflow tasks. SDK 1.24 still
 * logs this line at WARN for such a worker (worker.ts `workflow$`), where it logs the same fact about
 * Nexus at INFO; it reports the configuration we chose, so it is logged as what it is: debug.
 */
export const NO_WORKFLOWS_MESSAGE = 'No workflows registered, not polling for workflow tasks';

export const REPEAT_WINDOW_MS = 30_000;
/** Kinds of line remembered at once (the oldest is forgotten first). */
const MAX_KINDS = 256;

type PinoLevel = 'error' | 'warn' | 'debug';

/**
 * Decides, per core line, whether it is logged at its level or is a repeat. Kinds are the message
 * with its numbers taken out (`gRPC call poll_activity_task_queue retried # times`).
 */
export class RepeatFilter {
  private readonly seen = new Map<string, { since: number; repeats: number }>();

  constructor(private readonly windowMs = REPEAT_WINDOW_MS) {}

  /** undefined: a repeat (count it, log at debug); a number: log it, with that many repeats before it. */
  admit(message: string, now = Date.now()): number | undefined {
    const kind = message.replace(/\d+/g, '#');
    const s = this.seen.get(kind);
    if (s && now - s.since < this.windowMs) {
      s.repeats += 1;
      return undefined;
    }
    this.seen.delete(kind);
    if (this.seen.size >= MAX_KINDS) this.seen.delete(this.seen.keys().next().value as string);
    this.seen.set(kind, { since: now, repeats: 0 });
    return s?.repeats ?? 0;
  }
}

/** Temporal's logs go to our logger at WARN and above. */
export function installRuntime(logger: Logger): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const repeats = new RepeatFilter();
  const level = (l: LogLevel, message: string): PinoLevel => (l === 'ERROR' ? 'error' : l === 'WARN' && message !== NO_WORKFLOWS_MESSAGE ? 'warn' : 'debug');
  const emit = (entry: LogEntry) => {
    let at = level(entry.level, entry.message);
    const meta: Record<string, unknown> = { sdk: entry.meta };
    // Only core's own lines repeat by the dozen; workflow and activity lines are each an event.
    if (at !== 'debug' && entry.meta?.sdkComponent === 'core') {
      const before = repeats.admit(entry.message);
      if (before === undefined) at = 'debug';
      else if (before > 0) meta.repeats = before;
    }
    logger[at](meta, entry.message);
  };
  Runtime.install({
    // The process decides how to stop on signals (src/main.ts), not the SDK.
    shutdownSignals: [],
    logger: new DefaultLogger('WARN', emit),
    telemetryOptions: { logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} } },
  });
}
