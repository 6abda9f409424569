/**
 * The batch job resource (upstream `gatewayBatchJob`) and the one set of rules that validates a
 * create body, used by the HTTP API and by the validation activity alike. The resource's types and
 * the rules workflows use live in batch-job-model.ts (schema-free, so workflow code can load it) and
 * are re-exported here.
 */
import { z } from 'zod';
import { utf8Length } from './annotations';
import {
  type BatchJobSpec,
  DEPENDENCY_CONDITIONS,
  EXECUTOR_FIELDS,
  MAX_RANKS,
  type NotebookExecutor,
  type PythonExecutor,
  RANK_ENV_VARS,
  RETRY_CONDITIONS,
  type RetryPolicy,
  type JobDependency,
  type ShellExecutor,
} from './batch-job-model';
import { describeInput, programArgumentProblem, workspacePathProblem } from './field-rules';
import { durationProblem, exitCodeRange, MAX_ATTEMPTS } from './job-policy';
import { annotationsSchema, displayNameSchema, idSchema, int32, outputOnly, poolRefSchema, stringMapSchema } from './fields';
import { DEFAULT_PRIORITY, PRIORITY_MAX, PRIORITY_MIN } from './sharing';

export * from './batch-job-model';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const ENV_VARS_MAX_BYTES = 128 * 1024;

const envVarsSchema = stringMapSchema().superRefine((env, ctx) => {
  let bytes = 0;
  for (const [key, value] of Object.entries(env)) {
    bytes += utf8Length(key) + utf8Length(value);
    if (!ENV_NAME.test(key)) {
      ctx.addIssue({ code: 'custom', path: [key], message: 'must be a variable name: letters, digits and "_", not starting with a digit' });
    } else if ((RANK_ENV_VARS as readonly string[]).includes(key)) {
      ctx.addIssue({ code: 'custom', path: [key], message: `is set by the scheduler for each rank and cannot be overridden` });
    }
    if (value.includes('\0')) ctx.addIssue({ code: 'custom', path: [key], message: 'must not contain NUL characters' });
  }
  if (bytes > ENV_VARS_MAX_BYTES) ctx.addIssue({ code: 'custom', path: [], message: `envVars total ${bytes} bytes of UTF-8; the limit is 128 KiB` });
});

const nonEmpty = (what: string) => z.string({ error: `${what} is required` }).min(1, `${what} must not be empty`);

/** A string that must pass one of field-rules' checks (which say what is wrong, or nothing). */
const checked = <T extends z.ZodType<string>>(schema: T, problem: (value: string) => string | undefined) =>
  schema.superRefine((value, ctx) => {
    const message = problem(value);
    if (message !== undefined) ctx.addIssue({ code: 'custom', message });
  });

/** A file a rank opens: relative to WORKSPACE_DIR and never outside it. */
const workspaceFile = (what: string) => checked(nonEmpty(what).max(4096), workspacePathProblem);

export const pythonExecutorSchema = z
  .strictObject({
    targetType: z.enum(['MODULE', 'FILENAME'], { error: 'must be MODULE or FILENAME' }),
    target: nonEmpty('target').max(4096),
    args: z.array(checked(z.string().max(65536), programArgumentProblem)).max(1024).optional(),
  })
  .superRefine((python, ctx) => {
    // A MODULE is found on PYTHONPATH by name (one argument of python3 -m); a FILENAME is a path into the workspace.
    const problem = python.targetType === 'FILENAME' ? workspacePathProblem(python.target) : programArgumentProblem(python.target);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['target'], message: problem });
  });
export const notebookExecutorSchema = z.strictObject({ notebookFilename: workspaceFile('notebookFilename') });
export const shellExecutorSchema = z.strictObject({ command: checked(nonEmpty('command'), programArgumentProblem) });

/** A protobuf Duration in JSON ("3600s"), 1 ms to 365 days. */
export const durationSchema = checked(z.string({ error: 'must be a duration string such as "3600s"' }).max(32), durationProblem);

export const retryPolicySchema = z
  .strictObject({
    maxAttempts: int32('maxAttempts').min(1, 'maxAttempts must be at least 1').max(MAX_ATTEMPTS, `maxAttempts must be at most ${MAX_ATTEMPTS}`),
    exitCodes: z
      .array(
        z.union([z.int(), z.string()]).transform((v, ctx) => {
          const item = String(v);
          const range = exitCodeRange(item);
          if (typeof range === 'string') ctx.addIssue({ code: 'custom', message: range });
          return item;
        }),
      )
      .max(64, 'at most 64 exit codes or ranges')
      .optional(),
    conditions: z.array(z.enum(RETRY_CONDITIONS, { error: `must be one of ${RETRY_CONDITIONS.join(', ')}` })).max(RETRY_CONDITIONS.length).optional(),
    initialBackoff: durationSchema.optional(),
    maxBackoff: durationSchema.optional(),
  })
  .transform((p): RetryPolicy => {
    const policy: RetryPolicy = { maxAttempts: p.maxAttempts };
    if (p.exitCodes !== undefined && p.exitCodes.length > 0) policy.exitCodes = p.exitCodes;
    if (p.conditions !== undefined && p.conditions.length > 0) policy.conditions = [...new Set(p.conditions)];
    if (p.initialBackoff !== undefined) policy.initialBackoff = p.initialBackoff;
    if (p.maxBackoff !== undefined) policy.maxBackoff = p.maxBackoff;
    return policy;
  });

