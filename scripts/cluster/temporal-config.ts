/**
 * Temporal server configuration for the cluster: one file per service process (they differ only in
 * the metrics port, since each process serves its own /metrics), all on the cluster's PostgreSQL for
 * both persistence and visibility, every service on the bridge address. Modelled on the module's
 * config/development-postgres12.yaml at v1.29.1.
 */
import { stringify } from 'yaml';
import {
  bridgeAddress,
  type ClusterOptions,
  portsOf,
  POSTGRES_USER,
  type Secrets,
  TEMPORAL_DB,
  TEMPORAL_SERVICES,
  type TemporalService,
  VISIBILITY_DB,
} from './plan';

/**
 * History shards are fixed when the persistence schema is first used and can never change for that
 * database; 4 suits one machine (production clusters use 512 and up; docs/deployment.md).
 */
export const HISTORY_SHARDS = 4;

export function temporalConfig(o: ClusterOptions, secrets: Secrets, service: TemporalService, dynamicConfigFile: string): string {
  const ports = portsOf(o);
  const ip = bridgeAddress(o);
  const store = (database: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName: database,
      connectAddr: `127.0.0.1:${ports.postgres}`,
      connectProtocol: 'tcp',
      user: POSTGRES_USER,
      password: secrets.postgresPassword,
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const services = Object.fromEntries(
    TEMPORAL_SERVICES.map((s) => [
      s,
      {
        rpc: {
          grpcPort: ports[s],
          membershipPort: ports.membership[s],
          bindOnIP: ip,
          ...(s === 'frontend' ? { httpPort: ports.frontendHttp } : {}),
        },
      },
    ]),
  );
  const config = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: HISTORY_SHARDS,
      datastores: { 'postgres-default': store(TEMPORAL_DB, 20), 'postgres-visibility': store(VISIBILITY_DB, 10) },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: ip },
      metrics: { prometheus: { framework: 'tally', timerType: 'histogram', listenAddress: `127.0.0.1:${ports.metrics[service]}` } },
    },
    services,
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: { active: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: `${ip}:${ports.frontend}` } },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    archival: { history: { state: 'disabled' }, visibility: { state: 'disabled' } },
    namespaceDefaults: { archival: { history: { state: 'disabled' }, visibility: { state: 'disabled' } } },
    dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
  };
  return stringify(config);
}

/** Dynamic config: the module's development-sql.yaml's essentials, plus what batchd needs. */
export function dynamicConfig(): string {
  return stringify({
    'limit.maxIDLength': [{ value: 255, constraints: {} }],
    'frontend.enableUpdateWorkflowExecution': [{ value: true }],
    'history.hostLevelCacheMaxSize': [{ value: 8192 }],
  });
}
