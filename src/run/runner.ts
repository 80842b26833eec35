import { Queue, type ConnectionOptions } from "bullmq";
import type { Cluster, Redis } from "ioredis";
import { describeBound, resolveBound, type Bound, type BoundOptions } from "../config/bounds.js";
import { jobFingerprint } from "../config/fingerprint.js";
import type { BookmarkMode, JobConfig, TrancheConfig } from "../config/schema.js";
import { ConcurrentRunsExceededError, ConfigError, RunLostError } from "../errors.js";
import type { Logger } from "../log.js";
import { backlogBytes, backlogFiles, backlogOldestAge, JOB_LABEL, lexicalMissed, runsTotal } from "../metrics/registry.js";
import { BookmarkStore, RUN_TTL_S } from "../bookmark/store.js";
import { SLOT_TTL_MS } from "../bookmark/run-slots.js";
import { groupByPartition, splitIntoBatches, type PlannedFile } from "../planner/batches.js";
import { planRun, type Plan } from "../planner/plan.js";
import { batchId, queueName, type BatchJobData } from "../queue/batch-job.js";
import { findOutputCollision } from "../sink/output-name.js";
import { newRunId } from "./run-id.js";
import { selectionRule } from "./selection.js";
import { recordFullListing, recordListing, runListing } from "./listing-step.js";
import type { RunProgress, RunStatus, RunSummary } from "./summary.js";

export type { RunProgress, RunStatus, RunSummary } from "./summary.js";

export interface RunOptions {
  cfg: TrancheConfig;
  job: string;
  redis: Redis | Cluster;
  /** Connection for the BullMQ queue. */
  bullConnection: ConnectionOptions;
  log: Logger;
  override?: BoundOptions;
  mode?: BookmarkMode;
  /** With mode `pause`: replay what arrived after run `from` up to run `to` (both or neither). */
  from?: string;
  to?: string;
  onProgress?(p: RunProgress): void;
  /** Poll interval while waiting for batches. Default 200 ms. */
  pollMs?: number;
  /**
   * The processor's own output names of some keys, when it has an `outputName` (from
   * preflight): the plan is refused when two inputs would share one output.
   */
  outputNames?(keys: string[]): Promise<(string | null)[]>;
}

/** Counters of the run record the runner reads while it waits. */
const COUNTERS = [
  "batchesOk",
  "batchesFailed",
  "progressFiles",
  "progressBytes",
  "filesStaged",
  "bytesStaged",
  "fileFailures",
  "badRecords",
  "deadLettered",
  "gone",
  "archived",
  "jobFailure",
  "status",
] as const;
type Counters = Record<(typeof COUNTERS)[number], string>;

/**
 * One bounded run: takes a run slot, plans (streamed listing × bookmark), leases the selected
 * files, enqueues one or more batches per partition with deterministic ids, waits until every
 * batch has finished for good, and commits (or records the run without committing). Batches are
 * run by whatever workers consume the job's queue (the CLI's `run` starts one in-process).
 * It always ends: a run that loses its slot, or whose Redis lost its data, ends `lost` within one
 * heartbeat (10 s) of noticing.
 */
