/**
 * Comparing values the way proto3 JSON means them: which values stand for an unset field, and
 * whether two messages are the same once those are ignored. Schema-free (workflow code uses
 * `deepEqual`); batch-job-update.ts re-exports all of it next to the update-mask helpers.
 */

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
