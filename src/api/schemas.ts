/**
 * The API's wire schemas, for documentation (src/api/openapi.ts) and for checking responses in tests:
 * every resource as the API returns it, the list and log pages, the empty reply, the error body, the
 * request bodies, and the query parameters. The create bodies are the domain's own validating
 * schemas (their input side); everything else is declared here from the same field schemas, and a
 * compile-time check below keeps each resource schema and its TypeScript type in step.
 *
 * `namedApiSchemas` gives the shared schemas their component names (`#/components/schemas/BatchJob`).
 */
import { z } from 'zod';
import {
  BATCH_JOB_STATES,
  type BatchJob,
  DEPENDENCY_CONDITIONS,
  batchJobCreateSchema,
  type BatchJobPlacement,
  dependsOnSchema,
  durationSchema,
  RETRY_CONDITIONS,
  imageRefSchema,
  MAX_RANKS,
  notebookExecutorSchema,
  pythonExecutorSchema,
  roleArnSchema,
  shellExecutorSchema,
} from '../domain/batch-job';
import { type DryRun, MAX_WAITS_FOR_JOBS } from '../domain/dry-run';
import { MAX_ATTEMPTS } from '../domain/job-policy';
import { DEFAULT_PRIORITY, PRIORITY_MAX, PRIORITY_MIN } from '../domain/sharing';
import { ENVIRONMENT_STATES, type Environment, environmentCreateBodySchema } from '../domain/environment';
import { type ErrorBody, type ErrorDetail, GrpcCode } from '../domain/errors';
import { displayNameSchema, idSchema, poolRefSchema } from '../domain/fields';
import { DEFAULT_ORDER, FILTER_FIELDS, type ListKind, ORDER_FIELDS } from '../domain/list-fields';
import { knownMachineTypes } from '../domain/machine-types';
import { FAKE_POOL_MAX_NODES, NODE_POOL_STATES, type NodePool, nodePoolCreateBodySchema, type NodePoolStats } from '../domain/node-pool';
import { type PoolUsage, type UsageSample } from '../domain/pool-usage';
import { type Snapshot, snapshotCreateBodySchema, SNAPSHOT_STATES } from '../domain/snapshot';
import { type Route } from './routes';

export interface NamedSchema {
  /** The component name: `#/components/schemas/<id>`. */
  id: string;
  schema: z.ZodType;
  /** The one side the schema may be documented on, when only one: a create body holds transforms, which only have an input side. */
  io?: 'input' | 'output';
}

/** The shared schemas with their component names, in declaration order. */
export const namedApiSchemas: NamedSchema[] = [];

function named<T extends z.ZodType>(id: string, schema: T, io?: 'input' | 'output'): T {
  if (namedApiSchemas.some((n) => n.id === id || n.schema === schema)) throw new Error(`API schema ${id} is named twice`);
  namedApiSchemas.push(io ? { id, schema, io } : { id, schema });
  return schema;
}

const readOnly = <T extends z.ZodType>(schema: T, description?: string): T => schema.meta({ readOnly: true, ...(description ? { description } : {}) });

/** RFC 3339 in UTC (`Z`), as every timestamp of the API. */
const timestamp = () => z.iso.datetime();
const count = () => z.int().min(0).max(2147483647);
const stringMap = (description: string) => z.record(z.string(), z.string()).meta({ description });
const resourceName = (collection: string) =>
  z.string().regex(new RegExp(`^accounts/[^/]+/${collection}/[^/]+$`), `must be accounts/{account}/${collection}/{id}`);

// ---------------------------------------------------------------------------------------------
// Shared parts.

export const grpcCodeNameSchema = named('Code', z.enum(Object.keys(GrpcCode) as [keyof typeof GrpcCode, ...Array<keyof typeof GrpcCode>]));

/** `gatewayStatus`: a google.rpc code name and a developer-facing message. */
export const gatewayStatusSchema = named(
  'Status',
  z.strictObject({ code: grpcCodeNameSchema, message: z.string() }).meta({ description: 'The status of a resource: a google.rpc code name and a message' }),
);

