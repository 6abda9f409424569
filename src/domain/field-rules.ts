/**
 * The rules fields share, and the words every violation is reported in, as plain functions and
 * constants: the one statement of each rule's limit and text. fields.ts and validation.ts build the
 * zod schemas and the zod error wording from them; workflow code, which must not load zod (every
 * module a workflow imports is evaluated again per cached workflow, docs/performance.md §7), checks
 * with them directly. Both paths therefore word a violation the same way.
 */
import { utf8Length } from './annotations';

/** Record-valued fields: their keys are user data, so paths into them use the bracket form. */
const MAP_FIELDS = new Set(['annotations', 'envVars']);

/** A violation's field, from its path: `annotations["x"]`, `pythonExecutor.args[2]`. */
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

/** The field name of a violation of the whole body (an empty path). */
export const BODY_FIELD = '(body)';

/** A required field that is absent. */
export const REQUIRED = 'is required';

/** An object key that is not a field of the message. */
export const UNKNOWN_FIELD = 'unknown field';

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

/** What was sent, in words: "a string", "an integer", "null", … */
export function describeInput(input: unknown): string {
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
 * A value of the wrong type: what the field must be and what was sent, e.g. "must be true or false,
 * not a string". `expected` is a JSON type in zod's words (`string`, `boolean`, `record`, …).
 */
export function typeMismatch(expected: string, input: unknown): string {
  return `must be ${EXPECTED[expected] ?? expected}, not ${describeInput(input)}`;
}

/** An object as JSON has it, which is what zod's object and record types accept. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** displayName: "Must be fewer than 64 characters long". */
export const DISPLAY_NAME_MAX_LENGTH = 63;
export const DISPLAY_NAME_RULE = 'must be fewer than 64 characters';

export function displayNameProblem(name: string): string | undefined {
  return name.length > DISPLAY_NAME_MAX_LENGTH ? DISPLAY_NAME_RULE : undefined;
}

/**
 * A map<string, string> must not hold a "__proto__" key: building the map by assignment would
 * silently drop it (JSON.parse keeps it as an own key), so it is refused instead.
 */
export const PROTO_KEY = '__proto__';
export const PROTO_KEY_RULE = '"__proto__" cannot be used as a key';

export function hasProtoKey(value: unknown): boolean {
  return typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, PROTO_KEY);
}

/**
 * The longest single argument the Linux kernel passes to a program (MAX_ARG_STRLEN, 32 pages of
 * 4 KiB), counted in bytes with the terminating NUL. A shell command is one argument of `bash -c`:
 * a longer one would fail at exec (E2BIG) on the host, long after the job was accepted.
 */
export const MAX_ARG_BYTES = 128 * 1024;

/** Why a string cannot be one argument of a program, or undefined when it can. */
export function programArgumentProblem(value: string): string | undefined {
  if (value.includes('\0')) return 'must not contain NUL characters';
  const bytes = utf8Length(value) + 1;
  if (bytes > MAX_ARG_BYTES) {
    return `is ${bytes - 1} bytes of UTF-8; the kernel passes at most ${MAX_ARG_BYTES - 1} bytes (128 KiB with its terminating NUL) as one argument`;
  }
  return undefined;
}

/**
 * Why a file path a job names cannot be resolved inside WORKSPACE_DIR, or undefined when it can:
 * it must be relative, and `..` may never climb above the workspace's root (`a/../b` is fine,
 * `a/../../b` is not). Checked on the text alone, so the same answer holds on every host; what the
 * path names on a host's disk (a symlink out of the workspace) is the host's to refuse.
 */
export function workspacePathProblem(path: string): string | undefined {
  if (path.includes('\0')) return 'must not contain NUL characters';
  if (path.startsWith('/')) return 'must be a path relative to WORKSPACE_DIR, not an absolute path';
  let depth = 0;
  for (const segment of path.split('/')) {
    if (segment === '..') depth -= 1;
    else if (segment !== '' && segment !== '.') depth += 1;
    if (depth < 0) return 'must stay inside WORKSPACE_DIR: ".." may not lead out of it';
  }
  if (depth === 0) return 'must name a file inside WORKSPACE_DIR, not the directory itself';
  return undefined;
}
