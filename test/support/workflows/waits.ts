/**
 * A workflow that waits until it is told to end, for tests that look at a running workflow from
 * outside (test/integration/workflow-threads.test.ts).
 */
import { condition, defineSignal, setHandler } from '@temporalio/workflow';

export const endSignal = defineSignal('end');

export async function waitsToBeTold(): Promise<string> {
  let told = false;
  setHandler(endSignal, () => {
    told = true;
  });
  await condition(() => told);
  return 'told';
}