export async function runOnce(o: RunOptions): Promise<RunSummary> {
  const job: JobConfig = o.cfg.jobs[o.job]!;
  const mode = o.mode ?? job.bookmark.mode;
  // A per-run mode or range replaces the job's; the job's range applies only to the job's mode.
  const [from, to] =
    o.mode !== undefined || o.from !== undefined || o.to !== undefined ? [o.from, o.to] : [job.bookmark.from, job.bookmark.to];
  const { bound } = resolveBound({ override: o.override, job: job.source });
  const store = new BookmarkStore(o.redis, o.cfg.prefix, o.job);
  const runId = newRunId();
  const log = o.log.child({ job: o.job, runId });
  if (mode === "disable") log.warn("bookmark mode is disable: every run selects the same oldest files", { bound: describeBound(bound) });

  const slot = await store.slots.acquire(runId, job.maxConcurrentRuns);
  if (!slot.ok) throw new ConcurrentRunsExceededError(o.job, job.maxConcurrentRuns, slot.running);
  const epoch = await store.slots.epoch();
  const runKey = store.k.run(runId);
  // The heartbeat renews the slot by Redis' clock; once it is lost the run must not commit.
  let lost: string | undefined;
  const heartbeat = setInterval(() => {
    store.slots
      .heartbeat(runId)
      .then((held) => {
        if (!held && !lost) {
          lost = "it lost its run slot (Redis lost its data, or the run could not renew it for 15 s)";
          log.error("run lost its slot; it will not commit");
        }
      })
      .catch(() => undefined);
  }, SLOT_TTL_MS / 3);
  const started = Date.now();
  const previous = await o.redis.lindex(store.k.history, 0);
  const previousRunId = previous ? (JSON.parse(previous) as RunSummary).runId : null;
  // BullMQ's event stream keeps 10,000 events by default (~1 MB per job): 1,000 is plenty for
  // QueueEvents listeners and keeps the job's Redis footprint small.
  const queue = new Queue<BatchJobData>(queueName(o.job), {
    connection: o.bullConnection,
    prefix: o.cfg.prefix,
    streams: { events: { maxLen: 1000 } },
  });
  queue.on("error", (err) => log.warn("queue connection error", { reason: err.message }));
  let unlockPlanning = async () => undefined as void;
  let ids: string[] = [];
  const base = { runId, job: o.job, attempt: 0, previousRunId, mode, bound: describeBound(bound) };
  try {
    await o.redis.multi().hset(runKey, { job: o.job, status: "planning", startedAt: started, mode }).expire(runKey, RUN_TTL_S).exec();
    const bandMs = job.bookmark.maxBand * 1000;
    if (mode === "enable") unlockPlanning = await store.slots.lockPlanning(runId, { log });
    const plan = await planStep(o, store, { runId, mode, bound, bandMs, from, to });
    const selected = await leaseStep(o, store, plan, { runId, mode, bandMs, log });
    // A complete full listing of a lexical job that takes nothing has still checked every file
    // down to 'keep': 'keep' moves up to the edges it saw (a run that takes files does so at commit).
    if (selected.length === 0 && plan.keepMode === "full") await store.advanceKeep(plan.keepEdges);
    if (selected.length === 0 && plan.fullListing) await recordFullListing(store);
    await unlockPlanning();
    const batches = splitIntoBatches(selected, job.batchFiles);
    const files = selected.length;
    const bytes = selected.reduce((s, f) => s + f.size, 0);
    await o.redis.hset(runKey, { status: "running", batches: batches.length, filesPlanned: files, bytesPlanned: bytes });

    ids = batches.map((b) => batchId(o.job, runId, b.partition, b.index));
    if (batches.length) {
      const fingerprint = jobFingerprint(o.cfg, job);
      await queue.addBulk(
        batches.map((b, i) => ({
          name: "batch",
          data: {
            job: o.job,
            runId,
            partition: b.partition,
            partitionValues: plan.partitionValues.get(b.partition) ?? {},
            index: b.index,
            files: b.files.map((f) => ({ key: f.key, size: f.size, lastModified: f.lastModified, etag: f.etag })),
            fingerprint,
            updateState: mode === "enable",
          },
          opts: {
            jobId: ids[i],
            attempts: job.attempts,
            backoff: { type: "exponential", delay: job.backoffMs },
            // Finished batches carry their whole file list: keep few of them (the run records and
            // the history keep what a run did).
            removeOnComplete: { age: 3600, count: 20 },
            removeOnFail: { age: 7 * 24 * 3600, count: 100 },
          },
        })),
      );
    }

    const h = await waitStep(o, store, { runId, ids, queue, plan, files, bytes, isLost: () => lost });
    const batchesFailed = Number(h.batchesFailed ?? 0);
    const status: RunStatus = batches.length === 0 ? "empty" : batchesFailed > 0 ? "failed" : "succeeded";
    const [errors, deadKeys] = await Promise.all([
      o.redis.lrange(store.k.runErrors(runId), 0, 9),
      o.redis.lrange(store.k.runDead(runId), 0, -1),
    ]);
    const commits = mode === "enable" && status === "succeeded";
    const ended = Date.now();
    const summary: RunSummary = {
      ...base,
      status,
      // Staged files include the dead-lettered and archived ones, which were not processed.
      files: Number(h.filesStaged || 0) - deadKeys.length - Number(h.archived || 0),
      bytes: Number(h.bytesStaged ?? 0),
      committed: commits,
      version: null,
      batches: batches.length,
      batchesFailed,
      fileFailures: Number(h.fileFailures ?? 0),
      badRecords: Number(h.badRecords ?? 0),
      deadLettered: deadKeys.length,
      deadLetteredKeys: deadKeys,
      gone: Number(h.gone ?? 0),
      archived: Number(h.archived ?? 0),
      jobFailure: h.jobFailure || null,
      // Without a commit nothing left the backlog.
      remainingFiles: plan.remainingFiles + (commits || mode !== "enable" ? 0 : plan.files),
      remainingBytes: plan.remainingBytes + (commits || mode !== "enable" ? 0 : plan.bytes),
      listed: plan.listed,
      startedAt: new Date(started).toISOString(),
      endedAt: new Date(ended).toISOString(),
      durationMs: ended - started,
      errors,
    };
    if (commits) {
      // One atomic step: the bookmark moves from before this run to after it, and the history
      // records the state after it.
      const { version } = await store.commitRun({
        runId,
        bandMs,
        maxFilesInBand: job.bookmark.maxFilesInBand,
        historySize: job.bookmark.historySize,
        summary,
        epoch,
        keepMode: plan.keepMode,
        plannedEdges: plan.keepEdges,
      });
      summary.version = version;
      // The partitions this complete full listing saw but did not touch move their 'keep' up too.
      if (plan.keepMode === "full") await store.advanceKeep(plan.keepEdges);
      if (plan.fullListing) await recordFullListing(store);
    } else {
      await store.recordRun(summary, job.bookmark.historySize);
    }
    await o.redis.hset(runKey, { status, endedAt: ended });
    runsTotal.inc({ [JOB_LABEL]: o.job, status });
    log.info("run finished", {
      status,
      files: summary.files,
      bytes: summary.bytes,
      deadLettered: summary.deadLettered,
      remainingFiles: summary.remainingFiles,
      durationMs: summary.durationMs,
    });
    return summary;
  } catch (err) {
    const isLost = err instanceof RunLostError;
    const status: RunStatus = isLost ? "lost" : "failed";
    await o.redis.hset(runKey, { status, endedAt: Date.now(), error: String(err) }).catch(() => undefined);
    // Batches still queued would only be skipped by workers: remove them (best effort).
    await Promise.all(ids.map((id) => queue.remove(id).catch(() => 0))).catch(() => undefined);
    // The history shows runs that broke off too (best effort: Redis may be what failed).
    const ended = Date.now();
    await store
      .recordRun(
        {
          ...base,
          status,
          files: 0,
          bytes: 0,
          startedAt: new Date(started).toISOString(),
          endedAt: new Date(ended).toISOString(),
          durationMs: ended - started,
          errors: [err instanceof Error ? err.message : String(err)],
        },
        job.bookmark.historySize,
      )
      .catch(() => undefined);
    runsTotal.inc({ [JOB_LABEL]: o.job, status });
    throw err;
  } finally {
    await unlockPlanning().catch(() => undefined);
    clearInterval(heartbeat);
    await store.slots.release(runId).catch(() => undefined);
    await queue.close().catch(() => undefined);
  }
}

