/**
 * The snapshot resource (upstream `gatewaySnapshot`, §6) without its create schema: its states and
 * wire type, which the environment workflow keeps. Schema-free, like every module workflow code
 * loads (docs/performance.md §7); snapshot.ts re-exports it beside the create body.
 */
import { type GatewayStatus } from './node-pool-model';

export const SNAPSHOT_STATES = ['CREATING', 'READY', 'FAILED', 'DELETING'] as const;
export type SnapshotState = (typeof SNAPSHOT_STATES)[number];

/** The snapshot as the API returns it. Absent optional fields are omitted on the wire. */
export interface Snapshot {
  name: string;
  /** Our field: the id of the environment the snapshot was taken of. */
  environmentId: string;
  createTime: string;
  state: SnapshotState;
  status: GatewayStatus;
  /** The snapshot's container image; absent until the image exists. */
  imageRef?: string;
  updateTime: string;
}
