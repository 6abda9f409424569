/**
 * Summarises a V8 CPU profile (`node --cpu-prof`) by where self time went: our code by folder, each
 * dependency, Node internals, GC, idle. Used to explain the gaps the figures show:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/run.js --quick sustained
 *   node dist/bench/profile-summary.js /tmp/prof/*.cpuprofile [--from=SECONDS] [--top=N]
 *
 * Each file is one thread (the main thread, then one per workflow worker thread). --from skips the
 * first SECONDS of each profile (setup).
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export function category(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'program (native, incl. Temporal core bridge calls)';
    return `native: ${functionName || '(anonymous)'}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm?.[1]) return `dep: ${nm[1]}`;
  if (url.includes('workflow-bundle') || url.includes('/workflows/')) return 'workflow code (bundle: ours + SDK + zod)';
  const ours = /dist\/((?:src\/)?[^/]+)/.exec(url);
  if (ours?.[1]) return `ours: ${ours[1]}`;
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node: ${m?.[1] ?? url}`;
  }
  return url;
}

export function summarise(file: string, fromSeconds = 0): Array<[string, number]> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  let t = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t / 1e6 < fromSeconds) continue;
    const node = byId.get(p.samples[i] ?? -1);
    if (!node) continue;
    const c = category(node.callFrame);
    totals.set(c, (totals.get(c) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  return [...totals.entries()].sort((a, b) => b[1] - a[1]);
}

function topFunctions(file: string, n: number): Array<[string, number]> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const totals = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i] ?? -1);
    if (!node || !node.callFrame.url) continue;
    const key = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${node.callFrame.lineNumber + 1}`;
    totals.set(key, (totals.get(key) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  return [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const from = Number(args.find((a) => a.startsWith('--from='))?.slice(7) ?? 0);
  const top = Number(args.find((a) => a.startsWith('--top='))?.slice(6) ?? 15);
  for (const file of args.filter((a) => !a.startsWith('--'))) {
    const rows = summarise(file, from);
    const busy = rows.filter(([c]) => c !== 'idle').reduce((a, [, v]) => a + v, 0);
    console.log(`\n${basename(file)}: ${(busy / 1000).toFixed(1)} s busy`);
    for (const [c, ms] of rows.slice(0, 25)) if (c !== 'idle') console.log(`  ${((100 * ms) / busy).toFixed(1).padStart(5)}%  ${(ms / 1000).toFixed(2).padStart(7)} s  ${c}`);
    console.log('  top functions (self time):');
    for (const [f, ms] of topFunctions(file, top)) console.log(`    ${(ms / 1000).toFixed(2).padStart(6)} s  ${f}`);
  }
}
