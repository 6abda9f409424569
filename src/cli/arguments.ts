/**
 * The command line's grammar: `batchd [global flags] <noun> <verb> [arguments] [flags]`, firectl
 * and kubectl style. One table of commands drives parsing, the per-command flag check and the help
 * text, so they cannot disagree. Pure (no I/O): it turns argv into a Command or a UsageError.
 */
import { parseArgs } from 'node:util';

export type OutputFormat = 'table' | 'json' | 'yaml';

interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Shown in help as `--name VALUE`. */
  value?: string;
  description: string;
}

export interface CommandSpec {
  noun: string;
  verb: string;
  summary: string;
  /** The positional arguments' names, e.g. ['JOB_ID']; all required. */
  args: string[];
  flags: Record<string, FlagSpec>;
}

const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  'api-url': { type: 'string', value: 'URL', description: 'the API, e.g. http://127.0.0.1:8080 (env BATCHD_API_URL)' },
  'api-key': { type: 'string', value: 'KEY', description: 'an API key of the account (env BATCHD_API_KEY)' },
  account: { type: 'string', value: 'ID', description: 'the account (env BATCHD_ACCOUNT; default "default")' },
  config: { type: 'string', value: 'FILE', description: 'the config file (env BATCHD_CONFIG; default ~/.config/batchd/config.json)' },
  output: { type: 'string', short: 'o', value: 'FORMAT', description: 'table (default), json or yaml' },
  help: { type: 'boolean', short: 'h', description: 'show help' },
};

const TIMEOUT: FlagSpec = { type: 'string', value: 'DURATION', description: 'give up waiting after this long (90s, 10m, 2h); exit 5' };

export const COMMANDS: readonly CommandSpec[] = [
  {
    noun: 'job',
    verb: 'create',
    summary: 'Create a batch job from a file (JSON or YAML, - for stdin) and/or flags',
    args: [],
    flags: {
      file: { type: 'string', short: 'f', value: 'FILE', description: 'the job body (the API’s create body); flags below override its fields' },
      id: { type: 'string', value: 'ID', description: 'the job id (default: server-assigned)' },
      pool: { type: 'string', value: 'ID', description: 'nodePoolId' },
      ranks: { type: 'string', value: 'N', description: 'numRanks' },
      shell: { type: 'string', value: 'COMMAND', description: 'shellExecutor.command' },
      python: { type: 'string', value: 'TARGET', description: 'pythonExecutor: a FILE.py (FILENAME) or a module (MODULE)' },
      arg: { type: 'string', multiple: true, value: 'ARG', description: 'an argument of the python target (repeat)' },
      notebook: { type: 'string', value: 'FILE', description: 'notebookExecutor.notebookFilename' },
      'display-name': { type: 'string', value: 'TEXT', description: 'displayName' },
      env: { type: 'string', multiple: true, value: 'K=V', description: 'an entry of envVars (repeat)' },
      annotation: { type: 'string', multiple: true, value: 'K=V', description: 'an entry of annotations (repeat)' },
      environment: { type: 'string', value: 'ID', description: 'environmentId' },
      'image-ref': { type: 'string', value: 'REF', description: 'imageRef' },
      'max-attempts': { type: 'string', value: 'N', description: 'retryPolicy.maxAttempts (1-10, the first attempt included)' },
      'retry-exit-codes': { type: 'string', value: 'CODES', description: 'retryPolicy.exitCodes, comma-separated codes or ranges: 1,3-5' },
      'retry-on': { type: 'string', value: 'CONDITIONS', description: 'retryPolicy.conditions, comma-separated: HOST_LOST,OUT_OF_MEMORY,PREEMPTED' },
      'max-run-duration': { type: 'string', value: 'DURATION', description: 'maxRunDuration, e.g. 3600s' },
      'max-queue-duration': { type: 'string', value: 'DURATION', description: 'maxQueueDuration, e.g. 600s' },
      priority: { type: 'string', value: 'N', description: 'priority, -1000 to 1000 (default 0): higher runs first; --priority=-N for a negative one' },
      after: { type: 'string', multiple: true, value: 'JOB', description: 'dependsOn: wait for JOB to end COMPLETED (repeat; JOB:FAILED or JOB:ENDED for other ends)' },
      wait: { type: 'boolean', description: 'then wait for the job to end, as `job wait` does' },
      timeout: TIMEOUT,
    },
  },
  { noun: 'job', verb: 'get', summary: 'Show a batch job: state, status, placement, times', args: ['JOB_ID'], flags: {} },
  {
    noun: 'job',
    verb: 'list',
    summary: 'List batch jobs, newest first',
    args: [],
    flags: {
      filter: { type: 'string', value: 'EXPR', description: 'AIP-160 filter, e.g. \'state = "RUNNING"\'' },
      'order-by': { type: 'string', value: 'FIELDS', description: 'AIP-132 order, e.g. "create_time desc"' },
      limit: { type: 'string', value: 'N', description: 'at most N jobs (default 50; 0 for all)' },
    },
  },
  { noun: 'job', verb: 'cancel', summary: 'Cancel a live batch job (its ranks are stopped)', args: ['JOB_ID'], flags: {} },
  { noun: 'job', verb: 'delete', summary: 'Delete a batch job (a live one is stopped first)', args: ['JOB_ID'], flags: {} },
  {
    noun: 'job',
    verb: 'logs',
    summary: 'Print a job’s log lines, oldest first; -f follows them until the job ends',
    args: ['JOB_ID'],
    flags: {
      follow: { type: 'boolean', short: 'f', description: 'keep printing new lines until the job has ended' },
      rank: { type: 'string', multiple: true, value: 'N', description: 'only this rank (repeat)' },
    },
  },
  {
    noun: 'job',
    verb: 'wait',
    summary: 'Wait for a job to end; exit 0 COMPLETED, 3 FAILED, 4 CANCELLED, 5 timeout',
    args: ['JOB_ID'],
    flags: { timeout: TIMEOUT, interval: { type: 'string', value: 'DURATION', description: 'how often to ask (default 1s)' } },
  },
  { noun: 'pool', verb: 'list', summary: 'List node pools', args: [], flags: {} },
  { noun: 'pool', verb: 'get', summary: 'Show a node pool', args: ['POOL_ID'], flags: {} },
  { noun: 'pool', verb: 'stats', summary: 'Show a node pool’s live statistics', args: ['POOL_ID'], flags: {} },
  { noun: 'env', verb: 'list', summary: 'List environments', args: [], flags: {} },
  { noun: 'env', verb: 'get', summary: 'Show an environment', args: ['ENV_ID'], flags: {} },
];

