/**
 * A closed-loop load generator: `concurrency` workers, each starting its next operation as soon as
 * its previous one ends, until `count` operations have started or `maxMs` has passed. Every
 * operation's latency is kept; errors are counted, and the first few are kept for the report.
 */
import { performance } from 'node:perf_hooks';
import { summarize, type Summary } from './stats';

export interface ClosedLoopOptions {
  concurrency: number;
  /** Operations to start in all (the loop ends earlier if maxMs passes). */
  count: number;
  /** No operation starts after this many milliseconds. */
  maxMs: number;
  /** The operation; i counts from 0 over all workers. */
  op: (i: number) => Promise<void>;
}

export interface ClosedLoopResult {
  concurrency: number;
  completed: number;
  errors: number;
  firstErrors: string[];
  elapsedMs: number;
  /** Completed operations per second over the whole run. */
  throughput: number;
  latencyMs: Summary;
  /** Raw latencies in completion order (ms). */
  latencies: number[];
}

export async function closedLoop(o: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const latencies: number[] = [];
  const firstErrors: string[] = [];
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  const deadline = t0 + o.maxMs;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (next >= o.count || performance.now() > deadline) return;
      const i = next++;
      const start = performance.now();
      try {
        await o.op(i);
        latencies.push(performance.now() - start);
      } catch (err) {
        errors++;
        if (firstErrors.length < 3) firstErrors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, () => worker()));
  const elapsedMs = performance.now() - t0;
  return {
    concurrency: o.concurrency,
    completed: latencies.length,
    errors,
    firstErrors,
    elapsedMs,
    throughput: latencies.length / (elapsedMs / 1000),
    latencyMs: summarize(latencies),
    latencies,
  };
}
