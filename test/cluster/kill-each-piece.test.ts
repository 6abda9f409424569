/**
 * Kill every piece: on the cluster of `npm run cluster` (PostgreSQL, Temporal's four services as
 * processes, two API replicas, two control workers, three real hosts in network namespaces), with 40
 * jobs of mixed size (1, 2, 4 ranks) and executor (shell, python) in flight, each piece is killed with
 * SIGKILL and started again, one at a time: an API replica, a control worker, an agent, Temporal's
 * history service, PostgreSQL. After each:
 * - no job is lost (both replicas answer for every one of them);
 * - none is stuck (every job is final within 2 minutes of the restart);
 * - no rank ran twice (each rank creates a lock file with O_EXCL; a second start leaves a `.twice` mark);
 * - every process of the cluster runs (one that died is reported first, with the end of its log);
 * - no process is left behind (every process of the cluster descends from one it started);
 * - every host is ready and the pool at full capacity;
 * - every completed job's logs are complete, read from each replica;
 * - requests sent to both replicas throughout got a correct answer or a 503 in the contract's shape
 *   (a killed replica may refuse connections only while it is down).
 * After the agent's kill, the jobs that had ranks on its host still at work (a rank marks `.done` as it
 * finishes) end FAILED naming the host.
 *
 * Needs root, iproute2, Debian's postgresql and Go (or a cached Temporal server build:
 * scripts/ensure-temporal-server.sh); bounded: each kill has its own timeout, and the cluster is taken
 * down (every process, namespace and file) whatever happens.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alive, type ClusterState, down, leftovers, logTail, poolUsage, readSecrets, readState, signalProcess, startOne, up } from '../../scripts/cluster/cluster';
import { type ClusterOptions, bridgeAddress, layoutOf, POOL_ID, portsOf, processesOf } from '../../scripts/cluster/plan';

const DIR = '/tmp/batchd-cluster-suite';
const options: ClusterOptions = { dir: DIR, portBase: 20_000 + (process.pid % 120) * 100, net: 100 + (process.pid % 150), hosts: 3, slotsPerHost: 4 };
const JOBS = 40;
const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED'];
const A = '/v1/accounts/default';
const say = (line: string) => process.stderr.write(`[cluster] ${line}\n`);

let state: ClusterState;
let key = '';
let apis: string[] = [];

// ---------------------------------------------------------------------------------------------
// HTTP

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function call(api: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const r = await fetch(`${api}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await r.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { raw: text };
  }
  return { status: r.status, body: parsed };
}

/** The contract's error shape: {code: number, message: string, details: []}. */
function isContract503(a: Answer): boolean {
  return a.status === 503 && a.body.code === 14 && typeof a.body.message === 'string' && Array.isArray(a.body.details);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (${last})` : ''}`);
    await sleep(500);
  }
}

// ---------------------------------------------------------------------------------------------
// Jobs

/**
 * What every rank runs: take the rank's lock with O_EXCL (a second start marks .twice), writing into it
 * its working folder (which lies in its agent's DATA_DIR, so it says the host), sleep, mark .done, say done.
 */
const RANK_PY = String.raw`
import os, sys, time
locks = os.environ["LOCKS"]
name = "%s-a%s-r%s" % (os.environ["BATCH_JOB_ID"], os.environ["BATCH_JOB_ATTEMPT"], os.environ["RANK"])
try:
    fd = os.open(os.path.join(locks, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, os.getcwd().encode())
    os.close(fd)
except FileExistsError:
    open(os.path.join(locks, name + ".twice"), "a").close()
    sys.exit(3)
time.sleep(float(os.environ["SLEEP"]))
open(os.path.join(locks, name + ".done"), "a").close()
print("done %s rank %s" % (os.environ["BATCH_JOB_ID"], os.environ["RANK"]), flush=True)
`;
const RANK_SH =
  'set -C; n="$LOCKS/$BATCH_JOB_ID-a$BATCH_JOB_ATTEMPT-r$RANK"; if ! pwd > "$n"; then : >> "$n.twice"; exit 3; fi; sleep "$SLEEP"; : > "$n.done"; echo "done $BATCH_JOB_ID rank $RANK"';

interface Job {
  id: string;
  ranks: number;
}

function jobsFor(scenario: string): Job[] {
  return Array.from({ length: JOBS }, (_, i) => ({ id: `${scenario}-${String(i).padStart(2, '0')}`, ranks: [1, 2, 4][i % 3] as number }));
}