/** The domain's own executor schemas, so that create bodies and resources share the components. */
export const pythonExecutorWireSchema = named('PythonExecutor', pythonExecutorSchema);
export const notebookExecutorWireSchema = named('NotebookExecutor', notebookExecutorSchema);
export const shellExecutorWireSchema = named('ShellExecutor', shellExecutorSchema);

// ---------------------------------------------------------------------------------------------
// Resources, as the API returns them. Absent optional fields are omitted; a readMask omits more.

/**
 * The retry policy as the API returns it. Not the create body's schema: that one normalizes with a
 * transform (exit codes given as numbers become strings), which has no output side to document.
 */
export const retryPolicyWireSchema = named(
  'RetryPolicy',
  z
    .strictObject({
      maxAttempts: z.int().min(1).max(MAX_ATTEMPTS),
      exitCodes: z.array(z.string().regex(/^\d{1,3}(?:-\d{1,3})?$/)).max(64).meta({ description: 'Exit codes that retry, each "N" or a range "N-M" (0-255)' }).optional(),
      conditions: z.array(z.enum(RETRY_CONDITIONS)).optional(),
      initialBackoff: durationSchema.optional(),
      maxBackoff: durationSchema.optional(),
    })
    .meta({
      description:
        'batchd extension: retry a failed attempt (the whole gang is queued again) when an exit code ("N" or "N-M") or a condition matches, up to maxAttempts in all, waiting initialBackoff (default 10s) doubling up to maxBackoff (default 300s)',
    }),
);
export const dependsOnWireSchema = named(
  'BatchJobDependencies',
  dependsOnSchema.meta({ description: 'batchd extension: jobs of the same account this job waits for; COMPLETED, FAILED, or ENDED (any end)' }),
);

export const batchJobStateSchema = named('BatchJobState', z.enum(BATCH_JOB_STATES));

export const batchJobWireSchema = named(
  'BatchJob',
  z
    .strictObject({
      name: readOnly(resourceName('batchJobs'), 'accounts/{account}/batchJobs/{id}'),
      displayName: displayNameSchema.optional(),
      createTime: readOnly(timestamp()),
      startTime: readOnly(timestamp(), 'When the job entered RUNNING').optional(),
      endTime: readOnly(timestamp(), 'When the job ended: COMPLETED, FAILED or CANCELLED').optional(),
      createdBy: readOnly(z.string(), 'The email of the user whose key created the job (workflow:<id> for a job started by a workflow)'),
      nodePoolId: poolRefSchema.meta({
        description: 'The id of the node pool the job runs on; batchd extension: or the full name (accounts/{account}/nodePools/{id}) of a pool another account shares with this one',
      }),
      environmentId: idSchema.optional(),
      snapshotId: idSchema.optional(),
      numRanks: z.int().min(1).max(MAX_RANKS),
      envVars: stringMap('Environment variables added to every rank'),
      role: roleArnSchema.optional(),
      pythonExecutor: pythonExecutorWireSchema.optional(),
      notebookExecutor: notebookExecutorWireSchema.optional(),
      shellExecutor: shellExecutorWireSchema.optional(),
      imageRef: imageRefSchema.optional(),
      annotations: stringMap('Kubernetes-style annotations; the fireworks.ai/ prefix is reserved'),
      state: readOnly(batchJobStateSchema),
      status: readOnly(z.string(), 'Why the job is in its state, in words'),
      shared: z.boolean(),
      updateTime: readOnly(timestamp()),
      retryPolicy: retryPolicyWireSchema.optional(),
      maxRunDuration: durationSchema.meta({ description: 'batchd extension: each attempt is stopped (SIGTERM, grace, SIGKILL) and fails past this long RUNNING, e.g. "3600s"' }).optional(),
      maxQueueDuration: durationSchema.meta({ description: 'batchd extension: the job ends FAILED if it still waits (QUEUED) past this long, e.g. "600s"' }).optional(),
      dependsOn: dependsOnWireSchema.optional(),
      priority: z
        .int()
        .min(PRIORITY_MIN)
        .max(PRIORITY_MAX)
        .meta({
          description: `batchd extension: higher runs first; a pool's queue orders by priority, then arrival; ${PRIORITY_MIN} to ${PRIORITY_MAX}, default ${DEFAULT_PRIORITY}. A job that cannot be placed may preempt running jobs of lower priority whose retryPolicy retries PREEMPTED (they are stopped and requeued)`,
        })
        .optional(),
      attempt: readOnly(z.int().min(1).max(10), 'batchd extension: the attempt the job is on, 1-based (jobs with a retryPolicy)').optional(),
    })
    .meta({ description: 'A batch job: numRanks processes of one executor on a node pool' }),
);

