/**
 * The environment resource (upstream `gatewayEnvironment`, §5), pure: wire types, the create body
 * and update planning. Writable: displayName (< 64 chars), baseImageRef (a container image reference
 * without whitespace), shared, annotations. `imageRef` is output-only: the baseImageRef at creation,
 * never changed afterwards. Interactive connections are not supported: `connection` on create is
 * INVALID_ARGUMENT; on update it is output-only like upstream's and ignored.
 */
import { z } from 'zod';
import { absentProto3Defaults, imageRefSchema } from './batch-job';
import { deepEqual, parseUpdateMask, type UpdateMaskRules } from './batch-job-update';
import { ApiError, type FieldViolation } from './errors';
import { annotationsSchema, displayNameSchema, idSchema, outputOnly } from './fields';
import { type GatewayStatus } from './node-pool';
import { parseOrThrow, violationsOf } from './validation';

export const ENVIRONMENT_STATES = ['CREATING', 'DISCONNECTED', 'CONNECTING', 'CONNECTED', 'DISCONNECTING', 'RECONNECTING', 'DELETING'] as const;
export type EnvironmentState = (typeof ENVIRONMENT_STATES)[number];

/** `gatewayEnvironmentConnection`, for the wire type only: this service never makes one. */
export interface EnvironmentConnection {
  nodePoolId: string;
  numRanks?: number;
  role?: string;
  /** Output-only upstream: the last zone the environment connected to. */
  zone?: string;
  useLocalStorage?: boolean;
}

/** The writable part of an environment, normalized. */
export interface EnvironmentSpec {
  displayName?: string;
  baseImageRef?: string;
  shared: boolean;
  annotations: Record<string, string>;
}

/** The environment as the API returns it. Absent optional fields are omitted on the wire. */
export interface Environment extends EnvironmentSpec {
  name: string;
  createTime: string;
  createdBy: string;
  state: EnvironmentState;
  status: GatewayStatus;
  connection?: EnvironmentConnection;
  /** The baseImageRef at creation, immutable; absent when the environment was created without one. */
  imageRef?: string;
  snapshotImageRef?: string;
  updateTime: string;
}

export const ENVIRONMENT_EMPTY_MEANS_ABSENT = ['displayName', 'baseImageRef'] as const;

const writableShape = {
  displayName: displayNameSchema.optional(),
  baseImageRef: imageRefSchema.optional(),
  shared: z.boolean().optional(),
  annotations: annotationsSchema.optional(),
};
type WritableField = keyof typeof writableShape;
const WRITABLE = Object.keys(writableShape) as WritableField[];

export const environmentOutputOnlyShape = {
  name: outputOnly,
  createTime: outputOnly,
  createdBy: outputOnly,
  state: outputOnly,
  status: outputOnly,
  imageRef: outputOnly,
  snapshotImageRef: outputOnly,
  updateTime: outputOnly,
};
const OUTPUT_ONLY = [...Object.keys(environmentOutputOnlyShape), 'connection'];

const CONNECTION_UNSUPPORTED =
  'interactive connections are not supported by this service: create the environment without connection, and use it from batch jobs through environmentId';

/** The `environment` of a create body → EnvironmentSpec. Output-only fields are accepted and ignored. */
export const environmentSchema = z.preprocess(
  absentProto3Defaults(ENVIRONMENT_EMPTY_MEANS_ABSENT),
  z
    .strictObject({ ...writableShape, ...environmentOutputOnlyShape, connection: z.unknown().optional() })
    .superRefine((env, ctx) => {
      if (env.connection !== undefined) ctx.addIssue({ code: 'custom', path: ['connection'], message: CONNECTION_UNSUPPORTED });
    })
    .transform((env): EnvironmentSpec => {
      const spec: EnvironmentSpec = { shared: env.shared ?? false, annotations: env.annotations ?? {} };
      if (env.displayName !== undefined) spec.displayName = env.displayName;
      if (env.baseImageRef !== undefined) spec.baseImageRef = env.baseImageRef;
      return spec;
    }),
);

/** `POST …/environments`: `{environment, environmentId}`, both required. */
export const environmentCreateBodySchema = z.strictObject({
  environment: environmentSchema,
  environmentId: idSchema,
});
export type EnvironmentCreateBody = z.output<typeof environmentCreateBodySchema>;

// ---------------------------------------------------------------------------------------------
// Update planning.

