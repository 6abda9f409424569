#!/usr/bin/env node
/**
 * `batchd` — the command line of the batchd API (`npx batchd job list`; the package's `bin`). Parses
 * the command line, finds the API and key (src/cli/settings.ts), runs the command, and exits with
 * the documented code (`batchd --help`): an error is one line on stderr, never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { parseInvocation, EXIT, UsageError } from './arguments';
import { runCommand, type Io } from './commands';
import { errorLine } from './output';
import { resolveSettings } from './settings';

function terminalIo(): Io {
  const io: Io = {
    out: (text) => process.stdout.write(`${text}\n`),
    readStdin: () => readFileSync(0, 'utf8'),
    now: () => Date.now(),
  };
  // The progress line goes to stderr, and only to a terminal: a script capturing stdout (or a log
  // collecting stderr) gets the result alone.
  if (process.stderr.isTTY) {
    let shown = false;
    io.progress = (text) => {
      const width = Math.max(20, (process.stderr.columns || 80) - 1);
      process.stderr.write(`\r\x1b[K${[...text].slice(0, width).join('')}`);
      shown = true;
    };
    io.endProgress = () => {
      if (shown) process.stderr.write('\r\x1b[K');
      shown = false;
    };
  }
  return io;
}

async function main(argv: string[]): Promise<number> {
  try {
    const invocation = parseInvocation(argv);
    if (invocation.kind === 'help') {
      process.stdout.write(`${invocation.text}\n`);
      return EXIT.OK;
    }
    const settings = resolveSettings(invocation.command.global, process.env);
    return await runCommand(invocation.command, settings, terminalIo());
  } catch (err) {
    process.stderr.write(`${errorLine(err)}\n`);
    if (err instanceof UsageError) {
      return EXIT.USAGE;
    }
    return EXIT.ERROR;
  }
}

// `batchd job logs x | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT.OK);
  throw err;
});

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
