/** Field schemas shared by every resource: ids, display names, annotations, timestamps. */
import { z } from 'zod';
import { annotationsProblems } from './annotations';
import { DISPLAY_NAME_MAX_LENGTH, DISPLAY_NAME_RULE, hasProtoKey, PROTO_KEY, PROTO_KEY_RULE } from './field-rules';
import { ID_PATTERN, ID_RULE } from './names';

export const idSchema = z.string().regex(ID_PATTERN, `must be ${ID_RULE}`);

const ID_BODY = ID_PATTERN.source.slice(1, -1);
/** A job's nodePoolId: the id of a pool of its account, or the full name of a pool another account shares with it (SHARING_FILE). */
export const POOL_REF_PATTERN = new RegExp(`^(?:${ID_BODY}|accounts/${ID_BODY}/nodePools/${ID_BODY})$`);

export const poolRefSchema = z
  .string()
  .regex(POOL_REF_PATTERN, `must be a node pool id (${ID_RULE}), or the full name accounts/{account}/nodePools/{id} of a pool shared with the account`);

/** displayName: "Must be fewer than 64 characters long" (field-rules.ts). */
export const displayNameSchema = z.string().max(DISPLAY_NAME_MAX_LENGTH, DISPLAY_NAME_RULE);

/**
 * A map<string, string>. z.record builds its output by assignment, which would silently drop a
 * "__proto__" key (JSON.parse keeps it as an own key); such a key is rejected instead.
 */
export function stringMapSchema() {
  return z.preprocess((value, ctx) => {
    if (hasProtoKey(value)) ctx.addIssue({ code: 'custom', path: [PROTO_KEY], message: PROTO_KEY_RULE, input: value });
    return value;
  }, z.record(z.string(), z.string()));
}

/** Kubernetes annotation rules (annotations.ts), the same ones workflow code checks without zod. */
export const annotationsSchema = stringMapSchema().superRefine((annotations, ctx) => {
  for (const { path, message } of annotationsProblems(annotations)) ctx.addIssue({ code: 'custom', path, message });
});

/** Output-only fields a client may echo back; they are accepted and ignored, never trusted. */
export const outputOnly = z.unknown().optional().meta({ readOnly: true, description: 'Output only: accepted and ignored' });

export const int32 = (field: string) =>
  z.number({ error: `${field} must be an integer` }).int(`${field} must be an integer`).max(2147483647, `${field} must fit in int32`);