export type FlagValues = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  spec: CommandSpec;
  args: string[];
  flags: FlagValues;
  output: OutputFormat;
  global: { apiUrl?: string; apiKey?: string; account?: string; config?: string };
}

/** What the user asked for: a command, or help (for everything, a noun, or one command). */
export type Invocation = { kind: 'command'; command: Command } | { kind: 'help'; text: string };

/** A mistake on the command line: exit code 2, the message and a pointer to help. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function parseInvocation(argv: readonly string[]): Invocation {
  const { noun, verb, rest } = splitCommand(argv);
  const wantsHelp = rest.includes('--help') || rest.includes('-h');
  if (noun === undefined || noun === 'help') return { kind: 'help', text: helpText() };
  const nounCommands = COMMANDS.filter((c) => c.noun === noun);
  if (nounCommands.length === 0) throw new UsageError(`unknown command "${noun}"; nouns: ${[...new Set(COMMANDS.map((c) => c.noun))].join(', ')}`);
  if (verb === undefined) {
    if (wantsHelp) return { kind: 'help', text: helpText(noun) };
    throw new UsageError(`"${noun}" needs a verb: ${nounCommands.map((c) => c.verb).join(', ')}`);
  }
  const spec = nounCommands.find((c) => c.verb === verb);
  if (!spec) throw new UsageError(`unknown command "${noun} ${verb}"; ${noun} verbs: ${nounCommands.map((c) => c.verb).join(', ')}`);
  if (wantsHelp) return { kind: 'help', text: commandHelp(spec) };

  let parsed: { values: FlagValues; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...rest], options: { ...GLOBAL_FLAGS, ...spec.flags }, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    // Node's message runs over three lines; one line, and the hint in our words.
    const first = (err as Error).message.split('\n')[0] ?? '';
    const hint = /ambiguous/.test(first) ? '; write --flag=VALUE for a value that starts with -' : '';
    throw new UsageError(`${first}${hint} (see batchd ${noun} ${verb} --help)`);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== spec.args.length) {
    const wanted = spec.args.length === 0 ? 'no arguments' : spec.args.join(' ');
    throw new UsageError(`batchd ${noun} ${verb} takes ${wanted}, got ${positionals.length === 0 ? 'none' : positionals.map((p) => `"${p}"`).join(' ')}`);
  }
  const output = (values.output ?? 'table') as string;
  if (output !== 'table' && output !== 'json' && output !== 'yaml') throw new UsageError(`-o/--output must be table, json or yaml, got "${output}"`);
  const flags: FlagValues = {};
  for (const name of Object.keys(spec.flags)) flags[name] = values[name];
  return {
    kind: 'command',
    command: {
      spec,
      args: positionals,
      flags,
      output,
      global: {
        ...(typeof values['api-url'] === 'string' ? { apiUrl: values['api-url'] } : {}),
        ...(typeof values['api-key'] === 'string' ? { apiKey: values['api-key'] } : {}),
        ...(typeof values.account === 'string' ? { account: values.account } : {}),
        ...(typeof values.config === 'string' ? { config: values.config } : {}),
      },
    },
  };
}

/**
 * Finds the noun and verb: the first two words that are neither a flag nor a global flag's value,
 * so global flags may come first (`batchd --api-url X job list`). The rest is parsed per command.
 */
