import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { queuedStatus } from '../../src/domain/queue-status';
import { type QueueStanding } from '../../src/domain/scheduler';

const standing = (s: Partial<QueueStanding>): QueueStanding => ({ position: 2, queueLength: 3, ranks: 4, freeSlots: 0, usableSlots: 0, isHead: false, ...s });

describe('queued status', () => {
  it('the head says what is free and that capacity is reserved for it', () => {
    assert.equal(
      queuedStatus('gpus', true, standing({ position: 1, isHead: true, ranks: 8, freeSlots: 4, usableSlots: 4 })),
      'waiting for 8 GPUs in node pool gpus; first of 3 in the queue; 4 free now, and capacity is reserved for this job as running jobs end',
    );
    assert.equal(
      queuedStatus('cpus', false, standing({ position: 1, isHead: true, ranks: 1, queueLength: 1 })),
      'waiting for 1 host in node pool cpus; first of 1 in the queue; no host free now, and capacity is reserved for this job as running jobs end',
    );
  });

  it('behind the head: nothing free, too little free, or free but reserved', () => {
    assert.equal(queuedStatus('gpus', true, standing({})), 'waiting for 4 GPUs in node pool gpus; position 2 of 3 in the queue; no GPU free now');
    assert.equal(queuedStatus('gpus', true, standing({ freeSlots: 1, usableSlots: 1 })), 'waiting for 4 GPUs in node pool gpus; position 2 of 3 in the queue; only 1 free GPU now');
    assert.equal(queuedStatus('cpus', false, standing({ freeSlots: 3, usableSlots: 3 })), 'waiting for 4 hosts in node pool cpus; position 2 of 3 in the queue; only 3 free hosts now');
    assert.equal(
      queuedStatus('gpus', true, standing({ freeSlots: 6, usableSlots: 2 })),
      'waiting for 4 GPUs in node pool gpus; position 2 of 3 in the queue; 2 of 6 free GPUs usable (the rest is reserved for the job at the head of the queue)',
    );
    assert.equal(
      queuedStatus('gpus', true, standing({ freeSlots: 1, usableSlots: 0 })),
      'waiting for 4 GPUs in node pool gpus; position 2 of 3 in the queue; 0 of 1 free GPU usable (the rest is reserved for the job at the head of the queue)',
    );
  });
});
