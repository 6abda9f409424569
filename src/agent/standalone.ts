/**
 * `node dist/src/main.js agent --pool accounts/<a>/nodePools/<p> --host <id> [--address <ip>] [--gpus <n>]`:
 * joins this machine to a node pool as one host. Its slots are the GPUs nvidia-smi counts (one slot on
 * a CPU pool). `--gpus` declares GPU slots by hand, for testing GPU pools on machines without GPUs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { type Config, ConfigError } from '../config';
import { HOST_ID_PATTERN } from '../domain/hosts';
import { parseResourceName } from '../domain/names';
import { openLogStore } from '../store/open-log-store';
import { connectClient, connectWorker } from '../temporal/connection';
import { TemporalMonitor } from '../temporal/monitor';
import { installRuntime } from '../temporal/runtime';
import { HostAgent } from './agent';
import { startIsolation } from './isolation';
import { HttpLogSink } from './log-shipper';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

/** GPUs visible to nvidia-smi; 0 when there is none or no driver. */
export function countGpus(): number {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], { encoding: 'utf8', timeout: 10_000 });
    return out.split('\n').filter((l) => l.trim() !== '').length;
  } catch {
    return 0;
  }
}

function firstAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

export async function runHostAgent(config: Config, args: string[]): Promise<void> {
  const poolName = flag(args, 'pool');
  const host = flag(args, 'host');
  const parsed = poolName ? parseResourceName(poolName) : undefined;
  if (!parsed || parsed.collection !== 'nodePools') throw new ConfigError('--pool must be a node pool name: accounts/<account>/nodePools/<id>');
  if (!host || !HOST_ID_PATTERN.test(host)) throw new ConfigError('--host must be a host id: 1-63 of a-z, 0-9 and -');
  const gpusFlag = flag(args, 'gpus');
  const gpus = gpusFlag !== undefined ? Number(gpusFlag) : countGpus();
  if (!Number.isInteger(gpus) || gpus < 0) throw new ConfigError('--gpus must be a whole number');
  const address = flag(args, 'address') ?? firstAddress();
  const logger = pino({ level: config.LOG_LEVEL, base: undefined });
  installRuntime(logger);
  mkdirSync(config.dataDir, { recursive: true });

  const client = await connectClient(config);
  const connection = await connectWorker(config);
  // Says when the server goes away and comes back; the ranks' outcomes wait for it meanwhile.
  const temporal = new TemporalMonitor({ client, logger });
  temporal.start();
  const apiUrl = config.BATCHD_API_URL;
  const logs = apiUrl
    ? new HttpLogSink({
        apiUrl,
        token: config.BATCHD_AGENT_TOKEN ?? '',
        spoolDir: join(config.dataDir, 'log-spool'),
        logger,
        maxBatchBytes: config.MAX_BODY_BYTES,
        spoolMaxBytes: config.LOG_SPOOL_MAX_BYTES,
      })
    : await openLogStore({ databaseUrl: config.DATABASE_URL, sqliteFile: join(config.dataDir, 'logs.sqlite') });
  const isolation = await startIsolation(config, logger);
  const agent = new HostAgent({
    connection,
    client,
    namespace: config.TEMPORAL_NAMESPACE,
    poolName: poolName as string,
    host,
    address,
    slots: gpus > 0 ? gpus : 1,
    dataDir: config.dataDir,
    workspaceDir: config.workspaceDir,
    logs,
    logBudgetBytes: config.LOG_BUDGET_BYTES_PER_JOB,
    logger,
    maxStopGraceMs: config.RANK_STOP_GRACE_MS,
    heartbeatTimeoutMs: config.HOST_HEARTBEAT_TIMEOUT_MS,
    isolation,
    temporal,
  });
  await agent.start();
  const shutdown = () => {
    void agent.stop().finally(async () => {
      await temporal.stop();
      await isolation.close();
      await connection.close();
      await client.connection.close();
      process.exit(0);
    });
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}
