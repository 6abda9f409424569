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

const EXPECTED: Readonly<Record<string, string>> = {
  object: 'a JSON object',
  record: 'a JSON object of string keys to values',
  map: 'a JSON object of string keys to values',
  array: 'a JSON array',
  tuple: 'a JSON array',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  bigint: 'an integer',
  boolean: 'true or false',
};

function describeInput(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'an array';
  switch (typeof input) {
    case 'string':
      return 'a string';
    case 'number':
      return Number.isInteger(input) ? 'an integer' : 'a number';
    case 'boolean':
      return input ? 'true' : 'false';
    case 'object':
      return 'an object';
    default:
      return typeof input;
  }
}

/**
 * Messages for the issues zod words for programmers ("expected string, received undefined"), used
 * where a schema gives no message of its own: a missing field says it is required, a wrong type
 * says what the field must be and what was sent.
 */
const errorMap: z.core.$ZodErrorMap = (issue) => {
  if (issue.code === 'invalid_type') {
    if (issue.input === undefined) return 'is required';
    const expected = EXPECTED[issue.expected] ?? issue.expected;
    return `must be ${expected}, not ${describeInput(issue.input)}`;
  }
  if (issue.code === 'invalid_value' && issue.values.length > 0) {
    return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return undefined;
};

/** Parses with the schema or throws INVALID_ARGUMENT naming every offending field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, prefix: readonly PropertyKey[] = []): z.output<S> {
  const result = schema.safeParse(input, { error: errorMap });
  if (!result.success) throw ApiError.invalidArgument(violationsOf(result.error, prefix));
  return result.data;
}
