/**
 * The list `filter` parameter: a subset of AIP-160 (https://google.aip.dev/160), parsed into a typed
 * expression tree that the store compiles into parameterised SQL. A filter is parsed, never pasted.
 *
 * Grammar (keywords are case-sensitive; juxtaposition is an implicit AND):
 *   filter     = [ or ]
 *   or         = and { "OR" and }
 *   and        = unary { [ "AND" ] unary }
 *   unary      = ( "NOT" | "-" ) unary | "(" or ")" | comparison
 *   comparison = field op value        op = "=" | "!=" | "<" | ">" | "<=" | ">="
 *   value      = "double-quoted" | 'single-quoted' | bare-word
 * Unlike AIP-160's grammar, OR binds looser than AND (`a AND b OR c` is `(a AND b) OR c`), as in SQL
 * and most programming languages.
 *
 * Every problem is an ApiError on the field `filter` that names the 1-based position and what was
 * expected there; nothing else is ever thrown.
 */
import { ApiError } from './errors';

export type FilterOp = '=' | '!=' | '<' | '>' | '<=' | '>=';

/**
 * A parsed filter. In a `cmp` with `wildcard: true` the value is a pattern: `*` matches any run of
 * characters, `\*` is a literal star and `\\` a literal backslash. Without it the value is literal.
 */
export type FilterExpr =
  | { kind: 'and'; items: FilterExpr[] }
  | { kind: 'or'; items: FilterExpr[] }
  | { kind: 'not'; item: FilterExpr }
  | { kind: 'cmp'; field: string; op: FilterOp; value: string | number | boolean; wildcard?: boolean };

export type FilterFieldType = 'string' | 'enum' | 'timestamp' | 'int' | 'bool';

export interface FilterField {
  /** The canonical camelCase name; the snake_case spelling is accepted too. */
  name: string;
  type: FilterFieldType;
  enumValues?: readonly string[];
}

export const FILTER_LIMITS = { maxLength: 4096, maxComparisons: 64, maxDepth: 32 } as const;

