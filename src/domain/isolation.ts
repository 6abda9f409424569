/**
 * The pure rules of rank isolation: which uid an account's ranks run as, how a rank's cgroup is
 * named, how a byte size is read and written, which packet rules keep ranks off the control plane,
 * and the words a job's status uses when a rank ran out of memory. The agent's isolation layer
 * (src/agent/isolation.ts) does the I/O; everything it decides is decided here, where it is tested.
 */

/** Accounts to the uid (= gid) their ranks run as; persisted by the agent, only ever appended to. */
export type RankUidMap = Readonly<Record<string, number>>;

export interface UidRange {
  base: number;
  count: number;
}

/**
 * The uid of an account's ranks: the one it was given before, else the lowest free uid of the range.
 * Allocation never reuses or moves a uid, so two accounts never share one, even across restarts,
 * and a uid that owns an account's files keeps meaning that account. Throws when the range is full.
 */
export function allocateRankUid(map: RankUidMap, account: string, range: UidRange): { uid: number; map: RankUidMap; added: boolean } {
  const known = map[account];
  if (known !== undefined) return { uid: known, map, added: false };
  const used = new Set(Object.values(map));
  for (let uid = range.base; uid < range.base + range.count; uid++) {
    if (!used.has(uid)) return { uid, map: { ...map, [account]: uid }, added: true };
  }
  throw new Error(`no free rank uid for account ${account}: all ${range.count} uids from ${range.base} are taken (raise RANK_UID_COUNT)`);
}

/** Checks a map read from disk: account ids to distinct whole uids. Returns what is wrong, or undefined. */
export function rankUidMapProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object of account → uid';
  const seen = new Map<number, string>();
  for (const [account, uid] of Object.entries(value as Record<string, unknown>)) {
    if (typeof uid !== 'number' || !Number.isInteger(uid) || uid <= 0) return `account ${account}: uid ${JSON.stringify(uid)} is not a positive whole number`;
    const other = seen.get(uid);
    if (other !== undefined) return `accounts ${other} and ${account} share uid ${uid}`;
    seen.set(uid, account);
  }
  return undefined;
}

/**
 * A rank's cgroup, below the agent's own folder: `<account>.<jobId>.<rank>`. Account and job ids are
 * `[a-z0-9-]`, so the dots make the name unambiguous and one job's cgroups share a prefix.
 */
export function rankCgroupName(account: string, jobId: string, rank: number): string {
  return `${jobCgroupPrefix(account, jobId)}${rank}`;
}

export function jobCgroupPrefix(account: string, jobId: string): string {
  return `${account}.${jobId}.`;
}

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/**
 * `1073741824`, `512M`, `1.5G`, `2GiB` (binary units, case-insensitive), or `none` / `0` for no
 * limit (undefined). Returns an error string for anything else.
 */
export function parseByteSize(text: string): number | undefined | { error: string } {
  const t = text.trim().toLowerCase();
  if (t === 'none' || t === '0') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/.exec(t);
  if (!m) return { error: `"${text}" is not a size (e.g. 512M, 2G, 1073741824, or none)` };
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!]!);
  if (bytes < 1 << 20) return { error: `"${text}" is below 1 MiB` };
  return bytes;
}

/** Bytes for people: `11.5 GiB`, `512 MiB`, `640 KiB`; one decimal only where it says something. */
export function formatBytes(bytes: number): string {
  const units: Array<[string, number]> = [
    ['TiB', 2 ** 40],
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ];
  for (const [unit, size] of units) {
    if (bytes >= size) {
      return `${Math.round((bytes / size) * 10) / 10} ${unit}`;
    }
  }
  return `${bytes} B`;
}

/** The default memory limit of a rank: the host's memory shared evenly by its slots, rounded down to a MiB. */
export function defaultRankMemoryLimit(hostMemoryBytes: number, slots: number): number {
  return Math.floor(hostMemoryBytes / Math.max(1, slots) / 2 ** 20) * 2 ** 20;
}

export interface RankEnd {
  rank: number;
  host: string;
  code: number | null;
  signal: string | null;
  /** Processes the kernel killed in the rank's cgroup for lack of memory. */
  oomKills: number;
  memoryLimit?: number;
  lastOutput?: string;
}

/**
 * Why a rank failed, in the job's status. An out-of-memory kill is said as such — not as the bare
 * SIGKILL or exit 137 it looks like from outside — with the limit that was hit.
 */
