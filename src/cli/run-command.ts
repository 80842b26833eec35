import { getJob, loadConfig } from "../config/load.js";
import { resolveBound } from "../config/bounds.js";
import type { BookmarkMode, TrancheConfig } from "../config/schema.js";
import { ConcurrentRunsExceededError, ConfigError, DeadLetteredError, RunFailedError, RunLostError } from "../errors.js";
import { startRun } from "../run/start-run.js";
import { stepContext } from "../run/step-context.js";
import { log } from "../log.js";
import { startMetricsServer } from "../metrics/server.js";
import { initJobMetrics } from "../metrics/registry.js";
import { FilePool } from "../pool/file-pool.js";
import { BatchWorker } from "../queue/batch-worker.js";
import { preflight } from "../run/preflight.js";
import { drainGoesOn } from "../run/drain.js";
import { runOnce } from "../run/runner.js";

export { drainGoesOn } from "../run/drain.js";
import type { RunSummary } from "../run/summary.js";
import { openConnections } from "./connect.js";
import { ProgressReporter } from "./progress.js";
import { runLine } from "./render.js";

export interface RunCommandOptions {
  config?: string;
  drain?: boolean;
  boundedFiles?: string;
  boundedSize?: string;
  json?: boolean;
  bookmark?: BookmarkMode;
  /** With --bookmark pause: replay what arrived after run `from` up to run `to`. */
  from?: string;
  to?: string;
  threads?: number;
  metricsPort?: number;
  /** Stop draining after this many runs (safety valve). */
  maxRuns?: number;
  /** Enqueue the run, print its id and return (workers execute it). */
  detach?: boolean;
}

/** Exit 6 (E_DEAD_LETTERED) when any of the runs set files aside. */
export function assertNoDeadLetters(job: string, summaries: readonly RunSummary[]): void {
  const dead = summaries.flatMap((s) => s.deadLetteredKeys);
  if (dead.length) throw new DeadLetteredError(job, dead.length, dead);
}

/**
 * `tranche run <job>`: checks the job (preflight), then one bounded run (or, with --drain, runs
 * until nothing is left), with the scheduler and a worker pool in this process. Returns the
 * summaries (see {@link assertNoDeadLetters}); throws the error of a failed or lost run.
 */
