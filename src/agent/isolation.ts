/**
 * Rank isolation: what keeps a job's code away from the control plane and from other accounts
 * (docs/security.md). One RankIsolation per process, shared by its agents, in one of three modes:
 *
 *   isolated  the agent is root. Each account's ranks run as a uid of their own (RANK_UID_BASE…,
 *             mapped on demand in DATA_DIR/rank-uids.json), with no supplementary groups, no
 *             capabilities and no_new_privs; each rank in a cgroup of its own (memory and pids
 *             limits, a kill nothing escapes); in a mount namespace where WORKSPACE_DIR is read-only,
 *             /tmp, /var/tmp and /run/lock are its own private folder (or read-only where DATA_DIR or
 *             the workspace lives below them) and /dev/shm is its job's; DATA_DIR is closed to other
 *             uids; packet rules reset its connections to Temporal, the Temporal UI and the API.
 *   userns    the agent is not root but the kernel allows unprivileged user namespaces: ranks run as
 *             the agent's own user, but in a mount namespace where DATA_DIR is an empty folder (their
 *             own rank folder mounted back) and the workspace read-only. Not isolated otherwise.
 *   none      neither: ranks run as the agent's user with nothing hidden. Said at start, loudly.
 *
 * An isolated rank is launched by batchd-rank-launch (native/rank-launch.c, built by `npm run build`),
 * which joins its cgroups and mounts what it sees before dropping privileges and exec'ing the rank's
 * command: no code of the rank ever runs outside them. Where no C compiler built it, a few lines of sh
 * do the same with unshare, mount and setpriv, at about 40 ms more per rank (eight execs, not one).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { rm } from 'node:fs/promises';
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  fchmodSync,
  fchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeFileSync,
} from 'node:fs';
import { isIP } from 'node:net';
import { totalmem } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { type Logger } from 'pino';
import { type Config, ConfigError } from '../config';
import {
  allocateRankUid,
  type ControlPlaneEndpoint,
  defaultRankMemoryLimit,
  firewallChainName,
  formatBytes,
  jobCgroupPrefix,
  rankCgroupName,
  type RankUidMap,
  rankUidMapProblem,
  type UidRange,
} from '../domain/isolation';
import { type CgroupTree, detectCgroups, openCgroupTree, type RankCgroup } from './cgroups';
import { RankFirewall } from './firewall';
import { RankSpawner, runToEnd } from './rank-spawner';

export type IsolationMode = 'isolated' | 'userns' | 'none';

export interface IsolationOptions {
  dataDir: string;
  workspaceDir: string;
  setting: 'auto' | 'required' | 'off';
  uidRange: UidRange;
  /** Bytes; undefined: host memory ÷ slots; null: no limit. */
  memoryLimit: number | null | undefined;
  pidsMax: number;
  endpoints: ControlPlaneEndpoint[];
  /** API_KEYS_FILE, closed to other users when isolating. */
  keysFile?: string;
  /**
   * The compiled launcher of isolated ranks. Absent: the one `npm run build` made, if it runs here;
   * null: the shell launcher (unshare, sh, mount, setpriv).
   */
  launcher?: string | null;
  logger: Logger;
}

/** Where `npm run build` puts the compiled launcher (scripts/build-native.sh), from dist/src/agent. */
export const BUILT_LAUNCHER = resolve(__dirname, '..', '..', 'native', 'batchd-rank-launch');

/**
 * How a rank is started: the command to spawn, its whole environment, and its cgroup. When a
 * launcher runs first with privileges the rank does not have (root, or a namespace's root), its
 * environment is a fixed one of batchd's plus the rank's variables under RANK_ENV_PREFIX, which no
 * loader, libc or shell reads, and the rank's environment is made of them only by the exec that
 * follows the drop: no variable of a job (PATH, LD_PRELOAD, GLIBC_TUNABLES and the like) ever acts
 * in a process that runs with more than the rank's rights. They travel in the environment and not
 * in the arguments because any user of the host may read a process's arguments
 * (/proc/<pid>/cmdline), and only its own user its environment; a job's variables hold its secrets.
 */
export interface RankLaunch {
  file: string;
  args: string[];
  env: Record<string, string>;
  cgroup?: RankCgroup;
}

