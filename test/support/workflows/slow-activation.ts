/**
 * A workflow whose one activation blocks its thread for `ms` of wall-clock time, as a pool task that
 * takes thousands of signals at once does on a loaded machine (test/integration/activation-limit.test.ts).
 */
import { sleep } from '@temporalio/workflow';

export async function slowActivation(ms: number): Promise<string> {
  await sleep(1);
  // Blocks without a timer or a promise: the activation itself is what takes long.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  return 'done';
}
