/** The list `pageSize` parameter (contract, "Lists"). */
import { ApiError } from './errors';

export interface PageSizeLimits {
  default: number;
  max: number;
}

export const PAGE_SIZE: PageSizeLimits = { default: 50, max: 200 };

/**
 * Absent, empty or 0 → the default; above the max → the max (coerced, as upstream does); negative
 * or not an integer → 400 on `pageSize`. Accepts a number (JSON) or a decimal string (query string).
 */
export function parsePageSize(raw: unknown, limits: PageSizeLimits = PAGE_SIZE): number {
  if (raw === undefined || raw === null || raw === '') return limits.default;
  const n = toInteger(raw);
  if (n === undefined) throw ApiError.invalidField('pageSize', `must be a non-negative integer, got ${describe(raw)}`);
  if (n < 0) throw ApiError.invalidField('pageSize', `must not be negative, got ${n}`);
  if (n === 0) return limits.default;
  return Math.min(n, limits.max);
}

function toInteger(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isInteger(raw) ? raw : undefined;
  if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) return Number(raw);
  return undefined;
}

function describe(raw: unknown): string {
  if (typeof raw === 'string') return JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw);
  if (typeof raw === 'number') return String(raw);
  return Array.isArray(raw) ? 'more than one value' : typeof raw;
}