const updateBodySchema = z.preprocess(
  absentProto3Defaults(ENVIRONMENT_EMPTY_MEANS_ABSENT),
  z.strictObject(Object.fromEntries([...WRITABLE, ...OUTPUT_ONLY].map((f) => [f, z.unknown().optional()]))),
);

const MASK_RULES: UpdateMaskRules = {
  resource: 'an environment',
  mutable: WRITABLE,
  reason: (path) => {
    const top = path.split('.')[0] ?? path;
    if (top === 'connection') return `cannot be updated: ${CONNECTION_UNSUPPORTED}`;
    if (top === 'imageRef') return 'is output only: it is the baseImageRef at creation and never changes';
    if (OUTPUT_ONLY.includes(top)) return 'is output only: the service sets it';
    if ((WRITABLE as string[]).includes(top)) return 'names part of a field: a mask path names a whole field';
    return undefined;
  },
};

/**
 * Plans a PATCH of an environment (AIP-134) and returns the whole new spec. With a mask, exactly the
 * masked fields are written, an absent one being cleared (displayName, baseImageRef) or reset
 * (shared false, annotations {}); without one, the writable fields present are written. Output-only
 * fields (connection included) are ignored; unknown fields are INVALID_ARGUMENT.
 */
export function planEnvironmentUpdate(current: EnvironmentSpec, body: unknown, updateMask?: string): EnvironmentSpec {
  const mask = parseUpdateMask(updateMask, MASK_RULES);
  const fields = parseOrThrow(updateBodySchema, body);
  const next: EnvironmentSpec = { ...current, annotations: { ...current.annotations } };
  const violations: FieldViolation[] = [];

  for (const field of WRITABLE) {
    const value = fields[field];
    const apply = mask ? mask.has(field) : value !== undefined;
    if (!apply) continue;
    if (value === undefined) {
      if (field === 'shared') next.shared = false;
      else if (field === 'annotations') next.annotations = {};
      else delete next[field];
      continue;
    }
    const result = writableShape[field].safeParse(value);
    if (!result.success) {
      violations.push(...violationsOf(result.error, [field]));
      continue;
    }
    Object.assign(next, { [field]: result.data });
  }
  if (violations.length > 0) throw ApiError.invalidArgument(violations);
  return next;
}

/** Whether an update changes anything, so that `updateTime` moves only on a real change. */
export function environmentSpecChanged(before: EnvironmentSpec, after: EnvironmentSpec): boolean {
  return (
    before.displayName !== after.displayName ||
    before.baseImageRef !== after.baseImageRef ||
    before.shared !== after.shared ||
    !deepEqual(before.annotations, after.annotations)
  );
}

/**
 * Whether a user may use an environment in a batch job, snapshot it, update it or delete it: its
 * creator always, everyone in the account when it is `shared` (the contract's sharing rule, which
 * upstream states for environments: shared lets all users "create batch jobs using the environment").
 * An operator acting without a user (Temporal CLI) passes `undefined` and may.
 */
export function mayUseEnvironment(env: Pick<Environment, 'createdBy' | 'shared'>, email: string | undefined): boolean {
  return email === undefined || env.shared || env.createdBy === email;
}

/** The writable part of an environment, as planEnvironmentUpdate takes it. */
export function environmentSpecOf(env: Environment): EnvironmentSpec {
  const spec: EnvironmentSpec = { shared: env.shared, annotations: env.annotations };
  if (env.displayName !== undefined) spec.displayName = env.displayName;
  if (env.baseImageRef !== undefined) spec.baseImageRef = env.baseImageRef;
  return spec;
}

/** The environment with a new spec; everything else (imageRef included) unchanged. */
export function withEnvironmentSpec(env: Environment, spec: EnvironmentSpec, updateTime: string): Environment {
  const { displayName: _displayName, baseImageRef: _baseImageRef, shared: _shared, annotations: _annotations, ...rest } = env;
  const next: Environment = { ...rest, shared: spec.shared, annotations: { ...spec.annotations }, updateTime };
  if (spec.displayName !== undefined) next.displayName = spec.displayName;
  if (spec.baseImageRef !== undefined) next.baseImageRef = spec.baseImageRef;
  return next;
}

/** The status message of an environment from creation on: it is never connected here. */
export const DISCONNECTED_MESSAGE =
  'not connected: interactive sessions are not supported by this service; batch jobs use the environment through environmentId';
