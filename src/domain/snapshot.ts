/**
 * The snapshot resource (upstream `gatewaySnapshot`, §6), pure. Upstream every field is output-only
 * and the create body carries nothing; here a snapshot belongs to one environment, so the create
 * body names it: `{environmentId}` (required). The other snapshot fields are accepted and ignored.
 * The wire types live in snapshot-model.ts (schema-free, for workflow code) and are re-exported here.
 */
import { z } from 'zod';
import { absentProto3Defaults } from './batch-job';
import { outputOnly } from './fields';
import { ID_PATTERN, ID_RULE } from './names';

export * from './snapshot-model';

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
