/**
 * Bundles workflow code once at build time (dist/workflow-bundle.js), so every worker and test suite
 * loads the same bundle instead of running webpack again.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

async function main(): Promise<void> {
  const dist = join(__dirname, '..');
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(dist, 'workflows', 'index.js'),
    logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: (m) => console.warn(m), error: (m) => console.error(m) },
  });
  writeFileSync(join(dist, 'workflow-bundle.js'), code);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
