/**
 * Packet rules that keep ranks off the control plane: every TCP connection from a uid of the rank
 * range to the Temporal frontend, its Web UI or the API is reset. One chain per batchd instance
 * (named after its DATA_DIR), jumped to from OUTPUT for the rank uid range only, so the service's
 * own connections and every other user's are untouched. Installing is idempotent (the chain is
 * flushed and refilled); removing takes out the jump and the chain. IPv4 through `iptables`, and
 * IPv6 through `ip6tables` where present.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { type ControlPlaneEndpoint, firewallRuleArgs } from '../domain/isolation';

export interface FirewallOptions {
  chain: string;
  /** The instance's DATA_DIR, written on its jump rule so a later start can tell a dead instance's rules. */
  dataDir: string;
  uidFirst: number;
  uidLast: number;
  endpoints: ControlPlaneEndpoint[];
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

  constructor(private readonly o: FirewallOptions) {}

  private jump(): string[] {
    return ['OUTPUT', '-m', 'owner', '--uid-owner', `${this.o.uidFirst}-${this.o.uidLast}`, '-m', 'comment', '--comment', `batchd:${this.o.dataDir}`, '-j', this.o.chain];
  }

  /**
   * Rules of instances that died without removing them (SIGKILL) and whose DATA_DIR is gone: they
   * would reset ranks' connections to ports some later service may hand out as MASTER_PORT.
   */
  private removeStale(tool: string): void {
    let rules: string;
    try {
      rules = execFileSync(tool, ['-w', '5', '-S', 'OUTPUT'], { encoding: 'utf8', timeout: 10_000 });
    } catch {
      return;
    }
    for (const line of rules.split('\n')) {
      const m = /^-A (OUTPUT .*--comment "?batchd:([^"\s]+)"? -j (BATCHD-[0-9A-F]+))$/.exec(line.trim());
      if (!m || existsSync(m[2]!)) continue;
      run(tool, ['-D', ...m[1]!.split(' ').map((w) => w.replace(/^"|"$/g, ''))]);
      run(tool, ['-F', m[3]!]);
      run(tool, ['-X', m[3]!]);
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
