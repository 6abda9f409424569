/**
 * The node pool resource (upstream `gatewayNodePool`), pure: the create body with the published
 * sizing rules, and update planning. The wire types and the capacity helpers the scheduler uses
 * live in node-pool-model.ts (schema-free, so workflow code can load it) and are re-exported here.
 *
 * Rules (upstream §4 + contract): displayName < 64 chars; 0 ≤ minNodeCount ≤ maxNodeCount (default 0);
 * maxNodeCount ≥ 1 (default 1; for a fake pool max(1, numNodes)); 0 ≤ overprovisionNodeCount ≤
 * minNodeCount and ≤ maxNodeCount − minNodeCount (default 0); exactly one of fakeNodePool and
 * eksNodePool; machineType / instanceType from the machine-type catalogue. A fake pool runs
 * `numNodes` (1..64) in-process hosts, and numNodes must lie within [minNodeCount, maxNodeCount].
 */
import { z } from 'zod';
import { absentProto3Defaults, roleArnSchema } from './batch-job';
import { parseUpdateMask, type UpdateMaskRules } from './batch-job-update';
import { ApiError, type FieldViolation } from './errors';
import { annotationsSchema, displayNameSchema, idSchema, outputOnly } from './fields';
import { poolRankMemoryLimit, RANK_MEMORY_LIMIT_ANNOTATION } from './isolation';
import { knownMachineTypes, machineType } from './machine-types';
import { FAKE_POOL_MAX_NODES, type NodePoolSpec } from './node-pool-model';
import { sameProto3Value, showValue } from './proto3-values';
import { parseOrThrow } from './validation';

export * from './node-pool-model';

const INT32_MAX = 2147483647;

// ---------------------------------------------------------------------------------------------
// Schemas.

const machineTypeSchema = z.string().superRefine((name, ctx) => {
  if (!machineType(name)) {
    ctx.addIssue({ code: 'custom', message: `"${name}" is not a known machine type; use one of: ${knownMachineTypes().join(', ')}` });
  }
});

const integer = (min: number, minRule: string, max = INT32_MAX, maxRule = 'must fit in int32') =>
  z.number().int('must be an integer').min(min, minRule).max(max, maxRule);

const nodeCountSchema = integer(0, 'must be at least 0');

/** A name or id for AWS-side things: printable ASCII, no whitespace. */
const awsToken = (what: string, max: number) =>
  z.string().regex(new RegExp(`^[\\x21-\\x7e]{1,${max}}$`), `must be ${what}: 1-${max} printable ASCII characters without spaces`);

export const fakeNodePoolSchema = z.preprocess(
  absentProto3Defaults(['serviceAccount']),
  z.strictObject({
    machineType: machineTypeSchema,
    numNodes: integer(
      1,
      'must be at least 1',
      FAKE_POOL_MAX_NODES,
      `must be at most ${FAKE_POOL_MAX_NODES}: each fake host is an in-process agent; use an eksNodePool for more hosts`,
    ),
    serviceAccount: awsToken('a service account name', 253).optional(),
  }),
);

export const eksNodePoolSchema = z.preprocess(
  absentProto3Defaults(['nodeRole', 'nodeGroupName', 'zone', 'placementGroup', 'launchTemplate']),
  z.strictObject({
    instanceType: machineTypeSchema,
    nodeRole: roleArnSchema.optional(),
    spot: z.boolean().optional(),
    nodeGroupName: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, 'must be 1-63 characters of letters, digits, "-" and "_", starting with a letter or digit')
      .optional(),
    subnetIds: z
      .array(z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'must be a subnet id such as subnet-0123456789abcdef0'))
      .max(16, 'at most 16 subnets')
      .optional(),
    zone: z.string().regex(/^[a-z0-9-]{1,64}$/, 'must be an availability zone name such as us-east-1a').optional(),
    placementGroup: awsToken('a placement group name', 255).optional(),
    launchTemplate: awsToken('a launch template name or id', 128).optional(),
  }),
);

export const nodePoolOutputOnlyShape = {
  name: outputOnly,
  createTime: outputOnly,
  state: outputOnly,
  status: outputOnly,
  nodePoolStats: outputOnly,
  updateTime: outputOnly,
};