/** The rank's environment, given the variables its isolation sets (the job's own variables win over those). */
export type RankEnvironment = (isolation: Record<string, string>) => Record<string, string>;

/** The environment of a launcher's privileged part: nothing of the job's, tools found in root's folders only. */
export const LAUNCHER_ENV: Readonly<Record<string, string>> = Object.freeze({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });

/** What a rank's variable is called while it passes through a launcher (RankLaunch). */
export const RANK_ENV_PREFIX = 'BATCHD_RANK_ENV_';

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A launcher's environment carrying the rank's: LAUNCHER_ENV, and each variable under RANK_ENV_PREFIX. */
function carrying(rankEnv: Record<string, string>): { env: Record<string, string>; names: string[] } {
  const env: Record<string, string> = { ...LAUNCHER_ENV };
  const names = Object.keys(rankEnv);
  for (const name of names) {
    // The shell launchers name them in an eval: identifiers only (a job's are checked at create).
    if (!VARIABLE_NAME.test(name)) throw new Error(`a rank's variable must be named like one: ${JSON.stringify(name)}`);
    env[`${RANK_ENV_PREFIX}${name}`] = rankEnv[name]!;
  }
  return { env, names };
}

/**
 * sh run as the rank, once the shell launchers have dropped what it may not have: its environment
 * becomes exactly the named variables (NAME... --), taken from under RANK_ENV_PREFIX, and it execs
 * the command (FILE ARG..., found on the rank's PATH). dash exports PWD by itself: unset too.
 */
const RANK_ENV = String.raw`unset PATH PWD OLDPWD
while [ "$1" != -- ]; do
  eval "export $1="\$BATCHD_RANK_ENV_$1"; unset BATCHD_RANK_ENV_$1"
  shift
done
shift
exec "$@"`;

export interface RankPlace {
  account: string;
  jobId: string;
  rank: number;
  workDir: string;
  /** The job's pool sets the limit: bytes, null for none; absent: this agent's default. */
  memoryLimit?: number | null;
}

/**
 * sh run as root inside the rank's new mount namespace: cgroups, then mounts, then drop privileges.
 * What batchd-rank-launch does in one process, for hosts where it was not built; same arguments.
 */
const ROOT_LAUNCHER = `set -e
s=$1 u=$2 g=$3
shift 3
while [ "$1" != -- ]; do
  case $1 in
    cg) echo $$ >"$2"; shift 2 ;;
    ro) mount -o bind,ro "$2" "$2"; shift 2 ;;
    bind) mount --bind "$2" "$3"; shift 3 ;;
    rw) mount --bind "$2" "$2"; mount -o remount,bind,rw "$2"; shift 2 ;;
    *) echo "batchd: bad launcher argument $1" >&2; exit 126 ;;
  esac
done
shift
exec setpriv --reuid="$u" --regid="$g" --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- /bin/sh -c "$s" batchd-rank "$@"`;

/**
 * sh run as the namespace's root in an unprivileged user namespace: the workspace read-only, DATA_DIR
 * replaced by an empty tmpfs with only the rank's own folder mounted back (through the working
 * directory, which still holds the real one), then a nested user namespace in which those mounts are
 * locked and the rank is no longer root, so it cannot unmount them.
 */
const USERNS_LAUNCHER = `set -e
s=$1 d=$2 r=$3 w=$4 u=$5 g=$6
shift 7
cd "$r"
if [ -n "$w" ]; then mount --bind "$w" "$w"; mount -o remount,bind,ro "$w"; fi
mount -t tmpfs -o mode=0755,size=64k batchd-hidden "$d"
mkdir -p "$r"
mount --no-canonicalize --bind . "$r"
cd "$r"
exec unshare --user --mount --map-user="$u" --map-group="$g" -- /bin/sh -c "$s" batchd-rank "$@"`;

/** Folders every user may write to on a Debian host; a rank gets its own in their place. */
const SHARED_WRITABLE = ['/tmp', '/var/tmp', '/run/lock'];

