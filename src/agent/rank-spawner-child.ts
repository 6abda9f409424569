/**
 * The rank spawner's own process (src/agent/rank-spawner.ts forks it, once, with a 32 MiB heap): it
 * starts ranks for the agent, so a rank start never forks the big service process. It loads nothing
 * but node:child_process, and runs no code of a rank: it spawns exactly the launch wrapper, arguments,
 * working directory and environment the agent sends, with stdin /dev/null and two pipes (its IPC
 * channel is close-on-exec, so a rank never holds it), and sends back the rank's pid, its output as
 * it comes, and its end. Output waits in the pipes while more than HIGH characters are unsent to the
 * agent, so a rank that prints fast cannot grow this process. It ends when the agent closes the
 * channel or dies; SIGINT and SIGTERM (a Ctrl-C, a service manager's stop) are ignored, so it still
 * reports the ends of the ranks the agent is stopping.
 */
import { spawn } from 'node:child_process';
import { type Readable } from 'node:stream';
import { type SpawnerEvent, type SpawnerRequest } from './rank-spawner';

/** Characters sent to the agent but not yet written to the channel: above HIGH, outputs pause; at LOW, they resume. */
const HIGH = 1 << 20;
const LOW = 256 << 10;
let unsent = 0;
const paused = new Set<Readable>();

function send(event: SpawnerEvent, size = 0): void {
  if (!process.connected || !process.send) return;
  unsent += size;
  process.send(event, undefined, {}, () => {
    unsent -= size;
    if (unsent <= LOW && paused.size > 0) {
      for (const s of paused) s.resume();
      paused.clear();
    }
  });
}

function start(req: SpawnerRequest): void {
  const { id } = req;
  let child;
  try {
    child = spawn(req.file, req.args, { cwd: req.cwd, env: req.env, detached: req.detached, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    send({ t: 'error', id, message: err instanceof Error ? err.message : String(err) });
    send({ t: 'done', id });
    return;
  }
  if (child.pid !== undefined) send({ t: 'spawned', id, pid: child.pid });
  child.once('error', (err) => send({ t: 'error', id, message: err.message }));
  child.once('exit', (code, signal) => send({ t: 'exit', id, code, signal }));
  // After the exit and both outputs' ends (or a failed start): nothing more comes of this rank.
  child.once('close', () => send({ t: 'done', id }));
  for (const s of ['stdout', 'stderr'] as const) {
    const stream = child[s];
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      send({ t: 'out', id, s, d }, d.length);
      if (unsent > HIGH) {
        stream.pause();
        paused.add(stream);
      }
    });
    stream.on('end', () => send({ t: 'end', id, s }));
    stream.on('close', () => paused.delete(stream));
  }
}

process.on('message', (m: SpawnerRequest) => {
  if (m.t === 'spawn') start(m);
});
// The agent closed the channel or died: ranks already started run on (as they would after an agent's
// death), and the agent's next life kills them by their pid files and cgroups.
process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
