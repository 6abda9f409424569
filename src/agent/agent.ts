/**
 * A node agent: the Temporal worker of one host, on that host's own task queue. It runs the ranks the
 * job workflows send it (one heartbeating activity per host per job), stops them on request, and on
 * start kills whatever its previous life left running before it joins its pool and takes work. How
 * isolated its ranks are is the process's RankIsolation's business (src/agent/isolation.ts).
 *
 * A job that is retried runs again as a new attempt, perhaps on the same host: what the agent keeps
 * per job (its ranks running, the stops it remembers, its pid files) is kept per attempt (runKey), so a
 * stop of attempt 1 never refuses or stops attempt 2.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Context, ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { type Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ConfigError } from '../config';
import { type NativeConnection, Worker } from '@temporalio/worker';
import { type Logger } from 'pino';
import { type AgentActivities, type HostOutcome, type HostProbeAnswer, type HostRunInput } from '../../activities/contracts';
import { checkJobsSignal, joinHostUpdate, ranksStartedSignal } from '../../workflows/messages';
import { rankFailureMessage, type RankUsageReport, rankUsageLine } from '../domain/isolation';
import { hostShareOfBudget } from '../domain/log-limits';
import { attemptOf, jobOfRunKey, runKey } from '../domain/log-query';
import { parseResourceName } from '../domain/names';
import { type AgentLogs, type LogSink, LogWriter, sinkOfHost } from '../store/log-store';
import { type AgentIsolation, type RankIsolation } from './isolation';
import { hostCapabilities } from './capabilities';
import { recordRankUsage } from './usage-metrics';
import { PidFiles } from './pid-files';
import { killByEnv, sleep } from './processes';
import { AGENT_MARKER, RANK_MARKER, RankProcess, rankWorkDir } from './rank-process';

export interface AgentOptions {
  connection: NativeConnection;
  client: Client;
  namespace: string;
  poolName: string;
  host: string;
  address: string;
  slots: number;
  dataDir: string;
  workspaceDir: string;
  logs: AgentLogs;
  /** LOG_BUDGET_BYTES_PER_JOB: this host stores its ranks' share of it (ranks here ÷ the job's ranks). */
  logBudgetBytes: number;
  logger: Logger;
  /** Largest stop grace a job may ask for; bounds how long shutdown waits. */
  maxStopGraceMs: number;
  /** HOST_HEARTBEAT_TIMEOUT_MS: the job workflows' heartbeat timeout for this host's activities. */
  heartbeatTimeoutMs: number;
  /** The process's rank isolation, shared by its agents. */
  isolation: RankIsolation;
  /** Whether the Temporal server answers (src/temporal/monitor.ts): ranks' outcomes wait while it does not. */
  temporal?: TemporalWatch;
}

/** What an agent needs of the process's TemporalMonitor. */
export interface TemporalWatch {
  /** The problem known now. */
  problem(): string | undefined;
  /** The problem as a probe finds it now. */
  check(): Promise<string | undefined>;
}

interface ActiveRank {
  rank: number;
  process: RankProcess;
}

interface ActiveJob {
  ranks: ActiveRank[];
  stopRequested: boolean;
  onStop?: () => void;
}

/** How long a stopped attempt of a job is remembered, so a late runRanks for it refuses to start. */
const STOPPED_MEMORY_MS = 6 * 60 * 60 * 1000;

export class HostAgent {
  readonly agentKey: string;
  private worker: Worker | undefined;
  private running: Promise<void> | undefined;
  /** Running attempts, by runKey. */
  private readonly active = new Map<string, ActiveJob>();
  /** Attempts stopped on request (by runKey), and when. */
  private readonly stopped = new Map<string, number>();
  private readonly pidFiles: PidFiles;
  private readonly log: Logger;
  private readonly iso: AgentIsolation;
  private readonly logSink: LogSink;