export function rankFailureMessage(end: RankEnd): string {
  const limit = end.memoryLimit !== undefined ? ` (limit ${formatBytes(end.memoryLimit)})` : '';
  const last = end.lastOutput ? ` (last output: ${truncate(end.lastOutput, 200)})` : '';
  const who = `rank ${end.rank} on host ${end.host}`;
  if (end.oomKills > 0 && (end.signal === 'SIGKILL' || end.code === 137)) return `${who} was killed: out of memory${limit}`;
  const how = end.signal ? `was killed by ${end.signal}` : `exited with code ${end.code}`;
  if (end.oomKills > 0) return `${who} ${how} after a process of it was killed: out of memory${limit}${last}`;
  return `${who} ${how}${last}`;
}

export interface RankUsage {
  cpuSeconds?: number;
  peakMemoryBytes?: number;
}

/** What a finished rank used, in one line of the agent's log. */
export function rankUsageLine(rank: number, usage: RankUsage): string | undefined {
  const parts: string[] = [];
  if (usage.cpuSeconds !== undefined) parts.push(`${usage.cpuSeconds.toFixed(2)} CPU seconds`);
  if (usage.peakMemoryBytes !== undefined) parts.push(`peak memory ${formatBytes(usage.peakMemoryBytes)}`);
  return parts.length ? `rank ${rank} used ${parts.join(', ')}` : undefined;
}

export interface ControlPlaneEndpoint {
  /** An IP address, or undefined for "any address of this machine". */
  address?: string;
  port: number;
}

/**
 * The rules of one agent's chain, as iptables arguments after `-A <chain>`: reject TCP from ranks to
 * each control-plane endpoint. Endpoints without an address match every local address of the
 * machine (a server bound to 0.0.0.0 answers on all of them), not only 127.0.0.1.
 */
export function firewallRuleArgs(endpoints: ControlPlaneEndpoint[]): string[][] {
  const seen = new Set<string>();
  const rules: string[][] = [];
  for (const e of endpoints) {
    const key = `${e.address ?? '*'}:${e.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const where = e.address ? ['-d', e.address] : ['-m', 'addrtype', '--dst-type', 'LOCAL'];
    rules.push(['-p', 'tcp', ...where, '--dport', String(e.port), '-j', 'REJECT', '--reject-with', 'tcp-reset']);
  }
  return rules;
}

/** The chain of one batchd instance's rules (iptables allows 28 characters). */
export function firewallChainName(instance: string): string {
  return `BATCHD-${instance.slice(0, 12).toUpperCase()}`;
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n)}…`;
}

/** The pool annotation that sets its ranks' memory limit (`8G`, `512M`, or `none`), above each agent's default. */
export const RANK_MEMORY_LIMIT_ANNOTATION = 'batchd.io/rank-memory-limit';

/** The limit a pool's annotations set: bytes, null for `none`, undefined when not set; an error for a bad value. */
export function poolRankMemoryLimit(annotations: Readonly<Record<string, string>> | undefined): number | null | undefined | { error: string } {
  const text = annotations?.[RANK_MEMORY_LIMIT_ANNOTATION];
  if (text === undefined) return undefined;
  const parsed = parseByteSize(text);
  return parsed === undefined ? null : parsed;
}

export interface RankUsageReport extends RankUsage {
  rank: number;
}

/** What a job's ranks used, for its final status: peak memory (and which rank) and CPU seconds in all. */
export function usageSummary(usage: readonly RankUsageReport[]): string | undefined {
  const cpu = usage.filter((u) => u.cpuSeconds !== undefined);
  const mem = usage.filter((u) => u.peakMemoryBytes !== undefined);
  const parts: string[] = [];
  const peak = mem.reduce<RankUsageReport | undefined>((a, u) => (a === undefined || (u.peakMemoryBytes ?? 0) > (a.peakMemoryBytes ?? 0) ? u : a), undefined);
  if (peak?.peakMemoryBytes !== undefined) parts.push(`peak memory ${formatBytes(peak.peakMemoryBytes)}${usage.length > 1 ? ` (rank ${peak.rank})` : ''}`);
  if (cpu.length > 0) parts.push(`${cpu.reduce((n, u) => n + (u.cpuSeconds ?? 0), 0).toFixed(1)} CPU seconds${usage.length > 1 ? ' in all' : ''}`);
  return parts.length > 0 ? parts.join(', ') : undefined;
}
