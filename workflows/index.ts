/** The workflows the control worker registers. */
export { batchJobWorkflowV2, batchJobWorkflowV3 } from './batch-job';
// Frozen: runs the jobs started before V2 to their end.
export { batchJobWorkflow } from './batch-job-v1';
export { nodePoolWorkflow } from './node-pool';
export { environmentWorkflow } from './environment';
export { sweepWorkflow } from './sweep';
