/**
 * Workflow code must not load zod: every module a workflow imports is evaluated again in each
 * workflow's sandbox, and zod's schemas cost about a megabyte per cached job (docs/performance.md §7).
 * This reads the bundle `npm run build` writes and checks which modules went into it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const bundle = readFileSync(join(__dirname, '..', '..', 'workflow-bundle.js'), 'utf8');

/** The source modules webpack put in the bundle, from the paths it records for each. */
function bundledModules(): Set<string> {
  const modules = new Set<string>();
  for (const match of bundle.matchAll(/(?:node_modules\/(?:@[\w.-]+\/)?[\w.-]+|(?:src|workflows|activities)\/[\w/.-]+\.js)/g)) {
    modules.add(match[0]);
  }
  return modules;
}

describe('workflow bundle', () => {
  const modules = bundledModules();

  it('holds the workflows and the domain code they use (the module list is real)', () => {
    assert.ok(modules.has('node_modules/@temporalio/workflow'), [...modules].join(', '));
    assert.ok([...modules].some((m) => m.endsWith('workflows/batch-job.js')));
    assert.ok([...modules].some((m) => m.endsWith('src/domain/scheduler.js')));
  });

  it('loads no zod and no module that builds schemas', () => {
    assert.ok(!modules.has('node_modules/zod'), 'zod is in the workflow bundle');
    const schemaModules = ['src/domain/batch-job.js', 'src/domain/fields.js', 'src/domain/validation.js', 'src/domain/batch-job-update.js', 'src/domain/node-pool.js', 'src/domain/environment.js', 'src/domain/snapshot.js'];
    const found = [...modules].filter((m) => schemaModules.some((s) => m.endsWith(s)));
    assert.deepEqual(found, []);
  });
});
