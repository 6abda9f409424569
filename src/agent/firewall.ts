/**
 * Packet rules that keep ranks off the control plane: every TCP connection from a uid of the rank
 * range to the Temporal frontend, its Web UI or the API is reset. One chain per batchd instance
 * (named after its DATA_DIR), jumped to from OUTPUT for the rank uid range only, so the service's
 * own connections and every other user's are untouched. Installing is idempotent (the chain is
 * flushed and refilled); removing takes out the jump and the chain. IPv4 through `iptables`, and
 * IPv6 through `ip6tables` where present.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { type ControlPlaneEndpoint, firewallRuleArgs } from '../domain/isolation';

export interface FirewallOptions {
  chain: string;
  /** The instance's DATA_DIR, written on its jump rule so a later start can tell a dead instance's rules. */
  dataDir: string;
  uidFirst: number;
  uidLast: number;
  endpoints: ControlPlaneEndpoint[];
  /** The process the rules belong to, as `<pid>@<start time>` (processStamp); this process when absent. */
  owner?: string;
}

/**
 * A process as `<pid>@<start time in clock ticks since boot>` (field 22 of /proc/<pid>/stat), which
 * tells it from a later process given the same pid; undefined when no such process runs.
 */
export function processStamp(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return start ? `${pid}@${start}` : undefined;
  } catch {
    return undefined;
  }
}

function run(tool: string, args: string[]): boolean {
  try {
    execFileSync(tool, ['-w', '5', ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

function toolPresent(tool: string): boolean {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

export class RankFirewall {
  private readonly tools: Array<{ tool: string; family: 4 | 6 }> = [];

  private readonly owner: string;

  constructor(private readonly o: FirewallOptions) {
    this.owner = o.owner ?? processStamp(process.pid) ?? String(process.pid);
  }

  private jump(): string[] {
    return ['OUTPUT', '-m', 'owner', '--uid-owner', `${this.o.uidFirst}-${this.o.uidLast}`, '-m', 'comment', '--comment', `batchd:${this.o.dataDir}#${this.owner}`, '-j', this.o.chain];
  }

  /**
   * Rules of instances that died without removing them (SIGKILL, or an exit before it could): they
   * would reset ranks' connections to ports that later services hand out, as MASTER_PORT or to a
   * notebook's kernel. Stale when the process that installed them no longer runs (the jump names it,
   * `#<pid>@<start time>`), or, for jumps from before that, when their DATA_DIR is gone.
   */
  private removeStale(tool: string): void {
    let rules: string;
    try {
      rules = execFileSync(tool, ['-w', '5', '-S', 'OUTPUT'], { encoding: 'utf8', timeout: 10_000 });
    } catch {
      return;
    }
    const jumps = rules
      .split('\n')
      .map((line) => /^-A (OUTPUT .*--comment "?batchd:([^"\s#]+)(?:#(\d+)@(\d+))?"? -j (BATCHD-[0-9A-F]+))$/.exec(line.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map(([, rule = '', dataDir = '', pid, start, chain = '']) => ({
        rule,
        chain,
        alive: pid !== undefined ? processStamp(Number(pid)) === `${pid}@${start}` : existsSync(dataDir),
      }));
    for (const jump of jumps) {
      if (jump.alive) continue;
      run(tool, ['-D', ...jump.rule.split(' ').map((w) => w.replace(/^"|"$/g, ''))]);
      // A chain a live jump still uses (another life of the same DATA_DIR) keeps its rules.
      if (jumps.some((j) => j.alive && j.chain === jump.chain)) continue;
      run(tool, ['-F', jump.chain]);
      run(tool, ['-X', jump.chain]);
    }
  }

  /** Installs the rules; returns why it could not, or undefined. */
  install(): string | undefined {
    if (!toolPresent('iptables')) return 'iptables is not installed (Debian package iptables)';
    const candidates: Array<{ tool: string; family: 4 | 6 }> = [{ tool: 'iptables', family: 4 }];
    if (toolPresent('ip6tables')) candidates.push({ tool: 'ip6tables', family: 6 });
    for (const c of candidates) {
      const endpoints = this.o.endpoints.filter((e) => e.address === undefined || (c.family === 4 ? isIPv4(e.address) : isIPv6(e.address)));
      this.removeStale(c.tool);
      run(c.tool, ['-N', this.o.chain]); // fails harmlessly when it exists
      if (!run(c.tool, ['-F', this.o.chain])) {
        if (c.family === 4) return `${c.tool} could not create chain ${this.o.chain}`;
        continue; // no IPv6 netfilter: nothing listens there for ranks to reach either
      }
      let ok = true;
      for (const rule of firewallRuleArgs(endpoints)) ok &&= run(c.tool, ['-A', this.o.chain, ...rule]);
      if (ok && !run(c.tool, ['-C', ...this.jump()])) ok = run(c.tool, ['-I', ...this.jump()]);
      if (!ok) {
        if (c.family === 4) return `${c.tool} refused the rules of chain ${this.o.chain}`;
        continue;
      }
      this.tools.push(c);
    }
    return undefined;
  }

  remove(): void {
    for (const { tool } of this.tools) {
      while (run(tool, ['-D', ...this.jump()])) {
        // a crashed earlier life may have left a second jump
      }
      run(tool, ['-F', this.o.chain]);
      run(tool, ['-X', this.o.chain]);
    }
    this.tools.length = 0;
  }
}
