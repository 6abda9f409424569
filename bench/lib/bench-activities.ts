/** The bench worker's one activity: run a command in bash, heartbeating every second while it runs, as an agent does. */
import { spawn } from 'node:child_process';
import { Context } from '@temporalio/activity';

export interface BenchActivities {
  runCommand(input: { command: string }): Promise<number>;
}

export const benchActivities: BenchActivities = {
  runCommand({ command }) {
    const ctx = Context.current();
    return new Promise<number>((resolve, reject) => {
      const child = spawn('bash', ['-c', command], { stdio: 'ignore' });
      // The agent calls heartbeat() every second; the SDK decides how many reach the server.
      const beat = setInterval(() => ctx.heartbeat(), 1000);
      child.once('error', (err) => {
        clearInterval(beat);
        reject(err);
      });
      child.once('exit', (code) => {
        clearInterval(beat);
        resolve(code ?? -1);
      });
    });
  },
};