/** What `priority` must be, for its messages: every bad value gets the whole rule and what was sent. */
const PRIORITY_RULE = `priority must be an integer from ${PRIORITY_MIN} to ${PRIORITY_MAX} (higher runs first; default ${DEFAULT_PRIORITY})`;
const notPriority = (issue: { input?: unknown }): string => `${PRIORITY_RULE}, not ${typeof issue.input === 'number' ? String(issue.input) : describeInput(issue.input)}`;

/**
 * `priority` (batchd extension, src/domain/sharing.ts): an integer from PRIORITY_MIN to
 * PRIORITY_MAX. A proto3 client sends 0 for the default, so 0 means absent (the transform drops it).
 */
export const prioritySchema = z
  .number({ error: notPriority })
  .int({ error: notPriority, abort: true })
  .min(PRIORITY_MIN, { error: notPriority })
  .max(PRIORITY_MAX, { error: notPriority });

/** A batch job of the same account: its id, or its full name accounts/{account}/batchJobs/{id}. */
const DEPENDENCY_REF = /^(?:accounts\/[^/]+\/batchJobs\/)?[^/]+$/;
export const dependsOnSchema = z
  .array(
    z.strictObject({
      batchJob: z.string({ error: 'batchJob is required' }).regex(DEPENDENCY_REF, 'must be a batch job id or its name accounts/{account}/batchJobs/{id}'),
      condition: z.enum(DEPENDENCY_CONDITIONS, { error: `must be one of ${DEPENDENCY_CONDITIONS.join(', ')}` }),
    }),
  )
  .max(32, 'at most 32 dependencies');

// The schema-free interfaces in batch-job-model.ts must be exactly what these schemas produce.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Holds<T extends true> = T;
export type ExecutorsMatchTheirSchemas = [
  Holds<Same<z.output<typeof pythonExecutorSchema>, PythonExecutor>>,
  Holds<Same<z.output<typeof notebookExecutorSchema>, NotebookExecutor>>,
  Holds<Same<z.output<typeof shellExecutorSchema>, ShellExecutor>>,
  Holds<Same<z.output<typeof retryPolicySchema>, RetryPolicy>>,
  Holds<Same<z.output<typeof dependsOnSchema>[number], JobDependency>>,
];

/** ARN of an IAM role: arn:aws:iam::<12 digits>:role/<path/name>. */
export const ROLE_ARN = /^arn:aws(?:-[a-z]+)*:iam::\d{12}:role\/(?:[\x21-\x2e\x30-\x7e]+\/)*[\w+=,.@-]{1,64}$/;
/** A container image reference: no whitespace, at most 1024 characters. */
const IMAGE_REF = /^[^\s]{1,1024}$/;

export const roleArnSchema = z
  .string()
  .regex(ROLE_ARN, 'must be an IAM role ARN: arn:aws:iam::<12 digits>:role/<path/name>, e.g. arn:aws:iam::123456789012:role/my-role');
export const imageRefSchema = z
  .string()
  .regex(IMAGE_REF, 'must be a container image reference without whitespace, at most 1024 characters, e.g. ghcr.io/org/image:tag');

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Proto3-JSON clients that emit default values send `null` for unset messages and `""` for unset
 * strings. Returns a preprocessing step for a resource object: a top-level `null` means the field is
 * absent, and so does `""` for the given optional string fields. Anything else is left for the
 * schema to judge, so error paths stay those of the body as sent.
 */
export function absentProto3Defaults(emptyStringFields: readonly string[]): (input: unknown) => unknown {
  const emptyMeansAbsent = new Set(emptyStringFields);
  return (input) => {
    if (!isPlainObject(input)) return input;
    // fromEntries defines own properties, so a "__proto__" key stays a key for the schema to reject.
    return Object.fromEntries(Object.entries(input).filter(([key, value]) => value !== null && !(value === '' && emptyMeansAbsent.has(key))));
  };
}

/** Optional string fields of a batch job for which `""` means absent. */
export const BATCH_JOB_EMPTY_MEANS_ABSENT = ['environmentId', 'snapshotId', 'imageRef', 'role', 'displayName', 'maxRunDuration', 'maxQueueDuration'] as const;

