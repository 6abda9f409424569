/**
 * The environment resource (upstream `gatewayEnvironment`, §5), pure: wire types, the create body
 * and update planning. Writable: displayName (< 64 chars), baseImageRef (a container image reference
 * without whitespace), shared, annotations. `imageRef` is output-only: the baseImageRef at creation,
 * never changed afterwards. Interactive connections are not supported: `connection` on create is
 * INVALID_ARGUMENT; on update it is output-only like upstream's and ignored.
 *
 * The wire types and the rules the environment workflow applies live in environment-model.ts
 * (schema-free, so workflow code can load it) and are re-exported here.
 */
import { z } from 'zod';
import { absentProto3Defaults, imageRefSchema } from './batch-job';
import { parseUpdateMask, type UpdateMaskRules } from './batch-job-update';
import { type EnvironmentSpec } from './environment-model';
import { ApiError, type FieldViolation } from './errors';
import { annotationsSchema, displayNameSchema, idSchema, outputOnly } from './fields';
import { parseOrThrow, violationsOf } from './validation';

export * from './environment-model';

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