const inRange = (n: number | undefined, min: number, max = INT32_MAX): n is number => n !== undefined && Number.isInteger(n) && n >= min && n <= max;

/**
 * One node pool object (the `nodePool` of a create body, or a candidate after an update) →
 * NodePoolSpec, with every published rule. Output-only fields are accepted and ignored.
 */
export const nodePoolSchema = z.preprocess(
  absentProto3Defaults(['displayName']),
  z
    .strictObject({
      displayName: displayNameSchema.optional(),
      minNodeCount: nodeCountSchema.optional(),
      maxNodeCount: integer(1, 'must be at least 1').optional(),
      overprovisionNodeCount: nodeCountSchema.optional(),
      eksNodePool: eksNodePoolSchema.optional(),
      fakeNodePool: fakeNodePoolSchema.optional(),
      annotations: annotationsSchema.optional(),
      ...nodePoolOutputOnlyShape,
    })
    .superRefine((pool, ctx) => {
      const limit = poolRankMemoryLimit(pool.annotations);
      if (limit !== null && typeof limit === 'object') {
        ctx.addIssue({ code: 'custom', path: ['annotations', RANK_MEMORY_LIMIT_ANNOTATION], message: `${limit.error}: the memory limit of each rank` });
      }
      if (pool.fakeNodePool === undefined && pool.eksNodePool === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [],
          message: 'exactly one of fakeNodePool or eksNodePool is required: it says what hosts the pool has',
        });
      } else if (pool.fakeNodePool !== undefined && pool.eksNodePool !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['eksNodePool'], message: 'cannot be combined with fakeNodePool: a pool is either fake or EKS; keep one' });
      }
      // Cross-field rules, only over counts that passed their own checks (no echo of a bad value).
      const numNodes = pool.fakeNodePool?.numNodes;
      const min = pool.minNodeCount ?? 0;
      const maxDefault = numNodes !== undefined ? Math.max(1, numNodes) : 1;
      const max = pool.maxNodeCount ?? maxDefault;
      const over = pool.overprovisionNodeCount ?? 0;
      const maxText = pool.maxNodeCount === undefined ? `${max}, its default` : `${max}`;
      if (!inRange(min, 0) || !inRange(max, 1) || !inRange(over, 0)) return;
      if (min > max) {
        ctx.addIssue({
          code: 'custom',
          path: ['minNodeCount'],
          message: `must not exceed maxNodeCount (${maxText}); lower minNodeCount or raise maxNodeCount`,
        });
        return;
      }
      if (over > min) {
        ctx.addIssue({ code: 'custom', path: ['overprovisionNodeCount'], message: `must not exceed minNodeCount (${min})` });
      } else if (over > max - min) {
        ctx.addIssue({
          code: 'custom',
          path: ['overprovisionNodeCount'],
          message: `must not exceed maxNodeCount − minNodeCount (${max} − ${min} = ${max - min})`,
        });
      }
      if (inRange(numNodes, 1, FAKE_POOL_MAX_NODES) && (numNodes < min || numNodes > max)) {
        ctx.addIssue({
          code: 'custom',
          path: ['fakeNodePool', 'numNodes'],
          message: `${numNodes} must lie within [minNodeCount, maxNodeCount] = [${min}, ${maxText}]; change numNodes or the bounds`,
        });
      }
    })
    .transform((pool): NodePoolSpec => {
      const numNodes = pool.fakeNodePool?.numNodes;
      const spec: NodePoolSpec = {
        minNodeCount: pool.minNodeCount ?? 0,
        maxNodeCount: pool.maxNodeCount ?? (numNodes !== undefined ? Math.max(1, numNodes) : 1),
        overprovisionNodeCount: pool.overprovisionNodeCount ?? 0,
        annotations: pool.annotations ?? {},
      };
      if (pool.displayName !== undefined) spec.displayName = pool.displayName;
      if (pool.fakeNodePool !== undefined) spec.fakeNodePool = pool.fakeNodePool;
      if (pool.eksNodePool !== undefined) spec.eksNodePool = pool.eksNodePool;
      return spec;
    }),
);

