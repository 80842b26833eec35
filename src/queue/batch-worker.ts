import { Worker, type ConnectionOptions } from "bullmq";
import type { Cluster, Redis } from "ioredis";
import { BookmarkStore } from "../bookmark/store.js";
import type { TrancheConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { FilePool } from "../pool/file-pool.js";
import { queueName, type BatchJobData } from "./batch-job.js";
import { processBatch } from "./process-batch.js";

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
  log: Logger;
}

/**
 * Consumes the batch queues of the given jobs. `close()` stops taking new batches and waits for
 * the current ones to finish (SIGTERM path); a killed worker's batch goes back to the queue when
 * its lock expires (worker.lockDurationMs) and another worker takes it.
 */
export class BatchWorker {
  private readonly workers: Worker<BatchJobData>[] = [];
  constructor(private readonly o: BatchWorkerOptions) {}

  /** Starts consuming; resolves once every queue's connections are up (closing them half-open loses errors). */
  async start(): Promise<void> {
    for (const job of this.o.jobs) {
      const jc = this.o.cfg.jobs[job]!;
      const w = new Worker<BatchJobData>(queueName(job), (j) => processBatch(j, this.o), {
        connection: this.o.connection,
        prefix: this.o.cfg.prefix,
        concurrency: this.o.concurrency ?? jc.worker.concurrency,
        lockDuration: this.o.lockDurationMs ?? jc.worker.lockDurationMs,
        stalledInterval: this.o.stalledIntervalMs ?? jc.worker.stalledIntervalMs,
        maxStalledCount: 5,
        autorun: true,
      });
      w.on("failed", (j, err) => {
        if (!j) return;
        void (async () => {
          // Failed for good (attempts used up, unrecoverable, or stalled too often) or to be retried.
          const final = (await j.getState()) === "failed";
          this.o.log.warn(final ? "batch failed" : "batch will be retried", {
            job: j.data.job,
            batch: j.id,
            attempt: j.attemptsMade,
            reason: err.message,
          });
          if (final) {
            const store = new BookmarkStore(this.o.redis, this.o.cfg.prefix, j.data.job);
            // The batch's last attempt recorded whether the job or files were at fault; a batch
            // that never finished an attempt (its workers kept dying) is the job's.
            await store.markBatchFailed(j.data.runId, j.id!, err.message, "job");
          }
        })().catch(() => undefined);
      });
      w.on("error", (err) => this.o.log.error("worker error", { queue: queueName(job), reason: err.message }));
      this.workers.push(w);
    }
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  get running(): boolean {
    return this.workers.some((w) => w.isRunning());
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
