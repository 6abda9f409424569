import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BatchdApiError, errorOf, queryString } from '../../src/client/batchd-client';
import { ServerSentEventParser } from '../../src/client/server-sent-events';
import { type Command, parseDuration, parseInvocation, UsageError } from '../../src/cli/arguments';
import { jobBodyFrom, progressText } from '../../src/cli/commands';
import { errorLine, formatAge, formatDetails, formatTable, jobTable } from '../../src/cli/output';
import { resolveSettings } from '../../src/cli/settings';
import { type BatchJob } from '../../src/domain/batch-job-model';

function command(argv: string[]): Command {
  const inv = parseInvocation(argv);
  assert.equal(inv.kind, 'command');
  return inv.command;
}

function usageError(argv: string[], pattern: RegExp): void {
  assert.throws(() => parseInvocation(argv), (err: unknown) => err instanceof UsageError && pattern.test(err.message));
}

describe('cli arguments', () => {
  it('finds noun, verb and argument with flags before, between and after them', () => {
    const c = command(['--api-url', 'http://h:1', '-o', 'json', 'job', 'logs', 'j1', '-f', '--rank', '0', '--rank', '3', '--account=acme']);
    assert.equal(`${c.spec.noun} ${c.spec.verb}`, 'job logs');
    assert.deepEqual(c.args, ['j1']);
    assert.equal(c.output, 'json');
    assert.deepEqual(c.flags.rank, ['0', '3']);
    assert.equal(c.flags.follow, true);
    assert.deepEqual(c.global, { apiUrl: 'http://h:1', account: 'acme' });
  });

  it('gives -f its meaning per command: a file for create, follow for logs', () => {
    assert.equal(command(['job', 'create', '-f', 'job.json']).flags.file, 'job.json');
    assert.equal(command(['job', 'create', '-f', '-']).flags.file, '-');
    assert.equal(command(['job', 'logs', 'x', '-f']).flags.follow, true);
  });

  it('refuses unknown nouns, verbs, flags, a flag of another command, and wrong argument counts', () => {
    usageError(['jobs', 'list'], /unknown command "jobs"; nouns: job, pool, env/);
    usageError(['job'], /"job" needs a verb: create, get/);
    usageError(['job', 'explode'], /unknown command "job explode"/);
    usageError(['job', 'get', 'x', '--bogus'], /Unknown option '--bogus'/);
    usageError(['job', 'get', 'x', '--rank', '1'], /Unknown option '--rank'/);
    usageError(['job', 'get'], /takes JOB_ID, got none/);
    usageError(['job', 'get', 'a', 'b'], /takes JOB_ID, got "a" "b"/);
    usageError(['pool', 'list', 'x'], /takes no arguments/);
    usageError(['job', 'create', '--python', 'm', '--arg', '--lr'], /^Option '--arg' argument is ambiguous.*; write --flag=VALUE for a value that starts with -/);
    usageError(['job', 'list', '-o', 'xml'], /table, json or yaml, got "xml"/);
  });

  it('answers help for everything, a noun and one command', () => {
    for (const argv of [[], ['help'], ['--help']]) {
      const inv = parseInvocation(argv);
      assert.equal(inv.kind, 'help');
      if (inv.kind === 'help') assert.match(inv.text, /Exit codes:[\s\S]*3 {2}job wait/);
    }
    const noun = parseInvocation(['pool', '--help']);
    assert.ok(noun.kind === 'help' && noun.text.includes('pool stats') && !noun.text.includes('job create'));
    const one = parseInvocation(['job', 'create', '-h']);
    assert.ok(one.kind === 'help' && one.text.includes('--display-name TEXT'));
  });

  it('parses durations and refuses what is not one', () => {
    assert.equal(parseDuration('timeout', '90s'), 90_000);
    assert.equal(parseDuration('timeout', '10m'), 600_000);
    assert.equal(parseDuration('timeout', '1.5h'), 5_400_000);
    assert.equal(parseDuration('timeout', '250ms'), 250);
    assert.equal(parseDuration('timeout', '7'), 7000);
    assert.throws(() => parseDuration('timeout', 'soon'), /--timeout must be a duration/);
  });
});

