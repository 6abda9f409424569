/** The words a QUEUED job's status uses: what it waits for and where it stands in its pool's queue. */
import { type QueueStanding } from './scheduler';

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

export function queuedStatus(pool: string, gpu: boolean, s: QueueStanding): string {
  const unit = gpu ? 'GPU' : 'host';
  const head = `waiting for ${plural(s.ranks, unit)} in node pool ${pool}`;
  if (s.isHead) {
    return `${head}; first of ${s.queueLength} in the queue; ${s.freeSlots} free now, and capacity is reserved for this job as running jobs end`;
  }
  return `${head}; position ${s.position} of ${s.queueLength} in the queue; ${s.usableSlots} of ${s.freeSlots} free ${unit}${s.freeSlots === 1 ? '' : 's'} usable (the rest is reserved for the job at the head of the queue)`;
}
