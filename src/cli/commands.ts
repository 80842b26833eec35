import type { Redis, RedisOptions } from "ioredis";
import { getJob, loadConfig } from "../config/load.js";
import { resolveBound } from "../config/bounds.js";
import type { BookmarkMode, TrancheConfig } from "../config/schema.js";
import { ConfigError, RunFailedError } from "../errors.js";
import { log } from "../log.js";
import { startMetricsServer } from "../metrics/server.js";
import { initJobMetrics } from "../metrics/registry.js";
import { FilePool } from "../pool/file-pool.js";
import { BatchWorker } from "../queue/batch-worker.js";
import { connectRedis, redisOptions } from "../redis.js";
import { runOnce, type RunSummary } from "../run/runner.js";
import { backlog } from "../run/status.js";
import { BookmarkStore } from "../bookmark/store.js";
import { formatBytes, ProgressReporter } from "./progress.js";

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
}

function printRun(s: RunSummary, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(JSON.stringify(s) + "\n");
    return;
  }
  if (s.status === "empty") {
    process.stdout.write(`run ${s.runId}: nothing to do, no unprocessed files (${s.listed} listed)\n`);
    return;
  }
  process.stdout.write(
    `run ${s.runId}: ${s.status} — ${s.files} files, ${formatBytes(s.bytes)} in ${(s.durationMs / 1000).toFixed(1)}s; ` +
      `${s.remainingFiles} files (${formatBytes(s.remainingBytes)}) remain` +
      (s.badRecords ? `; ${s.badRecords} bad records skipped` : "") +
      (s.batchesFailed ? `; ${s.batchesFailed} batches failed: ${s.errors[0] ?? ""}` : "") +
      "\n",
  );
}