export const nodePoolStatsSchema = named(
  'NodePoolStats',
  z
    .strictObject({
      nodeCount: count(),
      unreachableNodeCount: count()
        .meta({ description: 'batchd extension: hosts declared lost (no heartbeat from their agents) that have not answered since; each is ready again, and counted in nodeCount, as soon as its agent answers. Absent when none.' })
        .optional(),
      ranksPerNode: z.int().min(1).max(2147483647),
      environmentCount: count(),
      environmentRanks: count(),
      batchJobCount: z.partialRecord(batchJobStateSchema, z.int().min(1).max(2147483647)).meta({ description: 'Jobs by state; states with no job are omitted' }),
      batchJobRanks: z.partialRecord(batchJobStateSchema, z.int().min(1).max(2147483647)).meta({ description: 'Ranks of the jobs by state; states with no job are omitted' }),
    })
    .meta({ description: 'Live statistics of a node pool', readOnly: true }),
);

const machineTypeNameSchema = z.enum(knownMachineTypes() as [string, ...string[]]);

export const fakeNodePoolWireSchema = named(
  'FakeNodePool',
  z
    .strictObject({
      machineType: machineTypeNameSchema,
      numNodes: z.int().min(1).max(FAKE_POOL_MAX_NODES),
      serviceAccount: z.string().optional(),
    })
    .meta({ description: 'The built-in local pool: numNodes simulated hosts of machineType whose ranks run as local processes' }),
);

export const eksNodePoolWireSchema = named(
  'EksNodePool',
  z
    .strictObject({
      instanceType: machineTypeNameSchema,
      nodeRole: roleArnSchema.optional(),
      spot: z.boolean().optional(),
      nodeGroupName: z.string().optional(),
      subnetIds: z.array(z.string()).optional(),
      zone: z.string().optional(),
      placementGroup: z.string().optional(),
      launchTemplate: z.string().optional(),
    })
    .meta({ description: 'A pool of agent hosts of one EC2 instance type' }),
);

export const nodePoolStateSchema = named('NodePoolState', z.enum(NODE_POOL_STATES));

export const nodePoolWireSchema = named(
  'NodePool',
  z.strictObject({
    name: readOnly(resourceName('nodePools'), 'accounts/{account}/nodePools/{id}'),
    displayName: displayNameSchema.optional(),
    createTime: readOnly(timestamp()),
    minNodeCount: count(),
    maxNodeCount: z.int().min(1).max(2147483647),
    overprovisionNodeCount: count(),
    eksNodePool: eksNodePoolWireSchema.optional(),
    fakeNodePool: fakeNodePoolWireSchema.optional(),
    annotations: stringMap('Kubernetes-style annotations; the fireworks.ai/ prefix is reserved'),
    state: readOnly(nodePoolStateSchema),
    status: readOnly(gatewayStatusSchema),
    nodePoolStats: nodePoolStatsSchema,
    updateTime: readOnly(timestamp()),
  }),
);

export const environmentConnectionSchema = named(
  'EnvironmentConnection',
  z
    .strictObject({
      nodePoolId: idSchema,
      numRanks: z.int().min(1).max(MAX_RANKS).optional(),
      role: roleArnSchema.optional(),
      zone: readOnly(z.string()).optional(),
      useLocalStorage: z.boolean().optional(),
    })
    .meta({ description: 'A connection of an environment to a node pool (this service makes none)' }),
);

export const environmentStateSchema = named('EnvironmentState', z.enum(ENVIRONMENT_STATES));