/** `POST …/nodePools`: `{nodePool, nodePoolId}`, both required. */
export const nodePoolCreateBodySchema = z.strictObject({
  nodePool: nodePoolSchema,
  nodePoolId: idSchema,
});
export type NodePoolCreateBody = z.output<typeof nodePoolCreateBodySchema>;

// ---------------------------------------------------------------------------------------------
// Update planning.

const FAKE_FIELDS = ['machineType', 'numNodes', 'serviceAccount'] as const;
const EKS_FIELDS = ['instanceType', 'nodeRole', 'spot', 'nodeGroupName', 'subnetIds', 'zone', 'placementGroup', 'launchTemplate'] as const;
const TOP_MUTABLE = ['displayName', 'minNodeCount', 'maxNodeCount', 'overprovisionNodeCount', 'annotations'] as const;
const OUTPUT_ONLY = Object.keys(nodePoolOutputOnlyShape);

const anything = z.unknown().optional();
/** Every field of a node pool accepted as anything, so that unknown fields are caught first. */
const updateBodySchema = z.preprocess(
  absentProto3Defaults(['displayName']),
  z.strictObject({
    displayName: anything,
    minNodeCount: anything,
    maxNodeCount: anything,
    overprovisionNodeCount: anything,
    annotations: anything,
    ...nodePoolOutputOnlyShape,
    fakeNodePool: z.preprocess(absentProto3Defaults(['serviceAccount']), z.strictObject(Object.fromEntries(FAKE_FIELDS.map((f) => [f, anything])))).optional(),
    eksNodePool: z
      .preprocess(
        absentProto3Defaults(['nodeRole', 'nodeGroupName', 'zone', 'placementGroup', 'launchTemplate']),
        z.strictObject(Object.fromEntries(EKS_FIELDS.map((f) => [f, anything]))),
      )
      .optional(),
  }),
);

const SWITCH = 'a node pool cannot switch between fakeNodePool and eksNodePool (it would change the rank slots under running jobs); create a new pool';

function maskRules(current: NodePoolSpec): UpdateMaskRules {
  const fake = current.fakeNodePool !== undefined;
  const mutable = fake ? [...TOP_MUTABLE, 'fakeNodePool', 'fakeNodePool.numNodes'] : [...TOP_MUTABLE, 'eksNodePool'];
  return {
    resource: 'a node pool',
    mutable,
    star: fake ? [...TOP_MUTABLE, 'fakeNodePool.numNodes'] : TOP_MUTABLE,
    reason: (path) => {
      const [top, sub] = path.split('.');
      if (top === 'fakeNodePool' || top === 'eksNodePool') {
        if ((top === 'fakeNodePool') !== fake) return `cannot be set: ${SWITCH}`;
        if (sub === 'machineType' || sub === 'instanceType') return 'cannot be changed after creation: it would change the rank slots under running jobs';
        if ((FAKE_FIELDS as readonly string[]).includes(sub ?? '') || (EKS_FIELDS as readonly string[]).includes(sub ?? '')) {
          return 'cannot be changed after creation';
        }
        return undefined;
      }
      if (top !== undefined && OUTPUT_ONLY.includes(top)) return 'is output only: the service sets it';
      if ((TOP_MUTABLE as readonly string[]).includes(top ?? '')) return 'names part of a field: a mask path names a whole field';
      return undefined;
    },
  };
}

/** The spec as the create body would have carried it, so that it can be re-validated by nodePoolSchema. */
function toInput(spec: NodePoolSpec): Record<string, unknown> {
  const input: Record<string, unknown> = {
    minNodeCount: spec.minNodeCount,
    maxNodeCount: spec.maxNodeCount,
    overprovisionNodeCount: spec.overprovisionNodeCount,
    annotations: { ...spec.annotations },
  };
  if (spec.displayName !== undefined) input.displayName = spec.displayName;
  if (spec.fakeNodePool) input.fakeNodePool = { ...spec.fakeNodePool };
  if (spec.eksNodePool) input.eksNodePool = { ...spec.eksNodePool };
  return input;
}