/** Opens the command connection (checked), plus BullMQ's connection options. */
async function connections(cfg: TrancheConfig): Promise<{ redis: Redis; bull: RedisOptions; close(): Promise<void> }> {
  const redis = await connectRedis(cfg.redis.url);
  return {
    redis,
    bull: redisOptions(cfg.redis.url),
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/**
 * `tranche run <job>`: one bounded run (or, with --drain, runs until nothing is left), with the
 * scheduler and a worker pool in this process. Returns the summaries.
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
  const conn = await connections(cfg);
  const pool = new FilePool({
    threads: opts.threads ?? job.worker.threads,
    maxOldGenerationSizeMb: job.worker.maxOldGenerationSizeMb,
    filesPerThread: job.worker.filesPerThread,
  });
  const worker = new BatchWorker({
    redis: conn.redis,
    connection: conn.bull,
    prefix: cfg.prefix,
    jobs: [jobName],
    pool,
    // Enough batches in flight that the threads never wait for the next one.
    concurrency: Math.max(job.worker.concurrency, 2 * (opts.threads ?? job.worker.threads)),
    log,
  });
  const metrics = opts.metricsPort ? await startMetricsServer(opts.metricsPort) : undefined;
  initJobMetrics(jobName);
  worker.start();
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
        });
      } finally {
        progress.done();
      }
      summaries.push(s);
      printRun(s, opts.json);
      if (s.status === "failed")
        throw new RunFailedError(
          `run ${s.runId} of job "${jobName}" failed: ${s.batchesFailed} of ${s.batches} batches failed; first error: ${s.errors[0] ?? "unknown"}`,
        );
      if (s.status === "empty" || s.remainingFiles === 0) break;
      if ((opts.bookmark ?? job.bookmark.mode) !== "enable") break; // without state updates a drain would never end
    }
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    await worker.close();
    await pool.close();
    await metrics?.close();
    await conn.close();
  }
  return summaries;
}

export interface WorkerCommandOptions {
  config?: string;
  job?: string[];
  threads?: number;
  maxOldGenerationSizeMb?: number;
  filesPerThread?: number;
  concurrency?: number;
  metricsPort?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

/** `tranche worker`: consumes batches until SIGTERM/SIGINT, then finishes the current ones and exits. */
export async function workerCommand(opts: WorkerCommandOptions): Promise<void> {
  const cfg = loadConfig(opts.config);
  const jobs = opts.job?.length ? opts.job : Object.keys(cfg.jobs);
  for (const j of jobs) getJob(cfg, j);
  if (jobs.length === 0) throw new ConfigError("no jobs configured: add one under `jobs:` or pass --job");
  const jobCfgs = jobs.map((j) => cfg.jobs[j]!);
  const threads = opts.threads ?? Math.max(...jobCfgs.map((j) => j.worker.threads));
  const heap = opts.maxOldGenerationSizeMb ?? Math.max(...jobCfgs.map((j) => j.worker.maxOldGenerationSizeMb));
  const conn = await connections(cfg);
  const pool = new FilePool({
    threads,
    maxOldGenerationSizeMb: heap,
    filesPerThread: opts.filesPerThread ?? Math.max(...jobCfgs.map((j) => j.worker.filesPerThread)),
  });
  const worker = new BatchWorker({
    redis: conn.redis,
    connection: conn.bull,
    prefix: cfg.prefix,
    jobs,
    pool,
    concurrency: opts.concurrency ?? Math.max(...jobCfgs.map((j) => j.worker.concurrency)),
    lockDurationMs: opts.lockDurationMs,
    stalledIntervalMs: opts.stalledIntervalMs,
    log,
  });
  let stopping = false;
  const port = opts.metricsPort ?? cfg.metrics.port;
  const metrics = port ? await startMetricsServer(port, () => !stopping && worker.running) : undefined;
  for (const j of jobs) initJobMetrics(j);
  worker.start();
  log.info("worker started", { jobs, threads, maxOldGenerationSizeMb: heap, metricsPort: metrics?.port, pid: process.pid });
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info("stopping: finishing current batches", { signal: sig });
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  await worker.close();
  await pool.close();
  await metrics?.close();
  await conn.close();
  log.info("worker stopped");
}

/** `tranche status [job]`: backlog, bookmark summary and last runs. */
export async function statusCommand(jobName: string | undefined, opts: { config?: string; json?: boolean }): Promise<void> {
  const cfg = loadConfig(opts.config);
  const names = jobName ? [jobName] : Object.keys(cfg.jobs);
  for (const n of names) getJob(cfg, n);
  const redis = await connectRedis(cfg.redis.url);
  try {
    const out = [];
    for (const name of names) {
      const store = new BookmarkStore(redis, cfg.prefix, name);
      const [b, bm, hist, live] = await Promise.all([
        backlog(cfg, name, store),
        store.summary(),
        redis.lrange(store.k.history, 0, 4),
        store.liveRuns(),
      ]);
      out.push({ job: name, backlog: b, bookmark: bm, runningRuns: live, lastRuns: hist.map((h) => JSON.parse(h) as RunSummary) });
    }
    if (opts.json) {
      process.stdout.write(JSON.stringify(jobName ? out[0] : out, null, 2) + "\n");
      return;
    }
    for (const s of out) {
      const age = s.backlog.oldestUnprocessed === null ? "-" : `${Math.round((Date.now() - s.backlog.oldestUnprocessed) / 1000)}s`;
      process.stdout.write(
        `job ${s.job}\n  backlog: ${s.backlog.files} files, ${formatBytes(s.backlog.bytes)}, oldest unprocessed ${age} old (${s.backlog.listed} listed)\n` +
          `  bookmark: version ${s.bookmark.version}, ${s.bookmark.partitions.length} partitions, ${s.bookmark.partitions.reduce((a, p) => a + p.files, 0)} files committed, last run ${s.bookmark.lastRunId ?? "-"}\n` +
          (s.runningRuns.length ? `  running: ${s.runningRuns.join(", ")}\n` : "") +
          `  last runs:\n` +
          (s.lastRuns.length
            ? s.lastRuns
                .map(
                  (r) =>
                    `    ${r.runId} ${r.status.padEnd(9)} ${r.files} files ${formatBytes(r.bytes)} ${(r.durationMs / 1000).toFixed(1)}s\n`,
                )
                .join("")
            : "    (none)\n"),
      );
    }
  } finally {
    await redis.quit();
  }
}

/**
 * `tranche bookmark show <job>`: the bookmark as Glue's JobBookmarkEntry (JobName, Version, Run,
 * Attempt, PreviousRunId, RunId, JobBookmark as a JSON string) plus tranche's per-partition detail.
 */
export async function bookmarkShowCommand(jobName: string, opts: { config?: string; json?: boolean }): Promise<void> {
  const cfg = loadConfig(opts.config);
  getJob(cfg, jobName);
  const redis = await connectRedis(cfg.redis.url);
  try {
    const store = new BookmarkStore(redis, cfg.prefix, jobName);
    const [sum, hist, dead] = await Promise.all([store.summary(), store.history(), store.deadLetters()]);
    const last = hist.find((h) => h.runId === sum.lastRunId);
    const state: Record<string, unknown> = {};
    for (const p of sum.partitions) state[p.partition] = { wm: p.wm, hwm: p.hwm, floor: p.floor, bandFiles: p.bandFiles, files: p.files };
    const entry = {
      JobName: jobName,
      Version: sum.version,
      Run: sum.runs,
      Attempt: last?.attempt ?? 0,
      PreviousRunId: last?.previousRunId ?? null,
      RunId: sum.lastRunId,
      JobBookmark: JSON.stringify({ partitions: state }),
      Partitions: sum.partitions,
      DeadLetters: dead,
      History: hist.map((h) => ({
        runId: h.runId,
        status: h.status,
        mode: h.mode,
        committed: h.committed,
        version: h.version ?? null,
        previousRunId: h.previousRunId,
        startedAt: h.startedAt,
        endedAt: h.endedAt,
        files: h.files,
        bytes: h.bytes,
      })),
    };
    if (opts.json) {
      process.stdout.write(JSON.stringify(entry, null, 2) + "\n");
      return;
    }
    const t = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString());
    process.stdout.write(
      `bookmark of job ${jobName}: version ${sum.version}, ${sum.runs} committed runs, last run ${sum.lastRunId ?? "-"}\n`,
    );
    for (const p of sum.partitions) {
      process.stdout.write(
        `  ${p.partition}: watermark ${t(p.wm)}, ${p.bandFiles} files in band, ${p.leased} leased, ${p.files} files committed${p.floor !== null ? `, floor ${t(p.floor)}` : ""}\n`,
      );
    }
    if (dead.total)
      process.stdout.write(
        `dead-lettered files: ${dead.total} (newest: ${String(dead.newest[0]?.key)}: ${String(dead.newest[0]?.reason)})\n`,
      );
    process.stdout.write(`history (newest first):\n`);
    for (const h of hist.slice(0, 20)) {
      process.stdout.write(
        `  ${h.runId} ${h.status.padEnd(9)} ${h.mode.padEnd(7)} ${h.committed ? `v${h.version}` : "-"} ${h.files} files\n`,
      );
    }
  } finally {
    await redis.quit();
  }
}

/** `tranche bookmark reset <job>` and `tranche bookmark rewind <job> --to-run RUN`. Output is never touched. */
export async function bookmarkChangeCommand(
  jobName: string,
  action: "reset" | "rewind",
  opts: { config?: string; toRun?: string },
): Promise<void> {
  const cfg = loadConfig(opts.config);
  getJob(cfg, jobName);
  if (action === "rewind" && !opts.toRun)
    throw new ConfigError("bookmark rewind needs --to-run RUN_ID (see 'tranche bookmark show JOB' for run ids)");
  const redis = await connectRedis(cfg.redis.url);
  try {
    const store = new BookmarkStore(redis, cfg.prefix, jobName);
    if (action === "reset") {
      await store.reset();
      process.stdout.write(`bookmark of job ${jobName} reset: the next run starts over (output was not touched)\n`);
    } else {
      const version = await store.rewind(opts.toRun!);
      process.stdout.write(
        `bookmark of job ${jobName} rewound to the state after run ${opts.toRun} (version ${version}); output was not touched\n`,
      );
    }
  } finally {
    await redis.quit();
  }
}
