/**
 * The environment part of job admission. A job naming `environmentId` (and maybe `snapshotId`) may run
 * only if the environment exists in the caller's account and is not being deleted (404), the caller may
 * use it (its creator, or anyone when it is shared: 403), and the snapshot exists in that environment
 * (404) and is READY (FAILED_PRECONDITION). The job then runs with the snapshot's image, else the
 * environment's.
 *
 * Two callers, two strengths:
 * - the API checks against the read model before it starts a job, for a prompt answer;
 * - the validation activity (every job, API or parent workflow) registers the job with the
 *   environment's workflow through the `useEnvironment` update, whose validator applies the same rules
 *   atomically with deletes: once registered, the environment (and the snapshot) cannot be deleted
 *   while the job lives.
 */
import { type BatchJobSpec } from '../domain/batch-job';
import { type EnvironmentUseGrant, type EnvironmentUseRequest } from '../domain/control-model';
import { type Environment, mayUseEnvironment } from '../domain/environment';
import { ApiError, resourceInfo } from '../domain/errors';
import { resourceName } from '../domain/names';
import { type Snapshot } from '../domain/snapshot';
import { type ReadModel, type StoredResource } from '../store/read-model';

export interface EnvironmentCaller {
  account: string;
  email: string;
}

/** Registers a job with an environment's workflow; throws the ApiError the workflow answered. */
export type EnvironmentRegistrar = (environmentName: string, request: EnvironmentUseRequest) => Promise<EnvironmentUseGrant>;

/** What the validation activity passes to admission: the job's name and how to register it. */
export interface EnvironmentUse {
  jobName: string;
  register: EnvironmentRegistrar;
}

export function environmentNotFound(account: string, environmentId: string): ApiError {
  return new ApiError(
    'NOT_FOUND',
    `environmentId: environment "${environmentId}" not found in account "${account}"`,
    [resourceInfo(resourceName(account, 'environments', environmentId), 'environmentId')],
  );
}

/**
 * Checks a job's environment and snapshot; registers the job when `use` is given. Returns the image the
 * job resolves to, or undefined when the job names no environment (or the environment has no image).
 */
export async function admitEnvironment(
  store: ReadModel,
  caller: EnvironmentCaller,
  spec: Pick<BatchJobSpec, 'environmentId' | 'snapshotId'>,
  use?: EnvironmentUse,
): Promise<{ imageRef?: string } | undefined> {
  const environmentId = spec.environmentId;
  if (environmentId === undefined) return undefined;
  const envName = resourceName(caller.account, 'environments', environmentId);
  const row = await store.get<Environment & StoredResource>('environments', envName);
  if (!row || row.resource.state === 'DELETING') throw environmentNotFound(caller.account, environmentId);
  const env = row.resource;
  if (!mayUseEnvironment(env, caller.email)) {
    throw ApiError.permissionDenied(
      `environmentId: environment "${environmentId}" belongs to ${env.createdBy} and is not shared; only its creator may use it in a job (or share it: shared=true)`,
    );
  }
  let imageRef = env.imageRef;
  if (spec.snapshotId !== undefined) {
    const snapshot = await findSnapshot(store, caller.account, environmentId, spec.snapshotId);
    imageRef = snapshot.imageRef;
  }
  if (use) {
    const request: EnvironmentUseRequest = { jobName: use.jobName, createdBy: caller.email };
    if (spec.snapshotId !== undefined) request.snapshotId = spec.snapshotId;
    const grant = await use.register(envName, request);
    imageRef = grant.imageRef;
  }
  return imageRef !== undefined ? { imageRef } : {};
}

async function findSnapshot(store: ReadModel, account: string, environmentId: string, snapshotId: string): Promise<Snapshot> {
  const name = resourceName(account, 'snapshots', snapshotId);
  const row = await store.get<Snapshot & StoredResource>('snapshots', name);
  if (!row || row.resource.environmentId !== environmentId) {
    const where = row ? ` (it is a snapshot of environment "${row.resource.environmentId}")` : '';
    throw new ApiError('NOT_FOUND', `snapshotId: snapshot "${snapshotId}" not found in environment "${environmentId}"${where}`, [resourceInfo(name, 'snapshotId')]);
  }
  if (row.resource.state !== 'READY') {
    throw ApiError.failedPrecondition(
      `snapshotId: snapshot "${snapshotId}" is ${row.resource.state}, not READY${row.resource.status.message ? `: ${row.resource.status.message}` : ''}`,
    );
  }
  return row.resource;
}
