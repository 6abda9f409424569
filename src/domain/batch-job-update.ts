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
 * The mask helpers here (`parseUpdateMask`, `sameProto3Value`) are shared by the node pool and
 * environment planners.
 */
import { z } from 'zod';
import {
  absentProto3Defaults,
  BATCH_JOB_EMPTY_MEANS_ABSENT,
  type BatchJob,
  batchJobOutputOnlyShape,
  batchJobWritableShape,
} from './batch-job';
import { ApiError, type FieldViolation } from './errors';
import { annotationsSchema, displayNameSchema } from './fields';
import { parseOrThrow, violationsOf } from './validation';

/** What an update writes: a field that is absent stays as it is; `displayName: null` clears it. */
export interface BatchJobPatch {
  displayName?: string | null;
  annotations?: Record<string, string>;
  shared?: boolean;
}

export const BATCH_JOB_MUTABLE_FIELDS = ['displayName', 'annotations', 'shared'] as const;
type MutableField = (typeof BATCH_JOB_MUTABLE_FIELDS)[number];

// ---------------------------------------------------------------------------------------------
// Shared helpers: update masks and proto3-aware comparison.

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

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True for the values a proto3-JSON client emits for an unset field: null, "", 0, false, [], {}. */
export function isProto3Default(value: unknown): boolean {
  if (value === undefined || value === null || value === '' || value === 0 || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (isPlainObject(value)) return Object.keys(value).length === 0;
  return false;
}

/** A message with its unset (proto3-default) members removed, recursively; undefined if nothing is left. */
function pruneDefaults(value: unknown): unknown {
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const pruned = pruneDefaults(v);
      if (pruned !== undefined) out[k] = pruned;
    }
    return Object.keys(out).length === 0 ? undefined : out;
  }
  return isProto3Default(value) ? undefined : value;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/**
 * Whether two messages are the same once unset members are ignored: `{target: "m", args: []}`
 * equals `{target: "m"}`. Not for maps, whose empty-string values are data.
 */
export function sameProto3Value(a: unknown, b: unknown): boolean {
  return deepEqual(pruneDefaults(a), pruneDefaults(b));
}

/** A value for a message, shortened so that a large executor does not flood the error. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'unset';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
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
    const result = MUTABLE_SCHEMAS[field].safeParse(value);
    if (result.success) Object.assign(patch, { [field]: result.data });
    else violations.push(...violationsOf(result.error, [field]));
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

/** The patch as it crosses a process boundary (a Temporal update): the same rules as the API's. */
export const batchJobPatchSchema = z.strictObject({
  displayName: displayNameSchema.nullable().optional(),
  annotations: annotationsSchema.optional(),
  shared: z.boolean().optional(),
});

/** What is wrong with a patch, in the API's words, or undefined when it is valid. */
export function patchProblem(patch: unknown): string | undefined {
  const result = batchJobPatchSchema.safeParse(patch);
  if (result.success) return undefined;
  return ApiError.invalidArgument(violationsOf(result.error)).message;
}

/** The job after the patch. `updateTime` moves only when a value changes. Never mutates its input. */
export function applyBatchJobPatch(job: BatchJob, patch: BatchJobPatch, now: string): BatchJob {
  const next: BatchJob = { ...job };
  let changed = false;
  if (patch.displayName === null) {
    if (next.displayName !== undefined) {
      delete next.displayName;
      changed = true;
    }
  } else if (patch.displayName !== undefined && patch.displayName !== next.displayName) {
    next.displayName = patch.displayName;
    changed = true;
  }
  if (patch.annotations !== undefined && !deepEqual(patch.annotations, next.annotations)) {
    next.annotations = { ...patch.annotations };
    changed = true;
  }
  if (patch.shared !== undefined && patch.shared !== next.shared) {
    next.shared = patch.shared;
    changed = true;
  }
  if (changed) next.updateTime = now;
  return next;
}
