/**
 * `npm run cluster -- <command> [flags]`: a production-shaped batchd cluster on this machine (docs/deployment.md).
 *
 *   up       [--dir D] [--port-base N] [--net N] [--hosts N]   start everything (builds Temporal's server once)
 *   status   [--dir D]                                         every process, its pid, endpoint and health
 *   down     [--dir D] [--purge]                               stop everything; --purge also removes the data folder
 *   kill     NAME [--signal SIG] [--dir D]                     signal one process (default SIGKILL)
 *   start    NAME [--dir D]                                    start one process again and wait until it is healthy
 *
 * Defaults: --dir data/cluster, --port-base 17200 (ports base..base+99; at most 32744, as Temporal keeps membership ports in a smallint), --net 0 (subnet 10.233.0.0/24), --hosts 3.
 * Needs root (network namespaces; PostgreSQL runs as the postgres user) and `npm run build` first.
 */
import { resolve } from 'node:path';
import { down, formatStatus, readState, signalProcess, startOne, statusOf, up } from './cluster/cluster';
import { type ClusterOptions, DEFAULT_OPTIONS, MAX_PORT_BASE } from './cluster/plan';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

function int(args: string[], name: string, fallback: number, min: number, max: number): number {
  const v = flag(args, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}`);
  return n;
}

const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  const [command, ...args] = process.argv.slice(2);
  const dir = resolve(flag(args, 'dir') ?? DEFAULT_OPTIONS.dir);
  const state = () => {
    const s = readState(dir);
    if (!s) throw new Error(`no cluster in ${dir} (npm run cluster -- up${flag(args, 'dir') ? ` --dir ${dir}` : ''})`);
    return s;
  };
  switch (command) {
    case 'up': {
      const o: ClusterOptions = {
        dir,
        portBase: int(args, 'port-base', DEFAULT_OPTIONS.portBase, 1024, MAX_PORT_BASE),
        net: int(args, 'net', DEFAULT_OPTIONS.net, 0, 255),
        hosts: int(args, 'hosts', DEFAULT_OPTIONS.hosts, 1, 20),
        slotsPerHost: DEFAULT_OPTIONS.slotsPerHost,
      };
      const started = Date.now();
      try {
        const s = await up(o, say);
        say(`\ncluster up in ${Math.round((Date.now() - started) / 1000)} s\n`);
        say(formatStatus(await statusOf(s)));
        say(`\nAPI key: ${dir}/secrets.json (bootstrapApiKey). Stop with: npm run cluster -- down --dir ${dir}`);
        return 0;
      } catch (err) {
        say(`\nup failed: ${(err as Error).message}\nthe processes started so far keep running; logs are in ${dir}/logs; npm run cluster -- down --dir ${dir} stops them`);
        return 1;
      }
    }
    case 'status': {
      const rows = await statusOf(state());
      say(formatStatus(rows));
      return rows.every((r) => !r.problem) ? 0 : 1;
    }
    case 'down':
      await down(dir, say, { purge: args.includes('--purge') });
      return 0;
    case 'kill': {
      const name = args[0];
      if (!name || name.startsWith('--')) throw new Error('kill needs a process name (see status)');
      const pid = signalProcess(state(), name, (flag(args, 'signal') ?? 'SIGKILL') as NodeJS.Signals);
      say(`sent ${flag(args, 'signal') ?? 'SIGKILL'} to ${name} (pid ${pid})`);
      return 0;
    }
    case 'start': {
      const name = args[0];
      if (!name || name.startsWith('--')) throw new Error('start needs a process name (see status)');
      await startOne(state(), name, say);
      say(`${name} is healthy`);
      return 0;
    }
    default:
      say('usage: npm run cluster -- up|status|down|kill NAME|start NAME [--dir D] (scripts/cluster-cli.ts says more)');
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
