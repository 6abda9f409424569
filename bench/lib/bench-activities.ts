/**
 * The bench worker's one activity: run a command in bash, heartbeating every second while it runs, as
 * an agent does. The command is started the way an agent starts a plain rank: through a rank spawner
 * (a small process of its own, src/agent/rank-spawner.ts), not by forking this process, which holds
 * the whole service in the figures that use it. A fork of it costs tens of milliseconds of blocked
 * event loop, which would make the floor slower than what it is the floor of.
 */
import { Context } from '@temporalio/activity';
import { type RankStarter, runToEnd } from '../../src/agent/rank-spawner';

export interface BenchActivities {
  runCommand(input: { command: string }): Promise<number>;
}

export function benchActivities(starter: RankStarter): BenchActivities {
  return {
    async runCommand({ command }) {
      const ctx = Context.current();
      // The agent calls heartbeat() every second; the SDK decides how many reach the server.
      const beat = setInterval(() => ctx.heartbeat(), 1000);
      try {
        const r = await runToEnd(starter, { file: 'bash', args: ['-c', command], cwd: process.cwd(), env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, detached: false });
        if (r.code === null && r.signal === null) throw new Error(`the command could not run: ${r.stderr}`);
        return r.code ?? -1;
      } finally {
        clearInterval(beat);
      }
    },
  };
}
