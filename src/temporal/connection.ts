/**
 * One place that turns configuration into Temporal connections: a Client for the API, NativeConnections
 * for workers.
 *
 * Both reconnect by themselves when the server comes back: the native connection (workers) on its next
 * request, polls retrying without end; the Client's gRPC channel after a reconnect backoff, capped here
 * at 5 s (grpc-js's own cap is 120 s: after a long outage the API would stay away that long more).
 * What the SDK does not bound is a call's time: without a deadline a call to an unreachable server is
 * retried for about 20 s. `withCallTimeout` gives every call made inside it (an API request) a
 * deadline of its own unless the code set one.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { Client, Connection, type ConnectionOptions, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
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

type GrpcInterceptor = NonNullable<ConnectionOptions['interceptors']>[number];

const callTimeouts = new AsyncLocalStorage<number>();
const noRetries = new AsyncLocalStorage<true>();

/** Runs fn with a deadline of timeoutMs on each Temporal call it makes that has none of its own. */
export function withCallTimeout<T>(timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  return callTimeouts.run(timeoutMs, fn);
}

/**
 * Calls that wait for a worker to run the workflow by design (an update waits for the workflow to
 * take and finish it): a busy worker may take seconds, so these get UPDATE_CALL_TIMEOUT_MS at least.
 */
const WAITING_CALLS = new Set(['UpdateWorkflowExecution', 'PollWorkflowExecutionUpdate', 'ExecuteMultiOperation']);
export const UPDATE_CALL_TIMEOUT_MS = 30_000;

/**
 * Gives a call without a deadline one, inside withCallTimeout. It comes before the SDK's retry
 * interceptor, so the deadline bounds every retry of the call together.
 */
const callTimeoutInterceptor: GrpcInterceptor = (options, nextCall) => {
  const scoped = callTimeouts.getStore();
  const method = options.method_definition.path.split('/').pop() ?? '';
  const timeoutMs = scoped === undefined ? undefined : WAITING_CALLS.has(method) ? Math.max(scoped, UPDATE_CALL_TIMEOUT_MS) : scoped;
  const next = timeoutMs !== undefined && options.deadline === undefined ? { ...options, deadline: Date.now() + timeoutMs } : options;
  // grpc-js chains what each interceptor returns by its interface alone; the next call is such a call.
  return nextCall(next) as unknown as ReturnType<GrpcInterceptor>;
};

/**
 * Runs fn with its Temporal calls made once, not retried: a probe must see `UNAVAILABLE` (nothing
 * listens) at once, where a retried call would wait out its deadline and end `DEADLINE_EXCEEDED`.
 */
export function withoutRetries<T>(fn: () => Promise<T>): Promise<T> {
  return noRetries.run(true, fn);
}

/** The SDK's retry interceptor, skipped inside withoutRetries. */
function retryInterceptor(): GrpcInterceptor {
  const retry = makeGrpcRetryInterceptor(defaultGrpcRetryOptions());
  return (options, nextCall) => (noRetries.getStore() ? (nextCall(options) as unknown as ReturnType<GrpcInterceptor>) : retry(options, nextCall));
}

export async function connectClient(s: TemporalSettings): Promise<Client> {
  const options: ConnectionOptions = {
    address: s.temporalAddress,
    tls: tlsOf(s),
    channelArgs: { 'grpc.initial_reconnect_backoff_ms': 500, 'grpc.max_reconnect_backoff_ms': 5000 },
    interceptors: [callTimeoutInterceptor, retryInterceptor()],
  };
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
