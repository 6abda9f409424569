/**
 * Environments and snapshots as the API sees them. Each environment is an entity workflow
 * (workflows/environment.ts) that owns the environment, its snapshots and the set of jobs admitted
 * with it; every change is a workflow update that returns once the read model holds it. Lists read
 * the read model; get asks the workflow and falls back to the read model.
 *
 * Who may do what: every user of the account may read; update, delete and snapshot create/delete are
 * for the environment's creator, or for everyone when it is shared (the contract's sharing rule).
 */
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { type Logger } from 'pino';
import type { environmentWorkflow } from '../../workflows/environment';
import {
  createSnapshotUpdate,
  deleteEnvironmentUpdate,
  deleteSnapshotUpdate,
  type EnvironmentView,
  getEnvironmentQuery,
  updateEnvironmentUpdate,
} from '../../workflows/messages';
import { BatchdAccount } from '../../workflows/search-attributes';
import { type AccountLimits } from '../control/account-limits';
import { liveJobs } from '../control/live-jobs';
import { DISCONNECTED_MESSAGE, type Environment, environmentCreateBodySchema, environmentSpecOf, mayUseEnvironment, planEnvironmentUpdate } from '../domain/environment';
import { ApiError, resourceInfo } from '../domain/errors';
import { generateId, resourceName } from '../domain/names';
import { okStatus } from '../domain/node-pool';
import { type Snapshot, snapshotCreateBodySchema } from '../domain/snapshot';
import { parseOrThrow } from '../domain/validation';
import { type ListQuery, type ReadModel, type StoredResource } from '../store/read-model';
import { type Principal } from './auth';
import { fromTemporal } from './errors';

export interface EnvironmentServiceDeps {
  client: Client;
  store: ReadModel;
  taskQueue: string;
  logger: Logger;
  /** History length at which an environment workflow continues as new (default 4000). */
  continueAsNewEvents?: number;
  queryTimeoutMs?: number;
  random?: () => number;
  /** The account's limits on environments and snapshots; none when absent (tests). */
  limits?: AccountLimits;
}

type StoredEnvironment = Environment & StoredResource;
type StoredSnapshot = Snapshot & StoredResource;

interface Page<T> {
  items: T[];
  totalSize: number;
  nextAfter?: unknown[];
}

export class EnvironmentService {
  constructor(private readonly d: EnvironmentServiceDeps) {}

  private name(account: string, id: string): string {
    return resourceName(account, 'environments', id);
  }

  private handle(name: string) {
    return this.d.client.workflow.getHandle(name);
  }

  private query(name: string): Promise<EnvironmentView> {
    return this.d.client.withDeadline(Date.now() + (this.d.queryTimeoutMs ?? 3000), () => this.handle(name).query(getEnvironmentQuery));
  }

