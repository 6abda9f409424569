/**
 * Admission: the checks a job must pass against the world before it may queue (its pool exists and can
 * ever hold it; its environment and snapshot exist and are usable). The API runs them before it starts
 * a workflow, and the validation activity runs them again for jobs started by parent workflows.
 */
import { type PoolBinding } from '../domain/control-model';
import { type BatchJobSpec } from '../domain/batch-job';
import { ApiError, resourceInfo } from '../domain/errors';
import { type NodePool, isGpuPool, poolCapacityLimit, ranksPerNodeOf } from '../domain/node-pool';
import { parseResourceName, resourceName } from '../domain/names';
import { EMPTY_SHARING, mayUsePool, poolNameOf, type SharingConfig } from '../domain/sharing-config';
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
export async function admitJob(store: ReadModel, caller: Caller, spec: BatchJobSpec, use?: EnvironmentUse, sharing: SharingConfig = EMPTY_SHARING): Promise<Admission> {
  const poolName = poolNameOf(caller.account, spec.nodePoolId);
  // Another account's pool is usable only when the operator's sharing file says so; whether it
  // exists is not said to an account it is not shared with.
  if (!mayUsePool(sharing, caller.account, poolName)) {
    throw new ApiError('NOT_FOUND', `node pool "${spec.nodePoolId}" is not shared with account "${caller.account}"`, [resourceInfo(poolName, 'nodePoolId')]);
  }
  const stored = await store.get<NodePool & { name: string; createTime: string; updateTime: string }>('nodePools', poolName);
  if (!stored || stored.resource.state === 'DELETING') {
    throw new ApiError('NOT_FOUND', `node pool "${spec.nodePoolId}" not found in account "${parseResourceName(poolName)?.account ?? caller.account}"`, [resourceInfo(poolName, 'nodePoolId')]);
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

/**
 * A job's dependencies with each named in full (accounts/{account}/batchJobs/{id}), checked: every one
 * is a job of the same account, not the job itself, named once. With `mustExist`, each must exist now:
 * a job can only depend on jobs created before it, which is why dependencies can never form a cycle
 * (the only cycle possible, a job on itself, is refused here).
 */
export async function admitDependencies(store: ReadModel, account: string, jobName: string, spec: BatchJobSpec, mustExist: boolean): Promise<BatchJobSpec> {
  if (!spec.dependsOn) return spec;
  const seen = new Set<string>();
  const dependsOn = [];
  for (const [i, dep] of spec.dependsOn.entries()) {
    const field = `dependsOn[${i}].batchJob`;
    const full = dep.batchJob.includes('/') ? dep.batchJob : resourceName(account, 'batchJobs', dep.batchJob);
    if (!full.startsWith(`accounts/${account}/batchJobs/`)) {
      throw ApiError.invalidField(field, `"${dep.batchJob}" is not a batch job of account "${account}": a job can only depend on jobs of its own account`);
    }
    if (full === jobName) throw ApiError.invalidField(field, `a job cannot depend on itself: that is a cycle it could never leave`);
    if (seen.has(full)) throw ApiError.invalidField(field, `"${dep.batchJob}" is named twice; name each dependency once`);
    seen.add(full);
    if (mustExist && !(await store.get('batchJobs', full))) {
      throw ApiError.invalidField(field, `batch job "${full.split('/').pop()}" not found in account "${account}": a job can only depend on jobs that exist`);
    }
    dependsOn.push({ batchJob: full, condition: dep.condition });
  }
  return { ...spec, dependsOn };
}
