/**
 * Admission: the checks a job must pass against the world before it may queue (its pool exists and can
 * ever hold it; its environment and snapshot exist and are usable). The API runs them before it starts
 * a workflow, and the validation activity runs them again for jobs started by parent workflows.
 */
import { type PoolBinding } from '../domain/control-model';
import { type BatchJobSpec } from '../domain/batch-job';
import { ApiError, resourceInfo } from '../domain/errors';
import { type NodePool, isGpuPool, poolCapacityLimit, ranksPerNodeOf } from '../domain/node-pool';
import { resourceName } from '../domain/names';
import { type ReadModel } from '../store/read-model';
import { admitEnvironment, type EnvironmentUse } from './environment-admission';

export interface Admission {
  pool: PoolBinding;
  /** The image the job resolved to (its imageRef, or its environment's or snapshot's). */
  imageRef?: string;
}

export interface Caller {
  account: string;
  email: string;
}

/**
 * `use` is given by the validation activity only: it registers the job with its environment's workflow,
 * so that the environment and snapshot cannot be deleted while the job lives (environment-admission.ts).
 */
export async function admitJob(store: ReadModel, caller: Caller, spec: BatchJobSpec, use?: EnvironmentUse): Promise<Admission> {
  const poolName = resourceName(caller.account, 'nodePools', spec.nodePoolId);
  const stored = await store.get<NodePool & { name: string; createTime: string; updateTime: string }>('nodePools', poolName);
  if (!stored || stored.resource.state === 'DELETING') {
    throw new ApiError('NOT_FOUND', `node pool "${spec.nodePoolId}" not found in account "${caller.account}"`, [resourceInfo(poolName, 'nodePoolId')]);
  }
  const pool = stored.resource;
  if (pool.state === 'FAILED') throw ApiError.failedPrecondition(`node pool "${spec.nodePoolId}" is FAILED: ${pool.status.message}`);
  const limit = poolCapacityLimit(pool);
  if (spec.numRanks > limit) {
    const unit = isGpuPool(pool) ? `${ranksPerNodeOf(pool)} GPU(s) per host, one rank per GPU` : 'one rank per host';
    throw ApiError.invalidField('numRanks', `node pool "${spec.nodePoolId}" can hold at most ${limit} ranks (${unit}); this job asks for ${spec.numRanks}`);
  }
  const admission: Admission = { pool: { workflowId: poolName, gpu: isGpuPool(pool), ranksPerNode: ranksPerNodeOf(pool) } };
  if (spec.imageRef !== undefined) admission.imageRef = spec.imageRef;
  const environment = await admitEnvironment(store, caller, spec, use);
  if (environment?.imageRef !== undefined) admission.imageRef = environment.imageRef;
  return admission;
}