/** What the plan step hands on: the plan, stale leases to drop, and a lexical job's band keeping. */
type PlanStep = Plan & {
  unseenStale: Map<string, Map<string, string>>;
  keepMode: "" | "lexical" | "full";
  /** Leases may go down to 'keep' (the full listing of a lexical job). */
  leaseKeep: boolean;
  /** Band edges as planned, per partition seen (a complete full listing of a lexical job). */
  keepEdges: Map<string, number>;
  /** A complete full listing (see recordFullListing). */
  fullListing: boolean;
};

/** Lists the source page by page and selects the oldest unprocessed files within the bound. */
async function planStep(
  o: RunOptions,
  store: BookmarkStore,
  r: { runId: string; mode: BookmarkMode; bound: Bound; bandMs: number; from?: string; to?: string },
): Promise<PlanStep> {
  const job = o.cfg.jobs[o.job]!;
  const unseenStale = new Map<string, Map<string, string>>();
  const listing = await runListing(o.cfg, job, store, { enableMode: r.mode === "enable" && r.from === undefined, bandMs: r.bandMs });
  // A lexical job keeps its band from its last full listing up (docs/bookmark.md): its full
  // listing checks files down to there, so what the lexical runs missed is found, not settled.
  const lexicalJob = job.source.listing === "lexical" && r.mode === "enable" && r.from === undefined;
  const keep = lexicalJob && listing.choice.strategy === "full";
  const rule = await selectionRule(store, r.mode, r.runId, r.bandMs, r.from, r.to, unseenStale, o.log, { keep });
  // A full listing of a lexical job: new files at or before the cursor are what the lexical
  // listing missed (their keys were not written in increasing order).
  let missed = 0;
  const missedKeys: string[] = [];
  // New files below their partition's band edge (only a lexical job's full listing finds any):
  // 'keep' may move up only when the run takes all of them, else the rest would be settled.
  let belowEdge = 0;
  const edgeOf = (f: { partition: string }) => rule.edgeOf?.(f.partition) ?? Number.NEGATIVE_INFINITY;
  const cursor = listing.choice.strategy === "full" ? listing.cursor : null;
  const plan = await planRun({
    source: listing.source,
    pages: listing.pages,
    partitionKeys: job.source.partitionKeys,
    exclusions: job.source.exclusions,
    bound: r.bound,
    newIn: async (files) => {
      const fresh = await rule(files);
      if (keep) files.forEach((f, i) => fresh[i] && f.lastModified < edgeOf(f) && belowEdge++);
      if (cursor !== null)
        files.forEach((f, i) => {
          if (fresh[i] && f.key <= cursor) {
            missed++;
            if (missedKeys.length < 10) missedKeys.push(f.key);
          }
        });
      return fresh;
    },
    onPage: (listed) => o.onProgress?.({ phase: "listing", listed, files: 0, bytes: 0, filesDone: 0, bytesDone: 0 }),
  });
  const labels = { [JOB_LABEL]: o.job };
  if (missed > 0) {
    lexicalMissed.inc(labels, missed);
    o.log.warn("the full listing found unprocessed files the lexical listing skipped: their keys are not in increasing order", {
      job: o.job,
      runId: r.runId,
      missed,
      keys: missedKeys,
      cursor,
    });
  }
  const complete = !keep || plan.selected.filter((f) => f.lastModified < edgeOf(f)).length === belowEdge;
  const keepMode: "" | "lexical" | "full" = lexicalJob ? (keep && complete ? "full" : "lexical") : "";
  if (keep && !complete) {
    o.log.warn("the full listing found more missed files than this run's bound: the next run lists in full again", {
      job: o.job,
      runId: r.runId,
      belowEdge,
    });
  }
  await recordListing(store, r.runId, listing.choice, plan);
  // A stale lease on a file the listing did not show means "deleted" only where the listing was
  // complete: not before a lexical cursor, nor outside a partition filter.
  for (const stale of unseenStale.values()) for (const k of [...stale.keys()]) if (!listing.covers(k)) stale.delete(k);
  backlogFiles.set(labels, plan.remainingFiles);
  backlogBytes.set(labels, plan.remainingBytes);
  backlogOldestAge.set(labels, plan.oldestUnprocessed === null ? 0 : (Date.now() - plan.oldestUnprocessed) / 1000);
  o.log.info("planned", {
    job: o.job,
    runId: r.runId,
    bound: describeBound(r.bound),
    mode: r.mode,
    listing: listing.choice.strategy,
    listingReason: listing.choice.reason,
    ...(listing.choice.startAfter !== undefined ? { startAfter: listing.choice.startAfter } : {}),
    listed: plan.listed,
    excluded: plan.excluded,
    files: plan.files,
    bytes: plan.bytes,
    remainingFiles: plan.remainingFiles,
  });
  // A full listing of a lexical job that takes nothing still verified the band down to 'keep'.
  const keepEdges = keepMode === "full" ? (rule.edges?.() ?? new Map<string, number>()) : new Map<string, number>();
  // A full listing counts as one once its run commits or takes nothing, and only when it could
  // take every missed file (an incomplete one leaves the next run to list in full again).
  const fullListing = listing.choice.strategy !== "lexical" && complete;
  return { ...plan, unseenStale, keepMode, leaseKeep: keep, keepEdges, fullListing };
}

