/**
 * The service's route table, in one place: the service routes requests with it and the OpenAPI
 * document is generated from it (src/api/openapi.ts), so every route served is a route documented.
 */
import { type LogStore } from '../store/log-store';
import { batchJobRoutes } from './batch-job-routes';
import { type BatchJobService } from './batch-job-service';
import { environmentRoutes } from './environment-routes';
import { type EnvironmentService } from './environment-service';
import { logFollowRoutes } from './log-follow-routes';
import { nodePoolRoutes } from './node-pool-routes';
import { type NodePoolService } from './node-pool-service';
import { type Route } from './routes';
import { type UsageSampler } from './usage-sampler';

export interface ApiRouteDeps {
  jobs: BatchJobService;
  logs: LogStore;
  pools: NodePoolService;
  environments: EnvironmentService;
  pageSecret: Buffer;
  logLimits: LogReadLimits;
  /** The pool usage sampler of this API process (`:getUsageHistory`). */
  usage: Pick<UsageSampler, 'samples' | 'intervalMs'>;
}

/** Bounds on reading logs: bytes per `:getLogs` page, open `:followLogs` streams per account, idle end of a waiting job's stream. */
export interface LogReadLimits {
  pageMaxBytes: number;
  streamsPerAccount: number;
  streamIdleMs: number;
}

export function apiRoutes(d: ApiRouteDeps): Route[] {
  return [
    ...batchJobRoutes(d.jobs, d.logs, d.pageSecret, d.logLimits.pageMaxBytes),
    ...logFollowRoutes(d.jobs, d.logs, d.logLimits),
    ...nodePoolRoutes(d.pools, d.pageSecret, d.usage),
    ...environmentRoutes(d.environments, d.pageSecret),
  ];
}

/**
 * The route table for documentation only: the routes' methods, paths and schemas are real, their
 * services are stand-ins, so a handler must never be called.
 */
export function documentedRoutes(): Route[] {
  const none = {} as never;
  return apiRoutes({
    jobs: none,
    logs: none,
    pools: none,
    environments: none,
    usage: none,
    pageSecret: Buffer.alloc(32),
    logLimits: { pageMaxBytes: 1, streamsPerAccount: 1, streamIdleMs: 1 },
  });
}