export const environmentWireSchema = named(
  'Environment',
  z.strictObject({
    name: readOnly(resourceName('environments'), 'accounts/{account}/environments/{id}'),
    displayName: displayNameSchema.optional(),
    createTime: readOnly(timestamp()),
    createdBy: readOnly(z.string(), 'The email of the creator'),
    state: readOnly(environmentStateSchema),
    status: readOnly(gatewayStatusSchema),
    connection: readOnly(environmentConnectionSchema).optional(),
    baseImageRef: imageRefSchema.optional(),
    imageRef: readOnly(imageRefSchema, 'The baseImageRef at creation; never changes').optional(),
    snapshotImageRef: readOnly(imageRefSchema).optional(),
    shared: z.boolean(),
    annotations: stringMap('Kubernetes-style annotations; the fireworks.ai/ prefix is reserved'),
    updateTime: readOnly(timestamp()),
  }),
);

export const snapshotStateSchema = named('SnapshotState', z.enum(SNAPSHOT_STATES));

export const snapshotWireSchema = named(
  'Snapshot',
  z.strictObject({
    name: readOnly(resourceName('snapshots'), 'accounts/{account}/snapshots/{id}'),
    environmentId: readOnly(idSchema, 'The environment the snapshot was taken of'),
    createTime: readOnly(timestamp()),
    state: readOnly(snapshotStateSchema),
    status: readOnly(gatewayStatusSchema),
    imageRef: readOnly(imageRefSchema, 'The snapshot image; absent until it exists').optional(),
    updateTime: readOnly(timestamp()),
  }),
);

// ---------------------------------------------------------------------------------------------
// Pages, logs, the empty reply, errors.

const nextPageTokenSchema = z.string().meta({ description: 'Send it back as pageToken for the next page; empty on the last page' });
const totalSizeSchema = count().meta({ description: 'How many items match the filter, on all pages' });

export const listBatchJobsResponseSchema = named(
  'ListBatchJobsResponse',
  z.strictObject({ batchJobs: z.array(batchJobWireSchema), nextPageToken: nextPageTokenSchema, totalSize: totalSizeSchema }),
);
export const listNodePoolsResponseSchema = named(
  'ListNodePoolsResponse',
  z.strictObject({ nodePools: z.array(nodePoolWireSchema), nextPageToken: nextPageTokenSchema, totalSize: totalSizeSchema }),
);
export const listEnvironmentsResponseSchema = named(
  'ListEnvironmentsResponse',
  z.strictObject({ environments: z.array(environmentWireSchema), nextPageToken: nextPageTokenSchema, totalSize: totalSizeSchema }),
);
export const listSnapshotsResponseSchema = named(
  'ListSnapshotsResponse',
  z.strictObject({ snapshots: z.array(snapshotWireSchema), nextPageToken: nextPageTokenSchema, totalSize: totalSizeSchema }),
);

export const logEntrySchema = named(
  'LogEntry',
  z
    .strictObject({
      logTime: timestamp(),
      rank: z.int().min(0).max(MAX_RANKS - 1),
      message: z.string(),
      attempt: z.int().min(1).meta({ description: 'batchd extension: the attempt of the job that wrote the line (1 for its first run, 2 for its first retry, …)' }),
    })
    .meta({ description: 'One line a rank wrote' }),
);
export const getBatchJobLogsResponseSchema = named(
  'GetBatchJobLogsResponse',
  z.strictObject({ entries: z.array(logEntrySchema), nextPageToken: nextPageTokenSchema }),
);

/** The server-sent events of `:followLogs`: `log` events (a LogEntry each), then one `end` event `{state, status}`. */
export const logEventStreamSchema = named(
  'LogEventStream',
  z.string().meta({
    description: 'Server-sent events: `event: log` with a LogEntry as data for each line, oldest first, then one `event: end` with {state, status} once the job has ended',
  }),
);

