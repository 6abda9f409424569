/**
 * The list `orderBy` parameter: comma-separated fields, each optionally followed by `desc` or `asc`
 * (AIP-132). The result always ends with `name` so the order is total and page cursors are stable.
 */
import { ApiError } from './errors';

export interface OrderTerm {
  field: string;
  desc: boolean;
}

export interface OrderSpec {
  /** Canonical camelCase names of the sortable fields. */
  fields: readonly string[];
  default: readonly OrderTerm[];
}

/** The unique field every order ends with, so that no two items ever tie. */
export const TIEBREAK_FIELD = 'name';

export function parseOrderBy(input: string | undefined, spec: OrderSpec): OrderTerm[] {
  if (input !== undefined && typeof input !== 'string') throw orderByError('must be a string');
  const terms = input === undefined || input.trim() === '' ? spec.default.map((t) => ({ ...t })) : parseTerms(input, spec);
  return withTiebreak(terms);
}

/** Appends `name` ascending unless the order already contains it. */
export function withTiebreak(terms: readonly OrderTerm[]): OrderTerm[] {
  const out = terms.map((t) => ({ ...t }));
  if (!out.some((t) => t.field === TIEBREAK_FIELD)) out.push({ field: TIEBREAK_FIELD, desc: false });
  return out;
}

function parseTerms(input: string, spec: OrderSpec): OrderTerm[] {
  const terms: OrderTerm[] = [];
  for (const [index, part] of input.split(',').entries()) {
    const term = parseTerm(part, index + 1, spec);
    if (terms.some((t) => t.field === term.field)) {
      throw orderByError(`field ${term.field} appears more than once; list each field at most once`);
    }
    terms.push(term);
  }
  return terms;
}

function parseTerm(part: string, ordinal: number, spec: OrderSpec): OrderTerm {
  const words = part.trim().split(/\s+/).filter((w) => w !== '');
  const [name, direction, ...rest] = words;
  if (name === undefined) throw orderByError(`term ${ordinal} is empty; expected "field" or "field desc" between commas`);
  if (rest.length > 0 || (direction !== undefined && !/^(asc|desc)$/i.test(direction))) {
    throw orderByError(`term ${ordinal} ${JSON.stringify(part.trim())} is malformed; expected "field", "field asc" or "field desc"`);
  }
  const field = canonicalField(name);
  if (!spec.fields.includes(field)) {
    throw orderByError(`unknown field ${JSON.stringify(name)}; sortable fields are ${spec.fields.join(', ')}`);
  }
  return { field, desc: direction?.toLowerCase() === 'desc' };
}

/** `create_time` → `createTime`; camelCase passes through. */
function canonicalField(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function orderByError(description: string): ApiError {
  return ApiError.invalidField('orderBy', description);
}
