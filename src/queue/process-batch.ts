import { randomUUID } from "node:crypto";
import { UnrecoverableError, type Job } from "bullmq";
import type { Cluster, Redis } from "ioredis";
import { BookmarkStore, RUN_TTL_S } from "../bookmark/store.js";
import { resolveEnvRefs, MissingEnvError } from "../config/env-refs.js";
import { jobFingerprint } from "../config/fingerprint.js";
import type { JobConfig, TrancheConfig } from "../config/schema.js";
import { JobError, type TypedFailure } from "../failures.js";
import type { Logger } from "../log.js";
import {
  badRecords,
  batchDuration,
  batchesTotal,
  bytesProcessed,
  deadLettersTotal,
  fileFailures,
  filesProcessed,
  filesSkipped,
  JOB_LABEL,
  schemaDrift,
} from "../metrics/registry.js";
import type { FilePool } from "../pool/file-pool.js";
import type { FileResult } from "../pool/task.js";
import { catalogRead } from "../catalog/location.js";
import type { BatchJobData } from "./batch-job.js";
import { judgeBatch, type FileOutcomeOf } from "./failure-policy.js";
import { checkSchemaDrift } from "./schema-drift.js";

export interface BatchContext {
  redis: Redis | Cluster;
  /** This worker's own configuration: paths, processor, options and credentials come from here, never from Redis. */
  cfg: TrancheConfig;
  pool: FilePool;
  log: Logger;
  /** Where `${env:NAME}` references are resolved. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

type BatchFile = BatchJobData["files"][number];

/** A failure of the job detected before any file ran: recorded on the run, then BullMQ gives up (no retries). */
async function refuse(store: BookmarkStore, job: Job<BatchJobData>, code: string, message: string): Promise<never> {
  await store.finishBatch({
    partition: job.data.partition,
    runId: job.data.runId,
    commitId: `${job.id}#${randomUUID()}`,
    batchId: job.id!,
    jobFailure: `${code}: ${message}`,
    errors: [`${code}: ${message}`],
  });
  throw new UnrecoverableError(`${code}: ${message}`);
}

/**
 * Runs one batch attempt: each pending file through the pool, then one atomic step that stages
 * what was written, counts file errors toward dead letters (on the last attempt only, and never
 * when the job is at fault) and records gone and archived files. A job failure or file errors left
 * fail the attempt (BullMQ retries it with backoff; non-retryable job errors are not retried).
 */
export async function processBatch(job: Job<BatchJobData>, ctx: BatchContext): Promise<{ files: number; bytes: number; stale?: boolean }> {
  const d = job.data;
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, d.job);
  const labels = { [JOB_LABEL]: d.job };
  const log = ctx.log.child({ job: d.job, runId: d.runId, batch: job.id, partition: d.partition, attempt: job.attemptsMade + 1 });
  const jc: JobConfig | undefined = ctx.cfg.jobs[d.job];
  if (!jc)
    return refuse(
      store,
      job,
      "E_CONFIG_MISMATCH",
      `this worker's configuration has no job "${d.job}"; deploy the same configuration to every worker`,
    );
  if (jobFingerprint(ctx.cfg, jc) !== d.fingerprint) {
    return refuse(
      store,
      job,
      "E_CONFIG_MISMATCH",
      `this worker's configuration of job "${d.job}" differs from the one that planned run ${d.runId} (fingerprint ${jobFingerprint(ctx.cfg, jc)} vs ${d.fingerprint}); deploy the same configuration to every worker`,
    );
  }
  // A batch of a run that is stopping or ended (timed out, or Redis lost the run) is stale.
  const state = await ctx.redis.hget(store.k.run(d.runId), "state");
  if (state !== "RUNNING") {
    log.warn("skipping a batch of a run that is not running", { state: state ?? "gone" });
    return { files: 0, bytes: 0, stale: true };
  }
  let options: Record<string, unknown>;
  try {
    options = resolveEnvRefs(jc.processorOptions, ctx.env ?? process.env);
  } catch (err) {
    if (err instanceof MissingEnvError) return refuse(store, job, "E_CONFIG", err.message);
    throw err;
  }

