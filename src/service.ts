/**
 * The composition root. `startService` starts any subset of the service's roles in this process —
 * the embedded Temporal dev server, the control worker, the fleet of fake-host agents, the API — and
 * returns a handle that stops them in reverse order. `npm start` runs all of them; tests and
 * deployments pick roles.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { type Server } from 'node:http';
import { join } from 'node:path';
import { type Client } from '@temporalio/client';
import { type NativeConnection, Worker } from '@temporalio/worker';
import pino, { type Logger } from 'pino';
import { createControlActivities } from '../activities/control';
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { FakeFleet } from './agent/fleet';
import { type IsolationMode, type RankIsolation, startIsolation } from './agent/isolation';
import { createApp, type HealthCheck } from './api/app';
import { keyEntry, KeyRing } from './api/auth';
import { watchKeysFile } from './api/keys-file';
import { apiRoutes } from './api/api-routes';
import { BatchJobService } from './api/batch-job-service';
import { NodePoolService } from './api/node-pool-service';
import { EnvironmentService } from './api/environment-service';
import { mountOpenApi } from './api/openapi';
import { agentToken, bootstrapKey, DEFAULT_ACCOUNT, DEFAULT_USER, ensureDefaultPools, metricsToken, pageTokenSecret } from './bootstrap';
import { mountLogIngest } from './api/log-ingest';
import { Metrics } from './api/metrics';
import { mountConsole } from './api/console';
import { UsageSampler } from './api/usage-sampler';
import { HttpLogSink } from './agent/log-shipper';
import { type Config, ConfigError } from './config';
import { AccountLimits, accountLimitsOf } from './control/account-limits';
import { SharingFile } from './control/sharing-file';
import { listenMetrics, metricsHandler } from './api/metrics-endpoint';
import { KeyRateLimiter } from './api/rate-limit';
import { type LogStore } from './store/log-store';
import { openLogStore } from './store/open-log-store';
import { type ReadModel } from './store/read-model';
import { openReadModel } from './store/open-read-model';
import { ensureTemporalCli } from './temporal/cli';
import { connectClient, connectWorker } from './temporal/connection';
import { installRuntime } from './temporal/runtime';
import { WORKFLOW_THREADS_PRELOAD, workflowThreadsPreloaded, workflowWorkerOptions } from './temporal/workflow-worker';
import { type SupervisedDevServer, superviseDevServer } from './temporal/dev-server';
import { describeError } from './temporal/errors';
import { controlWorkerProblem, temporalProblem } from './temporal/health';
import { TemporalMonitor } from './temporal/monitor';
import { ensureSearchAttributes, waitUntilUsable } from './temporal/search-attributes';
import { PoolWatchdog } from './pool-watchdog';

export type Role = 'temporal' | 'worker' | 'agents' | 'api';
export const ALL_ROLES: readonly Role[] = ['temporal', 'worker', 'agents', 'api'];

export interface ServiceOptions {
  config: Config;
  roles: readonly Role[];
  logger?: Logger;
  /** Print the bootstrap key when this start created it (npm start does; tests do not). */
  printNewKey?: boolean;
  /**
   * Told when the service cannot go on (its embedded Temporal dev server died and could not be
   * restarted); `npm start` then stops and exits with code 3. Without it the reason is only logged.
   */
  onFatal?: (reason: string) => void;
}

export interface RunningService {
  config: Config;
  logger: Logger;
  /** http://host:port of the API, when the api role runs. */
  url?: string;
  temporalAddress: string;
  temporalUiUrl?: string;
  apiKey: string;
  client: Client;
  /** Whether Temporal answers, as this process sees it. */
  temporal: TemporalMonitor;
  store: ReadModel;
  logs: LogStore;
  /** How isolated this process's ranks are (only when it runs agents). */
  isolation?: { mode: IsolationMode; summary: string; warnings: string[] };
  stop(): Promise<void>;
}

/** A start-up step that failed says which step, and what Temporal answered (not only `Failed to start Workflow`). */
async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new Error(`${what}: ${describeError(err)}`, { cause: err });
  }
}

function workflowSource(): { workflowBundle: { codePath: string } } | { workflowsPath: string } {
  const bundle = join(__dirname, '..', 'workflow-bundle.js');
  if (existsSync(bundle)) return { workflowBundle: { codePath: bundle } };
  return { workflowsPath: require.resolve('../workflows') };
}

