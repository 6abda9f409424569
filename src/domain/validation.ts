/** Turns zod issues into the contract's field violations, with paths like `annotations["x"]` and `args[2]`. */
import { type z } from 'zod';
import { ApiError, type FieldViolation } from './errors';

/** Record-valued fields: their keys are user data, so paths into them use the bracket form. */
const MAP_FIELDS = new Set(['annotations', 'envVars']);

export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  let parent: PropertyKey | undefined;
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof parent === 'string' && MAP_FIELDS.has(parent)) out += `[${JSON.stringify(String(segment))}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
    parent = segment;
  }
  return out;
}

export function violationsOf(error: z.ZodError, prefix: readonly PropertyKey[] = []): FieldViolation[] {
  const out: FieldViolation[] = [];
  for (const issue of error.issues) {
    const base = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ field: fieldPath([...base, key]), description: 'unknown field' });
    } else {
      out.push({ field: fieldPath(base) || '(body)', description: issue.message });
    }
  }
  return out;
}

/** Parses with the schema or throws INVALID_ARGUMENT naming every offending field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, prefix: readonly PropertyKey[] = []): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw ApiError.invalidArgument(violationsOf(result.error, prefix));
  return result.data;
}
