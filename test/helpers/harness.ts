import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { validateConfig } from "../../src/config/load.js";
import type { TrancheConfig } from "../../src/config/schema.js";
import { log } from "../../src/log.js";
import { redisOptions } from "../../src/redis.js";
import { FilePool } from "../../src/pool/file-pool.js";
import { BatchWorker } from "../../src/queue/batch-worker.js";
import type { Job } from "bullmq";
import { stepId, type StepJobData } from "../../src/queue/batch-job.js";
import { planStepJob } from "../../src/run/plan-step.js";
import { runOnce, type RunOptions, type RunSummary } from "../../src/run/runner.js";
import { stepContext } from "../../src/run/step-context.js";
import { cleanPrefix, REDIS_URL, redisClient, uniquePrefix } from "./redis.js";

const open = new Set<{ close(): Promise<void> }>();

/** Closes every harness still open (use as `afterEach(closeHarnesses)`). */
export async function closeHarnesses(): Promise<void> {
  for (const h of [...open]) await h.close();
}

export type Harness = Awaited<ReturnType<typeof harness>>;

/**
 * A job on a fresh temp folder and Redis prefix, with an in-process worker (real BullMQ, real
 * Piscina threads). `job` overrides merge into the job config.
 */
export async function harness(name: string, job: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `tranche-${name}-`));
  const prefix = (top.prefix as string | undefined) ?? uniquePrefix(name);
  const src = (job.source as Record<string, unknown> | undefined) ?? {};
  const cfg: TrancheConfig = validateConfig(
    {
      redis: { url: REDIS_URL },
      prefix,
      ...top,
      jobs: {
        [name]: {
          processor: "ndjson",
          output: { path: pathToFileURL(path.join(dir, "out")).href },
          backoffMs: 50,
          ...job,
          source: { path: pathToFileURL(path.join(dir, "in")).href, ...src },
        },
      },
    },
    { env: {} },
  );
  const redis = redisClient();
  const bull = redisOptions(REDIS_URL);
  let pool: FilePool | undefined;
  let worker: BatchWorker | undefined;
  let starting: Promise<void> = Promise.resolve();
  const h = {
    dir,
    inDir: path.join(dir, "in"),
    outDir: path.join(dir, "out"),
    prefix,
    cfg,
    redis,
    bull,
    name,
    /** Starts an in-process worker (real BullMQ, real threads); `run()` waits until it is up. */
    startWorker(threads = 2, opts: { filesPerThread?: number } = {}) {
      pool = new FilePool({
        threads,
        maxOldGenerationSizeMb: 64,
        nativeMemoryMb: cfg.jobs[name]!.worker.nativeMemoryMb,
        filesPerThread: opts.filesPerThread,
      });
      worker = new BatchWorker({ redis, connection: bull, cfg, jobs: [name], pool, concurrency: 2, log });
      starting = worker.start();
      return starting;
    },
    async stopWorker() {
      await starting.catch(() => undefined);
      await worker?.close();
      await pool?.close();
      worker = undefined;
      pool = undefined;
    },
    async run(o: Partial<RunOptions> = {}): Promise<RunSummary> {
      await starting;
      return runOnce({ cfg, job: name, redis, bullConnection: bull, log, pollMs: 50, ...o });
    },
    /**
     * Executes the plan step of a run here and now (as a worker would), so that a test can act
     * between planning and processing; the workers that start later find it planned.
     */
    async planNow(runId: string): Promise<void> {
      const ctx = stepContext({ redis, bull, cfg, log });
      try {
        const job = await ctx.queues.queue(name).getJob(stepId.plan(runId));
        if (!job) throw new Error(`no plan step for run ${runId}`);
        await planStepJob(ctx, job as Job<StepJobData>);
      } finally {
        await ctx.queues.close();
      }
    },
    /** The id of the job's newest run once it exists. */
    async newestRun(): Promise<string> {
      for (let i = 0; i < 400; i++) {
        const [id] = await redis.zrevrange(`${prefix}:runs:${name}:index`, 0, 0);
        if (id) return id;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error("no run started");
    },
    async close() {
      open.delete(h);
      await h.stopWorker();
      await cleanPrefix(redis, prefix);
      await redis.quit();
      await rm(dir, { recursive: true, force: true });
    },
  };
  open.add(h);
  return h;
}