function works(file: string, args: string[]): boolean {
  try {
    execFileSync(file, args, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes `dir` a folder of `uid` alone (0700), never following a link: a rank owns what is in its
 * folder, and an earlier attempt of its job may have left a link (to /etc, say) where its tmp was. A
 * link or file there is removed and a folder made; the owner and mode are set through a descriptor
 * opened without following links, so nothing swapped in meanwhile is changed instead.
 */
function ownFolder(dir: string, uid: number): void {
  let st: Stats | undefined;
  try {
    st = lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (st && !st.isDirectory()) rmSync(dir, { force: true });
  mkdirSync(dir, { recursive: true });
  const fd = openSync(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
  try {
    fchownSync(fd, uid, uid);
    fchmodSync(fd, 0o700);
  } finally {
    closeSync(fd);
  }
}

/** Whether `inner` is `outer` or lies below it. */
function within(inner: string, outer: string): boolean {
  const rel = relative(outer, inner);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !rel.startsWith(sep));
}

/** Whether a user who is neither owner nor group member can enter `dir` and every folder above it. */
function othersCanReach(dir: string): boolean {
  try {
    for (let d = dir; ; d = dirname(d)) {
      if ((statSync(d).mode & 0o001) === 0) return false;
      if (d === dirname(d)) return true;
    }
  } catch {
    return false;
  }
}

export function digest(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

/** The control plane's TCP endpoints ranks must not reach: the embedded servers' ports, else the configured addresses. */
export async function controlPlaneEndpoints(o: {
  embeddedTemporal: boolean;
  temporalAddress: string;
  temporalPort: number;
  temporalUiPort: number;
  apiPort: number;
  apiUrl?: string;
}): Promise<ControlPlaneEndpoint[]> {
  const out: ControlPlaneEndpoint[] = [{ port: o.apiPort }];
  if (o.embeddedTemporal) out.push({ port: o.temporalPort }, { port: o.temporalUiPort });
  const remote = async (host: string, port: number) => {
    if (!host || !Number.isInteger(port) || port <= 0) return;
    // A name is resolved once, at start; the local machine's own addresses are covered by port.
    const addresses = isIP(host) ? [host] : await lookup(host, { all: true }).then((a) => a.map((x) => x.address), () => []);
    for (const address of addresses) out.push(address.startsWith('127.') || address === '::1' ? { port } : { address, port });
  };
  const [th, tp] = splitHostPort(o.temporalAddress);
  if (!o.embeddedTemporal) await remote(th, tp);
  if (o.apiUrl) {
    try {
      const u = new URL(o.apiUrl);
      await remote(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port || (u.protocol === 'https:' ? 443 : 80)));
    } catch {
      // not a URL: the shipper reports it
    }
  }
  return out;
}

function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return i < 0 ? [address, 7233] : [address.slice(0, i).replace(/^\[|\]$/g, ''), Number(address.slice(i + 1))];
}

export class RankIsolation {
  private uids: RankUidMap = {};
  private firewall: RankFirewall | undefined;
  private readonly uidFile: string;
  private readonly cgroupKind: { kind: 'v1' | 'v2'; root: string } | undefined;
  /** Where a rank's shared memory lives (bound over /dev/shm): one folder per job, per agent. */
  private readonly shmRoot: string | undefined;
  /** The agent's PATH without the folders another uid cannot reach (root's pyenv, say). */
  private readonly rankPath: string;
  /** Starts every rank of this process's agents, in a small process of its own (rank-spawner.ts). */
  readonly spawner: RankSpawner;
  /** The compiled launcher isolated ranks start through; undefined: the shell launcher. */
  private launcher: string | undefined;

  private constructor(
    private readonly o: IsolationOptions,
    readonly mode: IsolationMode,
    /** One line for the start banner and the logs: what ranks are isolated from, or that they are not. */
    readonly summary: string,
    /** What is weaker than it should be, each in one line. */
    readonly warnings: string[],
    cgroups: { kind: 'v1' | 'v2'; root: string } | undefined,
  ) {
    this.uidFile = join(o.dataDir, 'rank-uids.json');
    this.spawner = new RankSpawner({ logger: o.logger, tag: `batchd-${digest(o.dataDir)}` });
    this.cgroupKind = cgroups;
    this.shmRoot = mode === 'isolated' && existsSync('/dev/shm') ? join('/dev/shm', `batchd-${digest(o.dataDir)}`) : undefined;
    this.rankPath = (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin')
      .split(':')
      .filter((d) => d !== '' && othersCanReach(d))
      .join(':');
  }

  /** Decides the mode, prepares DATA_DIR and the packet rules. Throws ConfigError when `required` cannot be met. */
  static create(o: IsolationOptions): RankIsolation {
    const warnings: string[] = [];
    if (o.setting === 'off') {
      return new RankIsolation(o, 'none', 'ranks are NOT isolated (RANK_ISOLATION=off): they run as this user and can read DATA_DIR', warnings, undefined);
    }
    const root = process.getuid?.() === 0;
    const problems: string[] = [];
    let cgroups: { kind: 'v1' | 'v2'; root: string } | undefined;
    if (root) {
      for (const [tool, args] of [
        ['setpriv', ['--version']],
        ['unshare', ['--version']],
        ['mount', ['--version']],
      ] as const) {
        if (!works(tool, [...args])) problems.push(`${tool} is missing (util-linux)`);
      }
      const found = detectCgroups();
      if ('problem' in found) problems.push(found.problem);
      else cgroups = found;
      if (problems.length === 0) {
        const iso = new RankIsolation(o, 'isolated', '', warnings, cgroups);
        iso.prepareRoot();
        return iso;
      }
    }
    const why = root ? `this root agent cannot isolate them: ${problems.join('; ')}` : 'the agent does not run as root';
    if (o.setting === 'required') throw new ConfigError(`RANK_ISOLATION=required, but ${why}`);
    if (!root && !within(o.workspaceDir, o.dataDir) && works('unshare', ['--user', '--map-root-user', '--mount', 'true'])) {
      return new RankIsolation(
        o,
        'userns',
        `ranks are NOT isolated (${why}): they run as this user, can reach the control plane and outlive a cancel by leaving their session; a user namespace hides DATA_DIR from them and keeps the workspace read-only`,
        warnings,
        undefined,
      );
    }
    const hidden = !root && within(o.workspaceDir, o.dataDir) ? 'WORKSPACE_DIR lies inside DATA_DIR, so DATA_DIR cannot be hidden' : 'no user namespaces to hide DATA_DIR';
    return new RankIsolation(o, 'none', `ranks are NOT isolated (${why}; ${hidden}): they run as this user and can read DATA_DIR`, warnings, undefined);
  }

  /** DATA_DIR closed to other uids, the uid map loaded, the packet rules installed. */
  private prepareRoot(): void {
    const o = this.o;
    this.lockDataDir();
    this.uids = this.loadUids();
    const first = o.uidRange.base;
    const last = o.uidRange.base + o.uidRange.count - 1;
    this.removeStaleShm();
    this.firewall = new RankFirewall({ chain: firewallChainName(digest(o.dataDir)), dataDir: o.dataDir, uidFirst: first, uidLast: last, endpoints: o.endpoints });
    const fw = this.firewall.install();
    if (fw) {
      this.warnings.push(`ranks can reach the control plane: ${fw}`);
      this.firewall = undefined;
    }
    const launcher = o.launcher === undefined ? BUILT_LAUNCHER : o.launcher;
    if (launcher !== null && works(launcher, ['--version'])) this.launcher = launcher;
    else if (o.launcher === undefined) {
      this.warnings.push(
        `no rank launcher at ${BUILT_LAUNCHER} (\`npm run build\` compiles it where a C compiler is installed): isolated ranks start through the shell launcher, about 40 ms slower each`,
      );
    } else if (launcher !== null) throw new ConfigError(`the rank launcher ${launcher} does not run`);
    if (o.workspaceDir === o.dataDir) this.warnings.push('WORKSPACE_DIR is DATA_DIR, which ranks may not list: python -m targets there will not be found; use a folder of its own');
    const memory = o.memoryLimit === null ? 'no memory limit' : o.memoryLimit === undefined ? 'memory limited to host memory ÷ slots' : `memory limited to ${formatBytes(o.memoryLimit)}`;
    (this as { summary: string }).summary =
      `ranks are isolated: uids ${first}-${last} (one per account), cgroup ${this.cgroupKind?.kind} per rank, ${memory}, ` +
      `${this.firewall ? 'no route to Temporal or the API' : 'BUT they can reach Temporal and the API'}, DATA_DIR closed, workspace read-only; ` +
      `started by ${this.launcher ? 'batchd-rank-launch' : 'the shell launcher'}`;
  }

  /** Shared-memory folders of instances killed without cleaning up, whose DATA_DIR is gone. */
  private removeStaleShm(): void {
    if (!this.shmRoot) return;
    for (const name of readdirSync('/dev/shm')) {
      if (!/^batchd-[0-9a-f]{16}$/.test(name)) continue;
      let owner: string;
      try {
        owner = readFileSync(join('/dev/shm', name, 'data-dir'), 'utf8');
      } catch {
        continue; // being created, or not ours to judge
      }
      if (!existsSync(owner)) rmSync(join('/dev/shm', name), { recursive: true, force: true });
    }
    // Only root enters: a rank sees its job's folder through the bind mount over its /dev/shm.
    mkdirSync(this.shmRoot, { recursive: true });
    chmodSync(this.shmRoot, 0o700);
    writeFileSync(join(this.shmRoot, 'data-dir'), this.o.dataDir, { mode: 0o600 });
  }

  /**
   * DATA_DIR 0711: other uids may pass through to their own rank folder but list nothing. Every entry
   * in it but `work` (and a workspace kept inside it) loses its group and other permissions: keys,
   * tokens, secrets, SQLite files and their journals, spools, pid files. `work` and its account and
   * job folders are 0711 too; a rank folder belongs to its rank's uid and is 0700.
   */
  private lockDataDir(): void {
    const { dataDir, workspaceDir } = this.o;
    mkdirSync(join(dataDir, 'work'), { recursive: true });
    chmodSync(dataDir, 0o711);
    for (const name of readdirSync(dataDir)) {
      const path = join(dataDir, name);
      try {
        if (name === 'work') chmodSync(path, 0o711);
        else if (within(workspaceDir, path)) continue;
        else chmodSync(path, statSync(path).mode & 0o700);
      } catch (err) {
        // A file that came and went meanwhile (the dev server's SQLite journal) has nothing to lock.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    // Folders between DATA_DIR and a workspace inside it must stay passable.
    for (let d = dirname(workspaceDir); within(d, dataDir) && d !== dataDir; d = dirname(d)) chmodSync(d, statSync(d).mode | 0o111);
    const keys = this.o.keysFile;
    if (keys && existsSync(keys) && (statSync(keys).mode & 0o007) !== 0) {
      chmodSync(keys, statSync(keys).mode & 0o770);
      this.o.logger.warn({ file: keys }, 'API_KEYS_FILE was readable by every user; removed the permissions of other users so ranks cannot read it');
    }
  }

  private loadUids(): RankUidMap {
    if (!existsSync(this.uidFile)) return {};
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(this.uidFile, 'utf8'));
    } catch {
      throw new ConfigError(`${this.uidFile} is not JSON; it maps accounts to the uids their files belong to, so it is not replaced: fix or remove it`);
    }
    const problem = rankUidMapProblem(value);
    if (problem) throw new ConfigError(`${this.uidFile}: ${problem}`);
    return value as RankUidMap;
  }

  /** The uid of an account's ranks, allocated and saved (0600, written then renamed) on first use. */
  uidOf(account: string): number {
    const { uid, map, added } = allocateRankUid(this.uids, account, this.o.uidRange);
    if (added) {
      const tmp = `${this.uidFile}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(map, null, 1)}\n`, { mode: 0o600 });
      renameSync(tmp, this.uidFile);
      this.uids = map;
    }
    return uid;
  }

  /** The part of isolation one agent (one host, with its slots) uses. */
  forAgent(agentKey: string, slots: number): AgentIsolation {
    const memoryLimit = this.o.memoryLimit === undefined ? defaultRankMemoryLimit(totalmem(), slots) : (this.o.memoryLimit ?? undefined);
    const cgroups = this.mode === 'isolated' && this.cgroupKind ? openCgroupTree(this.cgroupKind.kind, this.cgroupKind.root, digest(agentKey)) : undefined;
    const shm = this.shmRoot ? join(this.shmRoot, digest(agentKey)) : undefined;
    return new AgentIsolation(this, this.o, cgroups, cgroups?.memory ? memoryLimit : undefined, shm);
  }

  /** Ends the rank spawner and takes out the packet rules (the uid map and DATA_DIR's permissions stay). */
  async close(): Promise<void> {
    this.firewall?.remove();
    if (this.shmRoot) rmSync(this.shmRoot, { recursive: true, force: true });
    await this.spawner.close();
  }

  launchIsolated(place: RankPlace, command: { file: string; args: string[] }, env: RankEnvironment, cgroup: RankCgroup, shmDir: string | undefined): RankLaunch {
    const { dataDir, workspaceDir } = this.o;
    const uid = this.uidOf(place.account);
    const jobDir = dirname(place.workDir);
    // work/<account>/<job> are root's and passable; the rank folder and its tmp are the rank's alone.
    for (let d = jobDir; within(d, dataDir) && d !== dataDir; d = dirname(d)) {
      mkdirSync(d, { recursive: true });
      chmodSync(d, 0o711);
    }
    const tmp = join(place.workDir, 'tmp');
    for (const d of [place.workDir, tmp]) ownFolder(d, uid);
    const ops: string[] = [];
    for (const f of cgroup.procsFiles) ops.push('cg', f);
    const readOnly: string[] = [];
    for (const shared of SHARED_WRITABLE) {
      if (!existsSync(shared)) continue;
      // A private folder over /tmp would hide DATA_DIR or the workspace where they live below it.
      if (within(dataDir, shared) || within(workspaceDir, shared)) readOnly.push(shared);
      else ops.push('bind', tmp, shared);
    }
    if (existsSync(workspaceDir)) readOnly.push(workspaceDir);
    for (const d of readOnly) ops.push('ro', d);
    if (shmDir) {
      ownFolder(shmDir, uid);
      ops.push('bind', shmDir, '/dev/shm');
    }
    // The rank folder stays writable where a read-only mount above covers it (a bind of a read-only
    // mount is read-only too until remounted).
    if (readOnly.some((d) => within(place.workDir, d))) ops.push('rw', place.workDir);
    const { env: carried, names } = carrying(env({ HOME: place.workDir, TMPDIR: tmp, USER: `batchd-${place.account}`, LOGNAME: `batchd-${place.account}`, PATH: this.rankPath }));
    const ids = [String(uid), String(uid)];
    if (this.launcher) return { file: this.launcher, args: [...ids, ...ops, '--', command.file, ...command.args], env: carried, cgroup };
    return {
      file: 'unshare',
      args: ['--mount', '--propagation', 'private', '/bin/sh', '-c', ROOT_LAUNCHER, 'batchd-rank', RANK_ENV, ...ids, ...ops, '--', ...names, '--', command.file, ...command.args],
      env: carried,
      cgroup,
    };
  }

  launchUserns(place: RankPlace, command: { file: string; args: string[] }, env: RankEnvironment): RankLaunch {
    mkdirSync(join(place.workDir, 'tmp'), { recursive: true });
    const ws = existsSync(this.o.workspaceDir) ? this.o.workspaceDir : '';
    const uid = String(process.getuid?.() ?? 0);
    const gid = String(process.getgid?.() ?? 0);
    const { env: carried, names } = carrying(env({ HOME: place.workDir, TMPDIR: join(place.workDir, 'tmp') }));
    return {
      file: 'unshare',
      args: ['--user', '--map-root-user', '--mount', '--propagation', 'private', '/bin/sh', '-c', USERNS_LAUNCHER, 'batchd-rank', RANK_ENV, this.o.dataDir, place.workDir, ws, uid, gid, '--', ...names, '--', command.file, ...command.args],
      env: carried,
    };
  }
}

/** One agent's share: its cgroup folder, its ranks' memory limit, its jobs' shared-memory folders. */
export class AgentIsolation {
  constructor(
    private readonly parent: RankIsolation,
    private readonly o: IsolationOptions,
    readonly cgroups: CgroupTree | undefined,
    /** The memory limit each rank gets, where the memory controller is available. */
    readonly memoryLimit: number | undefined,
    private readonly shmRoot: string | undefined,
  ) {}

  get mode(): IsolationMode {
    return this.parent.mode;
  }

  /** The process's rank spawner, which starts this agent's ranks. */
  get spawner(): RankSpawner {
    return this.parent.spawner;
  }

  /** How to start one rank. Its folder is made here, owned by the rank's uid when isolated. */
  launch(place: RankPlace, command: { file: string; args: string[] }, env: RankEnvironment): RankLaunch {
    if (this.parent.mode === 'isolated' && this.cgroups) {
      const memoryBytes = place.memoryLimit === undefined ? this.memoryLimit : this.cgroups.memory ? (place.memoryLimit ?? undefined) : undefined;
      const cgroup = this.cgroups.create(rankCgroupName(place.account, place.jobId, place.rank), { memoryBytes, pidsMax: this.o.pidsMax || undefined });
      try {
        return this.parent.launchIsolated(place, command, env, cgroup, this.shmRoot ? join(this.shmRoot, `${place.account}.${place.jobId}`) : undefined);
      } catch (err) {
        void cgroup.remove();
        throw err;
      }
    }
    mkdirSync(place.workDir, { recursive: true });
    if (this.parent.mode === 'userns') return this.parent.launchUserns(place, command, env);
    // Nothing runs with more rights than the rank: its environment is the process's.
    return { ...command, env: env({}) };
  }

  /** Kills every process of every rank cgroup matching `prefix` (all when empty) and removes the cgroups. */
  async killCgroups(prefix = ''): Promise<string[]> {
    if (!this.cgroups) return [];
    const names = this.cgroups.list().filter((n) => n.startsWith(prefix));
    const killed: string[] = [];
    for (const name of names) {
      const cg = this.cgroups.open(name);
      if (cg.pids().length > 0) killed.push(name);
      await cg.killAll();
      await cg.remove();
    }
    return killed;
  }

  /** Kills whatever of a job is still in a cgroup on this agent (ranks started while a stop was in flight). */
  killJob(account: string, jobId: string): Promise<string[]> {
    return this.killCgroups(jobCgroupPrefix(account, jobId));
  }

  /**
   * Removes a job's folder on this host (its rank folders, whatever the ranks wrote). A rank owns
   * what is in its folder, and another job of its account may run here meanwhile as the same uid, so
   * a removal as root must not follow a link swapped in while it walks (Node's recursive rm walks by
   * path). As root it is GNU `rm -rf --one-file-system`, which walks by descriptor and never follows
   * a link, run through the rank spawner (no fork of this process); otherwise ranks run as this user
   * and there is nothing more to guard.
   */
  async removeFolder(dir: string): Promise<void> {
    if (this.parent.mode !== 'isolated') {
      await rm(dir, { recursive: true, force: true });
      return;
    }
    const r = await runToEnd(this.spawner, { file: 'rm', args: ['-rf', '--one-file-system', '--', dir], cwd: '/', env: { ...LAUNCHER_ENV }, detached: false });
    if (r.code !== 0) throw new Error(`rm -rf ${dir} ended with ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  }

  /** The job's shared-memory folder goes when its last rank on this host has. */
  releaseJob(account: string, jobId: string): void {
    if (this.shmRoot) rmSync(join(this.shmRoot, `${account}.${jobId}`), { recursive: true, force: true });
  }
}

/** The rank isolation of this process's agents, said in the log: isolated, or plainly not. */
export async function startIsolation(config: Config, logger: Logger): Promise<RankIsolation> {
  const isolation = RankIsolation.create({
    dataDir: config.dataDir,
    workspaceDir: config.workspaceDir,
    setting: config.RANK_ISOLATION,
    uidRange: { base: config.RANK_UID_BASE, count: config.RANK_UID_COUNT },
    memoryLimit: config.rankMemoryLimit,
    pidsMax: config.RANK_PIDS_MAX,
    keysFile: config.API_KEYS_FILE,
    endpoints: await controlPlaneEndpoints({
      embeddedTemporal: config.embeddedTemporal,
      temporalAddress: config.temporalAddress,
      temporalPort: config.TEMPORAL_PORT,
      temporalUiPort: config.TEMPORAL_UI_PORT,
      apiPort: config.PORT,
      apiUrl: config.BATCHD_API_URL,
    }),
    logger,
  });
  if (isolation.mode === 'isolated') logger.info({ isolation: isolation.mode }, isolation.summary);
  else logger.warn({ isolation: isolation.mode }, isolation.summary);
  for (const w of isolation.warnings) logger.warn({ isolation: isolation.mode }, w);
  return isolation;
}