export async function startService(options: ServiceOptions): Promise<RunningService> {
  const { config } = options;
  const roles = new Set(options.roles);
  const logger = options.logger ?? pino({ level: config.LOG_LEVEL, base: undefined });
  // Only roles with a worker use the SDK's native runtime; installed, its log forwarding would keep a
  // process that has none (an API replica, a test's API-only service) from ever exiting.
  if (roles.has('worker') || roles.has('agents')) installRuntime(logger);
  mkdirSync(config.dataDir, { recursive: true });

  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) {
      try {
        await s();
      } catch (err) {
        logger.error({ err }, 'error while stopping');
      }
    }
  };

  try {
    // The API's keys (the control worker reads them too: a job must act for a user of its account).
    // A keys file that does not load stops the start here, before anything runs.
    const keys = new KeyRing();
    const key = bootstrapKey(config.dataDir, config.BOOTSTRAP_API_KEY);
    keys.set('the bootstrap key', [keyEntry(key.key, DEFAULT_ACCOUNT, DEFAULT_USER)]);
    if ((roles.has('api') || roles.has('worker')) && config.API_KEYS_FILE) {
      const watcher = watchKeysFile(keys, { path: config.API_KEYS_FILE, reloadMs: config.API_KEYS_RELOAD_MS, logger });
      stops.push(() => Promise.resolve(watcher.stop()));
    }

    let devServer: SupervisedDevServer | undefined;
    if (roles.has('temporal') && config.embeddedTemporal) {
      const cliPath = config.TEMPORAL_CLI_PATH ?? ensureTemporalCli();
      devServer = await superviseDevServer(
        {
          cliPath,
          dataDir: config.dataDir,
          port: config.TEMPORAL_PORT,
          ip: config.TEMPORAL_BIND_IP,
          uiPort: config.TEMPORAL_UI_PORT,
          namespace: config.TEMPORAL_NAMESPACE,
          searchAttributes: ALL_SEARCH_ATTRIBUTES,
          onLog: (line) => logger.debug({ temporal: line }, 'temporal dev server'),
        },
        {
          logger,
          maxRestarts: config.TEMPORAL_RESTART_ATTEMPTS,
          // The supervisor has logged the reason (fatal); the owner decides whether the process ends.
          onGiveUp: (reason) => options.onFatal?.(reason),
        },
      );
      const server = devServer;
      stops.push(() => server.stop());
      logger.info({ address: devServer.address, ui: devServer.uiUrl }, 'Temporal dev server ready');
    }

    const client = await step(`connecting to Temporal at ${config.temporalAddress}`, () => connectClient(config));
    stops.push(() => client.connection.close());
    const temporal = new TemporalMonitor({ client, logger });
    temporal.start();
    stops.push(() => temporal.stop());
    await step(`registering batchd's search attributes in namespace ${config.TEMPORAL_NAMESPACE}`, async () => {
      const added = await ensureSearchAttributes(client, config.TEMPORAL_NAMESPACE);
      if (added.length > 0) logger.info({ added }, 'registered search attributes');
      // Also when none was added here: another process (an admin-tools job) may have added them just now.
      await waitUntilUsable(client, config.TEMPORAL_NAMESPACE, { timeoutMs: config.TEMPORAL_SEARCH_ATTRIBUTES_WAIT_MS, logger });
    });

    const store: ReadModel = await openReadModel({
      databaseUrl: config.DATABASE_URL,
      sqliteFile: join(config.dataDir, 'batchd.sqlite'),
      postgres: { onIdleError: (err) => logger.warn({ err: String(err) }, 'read model connection dropped; the pool reconnects') },
    });
    stops.push(() => store.close());
    // Logs live where the read model does: PostgreSQL with DATABASE_URL, so any API replica serves them.
    const logs = await openLogStore({
      databaseUrl: config.DATABASE_URL,
      sqliteFile: join(config.dataDir, 'logs.sqlite'),
      postgres: { onIdleError: (err) => logger.warn({ err: String(err) }, 'log store connection dropped; the pool reconnects') },
    });
    stops.push(() => logs.close());
    const limits = new AccountLimits(store, accountLimitsOf(config));
    const sharingFile = SharingFile.open(config.SHARING_FILE, logger);
    const sharing = () => sharingFile.current();

    let nativeConnection: NativeConnection | undefined;
    if (roles.has('worker') || roles.has('agents')) {
      nativeConnection = await step(`connecting workers to Temporal at ${config.temporalAddress}`, () => connectWorker(config));
      const conn = nativeConnection;
      stops.push(() => conn.close());
    }

    const workers: Worker[] = [];
    if (roles.has('worker') && nativeConnection) {
      const activities = createControlActivities({ store, logs, config, client, limits, sharing, knowsUser: (account, email) => keys.knowsUser(account, email) });
      // Jobs and environments on TASK_QUEUE; pools on their own queue, so a flood of job tasks never delays a pool's.
      for (const [taskQueue, maxCachedWorkflows] of [
        [config.TASK_QUEUE, 2000],
        [config.POOL_TASK_QUEUE, 200],
      ] as const) {
        const worker = await Worker.create({
          connection: nativeConnection,
          namespace: config.TEMPORAL_NAMESPACE,
          taskQueue,
          ...workflowSource(),
          // The limit on one activation, above the task timeout (src/temporal/workflow-worker.ts).
          ...workflowWorkerOptions(),
          activities,
          // Live workflows stay cached, so a signal or query does not replay a whole history.
          maxCachedWorkflows,
          maxConcurrentLocalActivityExecutions: 200,
          // In-flight reports finish before the worker exits.
          shutdownGraceTime: '5 seconds',
        });
        const running = worker.run();
        stops.push(async () => {
          if (worker.getState() === 'RUNNING') worker.shutdown();
          await running;
        });
        workers.push(worker);
      }
      logger.info({ taskQueue: config.TASK_QUEUE, poolTaskQueue: config.POOL_TASK_QUEUE }, 'control worker polling');
      if (!workflowThreadsPreloaded()) {
        logger.warn(
          { preload: `--require ${WORKFLOW_THREADS_PRELOAD}` },
          "started without the workflow-thread preload: the SDK's stack-trace hook stays on, so every promise in workflow code builds a source-mapped stack (a pool task 2.4-3x as long per signal, docs/performance.md, run 11); start node with the preload, as npm start does",
        );
      }
    }

    const pools = new NodePoolService({
      client,
      store,
      settings: { taskQueue: config.POOL_TASK_QUEUE, queueWindow: config.POOL_QUEUE_WINDOW, reconcileMs: config.POOL_RECONCILE_MS, hostProbeMs: config.HOST_PROBE_MS },
      logger,
      continueAsNewEvents: config.POOL_CONTINUE_AS_NEW_EVENTS,
      limits,
    });
    const environments = new EnvironmentService({ client, store, taskQueue: config.TASK_QUEUE, logger, limits });
    if (config.DEFAULT_POOLS && roles.has('worker')) {
      const created = await step('creating the default node pools', () => ensureDefaultPools(pools));
      if (created.length > 0) logger.info({ pools: created }, 'created default node pools');
    }
    if (roles.has('worker')) {
      const watchdog = new PoolWatchdog({ store, client, pools, intervalMs: config.POOL_WATCHDOG_MS, logger });
      watchdog.start();
      stops.push(() => watchdog.stop());
    }

    let fleet: FakeFleet | undefined;
    let isolation: RankIsolation | undefined;
    if (roles.has('agents') && nativeConnection) {
      isolation = await startIsolation(config, logger);
      const iso = isolation;
      stops.push(() => Promise.resolve(iso.close()));
      fleet = new FakeFleet({
        store,
        connection: nativeConnection,
        client,
        namespace: config.TEMPORAL_NAMESPACE,
        dataDir: config.dataDir,
        workspaceDir: config.workspaceDir,
        // Agents beside the API write the log store directly; without it here, they ship logs to it.
        logs:
          roles.has('api') || !config.BATCHD_API_URL
            ? logs
            : new HttpLogSink({
                apiUrl: config.BATCHD_API_URL,
                token: config.BATCHD_AGENT_TOKEN ?? '',
                spoolDir: join(config.dataDir, 'log-spool'),
                logger,
                maxBatchBytes: config.MAX_BODY_BYTES,
                spoolMaxBytes: config.LOG_SPOOL_MAX_BYTES,
              }),
        logBudgetBytes: config.LOG_BUDGET_BYTES_PER_JOB,
        logger,
        maxStopGraceMs: config.RANK_STOP_GRACE_MS,
        heartbeatTimeoutMs: config.HOST_HEARTBEAT_TIMEOUT_MS,
        syncMs: config.FLEET_SYNC_MS,
        isolation,
        temporal,
      });
      const f = fleet;
      await f.start();
      stops.push(() => f.stop());
    }

    let url: string | undefined;
    if (roles.has('api')) {
      const secret = pageTokenSecret(config.dataDir, config.PAGE_TOKEN_SECRET);
      const jobs = new BatchJobService({ client, store, logs, config, logger, limits, sharing, temporalProblem: () => temporal.check() });
      const local = workers;
      const health: HealthCheck[] = [
        { name: 'temporal', check: async () => temporal.problem() ?? (await temporalProblem(client)) },
        {
          // In this process, the worker's own state; elsewhere, whether any control worker polls.
          name: 'controlWorker',
          check: async () => {
            if (local.length > 0) {
              const down = local.find((w) => w.getState() !== 'RUNNING');
              return down ? `the control worker for ${down.options.taskQueue} is ${down.getState()}` : undefined;
            }
            return (
              (await controlWorkerProblem(client, config.TEMPORAL_NAMESPACE, config.TASK_QUEUE)) ??
              (await controlWorkerProblem(client, config.TEMPORAL_NAMESPACE, config.POOL_TASK_QUEUE))
            );
          },
        },
      ];
      if (fleet) {
        const f = fleet;
        health.push({ name: 'agents', check: () => Promise.resolve(f.problem()) });
      }
      const metrics = new Metrics({ store, client, logs, logger });
      const usage = new UsageSampler({ client, store, logger, intervalMs: config.USAGE_SAMPLE_MS });
      usage.start();
      stops.push(() => usage.stop());
      const routes = apiRoutes({
        jobs,
        logs,
        pools,
        environments,
        usage,
        pageSecret: secret,
        logLimits: { pageMaxBytes: config.LOG_PAGE_MAX_BYTES, streamsPerAccount: config.MAX_LOG_STREAMS_PER_ACCOUNT, streamIdleMs: config.LOG_STREAM_IDLE_MS },
      });
      // /metrics: on a listener of its own when METRICS_PORT is set (token only if METRICS_TOKEN is),
      // else on the API's port behind METRICS_TOKEN (generated into DATA_DIR when unset).
      if (config.METRICS_PORT !== undefined) {
        const metricsServer = await listenMetrics(metricsHandler(metrics, config.METRICS_TOKEN), config.METRICS_HOST, config.METRICS_PORT);
        stops.push(
          () =>
            new Promise<void>((resolve) => {
              metricsServer.close(() => resolve());
              metricsServer.closeAllConnections();
            }),
        );
        logger.info({ url: `http://${config.METRICS_HOST}:${config.METRICS_PORT}/metrics` }, 'metrics listening');
      }
      const app = createApp({
        keys,
        routes,
        health,
        logger,
        maxBodyBytes: config.MAX_BODY_BYTES,
        temporal: { problem: () => temporal.problem(), callTimeoutMs: config.TEMPORAL_CALL_TIMEOUT_MS },
        observe: (route, method, status, seconds) => metrics.observe(route, method, status, seconds),
        ...(config.API_RATE_LIMIT_PER_SECOND > 0
          ? { rateLimiter: new KeyRateLimiter({ perSecond: config.API_RATE_LIMIT_PER_SECOND, burst: config.API_RATE_LIMIT_BURST }) }
          : {}),
        extra: (a) => {
          mountLogIngest(a, { token: agentToken(config.dataDir, config.AGENT_TOKEN), sink: logs, maxBodyBytes: config.MAX_BODY_BYTES, placement: jobs });
          mountOpenApi(a, routes);
          mountConsole(a);
          if (config.METRICS_PORT === undefined) a.get('/metrics', metricsHandler(metrics, metricsToken(config.dataDir, config.METRICS_TOKEN)));
        },
      });
      const server: Server = await new Promise((resolve, reject) => {
        const s = app.listen(config.PORT, config.HOST, () => resolve(s));
        s.once('error', reject);
      });
      stops.push(
        () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      );
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : config.PORT;
      url = `http://${config.HOST}:${port}`;
      logger.info({ url, console: `${url}/console/` }, 'API listening');
    }

    if (key.created && options.printNewKey) {
      process.stdout.write(
        `\nA new API key was created for ${DEFAULT_USER} (account "${DEFAULT_ACCOUNT}"); it is saved in ${join(config.dataDir, 'api-key')}:\n\n    ${key.key}\n\n` +
          (url ? `Sign in to the web console at ${url}/console/ with it.\n\n` : ''),
      );
    }

    return {
      config,
      logger,
      url,
      temporalAddress: devServer?.address ?? config.temporalAddress,
      temporalUiUrl: devServer?.uiUrl,
      apiKey: key.key,
      client,
      temporal,
      store,
      logs,
      isolation: isolation && { mode: isolation.mode, summary: isolation.summary, warnings: isolation.warnings },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