/**
 * Refuses a selection in which the processor's own `outputName` maps two inputs to one output,
 * then leases it (mode enable); a file another live run holds is left to it.
 */
async function leaseStep(
  o: RunOptions,
  store: BookmarkStore,
  plan: PlanStep,
  r: { runId: string; mode: BookmarkMode; bandMs: number; log: Logger },
): Promise<PlannedFile[]> {
  let selected = plan.selected;
  if (o.outputNames && selected.length) {
    const names = await o.outputNames(selected.map((f) => f.key));
    const clash = findOutputCollision(selected.flatMap((f, i) => (names[i] === null ? [] : [{ input: f.key, output: names[i]! }])));
    if (clash) {
      throw new ConfigError(
        `jobs.${o.job}.processor: its outputName maps two inputs to one output: ${JSON.stringify(clash.a)} and ${JSON.stringify(clash.b)} both become ${JSON.stringify(clash.output)}; make outputName injective (keep the whole input name)`,
      );
    }
  }
  if (r.mode !== "enable") return selected;
  // Leases of failed runs on files deleted since then would hold the watermark forever.
  for (const [p, stale] of plan.unseenStale) if (stale.size) await store.dropStaleLeases(p, stale);
  if (selected.length) {
    const leased = new Set<string>();
    for (const [p, files] of groupByPartition(selected))
      for (const k of await store.lease(p, r.runId, files, r.bandMs, { keep: plan.leaseKeep })) leased.add(`${p}\u0000${k}`);
    selected = selected.filter((f) => leased.has(`${f.partition}\u0000${f.key}`));
  }
  return selected;
}

