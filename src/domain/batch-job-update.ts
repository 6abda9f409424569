/**
 * Update planning for batch jobs (AIP-134), pure: from the current job, a PATCH body and an optional
 * `updateMask`, the patch to apply, or INVALID_ARGUMENT naming every offending field.
 *
 * - Mutable: displayName, annotations, shared (in any state but DELETING).
 * - With a mask (comma-separated, camelCase or snake_case, `*` = every mutable field): exactly the
 *   masked fields are written; a masked field absent from the body is cleared (displayName) or reset
 *   to its default (annotations `{}`, shared `false`). Fields not in the mask are ignored. Masking a
 *   field that cannot change is INVALID_ARGUMENT.
 * - Without a mask: every mutable field present in the body is written. Any other writable field
 *   present must equal the current value (the upstream SDK always sends nodePoolId), else
 *   INVALID_ARGUMENT `<field> cannot be changed after creation`. Output-only fields are ignored.
 * - Unknown fields are INVALID_ARGUMENT either way. As on create, a top-level `null` means absent,
 *   and so does `""` for the optional string fields.
 *
 * The mask helpers here (`parseUpdateMask`, and `sameProto3Value` from proto3-values.ts) are shared
 * by the node pool and environment planners. The patch itself, its schema-free check and
 * `applyBatchJobPatch` live in batch-job-patch.ts (workflow code uses them) and are re-exported here.
 */
import { z } from 'zod';
import {
  absentProto3Defaults,
  BATCH_JOB_EMPTY_MEANS_ABSENT,
  type BatchJob,
  batchJobOutputOnlyShape,
  batchJobWritableShape,
} from './batch-job';
import { BATCH_JOB_MUTABLE_FIELDS, type BatchJobPatch } from './batch-job-patch';
import { ApiError, type FieldViolation } from './errors';
import { annotationsSchema, displayNameSchema } from './fields';
import { deepEqual, isProto3Default, sameProto3Value, showValue } from './proto3-values';
import { parseOrThrow, safeParseFields } from './validation';

export * from './batch-job-patch';
export * from './proto3-values';

type MutableField = (typeof BATCH_JOB_MUTABLE_FIELDS)[number];

// ---------------------------------------------------------------------------------------------
// Shared helpers: update masks.

export interface UpdateMaskRules {
  /** The resource with its article, for messages: "a batch job", "an environment". */
  resource: string;
  /** Canonical (camelCase) paths a mask may name. */
  mutable: readonly string[];
  /** What `*` stands for; defaults to `mutable`. */
  star?: readonly string[];
  /**
   * Why a path that is not mutable cannot be masked, completing `"<path>" …` (e.g. "cannot be
   * changed after creation"); undefined when the path names no field of the resource.
   */
  reason: (path: string) => string | undefined;
}

/** `node_pool_id` → `nodePoolId`, per dot-separated segment. */
export function snakeToCamel(path: string): string {
  return path.replace(/_([a-z0-9])/g, (_match, c: string) => c.toUpperCase());
}

/**
 * Parses an AIP-134 update mask into the set of canonical paths it names. Returns undefined when
 * there is no mask (absent or blank): the caller then applies the fields present in the body.
 */
export function parseUpdateMask(updateMask: string | undefined, rules: UpdateMaskRules): Set<string> | undefined {
  if (updateMask === undefined || updateMask.trim() === '') return undefined;
  const paths = new Set<string>();
  const violations: FieldViolation[] = [];
  const updatable = `the fields an update may change are ${rules.mutable.join(', ')}`;
  for (const raw of updateMask.split(',')) {
    const written = raw.trim();
    const path = snakeToCamel(written);
    if (path === '') {
      violations.push({ field: 'updateMask', description: 'holds an empty path: separate field names with single commas, e.g. "displayName,annotations"' });
    } else if (path === '*') {
      for (const p of rules.star ?? rules.mutable) paths.add(p);
    } else if (rules.mutable.includes(path)) {
      paths.add(path);
    } else {
      const reason = rules.reason(path);
      violations.push({
        field: 'updateMask',
        description: `"${written}" ${reason ?? `is not a field of ${rules.resource}`}; ${updatable}`,
      });
    }
  }
  if (violations.length > 0) throw ApiError.invalidArgument(violations);
  return paths;
}

// ---------------------------------------------------------------------------------------------
// Batch jobs.

