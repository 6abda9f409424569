/**
 * What an agent has running, written to disk as it starts each rank: pid and start time. A restarted
 * agent reads them and kills every group that is still the same process (same start time), so no rank
 * of its previous life survives and no recycled pid is hit.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processStartTime, signalGroup } from './processes';

interface PidRecord {
  job: string;
  rank: number;
  pid: number;
  startTime: string;
}

function digest(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

export class PidFiles {
  readonly dir: string;

  constructor(dataDir: string, agentKey: string) {
    this.dir = join(dataDir, 'agents', digest(agentKey));
    mkdirSync(this.dir, { recursive: true });
  }

  private file(job: string, rank: number): string {
    return join(this.dir, `${digest(job)}-${rank}.json`);
  }

  record(job: string, rank: number, pid: number): void {
    const startTime = processStartTime(pid) ?? '';
    const rec: PidRecord = { job, rank, pid, startTime };
    writeFileSync(this.file(job, rank), JSON.stringify(rec));
  }

  forget(job: string, rank: number): void {
    rmSync(this.file(job, rank), { force: true });
  }

  /** Kills the groups of every recorded rank still alive as the same process; returns what it killed. */
  killLeftovers(): PidRecord[] {
    const killed: PidRecord[] = [];
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      try {
        const rec = JSON.parse(readFileSync(path, 'utf8')) as PidRecord;
        const now = processStartTime(rec.pid);
        if (now !== undefined && now === rec.startTime) {
          signalGroup(rec.pid, 'SIGKILL');
          killed.push(rec);
        }
      } catch {
        // unreadable record: nothing to kill by it; the environment sweep still runs
      }
      rmSync(path, { force: true });
    }
    return killed;
  }
}