  const started = process.hrtime.bigint();
  const todo = await store.pending(d.partition, d.runId, d.files, d.updateState);
  log.debug("batch started", { files: d.files.length, pending: todo.length });
  const outcomes: FileOutcomeOf<BatchFile>[] = [];
  const results = new Map<string, FileResult>();
  const timeoutMs = jc.worker.fileTimeoutSeconds * 1000;
  // A catalog partition's files are read at its own location (carried by the batch), by object key.
  const readAt = (key: string) => (d.location ? catalogRead(d.location, key) : { sourceUri: jc.source.path! });
  await Promise.all(
    todo.map(async (f) => {
      try {
        const r = await ctx.pool.run(
          {
            ...readAt(f.key),
            outputUri: jc.output.path,
            processor: jc.processor,
            processorOptions: options,
            s3: ctx.cfg.s3,
            outputS3: jc.output.s3,
            key: f.key,
            size: f.size,
            partition: d.partitionValues,
            maxBadRecordRatio: jc.maxBadRecordRatio,
          },
          { timeoutMs },
        );
        results.set(f.key, r);
        outcomes.push({ file: f, ok: true });
        filesProcessed.inc(labels);
        bytesProcessed.inc(labels, f.size);
        if (r.badRecords) {
          badRecords.inc(labels, r.badRecords);
          log.warn("bad records skipped", { key: f.key, badRecords: r.badRecords, first: r.errors[0] });
        }
        await ctx.redis
          .multi()
          .hincrby(store.k.run(d.runId), "progressFiles", 1)
          .hincrby(store.k.run(d.runId), "progressBytes", f.size)
          .exec();
      } catch (err) {
        const failure = err as TypedFailure;
        outcomes.push({ file: f, ok: false, failure });
        if (failure.kind === "gone" || failure.kind === "archived") {
          filesSkipped.inc({ ...labels, reason: failure.kind });
          log.warn(failure.kind === "gone" ? "file deleted after listing: dropped from the run" : "file is archived: skipped", {
            key: f.key,
            reason: failure.message,
          });
        } else {
          fileFailures.inc({ ...labels, kind: failure.kind ?? "job", code: failure.code ?? "E_UNKNOWN" });
          log.error(failure.kind === "file" ? "file failed" : "file failed because of the job or its environment", {
            key: f.key,
            code: failure.code,
            reason: failure.message,
          });
        }
      }
    }),
  );

  const v = judgeBatch(outcomes);
  const finalAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1) || (v.jobFailure !== undefined && !v.jobFailure.retryable);
  const countFailures = finalAttempt && !v.jobFailure && d.updateState && jc.bookmark.deadLetterAfterRuns > 0;
  const badRecordErrors = [...results.values()].flatMap((r) => r.errors);
  // Output columns whose type changed within the partition: reported, the files stay written.
  const driftErrors: string[] = [];
  for (const [key, r] of [...results].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!r.schema) continue;
    for (const x of await checkSchemaDrift(ctx.redis, store.k.schema(d.partition), r.schema)) {
      schemaDrift.inc(labels);
      log.warn("schema drift", { key, column: x.column, type: x.now, firstType: x.was });
      driftErrors.push(
        `${key}: schema drift: column ${JSON.stringify(x.column)} is ${x.now}, was ${x.was} in earlier files of partition ${d.partition || "(none)"}; pin it with processorOptions.schema`,
      );
    }
  }
  // What each input became, for the partition commit's manifest (before staging: a staged file's output is known).
  if (results.size) {
    const out = store.k.outputs(d.runId, d.partition);
    await ctx.redis
      .multi()
      .hset(out, Object.fromEntries([...results].map(([k, r]) => [k, r.outKey])))
      .expire(out, RUN_TTL_S)
      .exec();
  }
  const done = await store.finishBatch({
    partition: d.partition,
    runId: d.runId,
    commitId: `${job.id}#${randomUUID()}`,
    batchId: job.id!,
    finalBatchId: job.id!,
    ok: v.ok,
    archived: v.archived.map((x) => ({ ...x.file, reason: x.failure.message })),
    gone: v.gone.map((x) => ({ key: x.file.key, reason: x.failure.message })),
    failed: v.fileErrors.map((x) => ({ key: x.file.key, lastModified: x.file.lastModified, reason: x.failure.message })),
    countFailures,
    lastAttempt: finalAttempt,
    deadLetterAfterRuns: jc.bookmark.deadLetterAfterRuns,
    errors: [
      ...badRecordErrors,
      ...driftErrors,
      ...v.fileErrors.map((x) => `${x.failure.code}: ${x.failure.message}`),
      ...(v.jobFailure ? [`${v.jobFailure.code}: ${v.jobFailure.message}`] : []),
    ],
    badRecords: [...results.values()].reduce((a, r) => a + r.badRecords, 0),
    jobFailure: v.jobFailure ? `${v.jobFailure.code}: ${v.jobFailure.message}` : undefined,
  });
  batchDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
  if (done.deadLettered.length) {
    deadLettersTotal.inc(labels, done.deadLettered.length);
    for (const k of done.deadLettered) log.error("file dead-lettered after failing in repeated runs", { key: k });
  }
  if (v.jobFailure) {
    batchesTotal.inc({ ...labels, outcome: finalAttempt ? "failed" : "retry" });
    const msg = `${v.jobFailure.code}: ${v.jobFailure.message}`;
    // Typed for BullMQ: a job error that another attempt cannot fix is not retried.
    if (!v.jobFailure.retryable) throw new UnrecoverableError(msg);
    throw new JobError(v.jobFailure.code, msg);
  }
  if (done.failuresLeft > 0) {
    batchesTotal.inc({ ...labels, outcome: finalAttempt ? "failed" : "retry" });
    const first = v.fileErrors.find((x) => !done.deadLettered.includes(x.file.key)) ?? v.fileErrors[0]!;
    throw new Error(`${done.failuresLeft} of ${todo.length} files failed (${v.ok.length} written); first: ${first.failure.message}`);
  }
  batchesTotal.inc({ ...labels, outcome: "ok" });
  log.debug("batch done", { files: todo.length, staged: done.staged, skipped: d.files.length - todo.length });
  // Processed and written (dead-lettered, archived and gone files are not).
  return { files: v.ok.length, bytes: v.ok.reduce((n, f) => n + f.size, 0) };
}
