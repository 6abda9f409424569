/**
 * An open workflow that, like the job and pool workflows, imports src/domain (whose modules build zod
 * schemas at module scope), then waits for a signal. For bench/experiments/workflow-footprint.ts.
 */
import { condition, defineSignal, setHandler } from '@temporalio/workflow';
import { isTerminal } from '../../src/domain/batch-job';
import { numberRanks } from '../../src/domain/ranks';

export const doneSignal = defineSignal('done');

export async function domainWaitWorkflow(): Promise<boolean> {
  let done = false;
  setHandler(doneSignal, () => {
    done = true;
  });
  await condition(() => done);
  return isTerminal('COMPLETED') && numberRanks([]).length === 0;
}
