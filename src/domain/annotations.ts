/**
 * Kubernetes annotation syntax (kubernetes.io/docs/concepts/overview/working-with-objects/annotations):
 * key = [prefix "/"] name; prefix a DNS subdomain of at most 253 characters; name at most 63 characters
 * of [A-Za-z0-9._-], alphanumeric at both ends; case does not matter. Values are free strings; keys and
 * values together are capped at 256 KiB of UTF-8. The `fireworks.ai/` prefix (and its subdomains) is reserved.
 */
export const ANNOTATIONS_MAX_BYTES = 256 * 1024;
export const RESERVED_ANNOTATION_DOMAIN = 'fireworks.ai';

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
/**
 * A DNS-1123 subdomain as Kubernetes checks it (apimachinery IsDNS1123Subdomain): labels of a-z, 0-9
 * and "-", alphanumeric at both ends, joined by "."; only the whole prefix is capped (253), not each label.
 */
const DNS_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Returns what is wrong with an annotation key, or undefined when it is valid. Like Kubernetes
 * (apimachinery ValidateAnnotations), the key is checked case-insensitively: `Example.COM/Key` is
 * accepted, and `FIREWORKS.AI/x` is as reserved as `fireworks.ai/x`.
 */
export function annotationKeyProblem(key: string): string | undefined {
  // ASCII only: String#toLowerCase would also fold e.g. the Kelvin sign into "k" and admit non-ASCII keys.
  const lower = key.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const parts = lower.split('/');
  if (parts.length > 2) return 'a key may hold at most one "/", between an optional DNS-subdomain prefix and the name (e.g. "example.com/my-key")';
  const prefix = parts.length === 2 ? parts[0] : undefined;
  const name = parts[parts.length - 1] ?? '';
  if (prefix !== undefined) {
    if (prefix.length === 0) return 'the prefix before "/" must not be empty; drop the "/" or write a DNS subdomain such as "example.com/"';
    if (prefix.length > 253) return `the prefix must be at most 253 characters (it has ${prefix.length})`;
    if (!DNS_SUBDOMAIN.test(prefix)) {
      return 'the prefix must be a DNS subdomain: labels of letters, digits and "-", each beginning and ending with a letter or digit, separated by "." (e.g. "example.com")';
    }
    if (prefix === RESERVED_ANNOTATION_DOMAIN || prefix.endsWith(`.${RESERVED_ANNOTATION_DOMAIN}`)) {
      return `the prefix "${RESERVED_ANNOTATION_DOMAIN}/" and its subdomains are reserved; use a domain of your own`;
    }
  }
  if (name.length === 0) return 'the name must not be empty';
  if (name.length > 63) return `the name (after any "/") must be at most 63 characters (it has ${name.length})`;
  if (!NAME.test(name)) {
    return 'the name must consist of A-Z, a-z, 0-9, "-", "_" and ".", and begin and end with a letter or digit';
  }
  return undefined;
}

/** One broken annotation rule: where below `annotations` (`[key]`, or `[]` for the whole map) and what is wrong. */
export interface AnnotationsProblem {
  path: [] | [string];
  message: string;
}

/**
 * Every rule a map of annotations breaks, keys in map order and then the size limit: the one source
 * of these rules and their words for the zod schema (fields.ts) and for workflow code alike.
 */
export function annotationsProblems(annotations: Record<string, string>): AnnotationsProblem[] {
  const problems: AnnotationsProblem[] = [];
  for (const key of Object.keys(annotations)) {
    const problem = annotationKeyProblem(key);
    if (problem) problems.push({ path: [key], message: `invalid annotation key: ${problem}` });
  }
  const size = annotationsSize(annotations);
  if (size > ANNOTATIONS_MAX_BYTES) {
    problems.push({ path: [], message: `annotations total ${size} bytes; the limit is ${ANNOTATIONS_MAX_BYTES} (256 KiB)` });
  }
  return problems;
}

export function annotationsSize(annotations: Record<string, string>): number {
  let size = 0;
  for (const [k, v] of Object.entries(annotations)) size += utf8Length(k) + utf8Length(v);
  return size;
}

/** Bytes of the string in UTF-8, as Kubernetes (Go `len`) counts them. */
export function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}
