/**
 * From a gang's placement to what each rank sees: its rank numbers and its environment. Ranks are
 * numbered host by host in placement order, so NODE_RANK is the host's index and rank 0 runs on the
 * first host, whose address becomes MASTER_ADDR.
 */
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

export function numberRanks(hosts: readonly HostAssignment[]): HostRanks[] {
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
}

/** The job's envVars first, then the rank variables, which always win. */
export function rankEnvironment(input: RankEnvInput): Record<string, string> {
  const env: Record<string, string> = { ...input.userEnv };
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
  env.BATCHD_RANK_ID = `${input.jobName}#${input.rank.rank}`;
  if (input.imageRef !== undefined) env.BATCH_JOB_IMAGE_REF = input.imageRef;
  if (input.gpu) env.CUDA_VISIBLE_DEVICES = String(input.rank.slot);
  else delete env.CUDA_VISIBLE_DEVICES;
  return env;
}
