/**
 * `node dist/bench/rank-start.js [starts]`: what rank isolation costs per rank start. Starts a shell
 * rank that runs `true`, N times without isolation and N times isolated (uid, cgroup, mount
 * namespace; needs root), and prints the median and p90 of: spawn → exit, and the whole life
 * spawn → exit → leftovers reaped (which for an isolated rank includes reading and removing its
 * cgroup). Runs in a scratch DATA_DIR; nothing of the service is started.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { RankIsolation } from '../src/agent/isolation';
import { RankProcess } from '../src/agent/rank-process';
import { quantile } from './lib/stats';

async function once(dataDir: string, n: number, launch: RankIsolation | undefined, agent: ReturnType<RankIsolation['forAgent']> | undefined) {
  const workDir = join(dataDir, 'work', 'bench', `job-${n}`, 'rank-0');
  const t0 = process.hrtime.bigint();
  const rank = new RankProcess(
    {
      rank: 0,
      env: { RANK: '0' },
      executor: { kind: 'shell', shell: { command: 'true' } },
      workDir,
      workspaceDir: join(dataDir, 'workspace'),
      agentKey: 'bench',
      launch: agent && launch ? (command) => agent.launch({ account: 'bench', jobId: `job-${n}`, rank: 0, workDir }, command) : undefined,
      spawner: agent?.spawner ?? launch!.spawner,
    },
    () => undefined,
  );
  const exit = await rank.exited;
  const t1 = process.hrtime.bigint();
  await rank.reapLeftovers();
  const t2 = process.hrtime.bigint();
  if (exit.code !== 0) throw new Error(`rank exited with ${exit.code ?? exit.signal}: ${rank.lastOutput}`);
  return { exit: Number(t1 - t0) / 1e6, whole: Number(t2 - t0) / 1e6 };
}

async function series(label: string, starts: number, isolated: boolean): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'batchd-bench-start-'));
  mkdirSync(join(dataDir, 'workspace'));
  const iso = RankIsolation.create({
    dataDir,
    workspaceDir: join(dataDir, 'workspace'),
    setting: isolated ? 'required' : 'off',
    uidRange: { base: 200_000, count: 16 },
    memoryLimit: undefined,
    pidsMax: 4096,
    endpoints: [],
    logger: pino({ level: 'silent' }),
  });
  const agent = iso.forAgent('bench', 1);
  try {
    await once(dataDir, -1, iso, agent); // warm-up
    const exits: number[] = [];
    const wholes: number[] = [];
    for (let i = 0; i < starts; i++) {
      const r = await once(dataDir, i, iso, agent);
      exits.push(r.exit);
      wholes.push(r.whole);
    }
    const f = (xs: number[]) => `median ${quantile([...xs].sort((a, b) => a - b), 0.5).toFixed(1)} ms, p90 ${quantile([...xs].sort((a, b) => a - b), 0.9).toFixed(1)} ms`;
    process.stdout.write(`${label.padEnd(12)} spawn→exit: ${f(exits)}; spawn→reaped: ${f(wholes)}  (${starts} starts, mode ${iso.mode})\n`);
  } finally {
    await agent.cgroups?.close();
    await iso.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const starts = Number(process.argv[2] ?? 50);
  await series('plain', starts, false);
  if (process.getuid?.() === 0) await series('isolated', starts, true);
  else process.stdout.write('isolated     skipped: needs root\n');
}

void main();