async function submit(jobs: Job[]): Promise<void> {
  const locks = join(layoutOf(options).workspace, 'locks');
  await Promise.all(
    jobs.map(async (job, i) => {
      const executor = i % 2 === 0 ? { shellExecutor: { command: RANK_SH } } : { pythonExecutor: { targetType: 'FILENAME', target: 'rank.py' } };
      const body = { nodePoolId: POOL_ID, numRanks: job.ranks, envVars: { LOCKS: locks, SLEEP: String(2 + (i % 5)) }, ...executor };
      // Half through each replica.
      const r = await call(apis[i % 2] as string, 'POST', `${A}/batchJobs?batchJobId=${job.id}`, body);
      assert.equal(r.status, 200, `create ${job.id}: ${JSON.stringify(r.body)}`);
    }),
  );
}

async function jobState(api: string, id: string): Promise<{ state: string; status: string } | undefined> {
  const r = await call(api, 'GET', `${A}/batchJobs/${id}`);
  return r.status === 200 ? (r.body as { state: string; status: string }) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Requests to both replicas throughout

class Prober {
  private running = true;
  readonly violations: string[] = [];
  count = 0;
  /** Replicas that may refuse connections now (their process was killed and is not back yet). */
  readonly down = new Set<string>();
  private loop?: Promise<void>;

  start(jobs: Job[]): void {
    this.loop = (async () => {
      let i = 0;
      while (this.running) {
        const api = apis[i % 2] as string;
        const job = jobs[i % jobs.length] as Job;
        i++;
        const list = i % 5 === 0;
        try {
          const a = await call(api, 'GET', list ? `${A}/batchJobs?pageSize=5` : `${A}/batchJobs/${job.id}`);
          this.count++;
          const correct = list ? a.status === 200 && Array.isArray(a.body.batchJobs) : a.status === 200 && a.body.name === `accounts/default/batchJobs/${job.id}`;
          if (!correct && !isContract503(a)) this.violations.push(`${api} ${list ? 'list' : job.id}: ${a.status} ${JSON.stringify(a.body).slice(0, 200)}`);
        } catch (err) {
          if (!this.down.has(api)) this.violations.push(`${api}: ${(err as Error).message}`);
        }
        await sleep(100);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

function ppidOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** Processes of the cluster that descend from none it started (orphans of a killed process). */
function strays(): string[] {
  const current = readState(DIR) as ClusterState;
  const roots = new Set(Object.values(current.processes).map((p) => p.pid));
  const out: string[] = [];
  for (const pid of leftovers(options)) {
    let p: number | undefined = pid;
    for (let depth = 0; p !== undefined && p > 1 && depth < 64; depth++) {
      if (roots.has(p)) break;
      p = ppidOf(p);
    }
    if (p === undefined || p <= 1) {
      let cmd = '';
      try {
        cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').slice(0, 120);
      } catch {
        continue; // gone meanwhile
      }
      out.push(`${pid}: ${cmd}`);
    }
  }
  return out;
}

/** The marks ranks left in the lock directory that end in `suffix` (`.twice`, `.done`). */
function rankMarks(suffix: string): string[] {
  return readdirSync(join(layoutOf(options).workspace, 'locks')).filter((f) => f.endsWith(suffix));
}

/** Jobs with a rank that started (took its lock) on the host of agent `agent`: its lock names a folder in that agent's DATA_DIR. */
function startedOn(agent: string, jobs: Job[]): Set<string> {
  const dir = join(layoutOf(options).workspace, 'locks');
  const started = new Set<string>();
  for (const job of jobs) {
    for (let r = 0; r < job.ranks; r++) {
      let where = '';
      try {
        where = readFileSync(join(dir, `${job.id}-a1-r${r}`), 'utf8');
      } catch {
        continue; // not started
      }
      if (where.includes(`/${agent}/`)) started.add(job.id);
    }
  }
  return started;
}

/** Jobs each of whose ranks has finished its work (its .done mark), whatever became of the report. */
function finishedJobs(jobs: Job[]): Set<string> {
  const marks = new Set(rankMarks('.done'));
  return new Set(jobs.filter((j) => Array.from({ length: j.ranks }, (_, r) => `${j.id}-a1-r${r}.done`).every((m) => marks.has(m))).map((j) => j.id));
}

async function logsOf(api: string, id: string): Promise<string[]> {
  const lines: string[] = [];
  let token = '';
  for (let page = 0; page < 20; page++) {
    const r = await call(api, 'GET', `${A}/batchJobs/${id}:getLogs?startFromHead=true${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`);
    if (r.status !== 200) throw new Error(`${api} :getLogs ${id}: ${r.status}`);
    for (const e of (r.body.entries as Array<{ message: string }>) ?? []) lines.push(e.message);
    token = typeof r.body.nextPageToken === 'string' ? r.body.nextPageToken : '';
    if (!token) break;
  }
  return lines;
}

/** Every check after a kill and restart; returns the problems found (all of them, not the first). */
async function settle(jobs: Job[], restartedAt: number, prober: Prober): Promise<{ problems: string[]; states: Map<string, { state: string; status: string }> }> {
  const problems: string[] = [];
  const states = new Map<string, { state: string; status: string }>();
  // Every other answer below depends on the cluster's processes: one that died is named first, with why.
  const died = (): string[] => Object.entries((readState(DIR) as ClusterState).processes).filter(([, p]) => !alive(p.pid)).map(([name]) => name);
  const deadAtRestart = died();
  // None lost, none stuck: final within 2 minutes of the restart, seen through either replica.
  const deadline = restartedAt + 120_000;
  for (const job of jobs) {
    for (;;) {
      const s = await jobState(apis[states.size % 2] as string, job.id).catch(() => undefined);
      if (s && FINAL.includes(s.state)) {
        states.set(job.id, s);
        break;
      }
      if (Date.now() > deadline) {
        problems.push(`${job.id} is not final 2 minutes after the restart: ${s ? `${s.state} (${s.status})` : 'no answer'}`);
        break;
      }
      await sleep(500);
    }
  }
  for (const api of apis) {
    for (const job of jobs) {
      const s = await jobState(api, job.id).catch(() => undefined);
      if (!s) problems.push(`${api} does not know ${job.id}: lost`);
    }
  }
  const twice = rankMarks('.twice');
  if (twice.length > 0) problems.push(`ranks started twice: ${twice.join(', ')}`);
  // Every host ready, the pool at full capacity.
  const full = options.hosts * options.slotsPerHost;
  try {
    await until('every host ready and the pool at full capacity', 90_000, async () => {
      const u = await poolUsage(options);
      return u.rankCapacity === full && u.hosts.length === options.hosts && u.hosts.every((h) => h.status === 'ready') ? u : undefined;
    });
  } catch (err) {
    const u = await poolUsage(options).catch(() => undefined);
    problems.push(`${(err as Error).message}; now: ${JSON.stringify(u?.hosts.map((h) => `${h.host}:${h.status}`))} capacity ${u?.rankCapacity}`);
  }
  // Logs complete for every completed job, from both replicas (agents may still be delivering a spool).
  for (const job of jobs.filter((j) => states.get(j.id)?.state === 'COMPLETED')) {
    for (const api of apis) {
      const want = Array.from({ length: job.ranks }, (_, r) => `done ${job.id} rank ${r}`);
      try {
        await until(`${job.id}'s logs from ${api}`, 30_000, async () => {
          const lines = await logsOf(api, job.id);
          return want.every((w) => lines.includes(w)) ? true : undefined;
        });
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
  }
  // No process left behind (orphans are reaped within seconds, or never).
  let stray: string[] = [];
  for (let i = 0; i < 20; i++) {
    stray = strays();
    if (stray.length === 0) break;
    await sleep(500);
  }
  if (stray.length > 0) problems.push(`processes left behind: ${stray.join('; ')}`);
  for (const name of new Set([...deadAtRestart, ...died()])) problems.unshift(`${name} is not running; the end of its log:\n${logTail(options, name, 1500)}`);
  if (prober.count === 0) problems.push('no request reached the replicas');
  problems.push(...prober.violations.slice(0, 20).map((v) => `bad answer: ${v}`));
  return { problems, states };
}

/**
 * One scenario: 40 jobs in flight, kill `name`, wait `downMs`, start it again, check everything.
 * `onKilledHost`: the jobs with a rank at work on the killed process's host at the kill: started there,
 * and not all finished. (A job the pool had placed there whose rank had not started yet may run there
 * once the agent is back, or elsewhere: its work was not under way, so nothing of it was lost.)
 */
async function killAndRestart(scenario: string, name: string, downMs: number): Promise<{ problems: string[]; states: Map<string, { state: string; status: string }>; onKilledHost: Set<string> }> {
  const jobs = jobsFor(scenario);
  await submit(jobs);
  const prober = new Prober();
  prober.start(jobs);
  try {
    // In flight: most slots busy.
    await until('jobs to be running', 60_000, async () => ((await poolUsage(options)).ranksInUse >= 8 ? true : undefined));
    const onKilledHost = new Set<string>();
    const killed = processesOf(options, readSecrets(options)).find((p) => p.name === name);
    if (killed?.host) {
      // Killed while a job is at work there: a job whose ranks all finished may still be listed (its release on the way).
      const host = killed.host.id;
      const listed = await until(`a job at work on ${host}`, 60_000, async () => {
        const on = new Set((await poolUsage(options)).hosts.find((h) => h.host === host)?.slotJobs.filter((j): j is string => !!j) ?? []);
        const finished = finishedJobs(jobs);
        const started = startedOn(name, jobs);
        return [...on].some((j) => started.has(j) && !finished.has(j)) ? on : undefined;
      });
      for (const j of listed) onKilledHost.add(j);
    }
    const api = killed?.kind === 'api' ? `http://${bridgeAddress(options)}:${killed.port}` : undefined;
    if (api) prober.down.add(api);
    const pid = signalProcess(state, name, 'SIGKILL');
    say(`${scenario}: SIGKILL ${name} (pid ${pid}); ${onKilledHost.size ? `jobs on its host: ${[...onKilledHost].join(' ')}` : ''}`);
    await until(`${name} to die`, 10_000, () => Promise.resolve(alive(pid) ? undefined : true));
    // The usage read above may still list a job whose ranks had all finished (its release on the way):
    // such a job may end COMPLETED. Any other job on the killed host cannot have been reported whole.
    const finishedAtKill = finishedJobs(jobs);
    const startedAtKill = killed?.host ? startedOn(name, jobs) : new Set<string>();
    await sleep(downMs);
    await startOne(state, name, say, 180_000);
    const restartedAt = Date.now();
    if (api) prober.down.delete(api);
    say(`${scenario}: ${name} is back`);
    const result = await settle(jobs, restartedAt, prober);
    return { ...result, onKilledHost: new Set([...onKilledHost].filter((id) => startedAtKill.has(id) && !finishedAtKill.has(id))) };
  } finally {
    await prober.stop();
  }
}

function report(scenario: string, problems: string[], states: Map<string, { state: string; status: string }>): void {
  const counts: Record<string, number> = {};
  for (const s of states.values()) counts[s.state] = (counts[s.state] ?? 0) + 1;
  say(`${scenario}: ${JSON.stringify(counts)}; ${problems.length} problem(s)`);
  assert.deepEqual(problems, [], `${scenario}:\n${problems.join('\n')}`);
}

// ---------------------------------------------------------------------------------------------

/** Whatever ends this process, the cluster's processes go with it. */
function killEverythingNow(): void {
  const s = readState(DIR);
  for (const p of Object.values(s?.processes ?? {})) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const pid of leftovers(options)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

describe('cluster: kill every piece with 40 jobs in flight', { timeout: 15 * 60_000 }, () => {
  before(async () => {
    if (process.getuid?.() !== 0) throw new Error('the cluster suite needs root (network namespaces, PostgreSQL as the postgres user); CI runs as root');
    // A previous run that was killed outright may have left its cluster: take it down first.
    const stale = readState(DIR);
    if (stale) await down(DIR, say, { purge: true });
    spawnSync('rm', ['-rf', DIR]);
    process.once('exit', killEverythingNow);
    // The runner ends a file that outlives its timeout with a signal, which skips after() and 'exit'.
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        killEverythingNow();
        process.exit(1);
      });
    }
    state = await up(options, say);
    key = readSecrets(options).bootstrapApiKey;
    apis = portsOf(options).api.map((p) => `http://${bridgeAddress(options)}:${p}`);
    writeFileSync(join(layoutOf(options).workspace, 'rank.py'), RANK_PY, { mode: 0o644 });
    assert.ok(existsSync(join(layoutOf(options).workspace, 'locks')));
  });

  after(async () => {
    if (readState(DIR)) await down(DIR, say, { purge: true });
    process.removeListener('exit', killEverythingNow);
  });

  it('an API replica', { timeout: 5 * 60_000 }, async () => {
    const r = await killAndRestart('api', 'batchd-api-1', 3000);
    report('api', r.problems, r.states);
  });

  it('a control worker', { timeout: 5 * 60_000 }, async () => {
    const r = await killAndRestart('worker', 'batchd-worker-1', 3000);
    report('worker', r.problems, r.states);
  });

  it('an agent: its host’s ranks end FAILED naming the host, and its capacity returns', { timeout: 5 * 60_000 }, async () => {
    // Down past the heartbeat timeout (HOST_HEARTBEAT_TIMEOUT_MS, 20 s), so the host is declared lost.
    const r = await killAndRestart('agent', 'agent-host-2', 25_000);
    for (const id of r.onKilledHost) {
      const s = r.states.get(id);
      if (s?.state !== 'FAILED' || !s.status.includes('host-2')) r.problems.push(`${id} ran on host-2 but ended ${s?.state} (${s?.status})`);
    }
    if (r.onKilledHost.size === 0) r.problems.push('no job had ranks on host-2 when it was killed: the scenario proved nothing');
    report('agent', r.problems, r.states);
  });

  it("Temporal's history service", { timeout: 5 * 60_000 }, async () => {
    const r = await killAndRestart('history', 'temporal-history', 5000);
    report('history', r.problems, r.states);
  });

  it('PostgreSQL', { timeout: 5 * 60_000 }, async () => {
    const r = await killAndRestart('postgres', 'postgres', 5000);
    report('postgres', r.problems, r.states);
  });
});
