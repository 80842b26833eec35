import { createHash } from "node:crypto";
import type { Job } from "bullmq";
import { BookmarkStore } from "../bookmark/store.js";
import { RunLostError } from "../errors.js";
import type { StepJobData } from "../queue/batch-job.js";
import { openSink } from "../source/open.js";
import { startNextPartition } from "./enqueue-step.js";
import { registrationOf } from "../catalog/registration.js";
import type { PartitionResult } from "./run-record.js";
import type { StepContext } from "./step-context.js";

type CommitData = Extract<StepJobData, { step: "commit" }>;

/** Where a partition commit's manifest goes, relative to the output root. */
export function manifestKey(runId: string, partition: string): string {
  return `_tranche/manifests/${runId}/part-${createHash("sha1").update(partition).digest("hex").slice(0, 12)}.json`;
}

/**
 * The commit step of one partition of a run (docs/runs.md). It runs once every batch of the
 * partition has ended (BullMQ moves it when its last child completes or fails for good):
 * - a batch failed for good: the partition is FAILED, nothing of it commits, its files stay leased
 *   and the next run takes them (the run's other partitions are not affected);
 * - the run was stopped and the partition is incomplete: STOPPED, likewise; timed out: TIMEOUT;
 * - otherwise (mode enable) one atomic commit of the partition (commit-partition.lua), then its
 *   manifest under `_tranche/manifests/` of the output: inputs → outputs, written after the commit,
 *   so a manifest names committed output only. A retried step commits nothing twice (the script
 *   is idempotent) and writes the manifest again.
 * Then it starts the next partition waiting under partitionConcurrency.
 */
export async function commitStepJob(ctx: StepContext, job: Job<StepJobData>): Promise<PartitionResult | { gone: true }> {
  const d = job.data as CommitData;
  const jc = ctx.cfg.jobs[d.job]!;
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, d.job);
  const runKey = store.k.run(d.runId);
  const log = ctx.log.child({ job: d.job, runId: d.runId, partition: d.partition });
  const rec = await ctx.runs.get(d.runId);
  if (!rec) return { gone: true };
  // Batches that failed for good: BullMQ keeps their reasons for the parent; the failed handler
  // of the worker that ran them may have died before it recorded them on the run.
  const ignored = await job.getIgnoredChildrenFailures();
  for (const [key, reason] of Object.entries(ignored)) {
    const id = key.slice(key.lastIndexOf(":") + 1);
    if (d.batchIds.includes(id)) await store.markBatchFailed(d.runId, id, reason || "failed", "job");
  }
  const outcomes = d.batchIds.length ? await ctx.redis.hmget(runKey, ...d.batchIds.map((id) => `batch:${id}`)) : [];
  const failed = outcomes.filter((o) => o === "failed").length;
  const missing = outcomes.filter((o) => o !== "ok" && o !== "failed").length;
  const values = Object.values(await job.getChildrenValues<{ files?: number; bytes?: number }>());
  const base = {
    partition: d.partition,
    files: values.reduce((s, v) => s + (v?.files ?? 0), 0),
    bytes: values.reduce((s, v) => s + (v?.bytes ?? 0), 0),
    batches: d.batchIds.length,
    batchesFailed: failed,
  };
  let result: PartitionResult;
  if (rec.state === "TIMEOUT") {
    result = { ...base, state: "TIMEOUT", error: "the run timed out before this partition committed" };
  } else if (failed > 0) {
    const reason = Object.values(ignored)[0] ?? (await ctx.redis.lindex(store.k.runErrors(d.runId), 0)) ?? "a batch failed";
    result = { ...base, state: "FAILED", error: `${failed} of ${d.batchIds.length} batches failed; first: ${reason}` };
  } else if (missing > 0 || (rec.state !== "RUNNING" && rec.state !== "STOPPING")) {
    result =
      rec.state === "STOPPING" || rec.state === "STOPPED"
        ? { ...base, state: "STOPPED", error: "the run was stopped before this partition finished" }
        : { ...base, state: "FAILED", error: `${missing} batches vanished from the queue (Redis lost them?)` };
  } else if (rec.mode !== "" ? rec.mode !== "enable" : jc.bookmark.mode !== "enable") {
    result = { ...base, state: "DONE" };
    // Nothing commits, but the outputs were written: their partitions are registered all the same.
    const reg = jc.output.catalog
      ? registrationOf(jc, d.runId, d.partition, await ctx.redis.hvals(store.k.outputs(d.runId, d.partition)))
      : undefined;
    if (reg) {
      const field = `${d.runId}|${d.partition}`;
      await ctx.redis.multi().hset(store.k.catalogReg, field, JSON.stringify(reg)).zadd(store.k.catalogDue, "NX", 0, field).exec();
    }
  } else {
    result = await commit(ctx, store, d, rec, base, log);
  }
  // Output partitions go in the output catalog table now; what fails stays queued for the workers.
  if (jc.output.catalog && (result.state === "COMMITTED" || result.state === "DONE")) await registerNow(ctx, d, log);
  await ctx.runs.setPartition(d.runId, result);
  log.info("partition ended", { state: result.state, files: result.files, version: result.version, error: result.error });
  // One next partition per partition that ended, however often this step runs.
  if ((await ctx.redis.hsetnx(runKey, `next:${d.partition}`, "1")) === 1) await startNextPartition(ctx, d.job, d.runId);
  return result;
}

