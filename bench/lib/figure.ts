/** What every figure takes and returns, and the one line `npm run bench` prints for it. */
import { fmt } from './stats';

export interface FigureOptions {
  /** The --quick suite: smaller counts, same code paths. */
  quick: boolean;
  /** Progress and detail lines (stderr by default; the figure lines go to stdout). */
  log: (line: string) => void;
}

export interface FigureResult {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  baselineUnit: string;
  /** What the baseline is, in a few words. */
  baselineLabel: string;
  /** value / baseline. */
  ratio: number;
  /** Further numbers for the printed line (p50/p99 and the like). */
  extra?: string;
  /** Everything measured, for the results file. */
  details: Record<string, unknown>;
}

export function figureLine(r: FigureResult): string {
  const digits = (x: number) => (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return (
    `${r.name}: ${fmt(r.value, digits(r.value))} ${r.unit} ` +
    `(baseline: ${fmt(r.baseline, digits(r.baseline))} ${r.baselineUnit}, ratio ${fmt(r.ratio, 2)}x)` +
    (r.extra ? `; ${r.extra}` : '')
  );
}

/** Rejects when `p` takes longer than `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
