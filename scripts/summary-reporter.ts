/**
 * A node:test reporter that counts passed and failed tests and appends the counts to the file named
 * by TEST_SUMMARY_FILE, so the runner can print one summary line for all phases.
 */
import { appendFileSync } from 'node:fs';

interface TestEvent {
  type: string;
  data: { details?: { type?: string }; skip?: unknown; todo?: unknown };
}

async function* summaryReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for await (const event of source) {
    // Suites report too; count only tests (details.type is 'suite' for describe blocks).
    if (event.data.details?.type === 'suite') continue;
    if (event.type === 'test:pass') {
      if (event.data.skip !== undefined || event.data.todo !== undefined) skipped++;
      else passed++;
    } else if (event.type === 'test:fail') {
      // A todo test that fails does not fail the run (node's own rule); it is counted with the skipped.
      if (event.data.todo !== undefined) skipped++;
      else failed++;
    }
  }
  const file = process.env.TEST_SUMMARY_FILE;
  if (file) appendFileSync(file, `${JSON.stringify({ passed, failed, skipped })}\n`);
  yield '';
}

// node:test loads reporters with require(): the module itself must be the reporter function.
export = summaryReporter;
