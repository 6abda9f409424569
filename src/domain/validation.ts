/** Turns zod issues into the contract's field violations, with paths like `annotations["x"]` and `args[2]`. */
import { type z } from 'zod';
import { ApiError, type FieldViolation } from './errors';
import { BODY_FIELD, fieldPath, REQUIRED, typeMismatch, UNKNOWN_FIELD } from './field-rules';

export { fieldPath } from './field-rules';

export function violationsOf(error: z.ZodError, prefix: readonly PropertyKey[] = []): FieldViolation[] {
  const out: FieldViolation[] = [];
  for (const issue of error.issues) {
    const base = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ field: fieldPath([...base, key]), description: UNKNOWN_FIELD });
    } else {
      out.push({ field: fieldPath(base) || BODY_FIELD, description: issue.message });
    }
  }
  return out;
}

/**
 * Messages for the issues zod words for programmers ("expected string, received undefined"), used
 * where a schema gives no message of its own: a missing field says it is required, a wrong type
 * says what the field must be and what was sent.
 */
const errorMap: z.core.$ZodErrorMap = (issue) => {
  if (issue.code === 'invalid_type') return issue.input === undefined ? REQUIRED : typeMismatch(issue.expected, issue.input);
  if (issue.code === 'invalid_value' && issue.values.length > 0) {
    return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return undefined;
};

/** Parses with the schema: its output, or every offending field, worded as the API words them. */
export function safeParseFields<S extends z.ZodType>(
  schema: S,
  input: unknown,
  prefix: readonly PropertyKey[] = [],
): { success: true; data: z.output<S> } | { success: false; violations: FieldViolation[] } {
  const result = schema.safeParse(input, { error: errorMap });
  return result.success ? { success: true, data: result.data } : { success: false, violations: violationsOf(result.error, prefix) };
}

/** Parses with the schema or throws INVALID_ARGUMENT naming every offending field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, prefix: readonly PropertyKey[] = []): z.output<S> {
  const result = safeParseFields(schema, input, prefix);
  if (!result.success) throw ApiError.invalidArgument(result.violations);
  return result.data;
}
