/** The words a QUEUED job's status uses: what it waits for and where it stands in its pool's queue. */
import { type QueueStanding } from './scheduler';

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

export function queuedStatus(pool: string, gpu: boolean, s: QueueStanding): string {
  const unit = gpu ? 'GPU' : 'host';
  const head = `waiting for ${plural(s.ranks, unit)} in node pool ${pool}${s.priority !== undefined ? ` at priority ${s.priority}` : ''}`;
  if (s.quota) {
    const q = s.quota;
    return `${head}; account ${q.account} holds ${plural(q.held, unit)} of its quota of ${q.limit} on this pool, and this job would take it past that: it waits until the account's jobs free ${plural(q.held + s.ranks - q.limit, unit)}`;
  }
  const share = s.share
    ? `; fair share: account ${s.share.account} holds ${plural(s.share.held, unit)}, its fair part is ${s.share.fairSlots} (weight ${s.share.weight} of ${s.share.totalWeight}), and accounts furthest below their part go first`
    : '';
  return base(head, unit, s) + share;
}

function base(head: string, unit: string, s: QueueStanding): string {
  if (s.preempting && s.preempting.length > 0) {
    const names = s.preempting.map((n) => n.split('/').pop() ?? n);
    return `${head}; ${plural(names.length, 'running job')} of lower priority (${names.join(', ')}) ${names.length === 1 ? 'is' : 'are'} being preempted to make room for it`;
  }
  if (s.isHead) {
    const free = s.freeSlots === 0 ? `no ${unit} free now` : `${s.freeSlots} free now`;
    return `${head}; first of ${s.queueLength} in the queue; ${free}, and capacity is reserved for this job as running jobs end`;
  }
  const where = `${head}; position ${s.position} of ${s.queueLength} in the queue`;
  if (s.freeSlots === 0) return `${where}; no ${unit} free now`;
  if (s.usableSlots >= s.freeSlots) return `${where}; only ${plural(s.freeSlots, `free ${unit}`)} now`;
  return `${where}; ${s.usableSlots} of ${plural(s.freeSlots, `free ${unit}`)} usable (the rest is reserved for the job at the head of the queue)`;
}

/**
 * A job queued past the head that its pool schedules from (the pool's window, POOL_QUEUE_WINDOW): its
 * place comes from the pool store, and it is considered once enough of those ahead of it have started.
 */
export function queuedBehindWindowStatus(pool: string, gpu: boolean, s: { ranks: number; position: number; queueLength: number; window: number }): string {
  const unit = gpu ? 'GPU' : 'host';
  return (
    `waiting for ${plural(s.ranks, unit)} in node pool ${pool}; position ${s.position} of ${s.queueLength} in the queue; ` +
    `the pool schedules from the first ${s.window} and takes this job in as ${plural(s.position - s.window, 'job')} ahead of it start`
  );
}
