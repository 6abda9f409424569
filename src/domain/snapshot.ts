/**
 * The snapshot resource (upstream `gatewaySnapshot`, §6), pure. Upstream every field is output-only
 * and the create body carries nothing; here a snapshot belongs to one environment, so the create
 * body names it: `{environmentId}` (required). The other snapshot fields are accepted and ignored.
 */
import { z } from 'zod';
import { absentProto3Defaults } from './batch-job';
import { outputOnly } from './fields';
import { ID_PATTERN, ID_RULE } from './names';
import { type GatewayStatus } from './node-pool';

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

export const snapshotOutputOnlyShape = {
  name: outputOnly,
  createTime: outputOnly,
  state: outputOnly,
  status: outputOnly,
  imageRef: outputOnly,
  updateTime: outputOnly,
};

const environmentIdSchema = z
  .string({
    error: (issue) =>
      issue.input === undefined
        ? 'is required: the id of the environment to snapshot (this service ties every snapshot to one environment)'
        : undefined,
  })
  .regex(ID_PATTERN, `must be ${ID_RULE}`);

/** `POST …/snapshots`: `{environmentId}` → the environment to snapshot. `""` or `null` count as absent. */
export const snapshotCreateBodySchema = z.preprocess(
  absentProto3Defaults(['environmentId']),
  z.strictObject({ environmentId: environmentIdSchema, ...snapshotOutputOnlyShape }).transform((body) => ({ environmentId: body.environmentId })),
);
export type SnapshotCreateBody = z.output<typeof snapshotCreateBodySchema>;
