/**
 * The per-API-key request rate: one token bucket per key, in this API process's memory (several
 * replicas each allow the rate; a restart forgets the buckets). A request over the rate is 429
 * RESOURCE_EXHAUSTED with `Retry-After`. Buckets that have refilled are forgotten, so memory stays
 * bounded by the keys active in the last few seconds.
 */
import { ApiError } from '../domain/errors';
import { type Bucket, isFull, type RateRule, take } from '../domain/token-bucket';

/** How often full buckets are swept out (they carry no state). */
const SWEEP_MS = 60_000;

export class KeyRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep = 0;

  constructor(
    private readonly rule: RateRule,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one request from the key's bucket; throws the 429 (with the seconds to wait) when it is empty. */
  check(key: string): void {
    const now = this.now();
    this.sweep(now);
    const result = take(this.buckets.get(key), this.rule, now);
    this.buckets.set(key, result.bucket);
    if (!result.ok) {
      throw Object.assign(
        new ApiError(
          'RESOURCE_EXHAUSTED',
          `rate limit reached: this API key may make ${this.rule.perSecond} requests per second with bursts of ${this.rule.burst} ` +
            `(API_RATE_LIMIT_PER_SECOND, API_RATE_LIMIT_BURST); retry after ${result.retryAfterSeconds} s`,
        ),
        { retryAfterSeconds: result.retryAfterSeconds },
      );
    }
  }

  /** Keys tracked now (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_MS) return;
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) if (isFull(bucket, this.rule, now)) this.buckets.delete(key);
  }
}
