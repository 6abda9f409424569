/**
 * What a batch job update writes (a patch), how it is checked and how it is applied, schema-free:
 * the job workflow's `updateBatchJob` validator checks each patch with `patchProblem`, and workflow
 * code must not load zod (docs/performance.md §7). The rules and their words come from
 * field-rules.ts and annotations.ts, which the zod schemas in batch-job-update.ts and fields.ts use
 * too; test/unit/batch-job-patch.test.ts checks that both paths agree.
 */
import { annotationsProblems } from './annotations';
import { ApiError, type FieldViolation } from './errors';
import { BODY_FIELD, displayNameProblem, fieldPath, hasProtoKey, isJsonObject, PROTO_KEY, PROTO_KEY_RULE, typeMismatch, UNKNOWN_FIELD } from './field-rules';
import { type BatchJob } from './batch-job-model';
import { deepEqual } from './proto3-values';

/** What an update writes: a field that is absent stays as it is; `displayName: null` clears it. */
export interface BatchJobPatch {
  displayName?: string | null;
  annotations?: Record<string, string>;
  shared?: boolean;
}

export const BATCH_JOB_MUTABLE_FIELDS = ['displayName', 'annotations', 'shared'] as const;

/** A map<string, string> field: the same checks, in the same order, as fields.ts's stringMapSchema. */
function stringMapViolations(field: string, value: unknown): FieldViolation[] | Record<string, string> {
  if (hasProtoKey(value)) return [{ field: fieldPath([field, PROTO_KEY]), description: PROTO_KEY_RULE }];
  if (!isJsonObject(value)) return [{ field, description: typeMismatch('record', value) }];
  const violations: FieldViolation[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') violations.push({ field: fieldPath([field, key]), description: typeMismatch('string', v) });
  }
  return violations.length > 0 ? violations : (value as Record<string, string>);
}

/**
 * Every rule a patch breaks, as the API reports them: the patch must be an object of displayName
 * (a string under 64 characters, or null to clear it), annotations (Kubernetes keys, 256 KiB in
 * all) and shared (a boolean), each optional; any other key is an unknown field.
 */
export function batchJobPatchViolations(patch: unknown): FieldViolation[] {
  if (!isJsonObject(patch)) return [{ field: BODY_FIELD, description: typeMismatch('object', patch) }];
  const violations: FieldViolation[] = [];
  const { displayName, annotations, shared } = patch;
  if (displayName !== undefined && displayName !== null) {
    const problem = typeof displayName === 'string' ? displayNameProblem(displayName) : typeMismatch('string', displayName);
    if (problem) violations.push({ field: 'displayName', description: problem });
  }
  if (annotations !== undefined) {
    const map = stringMapViolations('annotations', annotations);
    if (Array.isArray(map)) violations.push(...map);
    else for (const { path, message } of annotationsProblems(map)) violations.push({ field: fieldPath(['annotations', ...path]), description: message });
  }
  if (shared !== undefined && typeof shared !== 'boolean') violations.push({ field: 'shared', description: typeMismatch('boolean', shared) });
  for (const key of Object.keys(patch)) {
    if (!(BATCH_JOB_MUTABLE_FIELDS as readonly string[]).includes(key)) violations.push({ field: fieldPath([key]), description: UNKNOWN_FIELD });
  }
  return violations;
}

/** What is wrong with a patch, in the API's words, or undefined when it is valid. */
export function patchProblem(patch: unknown): string | undefined {
  const violations = batchJobPatchViolations(patch);
  return violations.length > 0 ? ApiError.invalidArgument(violations).message : undefined;
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