describe('cli job body', () => {
  const flags = (argv: string[]) => command(['job', 'create', ...argv]).flags;

  it('builds the create body from flags', () => {
    assert.deepEqual(jobBodyFrom({}, flags(['--pool', 'p', '--ranks', '4', '--python', 'train.py', '--arg=--lr', '--arg', '0.1', '--env', 'A=1', '--env', 'B=x=y', '--display-name', 'd'])), {
      nodePoolId: 'p',
      numRanks: 4,
      displayName: 'd',
      pythonExecutor: { targetType: 'FILENAME', target: 'train.py', args: ['--lr', '0.1'] },
      envVars: { A: '1', B: 'x=y' },
    });
    assert.deepEqual(jobBodyFrom({}, flags(['--python', 'pkg.train'])).pythonExecutor, { targetType: 'MODULE', target: 'pkg.train' });
    assert.deepEqual(jobBodyFrom({}, flags(['--notebook', 'a.ipynb'])).notebookExecutor, { notebookFilename: 'a.ipynb' });
  });

  it('builds retries, limits and dependencies from flags, over the file\'s policy', () => {
    const body = jobBodyFrom(
      { retryPolicy: { maxAttempts: 2, initialBackoff: '5s' } },
      flags(['--max-attempts', '3', '--retry-exit-codes', '1, 3-5', '--retry-on', 'host_lost,OUT_OF_MEMORY', '--max-run-duration', '3600s', '--max-queue-duration', '60s', '--after', 'a', '--after', 'b:failed']),
    ) as unknown as Record<string, unknown>;
    assert.deepEqual(body.retryPolicy, { maxAttempts: 3, initialBackoff: '5s', exitCodes: ['1', '3-5'], conditions: ['HOST_LOST', 'OUT_OF_MEMORY'] });
    assert.equal(body.maxRunDuration, '3600s');
    assert.equal(body.maxQueueDuration, '60s');
    assert.deepEqual(body.dependsOn, [
      { batchJob: 'a', condition: 'COMPLETED' },
      { batchJob: 'b', condition: 'FAILED' },
    ]);
  });

  it('sets priority from --priority as an integer, over the file\'s', () => {
    const body = (argv: string[], file: Record<string, unknown> = {}) => jobBodyFrom(file, flags(argv)) as unknown as Record<string, unknown>;
    assert.equal(body(['--priority', '10']).priority, 10);
    assert.equal(body(['--priority=-20'], { priority: 5 }).priority, -20);
    assert.equal(body(['--priority', '+3']).priority, 3);
    assert.equal(body(['--priority', '0'], { priority: 5 }).priority, 0);
    assert.equal(body([], { priority: 5 }).priority, 5);
    assert.ok(!('priority' in body([])));
    // The range is the API's to check (it names the field); the flag only has to be an integer.
    assert.equal(body(['--priority', '5000']).priority, 5000);
    for (const bad of ['high', '1.5', '', '1e3']) assert.throws(() => body(['--priority', bad]), /--priority must be an integer, got/, bad);
    usageError(['job', 'create', '--priority', '-5'], /^Option '--priority' argument is ambiguous.*; write --flag=VALUE for a value that starts with -/);
  });

  it('lays flags over the file: an executor flag replaces the file’s executor, maps merge', () => {
    const file = { nodePoolId: 'p', numRanks: 2, shellExecutor: { command: 'old' }, envVars: { A: '1' }, annotations: { k: 'v' } };
    assert.deepEqual(jobBodyFrom(file, flags(['--python', 'm', '--env', 'B=2', '--annotation', 'k=w', '--pool', 'q'])), {
      nodePoolId: 'q',
      numRanks: 2,
      pythonExecutor: { targetType: 'MODULE', target: 'm' },
      envVars: { A: '1', B: '2' },
      annotations: { k: 'w' },
    });
    assert.deepEqual(jobBodyFrom(file, flags([])), file);
  });

  it('refuses contradictory or malformed flags', () => {
    assert.throws(() => jobBodyFrom({}, flags(['--shell', 'a', '--python', 'b'])), /at most one of --shell, --python and --notebook/);
    assert.throws(() => jobBodyFrom({}, flags(['--shell', 'a', '--arg', 'x'])), /--arg goes with --python/);
    assert.throws(() => jobBodyFrom({}, flags(['--env', 'NOVALUE'])), /--env must be KEY=VALUE, got "NOVALUE"/);
    assert.throws(() => jobBodyFrom({}, flags(['--ranks', 'two'])), /--ranks must be a whole number/);
  });
});