/** The writable fields of a batch job, as a client sends them on create. */
export const batchJobWritableShape = {
  displayName: displayNameSchema.optional(),
  nodePoolId: poolRefSchema,
  environmentId: idSchema.optional(),
  snapshotId: idSchema.optional(),
  numRanks: int32('numRanks').min(1, 'numRanks must be at least 1').max(MAX_RANKS, `numRanks must be at most ${MAX_RANKS}`).optional(),
  envVars: envVarsSchema.optional(),
  role: roleArnSchema.optional(),
  pythonExecutor: pythonExecutorSchema.optional(),
  notebookExecutor: notebookExecutorSchema.optional(),
  shellExecutor: shellExecutorSchema.optional(),
  imageRef: imageRefSchema.optional(),
  annotations: annotationsSchema.optional(),
  shared: z.boolean().optional(),
  retryPolicy: retryPolicySchema.optional(),
  maxRunDuration: durationSchema.optional(),
  maxQueueDuration: durationSchema.optional(),
  dependsOn: dependsOnSchema.optional(),
  priority: prioritySchema.optional(),
};

export const batchJobOutputOnlyShape = {
  name: outputOnly,
  createTime: outputOnly,
  startTime: outputOnly,
  endTime: outputOnly,
  createdBy: outputOnly,
  state: outputOnly,
  status: outputOnly,
  updateTime: outputOnly,
  attempt: outputOnly,
};

const batchJobCreateObjectSchema = z
  .strictObject({ ...batchJobWritableShape, ...batchJobOutputOnlyShape })
  .superRefine((body, ctx) => {
    const executors = EXECUTOR_FIELDS.filter((f) => body[f] !== undefined);
    if (executors.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['shellExecutor'],
        message: 'exactly one of pythonExecutor, notebookExecutor or shellExecutor is required: it says what each rank runs',
      });
    } else if (executors.length > 1) {
      ctx.addIssue({ code: 'custom', path: [executors[1] ?? 'shellExecutor'], message: `exactly one executor may be set; got ${executors.join(' and ')}; keep one` });
    }
    if (body.imageRef !== undefined && body.environmentId !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['imageRef'],
        message: 'imageRef cannot be combined with environmentId: the image comes either from imageRef or from the environment; send one of them',
      });
    }
    if (body.imageRef !== undefined && body.snapshotId !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['imageRef'],
        message: 'imageRef cannot be combined with snapshotId: a snapshot is an image of an environment; send imageRef or environmentId + snapshotId',
      });
    }
    if (body.snapshotId !== undefined && body.environmentId === undefined) {
      ctx.addIssue({ code: 'custom', path: ['snapshotId'], message: 'snapshotId requires environmentId: name the environment the snapshot belongs to' });
    }
  })
  .transform((body): BatchJobSpec => {
    const spec: BatchJobSpec = {
      nodePoolId: body.nodePoolId,
      numRanks: body.numRanks ?? 1,
      envVars: body.envVars ?? {},
      annotations: body.annotations ?? {},
      shared: body.shared ?? false,
    };
    if (body.displayName !== undefined) spec.displayName = body.displayName;
    if (body.environmentId !== undefined) spec.environmentId = body.environmentId;
    if (body.snapshotId !== undefined) spec.snapshotId = body.snapshotId;
    if (body.role !== undefined) spec.role = body.role;
    if (body.imageRef !== undefined) spec.imageRef = body.imageRef;
    if (body.pythonExecutor !== undefined) spec.pythonExecutor = body.pythonExecutor;
    if (body.notebookExecutor !== undefined) spec.notebookExecutor = body.notebookExecutor;
    if (body.shellExecutor !== undefined) spec.shellExecutor = body.shellExecutor;
    if (body.retryPolicy !== undefined) spec.retryPolicy = body.retryPolicy;
    if (body.maxRunDuration !== undefined) spec.maxRunDuration = body.maxRunDuration;
    if (body.maxQueueDuration !== undefined) spec.maxQueueDuration = body.maxQueueDuration;
    if (body.dependsOn !== undefined && body.dependsOn.length > 0) spec.dependsOn = body.dependsOn;
    // 0 is the default, as a proto3 client sends it: stored (and returned) as absent.
    if (body.priority !== undefined && body.priority !== DEFAULT_PRIORITY) spec.priority = body.priority;
    return spec;
  });

/**
 * The create body. A proto3 client that emits default values is accepted: top-level `null` means
 * absent, and so does `""` for environmentId, snapshotId, imageRef, role and displayName.
 */
export const batchJobCreateSchema = z.preprocess(absentProto3Defaults(BATCH_JOB_EMPTY_MEANS_ABSENT), batchJobCreateObjectSchema);
