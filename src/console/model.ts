/**
 * The console's pure parts, with no DOM in them so unit tests run them under Node: reading the create
 * form's text fields, sending an API field violation to the form field it names, the rank filter,
 * durations and times as people read them, and the chart's scale.
 */

/** `KEY=VALUE` lines (blank lines and `#` comments skipped) as a map; an error names the bad line. */
export function parseKeyValueLines(text: string): { value: Record<string, string> } | { error: string } {
  const value: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) return { error: `line ${i + 1}: write KEY=VALUE` };
    const key = line.slice(0, eq).trim();
    if (key in value) return { error: `line ${i + 1}: ${key} is given twice` };
    value[key] = line.slice(eq + 1).trim();
  }
  return { value };
}

/** One argument per line, blank lines dropped. */
export function parseLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/** `0, 2, 4-6` as rank numbers; empty text is every rank (undefined). */
export function parseRanks(text: string): { ranks?: number[] } | { error: string } {
  const trimmed = text.trim();
  if (trimmed === '') return {};
  const ranks = new Set<number>();
  for (const part of trimmed.split(/[\s,]+/)) {
    const range = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!range) return { error: `"${part}" is not a rank or a range like 2-5` };
    const from = Number(range[1]);
    const to = range[2] === undefined ? from : Number(range[2]);
    if (to < from) return { error: `"${part}": the range ends before it starts` };
    if (to - from > 1000) return { error: `"${part}": at most 1000 ranks in a range` };
    for (let r = from; r <= to; r++) ranks.add(r);
  }
  return { ranks: [...ranks].sort((a, b) => a - b) };
}

/**
 * The form field an API field violation belongs to: the longest of `fields` that the violation's path
 * starts with, at a path boundary (`shellExecutor.command`, `annotations["team"]` → `annotations`,
 * `pythonExecutor.args[2]` → `pythonExecutor.args`). Undefined when no field matches (the form shows
 * it in its summary instead).
 */
export function fieldForViolation(path: string, fields: readonly string[]): string | undefined {
  let best: string | undefined;
  for (const f of fields) {
    const boundary = path.length === f.length || ['.', '['].includes(path.charAt(f.length));
    if (path.startsWith(f) && boundary && (best === undefined || f.length > best.length)) best = f;
  }
  return best;
}

/** `1h 02m`, `3m 05s`, `12s`: a duration for people. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(rest).padStart(2, '0')}s`;
  return `${rest}s`;
}

/** How long a job ran (or has run so far), from its times; undefined before it started. */
export function runTime(job: { startTime?: string; endTime?: string }, now: Date): number | undefined {
  if (!job.startTime) return undefined;
  const end = job.endTime ? Date.parse(job.endTime) : now.getTime();
  return Math.max(0, (end - Date.parse(job.startTime)) / 1000);
}

/** A nice upper bound for a chart's axis: 1, 2 or 5 × a power of ten, at least `value` and at least 1. */
export function niceMax(value: number): number {
  if (!(value > 1)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** The points of a series as an SVG polyline over `width × height`, time on x from `from` to `to`. */
export function polylinePoints(values: ReadonlyArray<{ t: number; v: number }>, from: number, to: number, max: number, width: number, height: number): string {
  const span = Math.max(1, to - from);
  return values
    .map(({ t, v }) => {
      const x = ((t - from) / span) * width;
      const y = height - (Math.min(v, max) / max) * height;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
}

/** The job id of a resource name (`accounts/a/batchJobs/x` → `x`); an id is returned as it is. */
export function idOf(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

/** Ranks grouped by host, in rank order: `[{host, ranks: [{rank, slot}]}]`, for the placement table. */
export function ranksByHost(ranks: ReadonlyArray<{ rank: number; host: string; slot: number }>): Array<{ host: string; ranks: Array<{ rank: number; slot: number }> }> {
  const byHost = new Map<string, Array<{ rank: number; slot: number }>>();
  for (const r of [...ranks].sort((a, b) => a.rank - b.rank)) byHost.set(r.host, [...(byHost.get(r.host) ?? []), { rank: r.rank, slot: r.slot }]);
  return [...byHost].map(([host, rs]) => ({ host, ranks: rs }));
}

/** `0-3, 5`: a sorted list of numbers with runs collapsed. */
export function compactNumbers(values: readonly number[]): string {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === (sorted[j] ?? 0) + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}