  constructor(private readonly o: AgentOptions) {
    this.logSink = sinkOfHost(o.logs, o.host);
    // Unique per service instance (its DATA_DIR), so agents of another instance on this machine —
    // a second deployment, a test suite — never mistake this one's ranks for their leftovers.
    this.agentKey = `${o.poolName}/${o.host}@${createHash('sha256').update(resolve(o.dataDir)).digest('hex').slice(0, 12)}`;
    this.pidFiles = new PidFiles(o.dataDir, this.agentKey);
    this.log = o.logger.child({ pool: o.poolName, host: o.host });
    this.iso = o.isolation.forAgent(this.agentKey, o.slots);
  }

  /** Cleans up the previous life, joins the pool, and starts polling. Resolves once polling has begun. */
  async start(): Promise<void> {
    const leftovers = this.pidFiles.killLeftovers();
    // Isolated ranks are found by their cgroups, which no process can leave; others by their marker.
    const swept = this.iso.cgroups ? (await this.iso.killCgroups()).length : killByEnv({ [AGENT_MARKER]: (v) => v === this.agentKey });
    if (leftovers.length > 0 || swept > 0) {
      this.log.warn({ ranks: leftovers.map((r) => `${r.job}#${r.rank}`), processes: swept }, 'killed ranks left running by a previous agent');
    }
    const taskQueue = await this.join();
    this.worker = await Worker.create({
      connection: this.o.connection,
      namespace: this.o.namespace,
      taskQueue,
      activities: this.activities(),
      // Every job on this host holds one long activity, plus short stop requests beside it.
      maxConcurrentActivityTaskExecutions: 256,
      // Heartbeats are billed actions: send one every half heartbeat timeout (loss is still detected
      // at the timeout). Stops do not wait for a heartbeat: they arrive as a stopRanks activity.
      maxHeartbeatThrottleInterval: Math.max(1000, Math.floor(this.o.heartbeatTimeoutMs / 2)),
      // On shutdown, running ranks get their stop signal at once and the grace period to end.
      shutdownGraceTime: '1 second',
      shutdownForceTime: this.o.maxStopGraceMs + 5000,
    });
    this.running = this.worker.run();
    this.log.info({ taskQueue, slots: this.o.slots, address: this.o.address, isolation: this.iso.mode, rankMemoryLimit: this.iso.memoryLimit }, 'host agent polling');
  }