  /** Runs a workflow update, translating what it refused into the ApiError it carries. */
  private async viaWorkflow<T>(id: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw ApiError.notFound(`environment "${id}"`);
      throw fromTemporal(err) ?? err;
    }
  }

  private mayChange(caller: Principal, env: Environment, id: string): void {
    if (!mayUseEnvironment(env, caller.email)) {
      throw ApiError.permissionDenied(`only ${env.createdBy} may change environment "${id}" (it is not shared)`);
    }
  }

  // ---- environments --------------------------------------------------------------------------------

  async create(caller: Principal, body: unknown): Promise<Environment> {
    const { environment: spec, environmentId: id } = parseOrThrow(environmentCreateBodySchema, body);
    const name = this.name(caller.account, id);
    if (await this.d.store.get('environments', name)) throw new ApiError('ALREADY_EXISTS', `environment "${id}" already exists`);
    await this.d.limits?.checkEnvironment(caller.account);
    const now = new Date().toISOString();
    const env: Environment = {
      ...spec,
      name,
      createTime: now,
      updateTime: now,
      createdBy: caller.email,
      // Nothing is provisioned, so once its workflow has started the environment is what it stays: disconnected.
      state: 'DISCONNECTED',
      status: okStatus(DISCONNECTED_MESSAGE),
      // Fixed here, never changed: the image in use is the base image at creation.
      ...(spec.baseImageRef !== undefined ? { imageRef: spec.baseImageRef } : {}),
    };
    try {
      await this.d.client.workflow.start<typeof environmentWorkflow>('environmentWorkflow', {
        workflowId: name,
        taskQueue: this.d.taskQueue,
        args: [{ account: caller.account, environmentId: id, name, environment: env, ...(this.d.continueAsNewEvents ? { continueAsNewEvents: this.d.continueAsNewEvents } : {}) }],
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        typedSearchAttributes: [{ key: BatchdAccount, value: caller.account }],
        staticSummary: `environment ${id}: image ${spec.baseImageRef ?? '(none)'}`,
        staticDetails: `Created by ${caller.email} through the API.`,
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new ApiError('ALREADY_EXISTS', `environment "${id}" already exists`);
      throw fromTemporal(err) ?? err;
    }
    // Read-your-writes for list; the workflow's own first report lands here too if this process dies now.
    await this.d.store.putIfAbsent('environments', caller.account, env, 0);
    return env;
  }

  async get(caller: Principal, id: string): Promise<Environment> {
    const row = await this.d.store.get<StoredEnvironment>('environments', this.name(caller.account, id));
    if (!row) throw ApiError.notFound(`environment "${id}"`);
    return this.live(row.resource);
  }

  /** The environment from its workflow; the stored projection when the workflow cannot answer. */
  private async live(stored: Environment): Promise<Environment> {
    try {
      return (await this.query(stored.name)).environment;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) {
        this.d.logger.warn({ environment: stored.name, err: String(err) }, 'environment query failed; answering from the read model');
      }
      return stored;
    }
  }

  async list(caller: Principal, query: Omit<ListQuery, 'account'>): Promise<Page<Environment>> {
    const page = await this.d.store.list<StoredEnvironment>('environments', { ...query, account: caller.account });
    // Only a just-created environment's row can lag its workflow (CREATING until the first report).
    const items = await Promise.all(page.items.map((e) => (e.state === 'CREATING' ? this.live(e) : Promise.resolve(e))));
    return { items, totalSize: page.totalSize, ...(page.nextAfter ? { nextAfter: page.nextAfter } : {}) };
  }

  async update(caller: Principal, id: string, body: unknown, updateMask: string | undefined): Promise<Environment> {
    const current = await this.get(caller, id);
    if (current.state === 'DELETING') throw ApiError.failedPrecondition(`environment "${id}" is being deleted`);
    this.mayChange(caller, current, id);
    const spec = planEnvironmentUpdate(environmentSpecOf(current), body, updateMask);
    return this.viaWorkflow(id, () => this.handle(current.name).executeUpdate(updateEnvironmentUpdate, { args: [{ spec, requestedBy: caller.email }] }));
  }

  async delete(caller: Principal, id: string): Promise<void> {
    const current = await this.get(caller, id);
    this.mayChange(caller, current, id);
    if (current.state === 'DELETING') return;
    await this.viaWorkflow(id, () => this.handle(current.name).executeUpdate(deleteEnvironmentUpdate, { args: [{ requestedBy: caller.email }] }));
  }

  /**
   * Checks every environment first (exists, the caller may delete it, no live job uses it); only then
   * deletes them. Each delete checks again in its workflow, atomically with job admission.
   */
  async deleteMany(caller: Principal, ids: string[]): Promise<void> {
    const unique = [...new Set(ids)];
    for (const id of unique) {
      const env = await this.get(caller, id);
      this.mayChange(caller, env, id);
      if (env.state === 'DELETING') continue;
      let jobs: string[];
      try {
        jobs = (await this.query(env.name)).jobs;
      } catch (err) {
        throw fromTemporal(err) ?? new ApiError('UNAVAILABLE', `environment "${id}" did not answer; nothing was deleted; retry`);
      }
      const live = await liveJobs(this.d.store, this.d.client, jobs);
      if (live.length > 0) {
        throw ApiError.failedPrecondition(
          `environment "${id}" is used by live batch job(s) ${live.map((n) => `"${n.split('/').pop() ?? n}"`).join(', ')}; nothing was deleted`,
        );
      }
    }
    for (const id of unique) await this.delete(caller, id);
  }

  // ---- snapshots -----------------------------------------------------------------------------------

  async createSnapshot(caller: Principal, body: unknown): Promise<Snapshot> {
    const { environmentId } = parseOrThrow(snapshotCreateBodySchema, body);
    const row = await this.d.store.get<StoredEnvironment>('environments', this.name(caller.account, environmentId));
    if (!row) {
      throw new ApiError('NOT_FOUND', `environmentId: environment "${environmentId}" not found in account "${caller.account}"`, [
        resourceInfo(this.name(caller.account, environmentId), 'environmentId'),
      ]);
    }
    const env = row.resource;
    if (env.state === 'DELETING') throw ApiError.failedPrecondition(`environment "${environmentId}" is being deleted`);
    this.mayChange(caller, env, environmentId);
    await this.d.limits?.checkSnapshot(caller.account);
    let snapshotId = generateId(this.d.random ?? Math.random);
    // Snapshot names are flat in the account; a clash of 11 random base-36 characters is unlikely, but cheap to rule out.
    while (await this.d.store.get('snapshots', resourceName(caller.account, 'snapshots', snapshotId))) snapshotId = generateId(this.d.random ?? Math.random);
    return this.viaWorkflow(environmentId, () => this.handle(env.name).executeUpdate(createSnapshotUpdate, { args: [{ snapshotId, requestedBy: caller.email }] }));
  }

  async getSnapshot(caller: Principal, id: string): Promise<Snapshot> {
    const row = await this.d.store.get<StoredSnapshot>('snapshots', resourceName(caller.account, 'snapshots', id));
    if (!row) throw ApiError.notFound(`snapshot "${id}"`);
    return row.resource;
  }

  async listSnapshots(caller: Principal, query: Omit<ListQuery, 'account'>): Promise<Page<Snapshot>> {
    const page = await this.d.store.list<StoredSnapshot>('snapshots', { ...query, account: caller.account });
    return { items: page.items, totalSize: page.totalSize, ...(page.nextAfter ? { nextAfter: page.nextAfter } : {}) };
  }

  async deleteSnapshot(caller: Principal, id: string): Promise<void> {
    const snapshot = await this.getSnapshot(caller, id);
    if (snapshot.state === 'DELETING') return;
    const env = await this.get(caller, snapshot.environmentId);
    this.mayChange(caller, env, snapshot.environmentId);
    await this.viaWorkflow(snapshot.environmentId, () =>
      this.handle(env.name).executeUpdate(deleteSnapshotUpdate, { args: [{ snapshotId: id, requestedBy: caller.email }] }),
    );
  }
}
