/** The workflows the control worker registers. */
export { batchJobWorkflow } from './batch-job';
export { nodePoolWorkflow } from './node-pool';
export { environmentWorkflow } from './environment';
export { sweepWorkflow } from './sweep';
