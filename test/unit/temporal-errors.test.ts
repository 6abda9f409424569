/**
 * Temporal's failures in words and as API answers: the SDK's wrapper (`Failed to start Workflow`) with
 * the gRPC status under it, and the filter that keeps core's retry warnings from flooding the log.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ServiceError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { loadConfig } from '../../src/config';
import { describeError, fromTemporal, grpcStatusOf } from '../../src/temporal/errors';
import { RepeatFilter } from '../../src/temporal/runtime';

/** A gRPC status error as grpc-js builds it (callErrorFromStatus): `<code> <NAME>: <details>`. */
function grpcError(code: number, name: string, details: string): Error {
  return Object.assign(new Error(`${code} ${name}: ${details}`), { code, details, metadata: {} });
}

describe('Temporal errors in words', () => {
  it('names the cause under the SDK’s wrapper, each message once and no stack', () => {
    const cause = grpcError(3, 'INVALID_ARGUMENT', 'Namespace fresh has no mapping defined for search attribute BatchdAccount');
    const err = new ServiceError('Failed to start Workflow', { cause });
    const text = describeError(err);
    assert.equal(text, 'Failed to start Workflow: 3 INVALID_ARGUMENT: Namespace fresh has no mapping defined for search attribute BatchdAccount');
    assert.doesNotMatch(text, /\n\s+at /);
    // A wrapper that already quotes its cause is not repeated.
    const wrapped = new Error(`creating the default node pools: ${text}`, { cause: err });
    assert.equal(describeError(wrapped), `creating the default node pools: ${text}`);
  });

  it('finds the gRPC status however deep the SDK put it', () => {
    const cause = grpcError(14, 'UNAVAILABLE', 'No connection established');
    assert.equal(grpcStatusOf(new ServiceError('Failed to query Workflow', { cause }))?.code, 14);
    assert.equal(grpcStatusOf(new Error('plain')), undefined);
  });

  it('answers 503 UNAVAILABLE for a server that is away or out of time, wrapped or not', () => {
    for (const err of [
      new ServiceError('Failed to start Workflow', { cause: grpcError(14, 'UNAVAILABLE', 'No connection established') }),
      new ServiceError('Failed to describe workflow', { cause: grpcError(4, 'DEADLINE_EXCEEDED', 'Deadline exceeded') }),
      grpcError(14, 'UNAVAILABLE', 'Connection refused'),
      new WorkflowUpdateRPCTimeoutOrCancelledError('Workflow update call timeout or cancelled', { cause: grpcError(4, 'DEADLINE_EXCEEDED', 'Deadline exceeded') }),
    ]) {
      const answer = fromTemporal(err);
      assert.equal(answer?.code, 'UNAVAILABLE', describeError(err));
      assert.equal(answer?.httpStatus, 503);
      assert.match(answer?.message ?? '', /retry with backoff/);
    }
    assert.equal(fromTemporal(new ServiceError('x', { cause: grpcError(8, 'RESOURCE_EXHAUSTED', 'slow down') }))?.code, 'RESOURCE_EXHAUSTED');
    // Anything else is not the caller's to know: the API answers INTERNAL and logs it.
    assert.equal(fromTemporal(new ServiceError('Failed to start Workflow', { cause: grpcError(3, 'INVALID_ARGUMENT', 'bad') })), undefined);
  });
});

describe('repeated core warnings', () => {
  it('logs the first of a kind, counts its repeats within the window, and reports them on the next one logged', () => {
    const f = new RepeatFilter(30_000);
    assert.equal(f.admit('gRPC call poll_activity_task_queue retried 6 times', 0), 0);
    assert.equal(f.admit('gRPC call poll_activity_task_queue retried 7 times', 1000), undefined);
    assert.equal(f.admit('gRPC call poll_activity_task_queue retried 8 times', 2000), undefined);
    // Another kind is its own.
    assert.equal(f.admit('Error when recording heartbeat', 2500), 0);
    assert.equal(f.admit('gRPC call poll_activity_task_queue retried 30 times', 31_000), 2);
    assert.equal(f.admit('gRPC call poll_activity_task_queue retried 31 times', 31_500), undefined);
  });
});

describe('Temporal settings', () => {
  it('bound restarts, calls and the wait for search attributes by default, and refuse nonsense', () => {
    const c = loadConfig({});
    assert.equal(c.TEMPORAL_RESTART_ATTEMPTS, 5);
    assert.equal(c.TEMPORAL_CALL_TIMEOUT_MS, 5000);
    assert.equal(c.TEMPORAL_SEARCH_ATTRIBUTES_WAIT_MS, 60_000);
    assert.throws(() => loadConfig({ TEMPORAL_CALL_TIMEOUT_MS: '0' }), /TEMPORAL_CALL_TIMEOUT_MS/);
    assert.throws(() => loadConfig({ TEMPORAL_RESTART_ATTEMPTS: '-1' }), /TEMPORAL_RESTART_ATTEMPTS/);
  });
});