/** A node pool's usage now (`:getUsage`): each host's slots and who holds them, and the pool's queue. */
export const hostUsageSchema = named(
  'HostUsage',
  z.strictObject({
    host: z.string(),
    status: z.enum(['ready', 'draining', 'unreachable']),
    slots: count(),
    slotsInUse: count(),
    slotJobs: z.array(z.string().nullable()).meta({ description: 'Slot index → the id of the batch job holding it, or null when free' }),
  }),
);

export const poolUsageSchema = named(
  'NodePoolUsage',
  z
    .strictObject({
      sampleTime: timestamp(),
      hosts: z.array(hostUsageSchema),
      ranksInUse: count().meta({ description: 'Slots (GPUs, or hosts on a CPU pool) held by jobs' }),
      rankCapacity: count().meta({ description: 'Slots on hosts that take work (ready)' }),
      queueLength: count(),
      oldestWaitSeconds: z.number().min(0).meta({ description: 'How long the oldest queued job has waited; 0 with an empty queue' }),
    })
    .meta({ readOnly: true }),
);

export const usageSampleSchema = named(
  'NodePoolUsageSample',
  z.strictObject({ sampleTime: timestamp(), ranksInUse: count(), rankCapacity: count(), queueLength: count() }),
);

export const usageHistorySchema = named(
  'NodePoolUsageHistory',
  z
    .strictObject({
      samples: z.array(usageSampleSchema).meta({ description: 'The last hour, oldest first; kept in the API process’s memory, so empty after a restart' }),
      sampleIntervalSeconds: z.number().positive(),
    })
    .meta({ readOnly: true }),
);

/** Where a live job's ranks run (`:getPlacement`). */
export const batchJobPlacementSchema = named(
  'BatchJobPlacement',
  z
    .strictObject({
      ranks: z
        .array(z.strictObject({ rank: count(), host: z.string(), slot: count().meta({ description: 'The GPU index on a GPU host; 0 on a CPU host' }) }))
        .meta({ description: 'Empty until capacity is granted, and once the job has ended' }),
      masterAddr: z.string().optional(),
      masterPort: z.int().min(1).max(65535).optional(),
    })
    .meta({ readOnly: true }),
);

/** batchd's extension of a validate-only create's answer: what would happen, computed by the pool's own scheduler code. */
export const batchJobDryRunSchema = named(
  'BatchJobDryRun',
  z
    .strictObject({
      wouldStartNow: z.boolean().meta({ description: 'Whether the job would be granted its whole gang at once' }),
      placement: z
        .array(z.strictObject({ host: z.string(), ranks: z.int().min(1).max(MAX_RANKS) }))
        .meta({ description: 'When it would start now: the hosts its ranks would run on, in rank order, with how many ranks each' })
        .optional(),
      queuePosition: z.int().min(1).meta({ description: "When it would wait in its pool's queue: its place there, 1-based" }).optional(),
      queueLength: z.int().min(1).meta({ description: 'The queue’s length with the job in it' }).optional(),
      waitingFor: z.string().meta({ description: 'Why it would not start now, in the words its status would use' }).optional(),
      waitsForJobs: z
        .array(resourceName('batchJobs'))
        .max(MAX_WAITS_FOR_JOBS)
        .meta({ description: `The jobs whose end it waits for (at most ${MAX_WAITS_FOR_JOBS}): those that free the hosts it is expected to run on, or, when the estimate is unknown, those holding capacity it needs with no maxRunDuration` })
        .optional(),
      dependencies: z
        .array(
          z.strictObject({
            batchJob: resourceName('batchJobs'),
            condition: z.enum(DEPENDENCY_CONDITIONS),
            state: batchJobStateSchema.optional().meta({ description: 'The dependency’s state now; absent when it no longer exists' }),
            standing: z.enum(['MET', 'WAITING', 'IMPOSSIBLE']),
          }),
        )
        .optional(),
      estimatedStartTime: z
        .union([timestamp(), z.literal('unknown')])
        .meta({ description: 'When it would start (RFC 3339) if every running and queued job ahead of it ran to its maxRunDuration, or "unknown" (estimate says why)' }),
      estimate: z.string().meta({ description: 'How the estimate was made, or why there is none' }),
    })
    .meta({ readOnly: true, description: 'batchd extension, only on a validateOnly=true create: what would happen to the job; nothing was created' }),
);