const OUTPUT_ONLY = Object.keys(batchJobOutputOnlyShape);
const WRITABLE = Object.keys(batchJobWritableShape) as Array<keyof typeof batchJobWritableShape>;
const IMMUTABLE = WRITABLE.filter((f) => !(BATCH_JOB_MUTABLE_FIELDS as readonly string[]).includes(f));
/** Map-valued fields: compared exactly, since `{"A": ""}` is not `{}`. */
const MAP_FIELDS = new Set<string>(['envVars']);

/** Every field of a batch job, each accepted as anything: the values are judged field by field. */
const updateBodySchema = z.preprocess(
  absentProto3Defaults(BATCH_JOB_EMPTY_MEANS_ABSENT),
  z.strictObject(Object.fromEntries([...WRITABLE, ...OUTPUT_ONLY].map((f) => [f, z.unknown().optional()]))),
);

const MUTABLE_SCHEMAS: { [F in MutableField]: z.ZodType<NonNullable<BatchJobPatch[F]>> } = {
  displayName: displayNameSchema,
  annotations: annotationsSchema,
  shared: z.boolean(),
};

const BATCH_JOB_MASK_RULES: UpdateMaskRules = {
  resource: 'a batch job',
  mutable: BATCH_JOB_MUTABLE_FIELDS,
  reason: (path) => {
    const top = path.split('.')[0] ?? path;
    if ((BATCH_JOB_MUTABLE_FIELDS as readonly string[]).includes(top)) return 'names part of a field: a mask path names a whole field';
    if ((IMMUTABLE as readonly string[]).includes(top)) return 'cannot be changed after creation';
    if (OUTPUT_ONLY.includes(top)) return 'is output only: the service sets it';
    return undefined;
  },
};

/** What a masked field absent from the body becomes. */
const RESET: Required<BatchJobPatch> = { displayName: null, annotations: {}, shared: false };

/**
 * Plans a PATCH of a batch job. Throws INVALID_ARGUMENT for a bad body or mask, FAILED_PRECONDITION
 * for a job that is being deleted. The patch lists every field the request writes, changed or not.
 */
export function planBatchJobUpdate(current: BatchJob, body: unknown, updateMask: string | undefined): BatchJobPatch {
  if (current.state === 'DELETING') throw ApiError.failedPrecondition(`batch job ${current.name} is being deleted and can no longer be updated`);
  const mask = parseUpdateMask(updateMask, BATCH_JOB_MASK_RULES);
  const fields = parseOrThrow(updateBodySchema, body);
  const violations: FieldViolation[] = [];
  const patch: BatchJobPatch = {};

  const write = <F extends MutableField>(field: F, value: unknown): void => {
    if (value === undefined) {
      Object.assign(patch, { [field]: RESET[field] });
      return;
    }
    const result = safeParseFields(MUTABLE_SCHEMAS[field], value, [field]);
    if (result.success) Object.assign(patch, { [field]: result.data });
    else violations.push(...result.violations);
  };

  if (mask) {
    for (const field of BATCH_JOB_MUTABLE_FIELDS) if (mask.has(field)) write(field, fields[field]);
  } else {
    for (const field of BATCH_JOB_MUTABLE_FIELDS) if (fields[field] !== undefined) write(field, fields[field]);
    for (const field of IMMUTABLE) {
      const sent = fields[field];
      // Unset in proto3 terms (absent, 0, false, {}, …): the request does not touch the field.
      if (isProto3Default(sent)) continue;
      const now: unknown = current[field];
      const same = MAP_FIELDS.has(field) ? deepEqual(sent, now ?? {}) : sameProto3Value(sent, now);
      if (!same) {
        violations.push({
          field,
          description:
            `${field} cannot be changed after creation (it is ${showValue(now)}); ` +
            `only ${BATCH_JOB_MUTABLE_FIELDS.join(', ')} can be updated: leave ${field} out or send its current value`,
        });
      }
    }
  }
  if (violations.length > 0) throw ApiError.invalidArgument(violations);
  return patch;
}

/**
 * The patch as zod states its rules, with the same field schemas as create and planBatchJobUpdate.
 * The job workflow cannot load zod and checks patches with `batchJobPatchViolations`
 * (batch-job-patch.ts) instead; test/unit/batch-job-patch.test.ts holds the two to the same answers.
 */
export const batchJobPatchSchema = z.strictObject({
  displayName: displayNameSchema.nullable().optional(),
  annotations: annotationsSchema.optional(),
  shared: z.boolean().optional(),
});
