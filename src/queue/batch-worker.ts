import { randomUUID } from "node:crypto";
import { Worker, type Job } from "bullmq";
import type { Redis, RedisOptions } from "ioredis";
import { BookmarkStore, RUN_TTL_S } from "../bookmark/store.js";
import { keys } from "../bookmark/keys.js";
import type { Logger } from "../log.js";
import { badRecords, batchDuration, batchesTotal, bytesProcessed, fileFailures, filesProcessed } from "../metrics/registry.js";
import type { FilePool } from "../pool/file-pool.js";
import type { FileResult } from "../pool/task.js";
import { queueName, type BatchJobData } from "./batch-job.js";

export interface BatchWorkerOptions {
  /** Connection for bookmark commits and run progress. */
  redis: Redis;
  /** Connection options for BullMQ (it opens and closes its own connections). */
  connection: RedisOptions;
  prefix: string;
  /** Jobs whose queues this worker consumes. */
  jobs: string[];
  pool: FilePool;
  /** Batches run at once per queue. Default 1. */
  concurrency?: number;
  /** BullMQ lock duration: a worker that stops renewing for this long is presumed dead. Default 30000 ms. */
  lockDurationMs?: number;
  /** How often stalled batches (of dead workers) are looked for. Default 15000 ms. */
  stalledIntervalMs?: number;
  log: Logger;
}

const MAX_RUN_ERRORS = 100;

/** Records a batch as finally failed on its run (once). */
export async function markBatchFailed(redis: Redis, prefix: string, runId: string, batch: string, reason: string): Promise<void> {
  const k = keys(prefix, "");
  const set = await redis.hsetnx(k.run(runId), `batch:${batch}`, "failed");
  if (set === 1) {
    await redis
      .multi()
      .hincrby(k.run(runId), "batchesFailed", 1)
      .lpush(k.runErrors(runId), `batch ${batch} failed: ${reason}`)
      .ltrim(k.runErrors(runId), 0, MAX_RUN_ERRORS - 1)
      .expire(k.runErrors(runId), RUN_TTL_S)
      .expire(k.run(runId), RUN_TTL_S)
      .exec();
  }
}

