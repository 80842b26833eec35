import type { ConnectionOptions } from "bullmq";
import type { Cluster, Redis } from "ioredis";
import { resolveBound, type BoundOptions } from "../config/bounds.js";
import type { BookmarkMode, TrancheConfig } from "../config/schema.js";
import { ConcurrentRunsExceededError } from "../errors.js";
import type { Logger } from "../log.js";
import type { FilePool } from "../pool/file-pool.js";
import { startRun } from "./start-run.js";
import { stepContext, type StepContext } from "./step-context.js";
import type { RunProgress, RunSummary } from "./summary.js";
import { holdStarter, orphanedRun, STARTER_ID, waitForRun } from "./wait-run.js";

export type { RunProgress, RunStatus, RunSummary } from "./summary.js";

export interface RunOptions {
  cfg: TrancheConfig;
  job: string;
  redis: Redis | Cluster;
  /** Connection for BullMQ. */
  bullConnection: ConnectionOptions;
  log: Logger;
  override?: BoundOptions;
  mode?: BookmarkMode;
  /** With mode `pause`: replay what arrived after run `from` up to run `to` (both or neither). */
  from?: string;
  to?: string;
  onProgress?(p: RunProgress): void;
  /** Poll interval of the progress display. Default 200 ms. */
  pollMs?: number;
  /** What asks for the run (recorded on it). Default "manual". */
  trigger?: string;
  /** Overrides the job's whenBusy. */
  whenBusy?: "skip" | "queue";
  /**
   * When the job is at maxConcurrentRuns: attach to a live run whose starter is gone (it was
   * killed) and report that run's outcome, instead of failing with exit 3.
   */
  attach?: boolean;
  /** Called with the run id once the run is enqueued (or attached to). */
  onStarted?(runId: string, attached: boolean): void | Promise<void>;
  /** Used by the steps this process runs; a worker's pool checks a processor's own output names. */
  pool?: FilePool;
}

/**
 * One bounded run, as `tranche run` does it: enqueues the run (src/run/start-run.ts) and waits for
 * its end. The run itself is executed by whatever workers consume the job's queue (the CLI starts
 * one in-process): this process may die at any moment and the run still finishes (docs/runs.md).
 */
export async function runOnce(o: RunOptions): Promise<RunSummary> {
  const ctx = stepContext({ redis: o.redis, bull: o.bullConnection, cfg: o.cfg, log: o.log, pool: o.pool });
  try {
    return await runWith(ctx, o);
  } finally {
    await ctx.queues.close();
  }
}

export async function runWith(
  ctx: StepContext,
  o: Omit<RunOptions, "cfg" | "redis" | "bullConnection" | "log" | "pool">,
): Promise<RunSummary> {
  const job = ctx.cfg.jobs[o.job]!;
  resolveBound({ override: o.override, job: job.source }); // bad bounds fail before anything is written
  const started = await startRun(ctx, {
    job: o.job,
    trigger: o.trigger ?? "manual",
    mode: o.mode,
    from: o.from,
    to: o.to,
    override: o.override,
    whenBusy: o.whenBusy,
    starter: STARTER_ID,
  });
  let runId: string;
  if (started.started) runId = started.runId;
  else {
    const orphan = o.attach ? await orphanedRun(ctx, o.job, started.running) : null;
    if (!orphan) throw new ConcurrentRunsExceededError(o.job, job.maxConcurrentRuns, started.running);
    ctx.log.warn("attaching to a run whose starter is gone: working on it and reporting its outcome", { job: o.job, runId: orphan });
    runId = orphan;
  }
  await o.onStarted?.(runId, !started.started);
  const release = holdStarter(ctx, o.job, runId);
  try {
    return await waitForRun(ctx, o.job, runId, { pollMs: o.pollMs, onProgress: o.onProgress });
  } finally {
    release();
  }
}