function splitCommand(argv: readonly string[]): { noun?: string; verb?: string; rest: string[] } {
  const words: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    if (words.length === 2 || token === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (!token.startsWith('-') || token === '-') {
      words.push(token);
      continue;
    }
    rest.push(token);
    // A global flag's value is not a word (`--account acme job list`).
    if (globalTakesValue(token) && i + 1 < argv.length) rest.push(argv[++i] ?? '');
  }
  return { ...(words[0] !== undefined ? { noun: words[0] } : {}), ...(words[1] !== undefined ? { verb: words[1] } : {}), rest };
}

function globalTakesValue(token: string): boolean {
  if (token.includes('=')) return false;
  for (const [name, spec] of Object.entries(GLOBAL_FLAGS)) {
    if (spec.type !== 'string') continue;
    if (token === `--${name}` || (spec.short && token === `-${spec.short}`)) return true;
  }
  return false;
}

// --- values -------------------------------------------------------------------------------------

/** `90s`, `10m`, `2h`, `500ms` or plain seconds → milliseconds. */
export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--${flag} must be a duration such as 90s, 10m or 2h, got "${text}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

/** A non-negative integer flag. */
export function parseCount(flag: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`--${flag} must be a whole number, got "${text}"`);
  return Number(text);
}

/** An integer flag, negative allowed. */
export function parseInteger(flag: string, text: string): number {
  if (!/^[+-]?\d+$/.test(text.trim())) throw new UsageError(`--${flag} must be an integer, got "${text}"`);
  return Number(text);
}

/** Repeated `K=V` flags → a map; the value may contain `=`. */
export function parseKeyValues(flag: string, entries: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of entries) {
    const at = entry.indexOf('=');
    if (at <= 0) throw new UsageError(`--${flag} must be KEY=VALUE, got "${entry}"`);
    out[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return out;
}

// --- help ---------------------------------------------------------------------------------------

function flagLine(name: string, spec: FlagSpec): string {
  const left = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.value ? ` ${spec.value}` : ''}`;
  return `  ${left.padEnd(28)} ${spec.description}`;
}

export function helpText(noun?: string): string {
  const commands = COMMANDS.filter((c) => noun === undefined || c.noun === noun);
  const width = Math.max(...commands.map((c) => `${c.noun} ${c.verb} ${c.args.join(' ')}`.length));
  return [
    'batchd: the command line of the batchd API',
    '',
    'Usage: batchd <noun> <verb> [arguments] [flags]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${`${c.noun} ${c.verb} ${c.args.join(' ')}`.padEnd(width)}  ${c.summary}`),
    '',
    'Global flags:',
    ...Object.entries(GLOBAL_FLAGS).map(([name, spec]) => flagLine(name, spec)),
    '',
    EXIT_CODES_HELP,
  ].join('\n');
}

export function commandHelp(spec: CommandSpec): string {
  const flags = Object.entries(spec.flags);
  return [
    `Usage: batchd ${spec.noun} ${spec.verb}${spec.args.map((a) => ` ${a}`).join('')}${flags.length ? ' [flags]' : ''}`,
    '',
    spec.summary,
    ...(flags.length ? ['', 'Flags:', ...flags.map(([name, f]) => flagLine(name, f))] : []),
    '',
    'Global flags:',
    ...Object.entries(GLOBAL_FLAGS).map(([name, f]) => flagLine(name, f)),
  ].join('\n');
}

/** The exit codes, as `batchd --help` and the README state them. */
export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, FAILED: 3, CANCELLED: 4, TIMEOUT: 5 } as const;

const EXIT_CODES_HELP = [
  'Exit codes:',
  '  0  success (job wait: the job COMPLETED)',
  '  1  the API refused the request or could not be reached (one line on stderr says why)',
  '  2  bad command line, unreadable file, or no API key',
  '  3  job wait / create --wait: the job FAILED',
  '  4  job wait / create --wait: the job was CANCELLED',
  '  5  job wait / create --wait: --timeout passed first',
].join('\n');