const ALL_OPS: readonly FilterOp[] = ['=', '!=', '<', '>', '<=', '>='];
const EQUALITY_OPS: readonly FilterOp[] = ['=', '!='];
const OPS_BY_TYPE: Record<FilterFieldType, readonly FilterOp[]> = {
  string: ALL_OPS,
  enum: EQUALITY_OPS,
  timestamp: ALL_OPS,
  int: ALL_OPS,
  bool: EQUALITY_OPS,
};
const TYPE_NAMES: Record<FilterFieldType, string> = {
  string: 'a string field',
  enum: 'an enum field',
  timestamp: 'a timestamp field',
  int: 'an integer field',
  bool: 'a boolean field',
};
const KEYWORDS: ReadonlySet<string> = new Set(['AND', 'OR', 'NOT']);
const IDENTIFIER = /[A-Za-z_][A-Za-z0-9_.]*/y;
/** Characters that end a bare (unquoted) value. */
const BARE_STOP = /[\s()"'=<>!\\]/;
const ESCAPES: Record<string, string> = { '\\': '\\', '"': '"', "'": "'", n: '\n', t: '\t' };

/** Parses a filter; undefined when the input is empty or only whitespace. */
export function parseFilter(input: string, fields: readonly FilterField[]): FilterExpr | undefined {
  if (typeof input !== 'string') throw filterError('must be a string');
  if (input.length > FILTER_LIMITS.maxLength) {
    throw filterError(`is ${input.length} characters long; the limit is ${FILTER_LIMITS.maxLength}`);
  }
  if (input.trim() === '') return undefined;
  return new FilterParser(input, fields).parse();
}

function filterError(description: string): ApiError {
  return ApiError.invalidField('filter', description);
}

/** A value as written: its literal text, and the same text as a wildcard pattern. */
interface RawValue {
  text: string;
  pattern: string;
  hasWildcard: boolean;
}

class FilterParser {
  private pos = 0;
  private comparisons = 0;
  private depth = 0;
  private readonly byName = new Map<string, FilterField>();

  constructor(
    private readonly src: string,
    private readonly fields: readonly FilterField[],
  ) {
    for (const field of fields) this.byName.set(field.name, field);
  }

  parse(): FilterExpr {
    const expr = this.parseExpression(undefined);
    this.skipWs();
    // parseExpression stops only at the end or at a ')' that no '(' opened.
    if (this.pos < this.src.length) throw this.error(this.pos, `unexpected ')' with no matching '('`);
    return expr;
  }

  // AIP-160: expression = sequence {AND sequence}; sequence = factor {factor}; factor = term {OR term}.
  // So OR binds tighter than AND and juxtaposition: `a AND b OR c` is `a AND (b OR c)`.
  private parseExpression(context: string | undefined): FilterExpr {
    const items = [this.parseSequence(context)];
    while (this.acceptKeyword('AND')) items.push(this.parseSequence('AND'));
    return flatten('and', items);
  }

  private parseSequence(context: string | undefined): FilterExpr {
    const items = [this.parseFactor(context)];
    for (;;) {
      this.skipWs();
      if (this.atEnd() || this.peek() === ')' || this.atKeyword('AND')) break;
      if (!this.atTermStart()) {
        throw this.error(this.pos, `unexpected ${this.describeHere()} after a complete comparison; expected AND, OR, ')' or the end of the filter`);
      }
      items.push(this.parseFactor(undefined));
    }
    return flatten('and', items);
  }

  private parseFactor(context: string | undefined): FilterExpr {
    const items = [this.parseUnary(context)];
    while (this.acceptKeyword('OR')) items.push(this.parseUnary('OR'));
    return flatten('or', items);
  }

  private parseUnary(context: string | undefined): FilterExpr {
    this.skipWs();
    const start = this.pos;
    if (this.peek() === '-') {
      const next = this.src[start + 1];
      if (next === undefined || /\s/.test(next)) {
        throw this.error(start, `'-' (NOT) must be followed directly by a comparison or '(', found ${this.describeAt(start + 1)}`);
      }
      this.pos++;
      return this.nested(start, () => ({ kind: 'not', item: this.parseUnary("'-'") }));
    }
    if (this.acceptKeyword('NOT')) return this.nested(start, () => ({ kind: 'not', item: this.parseUnary('NOT') }));
    if (this.peek() === '(') {
      this.pos++;
      return this.nested(start, () => {
        const inner = this.parseExpression("'('");
        this.skipWs();
        if (this.peek() !== ')') {
          throw this.error(this.pos, `expected ')' to close the '(' at position ${start + 1}, found ${this.describeHere()}`);
        }
        this.pos++;
        parenthesized.add(inner);
        return inner;
      });
    }
    return this.parseComparison(context);
  }

  private parseComparison(context: string | undefined): FilterExpr {
    const start = this.pos;
    const ident = this.readIdentifier();
    const expected = `expected a comparison${context ? ` after ${context}` : ''} (a field name, '(' or NOT)`;
    if (ident === undefined) throw this.error(start, `${expected}, found ${this.describeHere()}`);
    if (KEYWORDS.has(ident)) throw this.error(start, `${expected}, found the keyword ${ident}`);
    const field = this.resolveField(ident, start);

    this.skipWs();
    const opPos = this.pos;
    const op = this.readOperator();
    if (op === undefined) {
      const hint = this.peek() === ':' ? "the ':' (has) operator is not supported; " : '';
      throw this.error(opPos, `${hint}expected a comparison operator (=, !=, <, >, <=, >=) after "${ident}", found ${this.describeHere()}`);
    }
    const allowed = OPS_BY_TYPE[field.type];
    if (!allowed.includes(op)) {
      throw this.error(opPos, `operator '${op}' is not supported for ${field.name}, ${TYPE_NAMES[field.type]}; use ${allowed.map((o) => `'${o}'`).join(' or ')}`);
    }

    this.comparisons++;
    if (this.comparisons > FILTER_LIMITS.maxComparisons) {
      throw this.error(start, `too many comparisons; the limit is ${FILTER_LIMITS.maxComparisons}`);
    }

    this.skipWs();
    const valuePos = this.pos;
    const raw = this.readValue(op);
    return { kind: 'cmp', field: field.name, op, ...this.typedValue(field, op, raw, valuePos) };
  }

  private typedValue(field: FilterField, op: FilterOp, raw: RawValue, pos: number): { value: string | number | boolean; wildcard?: true } {
    switch (field.type) {
      case 'string':
        return raw.hasWildcard && EQUALITY_OPS.includes(op) ? { value: raw.pattern, wildcard: true } : { value: raw.text };
      case 'enum':
        if (field.enumValues && !field.enumValues.includes(raw.text)) {
          throw this.error(pos, `${quote(raw.text)} is not a valid ${field.name}; expected one of ${field.enumValues.join(', ')}`);
        }
        return { value: raw.text };
      case 'timestamp': {
        const ts = normalizeTimestamp(raw.text);
        if (ts === undefined) {
          throw this.error(pos, `${quote(raw.text)} is not a valid RFC 3339 timestamp for ${field.name}; expected e.g. 2026-01-01T00:00:00Z or 2026-01-01T09:30:00.5+02:00`);
        }
        return { value: ts };
      }
      case 'int': {
        const n = /^[+-]?\d{1,16}$/.test(raw.text) ? Number(raw.text) : NaN;
        if (!Number.isSafeInteger(n)) throw this.error(pos, `${quote(raw.text)} is not an integer; ${field.name} expects an integer such as 4`);
        return { value: n };
      }
      case 'bool':
        if (raw.text !== 'true' && raw.text !== 'false') {
          throw this.error(pos, `${quote(raw.text)} is not a boolean; ${field.name} expects true or false`);
        }
        return { value: raw.text === 'true' };
    }
  }

  private resolveField(ident: string, pos: number): FilterField {
    const camel = ident.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
    const field = this.byName.get(ident) ?? this.byName.get(camel);
    if (field) return field;
    const hint = KEYWORDS.has(ident.toUpperCase()) ? ' (the keywords AND, OR and NOT are upper-case)' : '';
    const known = this.fields.map((f) => f.name).join(', ');
    return this.fail(pos, `unknown field ${quote(ident)}${hint}; filterable fields are ${known}`);
  }

  private readIdentifier(): string | undefined {
    IDENTIFIER.lastIndex = this.pos;
    const m = IDENTIFIER.exec(this.src);
    if (!m) return undefined;
    this.pos += m[0].length;
    return m[0];
  }

  private readOperator(): FilterOp | undefined {
    const two = this.src.slice(this.pos, this.pos + 2);
    const op = (['<=', '>=', '!='] as const).find((o) => o === two) ?? (['=', '<', '>'] as const).find((o) => o === this.peek());
    if (op) this.pos += op.length;
    return op;
  }

  private readValue(op: FilterOp): RawValue {
    const start = this.pos;
    const c = this.peek();
    const expected = `expected a value after '${op}'`;
    if (c === undefined) throw this.error(start, `${expected}, found the end of the filter`);
    if (c === '"' || c === "'") return this.readQuoted(c);
    if (c === '\\') throw this.error(start, `backslash escapes are only allowed inside a quoted value; ${expected}`);
    if (BARE_STOP.test(c)) throw this.error(start, `${expected}, found ${this.describeHere()}`);
    let end = start;
    while (end < this.src.length && !BARE_STOP.test(this.src[end]!)) end++;
    if (this.src[end] === '\\') throw this.error(end, 'backslash escapes are only allowed inside a quoted value');
    const text = this.src.slice(start, end);
    if (KEYWORDS.has(text)) throw this.error(start, `${expected}, found the keyword ${text}; quote it to compare with the word itself`);
    this.pos = end;
    // A bare word has no escapes: every '*' in it is a wildcard and the text is already a pattern.
    return { text, pattern: text, hasWildcard: text.includes('*') };
  }

  private readQuoted(q: '"' | "'"): RawValue {
    const start = this.pos;
    let text = '';
    let pattern = '';
    let hasWildcard = false;
    for (let i = start + 1; ; i++) {
      const c = this.src[i];
      if (c === undefined) throw this.error(start, `unterminated string: the ${q} at position ${start + 1} has no closing ${q}`);
      if (c === q) {
        this.pos = i + 1;
        return { text, pattern, hasWildcard };
      }
      if (c === '*') {
        text += '*';
        pattern += '*';
        hasWildcard = true;
      } else if (c === '\\') {
        const e = this.src[i + 1];
        if (e === undefined) throw this.error(start, `unterminated string: the ${q} at position ${start + 1} has no closing ${q}`);
        const literal = e === '*' ? '*' : ESCAPES[e];
        if (literal === undefined) {
          throw this.error(i, `unknown escape ${quote(`\\${e}`)}; use \\\\, \\", \\', \\n, \\t or \\* (a literal star)`);
        }
        text += literal;
        pattern += literal === '*' || literal === '\\' ? `\\${literal}` : literal;
        i++;
      } else {
        text += c;
        pattern += c;
      }
    }
  }

  private nested(start: number, parse: () => FilterExpr): FilterExpr {
    this.depth++;
    if (this.depth > FILTER_LIMITS.maxDepth) {
      throw this.error(start, `nesting is too deep; the limit is ${FILTER_LIMITS.maxDepth} levels of parentheses and NOT`);
    }
    const expr = parse();
    this.depth--;
    return expr;
  }

  /** True where a juxtaposed term (an implicit AND) may start. */
  private atTermStart(): boolean {
    const c = this.peek();
    return c !== undefined && (c === '(' || c === '-' || /[A-Za-z_]/.test(c));
  }

  private atKeyword(keyword: string): boolean {
    IDENTIFIER.lastIndex = this.pos;
    return IDENTIFIER.exec(this.src)?.[0] === keyword;
  }

  private acceptKeyword(keyword: string): boolean {
    this.skipWs();
    if (!this.atKeyword(keyword)) return false;
    this.pos += keyword.length;
    return true;
  }

  private skipWs(): void {
    while (this.pos < this.src.length && /\s/.test(this.src[this.pos]!)) this.pos++;
  }

  private peek(): string | undefined {
    return this.src[this.pos];
  }

  private atEnd(): boolean {
    return this.pos >= this.src.length;
  }

  private describeHere(): string {
    return this.describeAt(this.pos);
  }

  private describeAt(pos: number): string {
    if (pos >= this.src.length) return 'the end of the filter';
    if (/\s/.test(this.src[pos]!)) return 'whitespace';
    const token = /^(\S{1,20})/.exec(this.src.slice(pos))?.[1] ?? this.src.slice(pos, pos + 1);
    return quote(token);
  }

  private error(pos: number, message: string): ApiError {
    return filterError(`at position ${pos + 1}: ${message}`);
  }

  private fail(pos: number, message: string): never {
    throw this.error(pos, message);
  }
}

function quote(text: string): string {
  return JSON.stringify(text);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,32}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/**
 * Parses an RFC 3339 timestamp and returns it as fixed-width UTC (`YYYY-MM-DDTHH:MM:SS.sssZ`), so
 * that text order is time order. Fractions beyond milliseconds are truncated. Undefined if invalid.
 */
export function normalizeTimestamp(text: string): string | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i])) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  if (m[8] !== undefined) {
    const oh = Number(m[9]);
    const om = Number(m[10]);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (m[8] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const millis = Number((m[7] ?? '').slice(0, 3).padEnd(3, '0'));
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 onto 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, millis);
  const iso = new Date(date.getTime() - offsetMinutes * 60_000).toISOString();
  // An offset can push year 0000 or 9999 out of the four-digit range, which would break text order.
  return /^\d{4}-/.test(iso) ? iso : undefined;
}

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
}

/** Nodes that came from parentheses keep their own node, so the tree shows how the filter was written. */
const parenthesized = new WeakSet<FilterExpr>();

/** One node per run of the same operator: `a b AND c` is and(a, b, c), not and(and(a, b), c). */
function flatten(kind: 'and' | 'or', items: FilterExpr[]): FilterExpr {
  if (items.length === 1) return items[0]!;
  return { kind, items: items.flatMap((i) => (i.kind === kind && !parenthesized.has(i) ? i.items : [i])) };
}