export async function runCommand(jobName: string, opts: RunCommandOptions, cfgIn?: TrancheConfig): Promise<RunSummary[]> {
  const cfg = cfgIn ?? loadConfig(opts.config);
  const job = getJob(cfg, jobName);
  if (opts.boundedFiles !== undefined && opts.boundedSize !== undefined) {
    throw new ConfigError("--bounded-files and --bounded-size are both given; only one bound is supported");
  }
  const override =
    opts.boundedFiles !== undefined || opts.boundedSize !== undefined
      ? { boundedFiles: opts.boundedFiles, boundedSize: opts.boundedSize }
      : undefined;
  resolveBound({ override, job: job.source }); // bad bounds fail here, before anything is read
  if (opts.detach) return detach(cfg, jobName, { override, mode: opts.bookmark, from: opts.from, to: opts.to, json: opts.json });
  const threads = opts.threads ?? job.worker.threads;
  const pool = new FilePool({
    threads,
    maxOldGenerationSizeMb: job.worker.maxOldGenerationSizeMb,
    nativeMemoryMb: job.worker.nativeMemoryMb,
    filesPerThread: job.worker.filesPerThread,
  });
  // The metrics port, then the job, are checked before Redis is touched: a refused configuration
  // writes nothing anywhere.
  let conn: Awaited<ReturnType<typeof openConnections>>;
  let metrics: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  try {
    metrics = opts.metricsPort ? await startMetricsServer(opts.metricsPort) : undefined;
    await preflight({ cfg, job: jobName, pool, log });
    conn = await openConnections(cfg);
  } catch (err) {
    await pool.close();
    await metrics?.close();
    throw err;
  }
  let worker = undefined as BatchWorker | undefined;
  const summaries: RunSummary[] = [];
  // SIGTERM/SIGINT: finish the current (bounded) run, start no other. A second signal exits at
  // once; the run's batches stay queued and leased, and any worker or the next run takes them.
  let stop = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stop) {
      log.warn("second signal: exiting now; unfinished batches stay on the queue", { signal: sig });
      process.exit(130);
    }
    stop = true;
    log.warn("stopping after the current run (signal again to exit now)", { signal: sig });
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    initJobMetrics(jobName);
    // The in-process worker starts once this process has a run to work on (a refused run works on nothing).
    const startWorker = async () => {
      if (worker) return;
      worker = new BatchWorker({
        redis: conn.redis,
        connection: conn.bull,
        cfg,
        jobs: [jobName],
        pool,
        // Enough batches in flight that the threads never wait for the next one.
        concurrency: Math.max(job.worker.concurrency, 2 * threads),
        log,
      });
      await worker.start();
    };
    const maxRuns = opts.maxRuns ?? (opts.drain ? Number.MAX_SAFE_INTEGER : 1);
    for (let i = 0; i < maxRuns && !stop; i++) {
      const progress = new ProgressReporter(`[${jobName}] run ${i + 1}`);
      let s: RunSummary;
      try {
        s = await runOnce({
          cfg,
          job: jobName,
          redis: conn.redis,
          bullConnection: conn.bull,
          log,
          override,
          mode: opts.bookmark,
          from: opts.from,
          to: opts.to,
          onProgress: (p) => progress.update(p),
          attach: true,
          trigger: opts.drain ? (i === 0 ? "manual" : "drain") : "manual",
          onStarted: async (runId, attached) => {
            if (attached) process.stderr.write(`[${jobName}] the job is busy with run ${runId}, whose starter is gone: attached to it\n`);
            else log.debug("run enqueued", { runId });
            await startWorker();
          },
        });
      } catch (err) {
        if (err instanceof RunLostError) process.stdout.write(opts.json ? "" : `${err.message}\n`);
        throw err;
      } finally {
        progress.done();
      }
      summaries.push(s);
      process.stdout.write(opts.json ? JSON.stringify(s) + "\n" : runLine(s));
      if (s.status === "stopped" || s.status === "timeout") {
        throw new RunFailedError(
          `run ${s.runId} of job "${jobName}" ended ${s.state}${s.status === "timeout" ? ` after its timeout (${job.timeout} minutes)` : ""}; its files that did not commit go to the next run`,
        );
      }
      if (s.status === "failed") {
        const goesOn = opts.drain && drainGoesOn(s, job.bookmark.deadLetterAfterRuns);
        if (!goesOn) {
          const why = s.jobFailure
            ? `a job error (not a file's): ${s.jobFailure}`
            : `${s.fileFailures} file(s) failed${job.bookmark.deadLetterAfterRuns === 0 ? " and bookmark.deadLetterAfterRuns is 0, so they are retried by every run" : `; the next run retries them (a file failing in ${job.bookmark.deadLetterAfterRuns} runs is set aside as a dead letter: tranche dead-letters list ${jobName})`}; first error: ${s.errors[0] ?? "unknown"}`;
          throw new RunFailedError(`run ${s.runId} of job "${jobName}" failed: ${why}`);
        }
        log.warn("run failed on file errors that later runs retry and dead-letter; draining goes on", {
          runId: s.runId,
          fileFailures: s.fileFailures,
        });
        continue;
      }
      if (!opts.drain || !drainGoesOn(s, job.bookmark.deadLetterAfterRuns)) break;
    }
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    await worker?.close();
    await pool.close();
    await metrics?.close();
    await conn.close();
  }
  return summaries;
}

/** `run --detach`: enqueues the run (as the job's whenBusy says), prints its id, returns at once. */
async function detach(
  cfg: TrancheConfig,
  jobName: string,
  o: { override?: { boundedFiles?: string; boundedSize?: string }; mode?: BookmarkMode; from?: string; to?: string; json?: boolean },
): Promise<RunSummary[]> {
  const conn = await openConnections(cfg);
  const ctx = stepContext({ redis: conn.redis, bull: conn.bull, cfg, log });
  try {
    const r = await startRun(ctx, { job: jobName, trigger: "manual", override: o.override, mode: o.mode, from: o.from, to: o.to });
    if (!r.started) throw new ConcurrentRunsExceededError(jobName, cfg.jobs[jobName]!.maxConcurrentRuns, r.running);
    process.stdout.write(o.json ? JSON.stringify({ runId: r.runId, state: r.state }) + "\n" : `${r.runId}\n`);
    return [];
  } finally {
    await ctx.queues.close();
    await conn.close();
  }
}
