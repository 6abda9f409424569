/**
 * The machine-type catalogue: GPUs per host for each EC2 instance type the service knows. A GPU type
 * offers one rank slot per GPU; a CPU type offers one rank slot per host. Used by fake pools
 * (`fakeNodePool.machineType`) and EKS pools (`eksNodePool.instanceType`) alike.
 */
export interface MachineType {
  name: string;
  gpusPerHost: number;
  gpuModel?: string;
  vcpus: number;
  memoryGiB: number;
}

const CATALOGUE: readonly MachineType[] = [
  { name: 'p4d.24xlarge', gpusPerHost: 8, gpuModel: 'NVIDIA A100 40GB', vcpus: 96, memoryGiB: 1152 },
  { name: 'p4de.24xlarge', gpusPerHost: 8, gpuModel: 'NVIDIA A100 80GB', vcpus: 96, memoryGiB: 1152 },
  { name: 'p5.48xlarge', gpusPerHost: 8, gpuModel: 'NVIDIA H100 80GB', vcpus: 192, memoryGiB: 2048 },
  { name: 'p5e.48xlarge', gpusPerHost: 8, gpuModel: 'NVIDIA H200 141GB', vcpus: 192, memoryGiB: 2048 },
  { name: 'g5.xlarge', gpusPerHost: 1, gpuModel: 'NVIDIA A10G', vcpus: 4, memoryGiB: 16 },
  { name: 'g5.2xlarge', gpusPerHost: 1, gpuModel: 'NVIDIA A10G', vcpus: 8, memoryGiB: 32 },
  { name: 'g5.12xlarge', gpusPerHost: 4, gpuModel: 'NVIDIA A10G', vcpus: 48, memoryGiB: 192 },
  { name: 'g5.48xlarge', gpusPerHost: 8, gpuModel: 'NVIDIA A10G', vcpus: 192, memoryGiB: 768 },
  { name: 'g6.xlarge', gpusPerHost: 1, gpuModel: 'NVIDIA L4', vcpus: 4, memoryGiB: 16 },
  { name: 'g6.12xlarge', gpusPerHost: 4, gpuModel: 'NVIDIA L4', vcpus: 48, memoryGiB: 192 },
  { name: 'm5.xlarge', gpusPerHost: 0, vcpus: 4, memoryGiB: 16 },
  { name: 'm5.4xlarge', gpusPerHost: 0, vcpus: 16, memoryGiB: 64 },
  { name: 'c5.4xlarge', gpusPerHost: 0, vcpus: 16, memoryGiB: 32 },
  { name: 'c5.9xlarge', gpusPerHost: 0, vcpus: 36, memoryGiB: 72 },
  { name: 'r5.2xlarge', gpusPerHost: 0, vcpus: 8, memoryGiB: 64 },
];

const BY_NAME = new Map(CATALOGUE.map((m) => [m.name, m]));

export function machineType(name: string): MachineType | undefined {
  return BY_NAME.get(name);
}

export function knownMachineTypes(): string[] {
  return CATALOGUE.map((m) => m.name);
}

/** Rank slots a host of this type offers: one per GPU, or one per host on a CPU type. */
export function ranksPerHost(type: MachineType): number {
  return type.gpusPerHost > 0 ? type.gpusPerHost : 1;
}

export function isGpuType(type: MachineType): boolean {
  return type.gpusPerHost > 0;
}
