/** HTTP bindings of the environment and snapshot API. */
import { type Environment } from '../domain/environment';
import { ApiError } from '../domain/errors';
import { type Snapshot } from '../domain/snapshot';
import { idsFromNames } from './batch-delete';
import { type EnvironmentService } from './environment-service';
import { applyReadMask, nextPageToken, parseListRequest, singleParam } from './list-request';
import { type Route } from './routes';
import {
  batchDeleteRequestSchema,
  connectEnvironmentRequestSchema,
  createEnvironmentRequestSchema,
  createSnapshotRequestSchema,
  disconnectEnvironmentRequestSchema,
  emptySchema,
  environmentWireSchema,
  listEnvironmentsResponseSchema,
  listParams,
  listSnapshotsResponseSchema,
  readMaskParam,
  snapshotWireSchema,
  updateEnvironmentRequestSchema,
  updateMaskParam,
} from './schemas';

const ENVIRONMENT_FIELDS = [
  'name', 'displayName', 'createTime', 'createdBy', 'state', 'status', 'connection', 'baseImageRef', 'imageRef', 'snapshotImageRef',
  'shared', 'annotations', 'updateTime',
] as const;
const SNAPSHOT_FIELDS = ['name', 'environmentId', 'createTime', 'state', 'status', 'imageRef', 'updateTime'] as const;

const NO_SESSIONS =
  'interactive sessions are not supported by this service: an environment cannot be connected to or disconnected from a node pool; run work in it as a batch job with environmentId';