/** Runs one batch: each pending file through the pool, then one atomic commit of what was written. */
export async function processBatch(
  job: Job<BatchJobData>,
  o: Pick<BatchWorkerOptions, "redis" | "pool" | "log">,
): Promise<{ files: number; failed: number }> {
  const d = job.data;
  const store = new BookmarkStore(o.redis, d.prefix, d.job);
  const k = store.k;
  const started = process.hrtime.bigint();
  const todo = await store.pending(d.partition, d.runId, d.files, d.spec.updateState);
  const log = o.log.child({ job: d.job, runId: d.runId, batch: job.id, partition: d.partition, attempt: job.attemptsMade + 1 });
  log.debug("batch started", { files: d.files.length, pending: todo.length });
  const ok: { f: BatchJobData["files"][number]; r: FileResult }[] = [];
  const failed: { key: string; reason: string }[] = [];
  await Promise.all(
    todo.map(async (f) => {
      try {
        const r = await o.pool.run({
          sourceUri: d.spec.sourceUri,
          outputUri: d.spec.outputUri,
          processor: d.spec.processor,
          processorOptions: d.spec.processorOptions,
          s3: d.spec.s3,
          key: f.key,
          size: f.size,
          partition: d.partitionValues,
        });
        ok.push({ f, r });
        filesProcessed.inc({ tranche_job: d.job });
        bytesProcessed.inc({ tranche_job: d.job }, f.size);
        if (r.badRecords) {
          badRecords.inc({ tranche_job: d.job }, r.badRecords);
          log.warn("bad records skipped", { key: f.key, badRecords: r.badRecords, first: r.errors[0] });
        }
        const m = o.redis
          .multi()
          .hincrby(k.run(d.runId), "progressFiles", 1)
          .hincrby(k.run(d.runId), "progressBytes", f.size)
          .hdel(k.failures, `${f.key}@${f.lastModified}`); // it failed in an earlier run, maybe
        if (r.badRecords) {
          m.hincrby(k.run(d.runId), "badRecords", r.badRecords);
          for (const e of r.errors) m.lpush(k.runErrors(d.runId), e);
          m.ltrim(k.runErrors(d.runId), 0, MAX_RUN_ERRORS - 1).expire(k.runErrors(d.runId), RUN_TTL_S);
        }
        await m.exec();
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        const reason = msg.startsWith(`${f.key}: `) ? msg : `${f.key}: ${msg}`;
        const code = (err as { code?: string }).code;
        failed.push({ key: f.key, reason });
        fileFailures.inc({ tranche_job: d.job, kind: "file", code: code ?? "E_FILE" });
        log.error("file failed", { key: f.key, reason });
      }
    }),
  );
  // A file that failed the last attempt of a batch in `deadLetterAfterRuns` runs is set aside:
  // recorded in the job's dead-letter list (key, time, reason) and committed as done, so that one
  // bad file cannot stop the backlog. Fix it and rewrite it (a newer time) to process it again.
  const byKey = new Map(d.files.map((f) => [f.key, f]));
  const deadLettered: typeof failed = [];
  const finalAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  if (failed.length && finalAttempt && d.spec.deadLetterAfterRuns > 0 && d.spec.updateState) {
    for (const x of [...failed]) {
      const f = byKey.get(x.key)!;
      const runs = await o.redis.hincrby(k.failures, `${f.key}@${f.lastModified}`, 1);
      if (runs >= d.spec.deadLetterAfterRuns) {
        await o.redis
          .multi()
          .lpush(
            k.deadLetters,
            JSON.stringify({
              key: f.key,
              lastModified: f.lastModified,
              partition: d.partition,
              runId: d.runId,
              runs,
              reason: x.reason,
              at: new Date().toISOString(),
            }),
          )
          .ltrim(k.deadLetters, 0, 9999)
          .hdel(k.failures, `${f.key}@${f.lastModified}`)
          .hincrby(k.run(d.runId), "deadLettered", 1)
          .exec();
        failed.splice(failed.indexOf(x), 1);
        deadLettered.push(x);
        log.error("file dead-lettered after failing in repeated runs", { key: f.key, runs, reason: x.reason });
      }
    }
  }
  // Stage what was written, in one atomic step, for the run to commit at its end; a retry skips
  // these. Files that failed stay leased and are retried.
  const files = [...ok.map(({ f }) => f), ...deadLettered.map((x) => byKey.get(x.key)!)].map((f) => ({
    key: f.key,
    lastModified: f.lastModified,
    size: f.size,
  }));
  const staged = await store.stageBatch({
    partition: d.partition,
    runId: d.runId,
    commitId: `${job.id}#${randomUUID()}`,
    finalBatchId: failed.length === 0 ? job.id! : undefined,
    files,
  });
  batchDuration.observe({ tranche_job: d.job }, Number(process.hrtime.bigint() - started) / 1e9);
  if (failed.length) {
    await o.redis
      .multi()
      .hincrby(k.run(d.runId), "fileFailures", failed.length)
      .lpush(k.runErrors(d.runId), ...failed.map((x) => x.reason))
      .ltrim(k.runErrors(d.runId), 0, MAX_RUN_ERRORS - 1)
      .expire(k.runErrors(d.runId), RUN_TTL_S)
      .exec();
    batchesTotal.inc({ tranche_job: d.job, outcome: "retry" });
    throw new Error(`${failed.length} of ${todo.length} files failed (${staged} written); first: ${failed[0]!.reason}`);
  }
  batchesTotal.inc({ tranche_job: d.job, outcome: "ok" });
  log.debug("batch done", { files: todo.length, staged, skipped: d.files.length - todo.length });
  return { files: todo.length, failed: 0 };
}

/**
 * Consumes the batch queues of the given jobs. `close()` stops taking new batches and waits for
 * the current ones to finish (SIGTERM path); a killed worker's batch goes back to the queue when
 * its lock expires and another worker takes it.
 */
export class BatchWorker {
  private readonly workers: Worker<BatchJobData>[] = [];
  constructor(private readonly o: BatchWorkerOptions) {}

  start(): void {
    for (const job of this.o.jobs) {
      const w = new Worker<BatchJobData>(queueName(job), (j) => processBatch(j, this.o), {
        connection: this.o.connection,
        prefix: this.o.prefix,
        concurrency: this.o.concurrency ?? 1,
        lockDuration: this.o.lockDurationMs ?? 30_000,
        stalledInterval: this.o.stalledIntervalMs ?? 15_000,
        maxStalledCount: 5,
        autorun: true,
      });
      w.on("failed", (j, err) => {
        if (!j) return;
        // BullMQ's own words when a batch stalled (its worker died) more than maxStalledCount times.
        const final = j.attemptsMade >= (j.opts.attempts ?? 1) || /^job stalled more than allowable limit/i.test(err.message);
        this.o.log.warn(final ? "batch failed" : "batch will be retried", {
          job: j.data.job,
          batch: j.id,
          attempt: j.attemptsMade,
          reason: err.message,
        });
        if (final) {
          batchesTotal.inc({ tranche_job: j.data.job, outcome: "failed" });
          void markBatchFailed(this.o.redis, j.data.prefix, j.data.runId, j.id!, err.message).catch(() => undefined);
        }
      });
      w.on("error", (err) => this.o.log.error("worker error", { queue: queueName(job), reason: err.message }));
      this.workers.push(w);
    }
  }

  get running(): boolean {
    return this.workers.some((w) => w.isRunning());
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
