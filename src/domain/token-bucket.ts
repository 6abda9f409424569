/**
 * A token bucket, as plain data and one pure function: the API's per-key request rate. A bucket holds
 * up to `burst` tokens and gains `perSecond` tokens a second; a request takes one. A refused request
 * learns how long until a token is there (the `Retry-After` it is told). Time is a parameter, so the
 * rule is tested without clocks.
 */

export interface RateRule {
  /** Tokens gained per second (the sustained request rate). */
  perSecond: number;
  /** Most tokens a bucket holds (the burst). */
  burst: number;
}

export interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date, in ms. */
  at: number;
}

export type Take = { ok: true; bucket: Bucket } | { ok: false; bucket: Bucket; retryAfterSeconds: number };

/** The bucket as it stands at `now`: refilled for the time since it was last seen, capped at burst. */
export function refill(bucket: Bucket | undefined, rule: RateRule, now: number): Bucket {
  if (!bucket) return { tokens: rule.burst, at: now };
  const elapsed = Math.max(0, now - bucket.at) / 1000;
  return { tokens: Math.min(rule.burst, bucket.tokens + elapsed * rule.perSecond), at: Math.max(now, bucket.at) };
}

/** Takes one token at `now`, or says in whole seconds (at least 1) when one will be there. */
export function take(bucket: Bucket | undefined, rule: RateRule, now: number): Take {
  const current = refill(bucket, rule, now);
  if (current.tokens >= 1) return { ok: true, bucket: { tokens: current.tokens - 1, at: current.at } };
  const wait = (1 - current.tokens) / rule.perSecond;
  return { ok: false, bucket: current, retryAfterSeconds: Math.max(1, Math.ceil(wait)) };
}

/** A bucket that has refilled completely carries no state worth keeping (it can be forgotten). */
export function isFull(bucket: Bucket, rule: RateRule, now: number): boolean {
  return refill(bucket, rule, now).tokens >= rule.burst;
}