export function environmentRoutes(service: EnvironmentService, pageSecret: Buffer): Route[] {
  const base = '/v1/accounts/{account}/environments';
  const snapshots = '/v1/accounts/{account}/snapshots';
  return [
    {
      method: 'POST',
      path: base,
      operationId: 'Gateway_CreateEnvironment',
      summary: 'Create an environment: body {environment, environmentId}; imageRef is fixed to baseImageRef at creation',
      tag: 'Environments',
      auth: true,
      body: createEnvironmentRequestSchema,
      response: environmentWireSchema,
      handler: ({ principal, body }) => service.create(principal, body),
    },
    {
      method: 'GET',
      path: base,
      operationId: 'Gateway_ListEnvironments',
      summary: 'List environments (default order: name)',
      tag: 'Environments',
      auth: true,
      response: listEnvironmentsResponseSchema,
      queryParams: listParams('environments'),
      handler: async ({ principal, query }) => {
        const request = parseListRequest('environments', principal.account, query, pageSecret);
        const page = await service.list(principal, request);
        return {
          environments: page.items.map((e) => applyReadMask<Environment>(e, request.readMask, ENVIRONMENT_FIELDS)),
          nextPageToken: nextPageToken(pageSecret, request, page.nextAfter),
          totalSize: page.totalSize,
        };
      },
    },
    {
      method: 'GET',
      path: `${base}/{environment}`,
      operationId: 'Gateway_GetEnvironment',
      summary: 'Get an environment',
      tag: 'Environments',
      auth: true,
      response: environmentWireSchema,
      queryParams: [readMaskParam],
      handler: async ({ principal, params, query }) =>
        applyReadMask(await service.get(principal, params.environment ?? ''), singleParam(query, 'readMask') ?? singleParam(query, 'read_mask'), ENVIRONMENT_FIELDS),
    },
    {
      method: 'PATCH',
      path: `${base}/{environment}`,
      operationId: 'Gateway_UpdateEnvironment',
      summary: 'Update an environment (optional updateMask): displayName, baseImageRef, shared, annotations; imageRef never changes',
      tag: 'Environments',
      auth: true,
      body: updateEnvironmentRequestSchema,
      response: environmentWireSchema,
      queryParams: [updateMaskParam('displayName, baseImageRef, shared, annotations')],
      handler: ({ principal, params, query, body }) =>
        service.update(principal, params.environment ?? '', body, singleParam(query, 'updateMask') ?? singleParam(query, 'update_mask')),
    },
    {
      method: 'DELETE',
      path: `${base}/{environment}`,
      operationId: 'Gateway_DeleteEnvironment',
      summary: 'Delete an environment and its snapshots; FAILED_PRECONDITION while a live batch job uses it',
      tag: 'Environments',
      auth: true,
      response: emptySchema,
      handler: async ({ principal, params }) => {
        await service.delete(principal, params.environment ?? '');
        return {};
      },
    },
    {
      method: 'POST',
      path: `${base}/{environment}:connect`,
      operationId: 'Gateway_ConnectEnvironment',
      summary: 'Not supported here (501 UNIMPLEMENTED): this service runs no interactive sessions',
      tag: 'Environments',
      auth: true,
      body: connectEnvironmentRequestSchema,
      response: emptySchema,
      handler: () => Promise.reject(new ApiError('UNIMPLEMENTED', `:connect is not implemented: ${NO_SESSIONS}`)),
    },
    {
      method: 'POST',
      path: `${base}/{environment}:disconnect`,
      operationId: 'Gateway_DisconnectEnvironment',
      summary: 'Not supported here (501 UNIMPLEMENTED): this service runs no interactive sessions',
      tag: 'Environments',
      auth: true,
      body: disconnectEnvironmentRequestSchema,
      response: emptySchema,
      handler: () => Promise.reject(new ApiError('UNIMPLEMENTED', `:disconnect is not implemented: ${NO_SESSIONS}`)),
    },
    {
      method: 'POST',
      path: `${base}:batchDelete`,
      operationId: 'Gateway_BatchDeleteEnvironments',
      summary: 'Delete several environments by name; one bad name (or one in use) fails the call and deletes none',
      tag: 'Environments',
      auth: true,
      body: batchDeleteRequestSchema,
      response: emptySchema,
      handler: async ({ principal, body }) => {
        await service.deleteMany(principal, idsFromNames(body, principal.account, 'environments'));
        return {};
      },
    },
    {
      method: 'POST',
      path: snapshots,
      operationId: 'Gateway_CreateSnapshot',
      summary: 'Snapshot an environment: body {environmentId} (this service ties every snapshot to one environment); the id is assigned',
      tag: 'Snapshots',
      auth: true,
      body: createSnapshotRequestSchema,
      response: snapshotWireSchema,
      handler: ({ principal, body }) => service.createSnapshot(principal, body),
    },
    {
      method: 'GET',
      path: snapshots,
      operationId: 'Gateway_ListSnapshots',
      summary: 'List snapshots (default order: create_time)',
      tag: 'Snapshots',
      auth: true,
      response: listSnapshotsResponseSchema,
      queryParams: listParams('snapshots'),
      handler: async ({ principal, query }) => {
        const request = parseListRequest('snapshots', principal.account, query, pageSecret);
        const page = await service.listSnapshots(principal, request);
        return {
          snapshots: page.items.map((s) => applyReadMask<Snapshot>(s, request.readMask, SNAPSHOT_FIELDS)),
          nextPageToken: nextPageToken(pageSecret, request, page.nextAfter),
          totalSize: page.totalSize,
        };
      },
    },
    {
      method: 'GET',
      path: `${snapshots}/{snapshot}`,
      operationId: 'Gateway_GetSnapshot',
      summary: 'Get a snapshot',
      tag: 'Snapshots',
      auth: true,
      response: snapshotWireSchema,
      queryParams: [readMaskParam],
      handler: async ({ principal, params, query }) =>
        applyReadMask(await service.getSnapshot(principal, params.snapshot ?? ''), singleParam(query, 'readMask') ?? singleParam(query, 'read_mask'), SNAPSHOT_FIELDS),
    },
    {
      method: 'DELETE',
      path: `${snapshots}/{snapshot}`,
      operationId: 'Gateway_DeleteSnapshot',
      summary: 'Delete a snapshot; FAILED_PRECONDITION while a live batch job uses it',
      tag: 'Snapshots',
      auth: true,
      response: emptySchema,
      handler: async ({ principal, params }) => {
        await service.deleteSnapshot(principal, params.snapshot ?? '');
        return {};
      },
    },
  ];
}
