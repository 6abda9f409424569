/** One place that turns configuration into Temporal connections: a Client for the API, NativeConnections for workers. */
import { readFileSync } from 'node:fs';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import { type Config } from '../config';

type TemporalSettings = Pick<
  Config,
  'temporalAddress' | 'TEMPORAL_NAMESPACE' | 'TEMPORAL_TLS' | 'TEMPORAL_TLS_CERT' | 'TEMPORAL_TLS_KEY' | 'TEMPORAL_TLS_CA' | 'TEMPORAL_TLS_SERVER_NAME' | 'TEMPORAL_API_KEY'
>;

function tlsOf(s: TemporalSettings): ConnectionOptions['tls'] {
  if (!s.TEMPORAL_TLS && !s.TEMPORAL_TLS_CERT && !s.TEMPORAL_TLS_CA && !s.TEMPORAL_API_KEY) return undefined;
  return {
    ...(s.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: s.TEMPORAL_TLS_SERVER_NAME } : {}),
    ...(s.TEMPORAL_TLS_CA ? { serverRootCACertificate: readFileSync(s.TEMPORAL_TLS_CA) } : {}),
    ...(s.TEMPORAL_TLS_CERT && s.TEMPORAL_TLS_KEY
      ? { clientCertPair: { crt: readFileSync(s.TEMPORAL_TLS_CERT), key: readFileSync(s.TEMPORAL_TLS_KEY) } }
      : {}),
  };
}

export async function connectClient(s: TemporalSettings): Promise<Client> {
  const options: ConnectionOptions = { address: s.temporalAddress, tls: tlsOf(s) };
  if (s.TEMPORAL_API_KEY) options.apiKey = s.TEMPORAL_API_KEY;
  const connection = await Connection.connect(options);
  // A query to a closed workflow would be answered by replay with its last state; batchd reads live
  // jobs and pools by query and must learn instead that the workflow has ended.
  return new Client({ connection, namespace: s.TEMPORAL_NAMESPACE, workflow: { queryRejectCondition: 'NOT_OPEN' } });
}

export async function connectWorker(s: TemporalSettings): Promise<NativeConnection> {
  const options: NativeConnectionOptions = { address: s.temporalAddress, tls: tlsOf(s) };
  if (s.TEMPORAL_API_KEY) options.apiKey = s.TEMPORAL_API_KEY;
  return NativeConnection.connect(options);
}