  /** Joins the pool; a refusal (wrong slots, pool full, pool being deleted) says why in one line. */
  private async join(): Promise<string> {
    const capabilities = await hostCapabilities();
    try {
      const answer = await this.o.client.workflow
        .getHandle(this.o.poolName)
        .executeUpdate(joinHostUpdate, {
          args: [{ host: this.o.host, slots: this.o.slots, address: this.o.address, ...capabilities, isolation: this.o.isolation.mode }],
        });
      return answer.taskQueue;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new ConfigError(`host ${this.o.host} cannot join ${this.o.poolName}: no such node pool`);
      if (err instanceof WorkflowUpdateFailedError) {
        throw new ConfigError(`host ${this.o.host} cannot join ${this.o.poolName}: ${err.cause instanceof Error ? err.cause.message : 'refused'}`);
      }
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (!this.worker) return;
    if (this.worker.getState() === 'RUNNING') this.worker.shutdown();
    await this.running?.catch((err: unknown) => this.log.error({ err }, 'agent worker ended with an error'));
    this.worker = undefined;
    await this.iso.cgroups?.close();
  }

  /** Jobs with ranks on this host right now. */
  get activeJobs(): number {
    return this.active.size;
  }

  /** The activities this agent's worker serves (tests run them in an activity environment). */
  activities(): AgentActivities {
    return {
      runRanks: (input) => this.runRanks(input),
      stopRanks: (input) => this.stopRanks(input.jobName, input.attempt, input.graceMs),
      probeHost: (input) => this.answerProbe(input.host),
      purgeRanks: (input) => this.purgeRanks(input),
    };
  }

  /** Removes a deleted job's rank folders on this host (its job workflow asks each host its ranks ran on). */
  private async purgeRanks(input: { jobName: string; account: string; jobId: string }): Promise<{ removed: boolean }> {
    const parsed = parseResourceName(input.jobName);
    if (!parsed || parsed.collection !== 'batchJobs' || parsed.account !== input.account || parsed.id !== input.jobId) {
      throw ApplicationFailure.nonRetryable(`purgeRanks: ${input.jobName} is not the job ${input.account}/${input.jobId}`, 'BadPurge');
    }
    if ([...this.active.keys()].some((k) => jobOfRunKey(k) === input.jobName)) {
      // Retried by the job's workflow: its ranks here are still being stopped.
      throw ApplicationFailure.retryable(`ranks of ${input.jobName} still run on host ${this.o.host}`, 'RanksStillRunning');
    }
    const dir = join(this.o.dataDir, 'work', parsed.account, parsed.id);
    const existed = existsSync(dir);
    await this.iso.removeFolder(dir);
    this.log.info({ job: input.jobName, dir, existed }, 'deleted job: its ranks\' folders removed from this host');
    return { removed: existed };
  }

  /**
   * The pool declared this host lost and asks whether its agent is back. The answer names the jobs
   * whose ranks still run here; the pool takes the host back once none of them is a job it no longer
   * places here (their ranks stop when their activity's next heartbeat finds it gone).
   */
  private answerProbe(host: string): Promise<HostProbeAnswer> {
    if (host !== this.o.host) return Promise.reject(ApplicationFailure.nonRetryable(`a probe for host ${host} reached the agent of host ${this.o.host}`, 'WrongHost'));
    // Job names, not run keys: the pool knows jobs, and a later attempt runs as the same job.
    const activeJobs = [...new Set([...this.active.keys()].map(jobOfRunKey))];
    this.log.info({ activeJobs }, 'the pool held this host unreachable and probed it; answered');
    return Promise.resolve({ host, activeJobs });
  }

  private wasStopped(key: string): boolean {
    const now = Date.now();
    for (const [k, at] of this.stopped) if (now - at > STOPPED_MEMORY_MS) this.stopped.delete(k);
    return this.stopped.has(key);
  }

  private async runRanks(input: HostRunInput): Promise<HostOutcome> {
    const ctx = Context.current();
    const attempt = attemptOf(input.attempt);
    const key = runKey(input.jobName, attempt);
    const log = this.log.child({ job: input.jobName, attempt });
    if (this.wasStopped(key)) return { outcome: 'stopped' };
    if (this.active.has(key)) {
      throw ApplicationFailure.nonRetryable(`the ranks of attempt ${attempt} of ${input.jobName} already run on host ${this.o.host}`, 'DuplicateRanks');
    }
    const job: ActiveJob = { ranks: [], stopRequested: false };
    this.active.set(key, job);
    const worldSize = Number(input.ranks[0]?.env.WORLD_SIZE ?? input.ranks.length);
    let toldLoss = false;
    const logs = new LogWriter(this.logSink, input.jobName, () => 0, {
      attempt,
      budgetBytes: hostShareOfBudget(this.o.logBudgetBytes, input.ranks.length, worldSize),
      // A log store that fails must not end the job: the lines are counted and the job's log says so at
      // its end. Said once here, not at every failed flush of a full disk.
      onError: (err, lines) => {
        if (toldLoss) return;
        toldLoss = true;
        log.warn({ err: String(err), lines }, 'could not store log lines; they are lost (counted, and said at the end of the job’s log)');
      },
    });
    const heartbeat = setInterval(() => ctx.heartbeat(), 1000);
    try {
      for (const r of input.ranks) {
        if (job.stopRequested) break;
        const workDir = rankWorkDir(this.o.dataDir, input.account, input.jobId, r.rank);
        const process = new RankProcess(
          {
            rank: r.rank,
            env: r.env,
            executor: input.executor,
            workDir,
            workspaceDir: this.o.workspaceDir,
            agentKey: this.agentKey,
            launch: (command, env) =>
              this.iso.launch(
                {
                  account: input.account,
                  jobId: input.jobId,
                  rank: r.rank,
                  workDir,
                  ...(input.rankMemoryLimitBytes !== undefined ? { memoryLimit: input.rankMemoryLimitBytes } : {}),
                },
                command,
                env,
              ),
            spawner: this.iso.spawner,
          },
          (line) => logs.write(r.rank, line.stream, line.line),
        );
        job.ranks.push({ rank: r.rank, process });
        // The spawner answers with the pid: a stop that arrives meanwhile finds the rank and waits for it.
        const pid = await process.started;
        if (pid !== undefined) this.pidFiles.record(key, r.rank, pid);
      }
      log.info({ ranks: job.ranks.map((r) => r.rank) }, 'ranks started');
      if (!job.stopRequested) void this.announceStarted(ctx, input, log);

      const outcome = await this.watch(job, input, ctx);
      if (outcome === 'cancelled') {
        await this.stopAll(job, input.stopGraceMs);
        const details = ctx.cancellationDetails;
        const why = details?.workerShutdown
          ? `the agent of host ${this.o.host} shut down`
          : details?.notFound
            ? 'the job’s workflow is gone (terminated)'
            : 'the job asked its ranks to stop';
        log.info({ why }, 'ranks stopped by cancellation');
        // A terminated job cannot release its capacity. The pool alone frees capacity: point it at the job.
        if (details?.notFound) await this.pointPoolAt(input.jobName, log);
        throw new CancelledFailure(why);
      }
      if (outcome.outcome === 'failed') await this.stopAll(job, input.stopGraceMs);
      log.info({ outcome: outcome.outcome }, 'ranks ended');
      await this.whileTemporalAway(ctx, log);
      return outcome;
    } finally {
      clearInterval(heartbeat);
      await logs.close();
      for (const r of job.ranks) this.pidFiles.forget(key, r.rank);
      this.iso.releaseJob(input.account, input.jobId);
      this.active.delete(key);
    }
  }

  /**
   * The SDK retries an activity's completion for about 10 s; one sent while the server is away longer
   * is lost, and the job would end FAILED for a lost host although its ranks ended. So the outcome
   * waits, heartbeating, until the server answers again: at most a heartbeat timeout (past it the
   * server has given up on this activity anyway), and not past a cancellation.
   */
  private async whileTemporalAway(ctx: Context, log: Logger): Promise<void> {
    const temporal = this.o.temporal;
    // Probed now: the server may have gone a moment ago, before the monitor's next round.
    const reason = await temporal?.check();
    if (!temporal || !reason) return;
    let cancelled = false;
    ctx.cancelled.catch(() => {
      cancelled = true;
    });
    log.warn({ reason }, 'the ranks ended while the Temporal server does not answer; their outcome waits for it');
    const deadline = Date.now() + this.o.heartbeatTimeoutMs;
    while (temporal.problem() && !cancelled && Date.now() < deadline) await sleep(250);
  }

  /** Resolves with the first failure, with success once every rank exited 0, or when a stop or cancel arrives. */
  private watch(job: ActiveJob, input: HostRunInput, ctx: Context): Promise<HostOutcome | 'cancelled'> {
    return new Promise((resolve) => {
      let remaining = job.ranks.length;
      const usage: RankUsageReport[] = [];
      if (job.stopRequested) return resolve({ outcome: 'stopped' });
      if (remaining === 0) return resolve({ outcome: 'succeeded' });
      job.onStop = () => resolve({ outcome: 'stopped' });
      ctx.cancelled.catch(() => resolve('cancelled'));
      for (const { rank, process } of job.ranks) {
        void process.exited.then(async (exit) => {
          await process.reapLeftovers();
          if (process.usage) {
            this.log.info({ job: input.jobName, rank, ...process.usage }, rankUsageLine(rank, process.usage) ?? 'rank ended');
            usage.push({ rank, ...(process.usage.cpuSeconds !== undefined ? { cpuSeconds: process.usage.cpuSeconds } : {}), ...(process.usage.peakMemoryBytes !== undefined ? { peakMemoryBytes: process.usage.peakMemoryBytes } : {}) });
            recordRankUsage(input.account, this.o.poolName.split('/').pop() ?? '', process.usage);
          }
          if (job.stopRequested) return;
          if (exit.code !== 0) {
            resolve({
              outcome: 'failed',
              rank,
              exitCode: exit.code,
              signal: exit.signal,
              ...((process.usage?.oomKills ?? 0) > 0 ? { outOfMemory: true } : {}),
              message: rankFailureMessage({
                rank,
                host: this.o.host,
                code: exit.code,
                signal: exit.signal,
                oomKills: process.usage?.oomKills ?? 0,
                memoryLimit: process.usage?.memoryLimit,
                lastOutput: process.lastOutput,
              }),
              ...(usage.length > 0 ? { usage } : {}),
            });
            return;
          }
          remaining -= 1;
          if (remaining === 0) resolve({ outcome: 'succeeded', ...(usage.length > 0 ? { usage } : {}) });
        });
      }
    });
  }

  private async stopAll(job: ActiveJob, graceMs: number): Promise<void> {
    await Promise.all(job.ranks.map((r) => r.process.stop(graceMs)));
  }

  private async stopRanks(jobName: string, attemptNumber: number | undefined, graceMs: number): Promise<{ stopped: number }> {
    const attempt = attemptOf(attemptNumber);
    const key = runKey(jobName, attempt);
    this.stopped.set(key, Date.now());
    const job = this.active.get(key);
    let stopped = 0;
    if (job) {
      job.stopRequested = true;
      stopped = job.ranks.filter((r) => !r.process.done).length;
      await this.stopAll(job, graceMs);
      job.onStop?.();
    }
    // Anything of this job that escaped on this host (a rank started while the stop was in flight). The
    // sweep finds ranks by job, not attempt: while another attempt of the job runs here, it is skipped.
    const otherAttempt = [...this.active.keys()].some((k) => k !== key && (k === jobName || k.startsWith(`${jobName}@`)));
    const parsed = parseResourceName(jobName);
    if (otherAttempt) this.log.warn({ job: jobName, attempt }, 'another attempt of the job runs on this host: the stop ended only its own attempt’s ranks, without a sweep');
    else if (this.iso.cgroups && parsed) stopped += (await this.iso.killJob(parsed.account, parsed.id)).length;
    else stopped += killByEnv({ [RANK_MARKER]: (v) => v.startsWith(`${jobName}#`), [AGENT_MARKER]: (v) => v === this.agentKey });
    this.log.info({ job: jobName, attempt, stopped }, 'ranks stopped on request');
    return { stopped };
  }

  private async pointPoolAt(jobName: string, log: Logger): Promise<void> {
    try {
      await this.o.client.workflow.getHandle(this.o.poolName).signal(checkJobsSignal, { jobNames: [jobName] });
      log.warn('the job’s workflow is gone (terminated); asked its pool to check it and free its capacity');
    } catch (err) {
      log.error({ err: String(err) }, 'could not tell the pool about a terminated job; it finds it when it next checks its holders');
    }
  }

  /** Tells the job workflow this host's ranks run; retried because the job waits on it to enter RUNNING. */
  private async announceStarted(ctx: Context, input: HostRunInput, log: Logger): Promise<void> {
    for (let attempt = 1; attempt <= 6; attempt++) {
      try {
        await ctx.client.workflow.getHandle(input.workflowId).signal(ranksStartedSignal, { host: input.host });
        return;
      } catch (err) {
        log.warn({ err, attempt }, 'could not tell the job its ranks started; retrying');
        await sleep(250 * 2 ** attempt);
      }
    }
  }
}
