/**
 * Kubernetes annotation syntax (kubernetes.io/docs/concepts/overview/working-with-objects/annotations):
 * key = [prefix "/"] name; prefix a DNS subdomain of at most 253 characters; name at most 63 characters
 * of [A-Za-z0-9._-], alphanumeric at both ends. Values are free strings; keys and values together are
 * capped at 256 KiB. The `fireworks.ai/` prefix (and its subdomains) is reserved.
 */
export const ANNOTATIONS_MAX_BYTES = 256 * 1024;
export const RESERVED_ANNOTATION_DOMAIN = 'fireworks.ai';

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Returns what is wrong with an annotation key, or undefined when it is valid. */
export function annotationKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    if (prefix.length === 0) return 'the prefix before "/" must not be empty';
    if (prefix.length > 253) return 'the prefix must be at most 253 characters';
    if (!prefix.split('.').every((label) => DNS_LABEL.test(label))) {
      return 'the prefix must be a DNS subdomain: lowercase labels of a-z, 0-9 and "-", separated by "."';
    }
    if (prefix === RESERVED_ANNOTATION_DOMAIN || prefix.endsWith(`.${RESERVED_ANNOTATION_DOMAIN}`)) {
      return `the prefix "${RESERVED_ANNOTATION_DOMAIN}/" is reserved`;
    }
  }
  if (name.length === 0) return 'the name must not be empty';
  if (name.length > 63) return 'the name must be at most 63 characters';
  if (!NAME.test(name)) {
    return 'the name must consist of A-Z, a-z, 0-9, "-", "_" and ".", and begin and end with a letter or digit';
  }
  return undefined;
}

export function annotationsSize(annotations: Record<string, string>): number {
  let size = 0;
  for (const [k, v] of Object.entries(annotations)) size += utf8Length(k) + utf8Length(v);
  return size;
}

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}
