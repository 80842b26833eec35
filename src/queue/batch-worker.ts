import { DelayedError, UnrecoverableError, Worker, type ConnectionOptions, type Job } from "bullmq";
import type { Cluster, Redis } from "ioredis";
import { BookmarkStore } from "../bookmark/store.js";
import type { TrancheConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { FilePool } from "../pool/file-pool.js";
import { commitStepJob, settleRegistrations } from "../run/commit-step.js";
import { finishRun } from "../run/finish-step.js";
import { planStepJob } from "../run/plan-step.js";
import { stepContext, type StepContext } from "../run/step-context.js";
import { timeoutStepJob } from "../run/stop-run.js";
import { queueName, type BatchJobData, type StepJobData } from "./batch-job.js";
import { processBatch } from "./process-batch.js";

/** How long a closing worker waits for the commit steps' registration attempts still under way. */
const REGISTRATIONS_SETTLE_MS = 10_000;

export interface BatchWorkerOptions {
  /** Connection for bookmark writes and run progress. */
  redis: Redis | Cluster;
  /** Connection for BullMQ (options: it opens and closes its own connections; or a Cluster to duplicate). */
  connection: ConnectionOptions;
  /** This worker's configuration: jobs are run as it says, never as a batch says. */
  cfg: TrancheConfig;
  /** Jobs whose queues this worker consumes. */
  jobs: string[];
  pool: FilePool;
  /** Batches run at once per queue. Default: the job's worker.concurrency. */
  concurrency?: number;
  /** Overrides the job's worker.lockDurationMs. */
  lockDurationMs?: number;
  /** Overrides the job's worker.stalledIntervalMs. */
  stalledIntervalMs?: number;
  /** How often queued output catalog registrations are looked for (jobs with output.catalog). Default 2000 ms. */
  registrationIntervalMs?: number;
  log: Logger;
}

/**
 * Consumes the queues of the given jobs: every step of their runs (plan, batches, partition
 * commits, finish, timeout), whoever started the run, and retries the output catalog registrations
 * its jobs' commits queued (`output.catalog`). `close()` stops taking new batches and waits for
 * the current ones to finish (SIGTERM path); a killed worker's batch goes back to the queue when
 * its lock expires (worker.lockDurationMs) and another worker takes it.
 */
export class BatchWorker {
  private readonly workers: Worker<BatchJobData | StepJobData>[] = [];
  /** Output catalog registrations retried by this worker (jobs with output.catalog). */
  private readonly registrars: { stop(): Promise<void> }[] = [];
  private readonly ctx: StepContext;
  constructor(private readonly o: BatchWorkerOptions) {
    this.ctx = stepContext({ redis: o.redis, bull: o.connection, cfg: o.cfg, log: o.log, pool: o.pool });
  }

  /** One job of a run's flow: its name says which step (docs/runs.md). */
  private async process(j: Job<BatchJobData | StepJobData>, token?: string): Promise<unknown> {
    switch (j.name) {
      case "batch":
        return processBatch(j as Job<BatchJobData>, this.o);
      case "plan":
        return planStepJob(this.ctx, j as Job<StepJobData>, token);
      case "commit":
        return commitStepJob(this.ctx, j as Job<StepJobData>);
      case "finish": {
        const d = j.data as StepJobData;
        const s = await finishRun(this.ctx, d.job, d.runId);
        return s ? { state: s.state, files: s.files } : { gone: true };
      }
      case "timeout":
        return timeoutStepJob(this.ctx, j as Job<StepJobData>);
      default:
        throw new UnrecoverableError(`unknown step ${JSON.stringify(j.name)}: this worker is older than the process that enqueued it`);
    }
  }

  /** Starts consuming; resolves once every queue's connections are up (closing them half-open loses errors). */
  async start(): Promise<void> {
    for (const job of this.o.jobs) {
      const jc = this.o.cfg.jobs[job]!;
      const w = new Worker<BatchJobData | StepJobData>(queueName(job), (j, token) => this.process(j, token), {
        connection: this.o.connection,
        prefix: this.o.cfg.prefix,
        concurrency: this.o.concurrency ?? jc.worker.concurrency,
        lockDuration: this.o.lockDurationMs ?? jc.worker.lockDurationMs,
        stalledInterval: this.o.stalledIntervalMs ?? jc.worker.stalledIntervalMs,
        maxStalledCount: 5,
        autorun: true,
      });
      w.on("failed", (j, err) => {
        if (!j || j.name !== "batch" || err instanceof DelayedError || err.name === "DelayedError") return;
        void (async () => {
          // Failed for good (attempts used up, unrecoverable, or stalled too often) or to be retried.
          const final = (await j.getState()) === "failed";
          this.o.log.warn(final ? "batch failed" : "batch will be retried", {
            job: (j.data as BatchJobData).job,
            batch: j.id,
            attempt: j.attemptsMade,
            reason: err.message,
          });
          if (final) {
            const store = new BookmarkStore(this.o.redis, this.o.cfg.prefix, (j.data as BatchJobData).job);
            // The batch's last attempt recorded whether the job or files were at fault; a batch
            // that never finished an attempt (its workers kept dying) is the job's.
            await store.markBatchFailed((j.data as BatchJobData).runId, j.id!, err.message, "job");
          }
        })().catch(() => undefined);
      });
      w.on("error", (err) => this.o.log.error("worker error", { queue: queueName(job), reason: err.message }));
      this.workers.push(w);
    }
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
    // Registrations of output partitions queued by commits (output.catalog) are retried here until done.
    const catalogJobs = this.o.jobs.filter((j) => this.o.cfg.jobs[j]!.output.catalog);
    if (catalogJobs.length) {
      const { CatalogRegistrar } = await import("../catalog/register.js");
      for (const job of catalogJobs) {
        const r = new CatalogRegistrar({
          redis: this.o.redis,
          cfg: this.o.cfg,
          job,
          log: this.o.log,
          intervalMs: this.o.registrationIntervalMs,
        });
        r.start();
        this.registrars.push(r);
      }
    }
  }

  get running(): boolean {
    return this.workers.some((w) => w.isRunning());
  }

  async close(): Promise<void> {
    // The workers first (their commit steps end), then the registrars, then the commit steps'
    // own registration attempts still under way: nothing that queues a registration runs after.
    await Promise.all(this.workers.map((w) => w.close()));
    await Promise.all(this.registrars.map((r) => r.stop()));
    await settleRegistrations(REGISTRATIONS_SETTLE_MS);
    await this.ctx.queues.close();
  }
}