async function commit(
  ctx: StepContext,
  store: BookmarkStore,
  d: CommitData,
  rec: Record<string, string>,
  base: Omit<PartitionResult, "state">,
  log: StepContext["log"],
): Promise<PartitionResult> {
  const jc = ctx.cfg.jobs[d.job]!;
  const staged = await ctx.redis.zrange(store.k.staged(d.runId, d.partition), 0, -1, "WITHSCORES");
  // output.catalog: the partitions written are queued for registration by the commit script itself.
  const registration = jc.output.catalog
    ? registrationOf(jc, d.runId, d.partition, await ctx.redis.hvals(store.k.outputs(d.runId, d.partition)))
    : undefined;
  let version: number;
  let again: boolean;
  try {
    const c = await store.commitPartition({
      runId: d.runId,
      partition: d.partition,
      bandMs: jc.bookmark.maxBand * 1000,
      maxFilesInBand: jc.bookmark.maxFilesInBand,
      historySize: jc.bookmark.historySize,
      entry: { runId: d.runId, job: d.job, mode: "enable", files: staged.length / 2, at: new Date().toISOString() },
      epoch: rec.epoch ?? "0",
      keepMode: (rec.keepMode ?? "") as "" | "lexical" | "full" | "events",
      plannedEdge: d.plannedEdge,
      registration,
    });
    version = c.version;
    again = c.again;
    if (c.again) log.info("partition was committed already (step retried)");
  } catch (err) {
    if (err instanceof RunLostError) return { ...base, state: "FAILED", error: err.message };
    throw err;
  }
  // A retried step writes the manifest again (its first execution may have died before); a stale
  // duplicate after the run finished finds the outputs list gone and leaves the manifest as it is.
  const key = manifestKey(d.runId, d.partition);
  if (again && (await ctx.redis.exists(store.k.outputs(d.runId, d.partition))) === 0)
    return { ...base, state: "COMMITTED", version, manifest: key };
  const manifest = await writeManifest(ctx, store, d, staged, version);
  return { ...base, state: "COMMITTED", version, manifest };
}

/** How long the commit step waits for its own registration attempt before it goes on without it. */
export const REGISTER_NOW_WAIT_MS = 2000;

/** The commit steps' registration attempts still under way in this process. */
const registering = new Set<Promise<void>>();

/**
 * The commit step's own attempt at registering what its partition wrote. The registration is
 * queued already (by the commit script): the step waits for the attempt at most
 * REGISTER_NOW_WAIT_MS, so that a slow Glue holds neither the next partition nor the run's end;
 * an attempt that takes longer goes on in the background (its claim keeps the workers'
 * registrars off it), and whatever fails stays queued for them.
 */
async function registerNow(ctx: StepContext, d: CommitData, log: StepContext["log"]): Promise<void> {
  const attempt = (async () => {
    try {
      const { CatalogRegistrar } = await import("../catalog/register.js");
      await new CatalogRegistrar({ redis: ctx.redis, cfg: ctx.cfg, job: d.job, log, maxAttempts: 2 }).registerNow(d.runId, d.partition);
    } catch (err) {
      log.warn("catalog registration will be retried by the workers", { reason: (err as Error).message });
    }
  })();
  registering.add(attempt);
  void attempt.finally(() => registering.delete(attempt));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([attempt, new Promise<void>((r) => (timer = setTimeout(r, REGISTER_NOW_WAIT_MS)))]);
  clearTimeout(timer);
}

/**
 * Waits (at most `maxMs`) for the registration attempts still under way in this process, so that
 * a closing worker does not cut them off; one cut off is claimed for a minute, then retried.
 */
export async function settleRegistrations(maxMs: number): Promise<void> {
  if (registering.size === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(registering), new Promise<void>((r) => (timer = setTimeout(r, maxMs)))]);
  clearTimeout(timer);
}

/** Writes the partition's manifest (after its commit: a manifest names committed output only). */
async function writeManifest(ctx: StepContext, store: BookmarkStore, d: CommitData, staged: string[], version: number): Promise<string> {
  const jc = ctx.cfg.jobs[d.job]!;
  const outputs = await ctx.redis.hgetall(store.k.outputs(d.runId, d.partition));
  const lm = new Map<string, number>();
  for (let i = 0; i < staged.length; i += 2) lm.set(staged[i]!, Number(staged[i + 1]));
  const files = Object.keys(outputs)
    .sort()
    .map((input) => ({ input, lastModified: lm.get(input) ?? null, output: outputs[input] }));
  const body = JSON.stringify(
    {
      format: 1,
      job: d.job,
      runId: d.runId,
      partition: d.partition,
      bookmarkVersion: version,
      committedAt: new Date().toISOString(),
      files,
    },
    null,
    1,
  );
  const key = manifestKey(d.runId, d.partition);
  const sink = await openSink(jc.output.path, ctx.cfg.s3, jc.output.s3);
  const w = await sink.create(key, "application/json", { internal: true });
  await new Promise<void>((resolve, reject) => w.stream.end(body, (err?: Error | null) => (err ? reject(err) : resolve())));
  await w.commit();
  return key;
}