/** A create's answer: the job; with validateOnly=true, the job as it would be created plus `dryRun`. */
export const createBatchJobResponseSchema = named(
  'CreateBatchJobResponse',
  batchJobWireSchema.extend({ dryRun: batchJobDryRunSchema.optional() }).meta({ description: 'The batch job; a validateOnly=true create adds dryRun (a batchd extension) and creates nothing' }),
);

export const emptySchema = named('Empty', z.strictObject({}).meta({ description: 'The empty object' }));

export const fieldViolationSchema = named(
  'FieldViolation',
  z.strictObject({ field: z.string().meta({ description: 'The offending field path: numRanks, pythonExecutor.target, annotations["x"]' }), description: z.string() }),
);

/** google.rpc.BadRequest: what is wrong with which field. */
export const badRequestDetailSchema = named(
  'BadRequest',
  z.strictObject({ '@type': z.literal('type.googleapis.com/google.rpc.BadRequest'), fieldViolations: z.array(fieldViolationSchema).min(1) }),
);

/** google.rpc.ResourceInfo: the resource an error is about. */
export const resourceInfoDetailSchema = named(
  'ResourceInfo',
  z.strictObject({
    '@type': z.literal('type.googleapis.com/google.rpc.ResourceInfo'),
    resourceType: z.string().optional(),
    resourceName: z.string(),
    owner: z.string().optional(),
    description: z.string().optional(),
  }),
);

export const errorSchema = named(
  'Error',
  z
    .strictObject({
      code: z.int().min(1).max(16).meta({ description: 'The gRPC status code (3 INVALID_ARGUMENT, 5 NOT_FOUND, …)' }),
      message: z.string().min(1).meta({ description: 'What is wrong and how to fix it' }),
      details: z.array(z.discriminatedUnion('@type', [badRequestDetailSchema, resourceInfoDetailSchema])),
    })
    .meta({ description: 'Every non-2xx response: the grpc-gateway error shape' }),
);

// ---------------------------------------------------------------------------------------------
// Request bodies. The create bodies validate in the domain; the others are checked field by field
// by the update planners, and are declared here for their shape.

export const createBatchJobRequestSchema = named('CreateBatchJobRequest', batchJobCreateSchema, 'input');
export const createNodePoolRequestSchema = named('CreateNodePoolRequest', nodePoolCreateBodySchema, 'input');
export const createEnvironmentRequestSchema = named('CreateEnvironmentRequest', environmentCreateBodySchema, 'input');
export const createSnapshotRequestSchema = named('CreateSnapshotRequest', snapshotCreateBodySchema, 'input');

/** A PATCH body: the resource, every field optional; output-only fields are ignored. */
export const updateBatchJobRequestSchema = named(
  'UpdateBatchJobRequest',
  batchJobWireSchema.partial().meta({ description: 'displayName, annotations and shared can change; other fields may be repeated unchanged; output-only fields are ignored' }),
);
export const updateNodePoolRequestSchema = named(
  'UpdateNodePoolRequest',
  nodePoolWireSchema
    .extend({ fakeNodePool: fakeNodePoolWireSchema.partial().optional(), eksNodePool: eksNodePoolWireSchema.partial().optional() })
    .partial()
    .meta({ description: 'The node pool, every field optional; machineType, instanceType and the backend kind cannot change; output-only fields are ignored' }),
);
export const updateEnvironmentRequestSchema = named(
  'UpdateEnvironmentRequest',
  environmentWireSchema.partial().meta({ description: 'displayName, baseImageRef, shared and annotations can change; output-only fields (connection included) are ignored' }),
);
export const batchDeleteRequestSchema = named(
  'BatchDeleteRequest',
  z.strictObject({ names: z.array(z.string()).min(1).meta({ description: 'Resource names (accounts/{account}/{collection}/{id}), not ids' }) }),
);
export const connectEnvironmentRequestSchema = named(
  'ConnectEnvironmentRequest',
  z.strictObject({ connection: environmentConnectionSchema, vscodeVersion: z.string().optional() }),
);
export const disconnectEnvironmentRequestSchema = named(
  'DisconnectEnvironmentRequest',
  z.strictObject({ force: z.boolean().optional(), resetSnapshots: z.boolean().optional() }),
);

