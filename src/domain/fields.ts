/** Field schemas shared by every resource: ids, display names, annotations, timestamps. */
import { z } from 'zod';
import { ANNOTATIONS_MAX_BYTES, annotationKeyProblem, annotationsSize } from './annotations';
import { ID_PATTERN, ID_RULE } from './names';

export const idSchema = z.string().regex(ID_PATTERN, `must be ${ID_RULE}`);

/** displayName: "Must be fewer than 64 characters long". */
export const displayNameSchema = z.string().max(63, 'must be fewer than 64 characters');

/**
 * A map<string, string>. z.record builds its output by assignment, which would silently drop a
 * "__proto__" key (JSON.parse keeps it as an own key); such a key is rejected instead.
 */
export function stringMapSchema() {
  return z.preprocess((value, ctx) => {
    if (typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, '__proto__')) {
      ctx.addIssue({ code: 'custom', path: ['__proto__'], message: '"__proto__" cannot be used as a key', input: value });
    }
    return value;
  }, z.record(z.string(), z.string()));
}

export const annotationsSchema = stringMapSchema().superRefine((annotations, ctx) => {
  for (const key of Object.keys(annotations)) {
    const problem = annotationKeyProblem(key);
    if (problem) ctx.addIssue({ code: 'custom', path: [key], message: `invalid annotation key: ${problem}` });
  }
  const size = annotationsSize(annotations);
  if (size > ANNOTATIONS_MAX_BYTES) {
    ctx.addIssue({ code: 'custom', path: [], message: `annotations total ${size} bytes; the limit is ${ANNOTATIONS_MAX_BYTES} (256 KiB)` });
  }
});

/** Output-only fields a client may echo back; they are accepted and ignored, never trusted. */
export const outputOnly = z.unknown().optional().meta({ readOnly: true, description: 'Output only: accepted and ignored' });

export const int32 = (field: string) =>
  z.number({ error: `${field} must be an integer` }).int(`${field} must be an integer`).max(2147483647, `${field} must fit in int32`);