describe('cli output', () => {
  it('aligns table columns without trailing blanks, and keeps a cell on one line', () => {
    const text = formatTable(['ID', 'STATE', 'NOTE'], [['a', 'RUNNING', 'x'], ['long-name', 'QUEUED', 'two\nlines'], ['b', 'FAILED', '']]);
    assert.equal(text, ['ID         STATE    NOTE', 'a          RUNNING  x', 'long-name  QUEUED   two lines', 'b          FAILED'].join('\n'));
  });

  it('aligns details and leaves out absent values', () => {
    assert.equal(formatDetails([['Name', 'n'], ['Display name', undefined], ['Status', 'ok']]), 'Name:    n\nStatus:  ok');
  });

  it('writes ages as kubectl does', () => {
    const now = Date.parse('2025-01-10T00:00:00Z');
    const ago = (s: number) => formatAge(new Date(now - s * 1000).toISOString(), now);
    assert.deepEqual([ago(5), ago(119), ago(120), ago(7199), ago(7200), ago(172_799), ago(172_800)], ['5s', '119s', '2m', '119m', '2h', '47h', '2d']);
    assert.equal(formatAge(undefined, now), '');
  });

  it('lists jobs by id', () => {
    const job = { name: 'accounts/a/batchJobs/j1', state: 'RUNNING', nodePoolId: 'gpu', numRanks: 8, createTime: '2025-01-01T00:00:00Z' } as BatchJob;
    assert.equal(jobTable([job], Date.parse('2025-01-01T00:00:30Z')), 'ID  STATE    POOL  RANKS  DISPLAY NAME  AGE\nj1  RUNNING  gpu   8' + ' '.repeat(20) + '30s');
  });

  it('prints an API error in one line with its code, message and the fields the message leaves out', () => {
    const bad = errorOf(400, JSON.stringify({ code: 3, message: 'numRanks: must be at least 1', details: [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: 'numRanks', description: 'must be at least 1' }] }] }));
    assert.equal(errorLine(bad), 'error: INVALID_ARGUMENT: numRanks: must be at least 1');
    const missing = errorOf(404, JSON.stringify({ code: 5, message: 'node pool "x" not found', details: [{ '@type': 'type.googleapis.com/google.rpc.ResourceInfo', resourceName: 'accounts/a/nodePools/x', description: 'named by the request field nodePoolId' }] }));
    assert.equal(errorLine(missing), 'error: NOT_FOUND: node pool "x" not found (field nodePoolId)');
    const other = errorOf(502, '<html>\n<body>Bad gateway</body>\n</html>');
    assert.ok(other instanceof BatchdApiError);
    assert.equal(errorLine(other), 'error: UNKNOWN: HTTP 502: <html> <body>Bad gateway</body> </html>');
  });

  it('shows progress with the elapsed time and the job’s status', () => {
    assert.equal(progressText({ name: 'accounts/a/batchJobs/j', state: 'QUEUED', status: 'first in the queue' }, 12_400), '⠹ j QUEUED 12s: first in the queue');
  });
});

describe('cli settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'batchd-cli-'));
  const home = { HOME: dir, XDG_CONFIG_HOME: '' };

  it('takes flags over the environment over the config file over defaults', () => {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ apiUrl: 'http://file:1', apiKey: 'file-key', account: 'file-acct' }));
    assert.deepEqual(resolveSettings({ config: file }, home), { apiUrl: 'http://file:1', apiKey: 'file-key', account: 'file-acct' });
    assert.deepEqual(resolveSettings({}, { ...home, BATCHD_CONFIG: file, BATCHD_API_KEY: 'env-key' }), { apiUrl: 'http://file:1', apiKey: 'env-key', account: 'file-acct' });
    assert.deepEqual(resolveSettings({ apiKey: 'flag-key', account: 'flag' }, { ...home, BATCHD_CONFIG: file, BATCHD_API_KEY: 'env-key', BATCHD_ACCOUNT: 'env' }), {
      apiUrl: 'http://file:1',
      apiKey: 'flag-key',
      account: 'flag',
    });
    assert.deepEqual(resolveSettings({ apiKey: 'k' }, home), { apiUrl: 'http://127.0.0.1:8080', apiKey: 'k', account: 'default' });
  });

  it('reads ~/.config/batchd/config.json when no file is named', () => {
    const xdg = join(dir, 'xdg');
    mkdirSync(join(xdg, 'batchd'), { recursive: true });
    writeFileSync(join(xdg, 'batchd', 'config.json'), JSON.stringify({ apiKey: 'from-default-file' }));
    assert.equal(resolveSettings({}, { ...home, XDG_CONFIG_HOME: xdg }).apiKey, 'from-default-file');
  });

  it('says what is wrong with a missing key, a named file that is absent, and a bad file', () => {
    assert.throws(() => resolveSettings({}, home), /no API key: pass --api-key, set BATCHD_API_KEY, or put "apiKey" in .*batchd\/config\.json/);
    assert.throws(() => resolveSettings({ config: join(dir, 'absent.json') }, home), /cannot read the config file .*absent\.json: ENOENT/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ apiKey: 'k', apiUrll: 'x' }));
    assert.throws(() => resolveSettings({ config: bad }, home), /unknown field "apiUrll"/);
    assert.throws(() => resolveSettings({ apiKey: 'k', apiUrl: 'ftp://x' }, home), /must start with http:\/\/ or https:\/\//);
  });
});

describe('client plumbing', () => {
  it('parses server-sent events split anywhere, with comments and CRLF', () => {
    const stream = ': keep-alive\r\n\r\nevent: log\r\ndata: {"a":1}\r\n\r\nevent: end\ndata: x\ndata: y\n\ndata: plain\n\n';
    const whole = new ServerSentEventParser().push(stream);
    assert.deepEqual(whole, [
      { event: 'log', data: '{"a":1}' },
      { event: 'end', data: 'x\ny' },
      { event: 'message', data: 'plain' },
    ]);
    for (let size = 1; size <= 7; size++) {
      const parser = new ServerSentEventParser();
      const events = [];
      for (let i = 0; i < stream.length; i += size) events.push(...parser.push(stream.slice(i, i + size)));
      assert.deepEqual(events, whole, `chunks of ${size}`);
    }
  });

  it('repeats list parameters and leaves out absent ones', () => {
    assert.equal(queryString({ ranks: [0, 2], filter: 'a b', pageToken: undefined, startFromHead: true }), '?ranks=0&ranks=2&filter=a+b&startFromHead=true');
    assert.equal(queryString({}), '');
  });
});
