/**
 * From a gang's placement to what each rank sees: its rank numbers and its environment. Ranks are
 * numbered host by host in placement order, so NODE_RANK is the host's index and rank 0 runs on the
 * first host, whose address becomes MASTER_ADDR.
 */
import { RANK_ENV_VARS } from './batch-job-model';
import { type HostAssignment } from './packing';

export interface RankSlot {
  rank: number;
  localRank: number;
  /** The slot on the host: the GPU index on a GPU host, 0 on a CPU host. */
  slot: number;
}

export interface HostRanks {
  host: string;
  nodeRank: number;
  ranks: RankSlot[];
}

/**
 * Numbers the ranks of a placement. Throws on a placement that would break the rank contract: a host
 * listed twice or given no slot (NODE_RANK / NNODES would count a host that runs nothing), or a slot
 * given twice on one host (two ranks on one GPU).
 */
export function numberRanks(hosts: readonly HostAssignment[]): HostRanks[] {
  const seen = new Set<string>();
  for (const h of hosts) {
    if (seen.has(h.host)) throw new Error(`placement lists host ${h.host} twice`);
    seen.add(h.host);
    if (h.slots.length === 0) throw new Error(`placement gives host ${h.host} no slot`);
    if (new Set(h.slots).size !== h.slots.length) throw new Error(`placement gives a slot on host ${h.host} twice`);
  }
  let next = 0;
  return hosts.map((h, nodeRank) => ({
    host: h.host,
    nodeRank,
    ranks: h.slots.map((slot, localRank) => ({ rank: next++, localRank, slot })),
  }));
}

export interface RankEnvInput {
  jobName: string;
  jobId: string;
  worldSize: number;
  nnodes: number;
  nodeRank: number;
  localWorldSize: number;
  rank: RankSlot;
  masterAddr: string;
  masterPort: number;
  /** True on GPU pools: the rank sees exactly its own GPU. */
  gpu: boolean;
  imageRef?: string;
  userEnv: Record<string, string>;
  /** The job's attempt, 1-based (BATCH_JOB_ATTEMPT). */
  attempt?: number;
}

const RESERVED = new Set<string>(RANK_ENV_VARS);

/**
 * The job's envVars first, then the rank variables, which always win: every reserved name is dropped
 * from the job's envVars, so one the rank does not get (CUDA_VISIBLE_DEVICES on a CPU pool,
 * BATCH_JOB_IMAGE_REF without an image) cannot be supplied by the job either.
 */
export function rankEnvironment(input: RankEnvInput): Record<string, string> {
  // fromEntries defines own properties, so even a variable named __proto__ is passed through as data.
  const env: Record<string, string> = Object.fromEntries(Object.entries(input.userEnv).filter(([key]) => !RESERVED.has(key)));
  env.RANK = String(input.rank.rank);
  env.WORLD_SIZE = String(input.worldSize);
  env.LOCAL_RANK = String(input.rank.localRank);
  env.LOCAL_WORLD_SIZE = String(input.localWorldSize);
  env.NODE_RANK = String(input.nodeRank);
  env.NNODES = String(input.nnodes);
  env.MASTER_ADDR = input.masterAddr;
  env.MASTER_PORT = String(input.masterPort);
  env.BATCH_JOB_NAME = input.jobName;
  env.BATCH_JOB_ID = input.jobId;
  env.BATCH_JOB_ATTEMPT = String(input.attempt ?? 1);
  env.BATCHD_RANK_ID = `${input.jobName}#${input.rank.rank}`;
  if (input.imageRef !== undefined) env.BATCH_JOB_IMAGE_REF = input.imageRef;
  if (input.gpu) env.CUDA_VISIBLE_DEVICES = String(input.rank.slot);
  return env;
}
