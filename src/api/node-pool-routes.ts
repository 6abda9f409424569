/** HTTP bindings of the node-pool API. */
import { type NodePool } from '../domain/node-pool';
import { idsFromNames } from './batch-delete';
import { applyReadMask, nextPageToken, parseListRequest, singleParam } from './list-request';
import { type NodePoolService } from './node-pool-service';
import { type Route } from './routes';
import {
  batchDeleteRequestSchema,
  createNodePoolRequestSchema,
  emptySchema,
  listNodePoolsResponseSchema,
  listParams,
  nodePoolStatsSchema,
  nodePoolWireSchema,
  poolUsageSchema,
  readMaskParam,
  updateMaskParam,
  updateNodePoolRequestSchema,
  usageHistorySchema,
} from './schemas';
import { type UsageSampler } from './usage-sampler';

const POOL_FIELDS = [
  'name', 'displayName', 'createTime', 'minNodeCount', 'maxNodeCount', 'overprovisionNodeCount', 'eksNodePool', 'fakeNodePool',
  'annotations', 'state', 'status', 'nodePoolStats', 'updateTime',
] as const;
const STATS_FIELDS = ['nodeCount', 'ranksPerNode', 'environmentCount', 'environmentRanks', 'batchJobCount', 'batchJobRanks'] as const;

export function nodePoolRoutes(service: NodePoolService, pageSecret: Buffer, usage: Pick<UsageSampler, 'samples' | 'intervalMs'>): Route[] {
  const base = '/v1/accounts/{account}/nodePools';
  return [
    {
      method: 'POST',
      path: base,
      operationId: 'Gateway_CreateNodePool',
      summary: 'Create a node pool: body {nodePool, nodePoolId}',
      tag: 'NodePools',
      auth: true,
      body: createNodePoolRequestSchema,
      response: nodePoolWireSchema,
      handler: ({ principal, body }) => service.create(principal, body),
    },
    {
      method: 'GET',
      path: base,
      operationId: 'Gateway_ListNodePools',
      summary: 'List node pools (default order: name)',
      tag: 'NodePools',
      auth: true,
      response: listNodePoolsResponseSchema,
      queryParams: listParams('nodePools'),
      handler: async ({ principal, query }) => {
        const request = parseListRequest('nodePools', principal.account, query, pageSecret);
        const page = await service.list(principal, request);
        return {
          nodePools: page.pools.map((p) => applyReadMask<NodePool>(p, request.readMask, POOL_FIELDS)),
          nextPageToken: nextPageToken(pageSecret, request, page.nextAfter),
          totalSize: page.totalSize,
        };
      },
    },
    {
      method: 'GET',
      path: `${base}/{nodePool}`,
      operationId: 'Gateway_GetNodePool',
      summary: 'Get a node pool with live nodePoolStats',
      tag: 'NodePools',
      auth: true,
      response: nodePoolWireSchema,
      queryParams: [readMaskParam],
      handler: async ({ principal, params, query }) => applyReadMask(await service.get(principal, params.nodePool ?? ''), singleParam(query, 'readMask'), POOL_FIELDS),
    },
    {
      method: 'PATCH',
      path: `${base}/{nodePool}`,
      operationId: 'Gateway_UpdateNodePool',
      summary: 'Update a node pool (optional updateMask). Shrinking drains hosts and never kills a running rank.',
      tag: 'NodePools',
      auth: true,
      body: updateNodePoolRequestSchema,
      response: nodePoolWireSchema,
      queryParams: [updateMaskParam('displayName, minNodeCount, maxNodeCount, overprovisionNodeCount, annotations, fakeNodePool.numNodes')],
      handler: ({ principal, params, query, body }) => service.update(principal, params.nodePool ?? '', body, singleParam(query, 'updateMask') ?? singleParam(query, 'update_mask')),
    },
    {
      method: 'DELETE',
      path: `${base}/{nodePool}`,
      operationId: 'Gateway_DeleteNodePool',
      summary: 'Delete a node pool; FAILED_PRECONDITION while it has live jobs',
      tag: 'NodePools',
      auth: true,
      response: emptySchema,
      handler: async ({ principal, params }) => {
        await service.delete(principal, params.nodePool ?? '');
        return {};
      },
    },
    {
      method: 'GET',
      path: `${base}/{nodePool}:getStats`,
      operationId: 'Gateway_GetNodePoolStats',
      summary: 'The live statistics of a node pool',
      tag: 'NodePools',
      auth: true,
      response: nodePoolStatsSchema,
      queryParams: [readMaskParam],
      handler: async ({ principal, params, query }) =>
        applyReadMask((await service.get(principal, params.nodePool ?? '')).nodePoolStats, singleParam(query, 'readMask'), STATS_FIELDS),
    },
    {
      method: 'GET',
      path: `${base}/{nodePool}:getUsage`,
      operationId: 'Batchd_GetNodePoolUsage',
      summary: 'The pool’s hosts with the slots each has in use and by which job, and its queue (batchd extension; read live from the pool)',
      tag: 'NodePools',
      auth: true,
      response: poolUsageSchema,
      handler: ({ principal, params }) => service.usage(principal, params.nodePool ?? ''),
    },
    {
      method: 'GET',
      path: `${base}/{nodePool}:getUsageHistory`,
      operationId: 'Batchd_GetNodePoolUsageHistory',
      summary: 'The last hour of slots in use, capacity and queue length, sampled by the API process every USAGE_SAMPLE_MS and kept in its memory (batchd extension)',
      tag: 'NodePools',
      auth: true,
      response: usageHistorySchema,
      handler: async ({ principal, params }) => {
        const name = await service.existing(principal, params.nodePool ?? '');
        return { samples: usage.samples(name), sampleIntervalSeconds: usage.intervalMs / 1000 };
      },
    },
    {
      method: 'POST',
      path: `${base}:batchDelete`,
      operationId: 'Gateway_BatchDeleteNodePools',
      summary: 'Delete several node pools by name; one bad name fails the call and deletes none',
      tag: 'NodePools',
      auth: true,
      body: batchDeleteRequestSchema,
      response: emptySchema,
      handler: async ({ principal, body }) => {
        await service.deleteMany(principal, idsFromNames(body, principal.account, 'nodePools'));
        return {};
      },
    },
  ];
}
