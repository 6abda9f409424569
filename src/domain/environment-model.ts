/**
 * The environment resource (upstream `gatewayEnvironment`, §5) without its schemas: the wire types
 * and the rules the environment workflow applies (who may use it, what an update changes).
 * Schema-free on purpose: workflow code imports this module, and every module a workflow loads is
 * evaluated again for each cached workflow, so nothing here may load zod or build a schema
 * (docs/performance.md §7). The create body and update planning are in environment.ts, which
 * re-exports all of this.
 */
import { type GatewayStatus } from './node-pool-model';
import { deepEqual } from './proto3-values';

export const ENVIRONMENT_STATES = ['CREATING', 'DISCONNECTED', 'CONNECTING', 'CONNECTED', 'DISCONNECTING', 'RECONNECTING', 'DELETING'] as const;
export type EnvironmentState = (typeof ENVIRONMENT_STATES)[number];

/** `gatewayEnvironmentConnection`, for the wire type only: this service never makes one. */
export interface EnvironmentConnection {
  nodePoolId: string;
  numRanks?: number;
  role?: string;
  /** Output-only upstream: the last zone the environment connected to. */
  zone?: string;
  useLocalStorage?: boolean;
}

/** The writable part of an environment, normalized. */
export interface EnvironmentSpec {
  displayName?: string;
  baseImageRef?: string;
  shared: boolean;
  annotations: Record<string, string>;
}

/** The environment as the API returns it. Absent optional fields are omitted on the wire. */
export interface Environment extends EnvironmentSpec {
  name: string;
  createTime: string;
  createdBy: string;
  state: EnvironmentState;
  status: GatewayStatus;
  connection?: EnvironmentConnection;
  /** The baseImageRef at creation, immutable; absent when the environment was created without one. */
  imageRef?: string;
  snapshotImageRef?: string;
  updateTime: string;
}

/** Whether an update changes anything, so that `updateTime` moves only on a real change. */
export function environmentSpecChanged(before: EnvironmentSpec, after: EnvironmentSpec): boolean {
  return (
    before.displayName !== after.displayName ||
    before.baseImageRef !== after.baseImageRef ||
    before.shared !== after.shared ||
    !deepEqual(before.annotations, after.annotations)
  );
}

/**
 * Whether a user may use an environment in a batch job, snapshot it, update it or delete it: its
 * creator always, everyone in the account when it is `shared` (the contract's sharing rule, which
 * upstream states for environments: shared lets all users "create batch jobs using the environment").
 * An operator acting without a user (Temporal CLI) passes `undefined` and may.
 */
export function mayUseEnvironment(env: Pick<Environment, 'createdBy' | 'shared'>, email: string | undefined): boolean {
  return email === undefined || env.shared || env.createdBy === email;
}

/** The writable part of an environment, as planEnvironmentUpdate takes it. */
export function environmentSpecOf(env: Environment): EnvironmentSpec {
  const spec: EnvironmentSpec = { shared: env.shared, annotations: env.annotations };
  if (env.displayName !== undefined) spec.displayName = env.displayName;
  if (env.baseImageRef !== undefined) spec.baseImageRef = env.baseImageRef;
  return spec;
}

/** The environment with a new spec; everything else (imageRef included) unchanged. */
export function withEnvironmentSpec(env: Environment, spec: EnvironmentSpec, updateTime: string): Environment {
  const { displayName: _displayName, baseImageRef: _baseImageRef, shared: _shared, annotations: _annotations, ...rest } = env;
  const next: Environment = { ...rest, shared: spec.shared, annotations: { ...spec.annotations }, updateTime };
  if (spec.displayName !== undefined) next.displayName = spec.displayName;
  if (spec.baseImageRef !== undefined) next.baseImageRef = spec.baseImageRef;
  return next;
}

/** The status message of an environment from creation on: it is never connected here. */
export const DISCONNECTED_MESSAGE =
  'not connected: interactive sessions are not supported by this service; batch jobs use the environment through environmentId';