// ---------------------------------------------------------------------------------------------
// Query parameters.

export type QueryParam = NonNullable<Route['queryParams']>[number];

export const readMaskParam: QueryParam = {
  name: 'readMask',
  description:
    'Comma-separated fields to return (`*` or empty: all; nested paths like pythonExecutor.target). Fields outside the mask are omitted, required ones included. Also accepted as read_mask.',
  type: 'string',
};

export const updateMaskParam = (fields: string): QueryParam => ({
  name: 'updateMask',
  description: `Comma-separated fields to write (AIP-134; ${fields}; snake_case accepted; * for all). Masked fields absent from the body are cleared. Also accepted as update_mask.`,
  type: 'string',
});

/** pageSize, pageToken, filter, orderBy and readMask of a list, with the fields it filters and orders on. */
export function listParams(kind: ListKind): QueryParam[] {
  const defaultOrder = DEFAULT_ORDER[kind].map((t) => (t.desc ? `${t.field} desc` : t.field)).join(', ');
  return [
    { name: 'pageSize', description: 'At most this many items (default 50; above 200 means 200; negative is 400). Also accepted as page_size.', type: 'integer' },
    {
      name: 'pageToken',
      description: 'The nextPageToken of the previous page; every other parameter must be the same as on that call. Also accepted as page_token.',
      type: 'string',
    },
    {
      name: 'filter',
      description: `AIP-160 filter over ${FILTER_FIELDS[kind].map((f) => f.name).join(', ')}: =, !=, <, >, <=, >=, AND, OR, NOT, parentheses, quoted strings`,
      type: 'string',
    },
    {
      name: 'orderBy',
      description: `Comma-separated fields of ${ORDER_FIELDS[kind].join(', ')}, each optionally followed by " desc" (default: ${defaultOrder}); camelCase or snake_case. Also accepted as order_by.`,
      type: 'string',
    },
    readMaskParam,
  ];
}

// ---------------------------------------------------------------------------------------------
// The schemas and the types the code uses describe the same thing.

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Check<T extends true> = T;
export type SchemaTypeChecks = [
  Check<Same<z.output<typeof batchJobWireSchema>, BatchJob>>,
  Check<Same<z.output<typeof nodePoolStatsSchema>, NodePoolStats>>,
  Check<Same<z.output<typeof poolUsageSchema>, PoolUsage>>,
  Check<Same<z.output<typeof usageSampleSchema>, UsageSample>>,
  Check<Same<z.output<typeof batchJobPlacementSchema>, BatchJobPlacement>>,
  Check<Same<z.output<typeof batchJobDryRunSchema>, DryRun>>,
  Check<Same<Omit<z.output<typeof nodePoolWireSchema>, 'fakeNodePool' | 'eksNodePool'>, Omit<NodePool, 'fakeNodePool' | 'eksNodePool'>>>,
  // machineType / instanceType are names from the catalogue on the wire, strings in the code.
  Check<Same<Omit<z.output<typeof fakeNodePoolWireSchema>, 'machineType'>, Omit<NonNullable<NodePool['fakeNodePool']>, 'machineType'>>>,
  Check<Same<Omit<z.output<typeof eksNodePoolWireSchema>, 'instanceType'>, Omit<NonNullable<NodePool['eksNodePool']>, 'instanceType'>>>,
  Check<Same<z.output<typeof environmentWireSchema>, Environment>>,
  Check<Same<z.output<typeof snapshotWireSchema>, Snapshot>>,
  Check<Same<Omit<z.output<typeof errorSchema>, 'details'>, Omit<ErrorBody, 'details'>>>,
  // Every documented detail is an ErrorDetail (which types its fields loosely, as one interface).
  Check<[z.output<typeof errorSchema>['details'][number]] extends [ErrorDetail] ? true : false>,
];
