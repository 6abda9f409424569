/**
 * One attempt of a batch job, from its grant to its end, as pure state: which granted hosts have
 * started their ranks, how each host's ranks ended, and what the job does next. The job's workflow
 * (workflows/batch-job.ts) feeds it the agents' answers and its own flags (a stop asked for, the run
 * limit passed, a preemption) and carries out the step it returns; nothing here knows Temporal, so
 * these rules are unit-tested without a server (test/unit/job-attempt.test.ts).
 */
import { type RankUsageReport, usageSummary } from './isolation';
import { type AttemptEnd } from './job-policy';

/** What became of one host's ranks: the agent's outcome, or what the workflow saw instead of one. */
export type HostResult =
  | { outcome: 'succeeded'; usage?: RankUsageReport[] }
  | {
      outcome: 'failed';
      rank: number;
      exitCode: number | null;
      signal: string | null;
      message: string;
      usage?: RankUsageReport[];
      /** The kernel's OOM killer killed a process of the rank (its cgroup counted it). */
      outOfMemory?: boolean;
    }
  | { outcome: 'stopped' }
  | { outcome: 'lost'; message: string }
  | { outcome: 'error'; message: string };

/** What the attempt does next, in the order the workflow weighs them. */
export type AttemptStep =
  /** PENDING, and every host has started its ranks (or already finished them): the job is RUNNING. */
  | { kind: 'started' }
  /** Every host's ranks exited 0. */
  | { kind: 'succeeded' }
  /** A host's ranks failed, were lost, or stopped without being asked: the first such decides the status. */
  | { kind: 'failed'; host: string; result: HostResult }
  /** Its pool asked for the capacity back (and no stop was asked for). */
  | { kind: 'preempted' }
  /** maxRunDuration passed (and no stop was asked for). */
  | { kind: 'run-limit' }
  /** A cancel or delete was asked for. */
  | { kind: 'stop' };

export interface AttemptFlags {
  /** The job is PENDING (ranks handed out, not yet all started). */
  pending: boolean;
  stopWanted: boolean;
  preempted: boolean;
  runLimitHit: boolean;
}

export class AttemptWatch {
  private readonly started = new Set<string>();
  private readonly ended = new Map<string, HostResult>();
  private stopping = false;

  constructor(readonly hosts: readonly string[]) {}

  /** An agent said its ranks started (ranksStarted). */
  hostStarted(host: string): void {
    this.started.add(host);
  }

  /** A host's ranks ended (runRanks returned or failed). */
  hostEnded(host: string, result: HostResult): void {
    this.ended.set(host, result);
  }

  /** The job asked its hosts to stop: from now on a host's 'stopped' is the answer, not a problem. */
  beginStop(): string[] {
    this.stopping = true;
    return this.hosts.filter((h) => !this.ended.has(h));
  }

  get results(): ReadonlyMap<string, HostResult> {
    return this.ended;
  }

  allStarted(): boolean {
    return this.hosts.every((h) => this.started.has(h) || this.ended.get(h)?.outcome === 'succeeded');
  }

  allSucceeded(): boolean {
    return this.ended.size === this.hosts.length && [...this.ended.values()].every((r) => r.outcome === 'succeeded');
  }

  /** The first host whose ranks did not succeed; 'stopped' counts only when the job did not ask for it. */
  firstProblem(): [string, HostResult] | undefined {
    return [...this.ended.entries()].find(([, r]) => r.outcome !== 'succeeded' && (r.outcome !== 'stopped' || !this.stopping));
  }

  /** The next step, or undefined while the attempt waits. */
  next(flags: AttemptFlags): AttemptStep | undefined {
    if (flags.pending && this.allStarted()) return { kind: 'started' };
    if (this.allSucceeded()) return { kind: 'succeeded' };
    const problem = this.firstProblem();
    if (problem && !flags.stopWanted) return { kind: 'failed', host: problem[0], result: problem[1] };
    if (flags.preempted && !flags.stopWanted) return { kind: 'preempted' };
    if (flags.runLimitHit && !flags.stopWanted) return { kind: 'run-limit' };
    if (flags.stopWanted) return { kind: 'stop' };
    return undefined;
  }

  /** Hosts whose ranks failed, were lost or erred (not succeeded, not stopped): a retry avoids them. */
  failedHosts(): string[] {
    return [...this.ended.entries()].filter(([, r]) => r.outcome !== 'succeeded' && r.outcome !== 'stopped').map(([h]) => h);
  }

  /** Hosts lost, with why: their pool is told. */
  lostHosts(): Array<{ host: string; reason: string }> {
    const out: Array<{ host: string; reason: string }> = [];
    for (const [host, r] of this.ended) if (r.outcome === 'lost') out.push({ host, reason: r.message });
    return out;
  }

  /** A host whose stop could not be confirmed (lost, or its agent erred). */
  unconfirmedStop(): [string, HostResult] | undefined {
    return [...this.ended.entries()].find(([, r]) => r.outcome === 'lost' || r.outcome === 'error');
  }

  /** What the ranks used, in words, from the hosts that succeeded. */
  usage(): string | undefined {
    return usageSummary([...this.ended.values()].flatMap((r) => (r.outcome === 'succeeded' ? (r.usage ?? []) : [])));
  }
}

/** How an attempt ended, for its retry policy. An agent that stopped ranks by itself went away with its host. */
export function attemptEnd(host: string, r: HostResult): AttemptEnd {
  switch (r.outcome) {
    case 'failed':
      return { kind: 'exit', exitCode: r.exitCode, signal: r.signal, outOfMemory: r.outOfMemory === true, message: r.message };
    case 'lost':
      return { kind: 'host-lost', host, message: r.message };
    case 'stopped':
      return { kind: 'host-lost', host, message: `the agent of host ${host} stopped its ranks (it shut down)` };
    case 'error':
      return { kind: 'error', message: r.message };
    case 'succeeded':
      return { kind: 'error', message: `host ${host} succeeded` };
  }
}

/** A host's result as the job's status says it. */
export function describeProblem(host: string, r: HostResult): string {
  switch (r.outcome) {
    case 'failed':
    case 'lost':
    case 'error':
      return r.message;
    case 'stopped':
      return `the agent of host ${host} stopped its ranks (it shut down)`;
    case 'succeeded':
      return `host ${host} succeeded`;
  }
}

/** "h0 (4), h1 (2)": each granted host with its slot count. */
export function summariseHosts(hosts: ReadonlyArray<{ host: string; slots: readonly number[] }>): string {
  return hosts.map((h) => `${h.host} (${h.slots.length})`).join(', ');
}

/** "4 ranks on 2 hosts" / "1 rank on 1 host". */
export function ranksOnHosts(ranks: number, hosts: number): string {
  return `${ranks} rank${ranks === 1 ? '' : 's'} on ${hosts} host${hosts === 1 ? '' : 's'}`;
}