/**
 * Plans a PATCH of a node pool (AIP-134) and returns the whole new spec, re-validated by the create
 * rules. Writable: displayName, min/max/overprovisionNodeCount, annotations, fakeNodePool.numNodes.
 * A masked field absent from the body is reset to its default (fakeNodePool.numNodes has none, so
 * it is then required). Without a mask, the fields present are applied, a backend sub-field present
 * must equal its current value, and switching backend or changing machineType / instanceType is
 * INVALID_ARGUMENT. Output-only fields are ignored; unknown fields are INVALID_ARGUMENT.
 */
export function planNodePoolUpdate(current: NodePoolSpec, body: unknown, updateMask?: string): NodePoolSpec {
  const mask = parseUpdateMask(updateMask, maskRules(current));
  const fields = parseOrThrow(updateBodySchema, body);
  const candidate = toInput(current);
  const violations: FieldViolation[] = [];

  const setTop = (field: (typeof TOP_MUTABLE)[number]) => {
    const value = fields[field];
    if (value === undefined) delete candidate[field];
    else candidate[field] = value;
  };

  /**
   * Checks a backend sub-object of the body against the current one: no switching, and every
   * sub-field present but not writable must be unchanged. Returns the body's numNodes, if any.
   */
  const checkBackend = (kind: 'fakeNodePool' | 'eksNodePool', sent: Record<string, unknown> | undefined): unknown => {
    if (sent === undefined) return undefined;
    const now = current[kind] as Record<string, unknown> | undefined;
    if (now === undefined) {
      violations.push({ field: kind, description: SWITCH });
      return undefined;
    }
    for (const [sub, value] of Object.entries(sent)) {
      if (sub === 'numNodes' || value === undefined) continue;
      if (!sameProto3Value(value, now[sub])) {
        const slots = sub === 'machineType' || sub === 'instanceType' ? ' (it would change the rank slots under running jobs)' : '';
        violations.push({
          field: `${kind}.${sub}`,
          description: `cannot be changed after creation${slots}; it is ${showValue(now[sub])}: leave it out or send its current value, or create a new pool`,
        });
      }
    }
    return sent.numNodes;
  };

  const setNumNodes = (value: unknown) => {
    const fake = candidate.fakeNodePool as Record<string, unknown> | undefined;
    if (!fake) return; // an EKS pool: checkBackend or the mask already refused
    if (value === undefined) delete fake.numNodes;
    else fake.numNodes = value;
  };

  if (mask) {
    for (const field of TOP_MUTABLE) if (mask.has(field)) setTop(field);
    if (mask.has('fakeNodePool')) {
      if (fields.fakeNodePool === undefined) violations.push({ field: 'fakeNodePool', description: `is required when the mask names it; ${SWITCH}` });
      const numNodes = checkBackend('fakeNodePool', fields.fakeNodePool);
      if (fields.fakeNodePool !== undefined) setNumNodes(numNodes);
    } else if (mask.has('fakeNodePool.numNodes')) {
      setNumNodes(fields.fakeNodePool?.numNodes);
    }
    if (mask.has('eksNodePool')) {
      if (fields.eksNodePool === undefined) violations.push({ field: 'eksNodePool', description: `is required when the mask names it; ${SWITCH}` });
      checkBackend('eksNodePool', fields.eksNodePool);
    }
  } else {
    for (const field of TOP_MUTABLE) if (fields[field] !== undefined) setTop(field);
    const numNodes = checkBackend('fakeNodePool', fields.fakeNodePool);
    if (numNodes !== undefined) setNumNodes(numNodes);
    checkBackend('eksNodePool', fields.eksNodePool);
  }
  if (violations.length > 0) throw ApiError.invalidArgument(violations);
  // A fake pool has no autoscaler: growing numNodes past maxNodeCount raises the bound with it,
  // unless this update sets maxNodeCount itself.
  const fake = candidate.fakeNodePool as Record<string, unknown> | undefined;
  const explicitMax = mask ? mask.has('maxNodeCount') : fields.maxNodeCount !== undefined;
  if (fake && !explicitMax && typeof fake.numNodes === 'number' && typeof candidate.maxNodeCount === 'number' && fake.numNodes > candidate.maxNodeCount) {
    candidate.maxNodeCount = fake.numNodes;
  }
  return parseOrThrow(nodePoolSchema, candidate);
}