/**
 * Waits until every batch finished for good, showing progress. Ends the run as lost when its slot
 * is gone or Redis lost its record. Every 2 s it checks BullMQ's own state of unfinished batches,
 * in case the worker that failed one died before recording it.
 */
async function waitStep(
  o: RunOptions,
  store: BookmarkStore,
  r: { runId: string; ids: string[]; queue: Queue<BatchJobData>; plan: Plan; files: number; bytes: number; isLost(): string | undefined },
): Promise<Counters> {
  const pollMs = o.pollMs ?? 200;
  const runKey = store.k.run(r.runId);
  let lastStateCheck = Date.now();
  for (;;) {
    const values = await o.redis.hmget(runKey, ...COUNTERS);
    const h = Object.fromEntries(COUNTERS.map((c, i) => [c, values[i] ?? ""])) as Counters;
    const lost =
      r.isLost() ?? (h.status === "" ? "Redis no longer holds its run record (Redis restarted without persistence?)" : undefined);
    if (lost) throw new RunLostError(o.job, r.runId, lost);
    const finished = Number(h.batchesOk || 0) + Number(h.batchesFailed || 0);
    o.onProgress?.({
      phase: "processing",
      listed: r.plan.listed,
      files: r.files,
      bytes: r.bytes,
      filesDone: Math.min(r.files, Number(h.progressFiles || 0)),
      bytesDone: Math.min(r.bytes, Number(h.progressBytes || 0)),
    });
    if (finished >= r.ids.length) return h;
    if (Date.now() - lastStateCheck > 2000) {
      lastStateCheck = Date.now();
      const done = await o.redis.hmget(runKey, ...r.ids.map((id) => `batch:${id}`));
      for (const [i, id] of r.ids.entries()) {
        if (done[i]) continue;
        const state = await r.queue.getJobState(id);
        if (state === "failed") {
          const j = await r.queue.getJob(id);
          await store.markBatchFailed(r.runId, id, j?.failedReason ?? "failed", "job");
        } else if (state === "unknown") {
          await store.markBatchFailed(r.runId, id, "batch vanished from the queue (Redis lost it?)", "job");
        }
      }
    }
    await new Promise((res) => setTimeout(res, pollMs));
  }
}
