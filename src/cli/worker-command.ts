import { getJob, loadConfig } from "../config/load.js";
import { ConfigError } from "../errors.js";
import { log } from "../log.js";
import { startMetricsServer } from "../metrics/server.js";
import { initJobMetrics } from "../metrics/registry.js";
import { exportBacklogFromRedis } from "../metrics/shared-backlog.js";
import { FilePool } from "../pool/file-pool.js";
import { BatchWorker } from "../queue/batch-worker.js";
import { openSink } from "../source/open.js";
import { openConnections } from "./connect.js";

export interface WorkerCommandOptions {
  config?: string;
  job?: string[];
  threads?: number;
  maxOldGenerationSizeMb?: number;
  nativeMemoryMb?: number;
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
  const nativeMemoryMb = opts.nativeMemoryMb ?? Math.max(...jobCfgs.map((j) => j.worker.nativeMemoryMb));
  const conn = await openConnections(cfg);
  let stopping = false;
  const running = { worker: undefined as BatchWorker | undefined };
  const port = opts.metricsPort ?? cfg.metrics.port;
  const metrics = port
    ? await startMetricsServer(
        port,
        () => !stopping && running.worker?.running === true,
        "0.0.0.0",
        opts.metricsPort !== undefined ? "--metrics-port" : "metrics.port",
      ).catch(async (e) => {
        await conn.close();
        throw e;
      })
    : undefined;
  // Temp files of workers killed on this host are removed before this one starts writing.
  for (const j of jobCfgs) {
    const sink = await openSink(j.output.path, cfg.s3, j.output.s3).catch(() => undefined);
    const n = await sink?.sweepTempFiles?.().catch(() => 0);
    if (n) log.info("removed temp files of killed workers", { output: j.output.path, files: n });
  }
  const pool = new FilePool({
    threads,
    maxOldGenerationSizeMb: heap,
    nativeMemoryMb,
    filesPerThread: opts.filesPerThread ?? Math.max(...jobCfgs.map((j) => j.worker.filesPerThread)),
  });
  const worker = new BatchWorker({
    redis: conn.redis,
    connection: conn.bull,
    cfg,
    jobs,
    pool,
    concurrency: opts.concurrency,
    lockDurationMs: opts.lockDurationMs,
    stalledIntervalMs: opts.stalledIntervalMs,
    log,
  });
  running.worker = worker;
  for (const j of jobs) initJobMetrics(j);
  const stopBacklog = exportBacklogFromRedis(conn.redis, cfg.prefix, jobs);
  await worker.start();
  log.info("worker started", { jobs, threads, maxOldGenerationSizeMb: heap, nativeMemoryMb, metricsPort: metrics?.port, pid: process.pid });
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
  stopBacklog();
  await pool.close();
  await metrics?.close();
  await conn.close();
  log.info("worker stopped");
}
