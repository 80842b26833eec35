import { Queue } from "bullmq";
import type { Redis, RedisOptions } from "ioredis";
import { describeBound, resolveBound, type BoundOptions } from "../config/bounds.js";
import type { BookmarkMode, JobConfig, TrancheConfig } from "../config/schema.js";
import { ConcurrentRunsExceededError, ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import { backlogBytes, backlogFiles, backlogOldestAge, runsTotal } from "../metrics/registry.js";
import { BookmarkStore, RUN_TTL_S, type PartitionState } from "../bookmark/store.js";
import { classify, covers } from "../bookmark/rules.js";
import { groupByPartition, splitIntoBatches } from "../planner/batches.js";
import { planRun } from "../planner/plan.js";
import { batchId, queueName, type BatchJobData } from "../queue/batch-job.js";
import { markBatchFailed } from "../queue/batch-worker.js";
import { openSource } from "../source/open.js";
import { newRunId } from "./run-id.js";

export type RunStatus = "succeeded" | "failed" | "empty";

/**
 * Which listed files a run takes, per partition. `enable` and `pause`: what the bookmark does not
 * cover (and no other live run holds). `disable`: everything. `pause` with `from`/`to`: what the
 * state after run `to` covers and the state after run `from` does not.
 */
export async function selectionRule(
  store: BookmarkStore,
  mode: BookmarkMode,
  runId: string,
  bandMs: number,
  from: string | undefined,
  to: string | undefined,
  /** Filled with each partition's leases of ended runs on files the listing did not show (yet). */
  unseenStale: Map<string, Map<string, string>>,
): Promise<(partition: string) => Promise<(f: { key: string; lastModified: number }) => boolean>> {
  if ((from === undefined) !== (to === undefined)) {
    throw new ConfigError(`--from and --to go together: give both run ids or neither (got ${from ? `--from ${from}` : `--to ${to}`})`);
  }
  if (from !== undefined && mode !== "pause") {
    throw new ConfigError(`--from/--to need bookmark mode pause (got ${mode}); add --bookmark pause`);
  }
  if (mode === "disable") return async () => () => true;
  if (from !== undefined && to !== undefined) {
    const r = await store.rangeStates(from, to);
    const changed = new Set(r.partitions);
    const asView = (v: PartitionState | undefined) => (v ? { wm: v.wm, floor: v.floor, band: new Map(v.band) } : undefined);
    return async (p) => {
      if (!changed.has(p)) return () => false;
      const a = asView(r.a[p]);
      const b = asView(r.b[p]);
      return (f) => covers(b, bandMs, f) && !covers(a, bandMs, f);
    };
  }
  return async (p) => {
    const view = await store.loadView(p, bandMs);
    const unseen = new Map(view.staleLeases);
    if (unseen.size) unseenStale.set(p, unseen);
    return (f) => {
      unseen.delete(f.key);
      return classify(view, f, runId) === "new";
    };
  };
}

/** One run's outcome, as printed by `tranche run --json` and kept in the job's history. */
export interface RunSummary {
  runId: string;
  job: string;
  status: RunStatus;
  attempt: number;
  previousRunId: string | null;
  mode: BookmarkMode;
  bound: string;
  /** Files (and their bytes) this run processed and wrote. */
  files: number;
  bytes: number;
  /** Whether the run moved the bookmark (mode enable and every batch succeeded). */
  committed: boolean;
  /** The bookmark version after the commit, or null. */
  version: number | null;
  batches: number;
  batchesFailed: number;
  fileFailures: number;
  badRecords: number;
  remainingFiles: number;
  remainingBytes: number;
  listed: number;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  errors: string[];
}

export interface RunProgress {
  phase: "listing" | "processing";
  listed: number;
  files: number;
  bytes: number;
  filesDone: number;
  bytesDone: number;
}

export interface RunOptions {
  cfg: TrancheConfig;
  job: string;
  redis: Redis;
  /** Connection options for the BullMQ queue. */
  bullConnection: RedisOptions;
  log: Logger;
  override?: BoundOptions;
  mode?: BookmarkMode;
  /** With mode `pause`: replay what arrived after run `from` up to run `to` (both or neither). */
  from?: string;
  to?: string;
  onProgress?(p: RunProgress): void;
  /** Poll interval while waiting for batches. Default 200 ms. */
  pollMs?: number;
}

const SLOT_TTL_MS = 30_000;

/**
 * One bounded run: takes a run slot, plans (streamed listing × bookmark), leases the selected
 * files, enqueues one or more batches per partition with deterministic ids, waits until every
 * batch has committed or finally failed, and records the run in the job's history. Batches are run
 * by whatever workers consume the job's queue (the CLI's `run` starts one in-process).
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

  const slot = await store.acquireRun(runId, SLOT_TTL_MS, job.maxConcurrentRuns);
  if (!slot.ok) throw new ConcurrentRunsExceededError(o.job, job.maxConcurrentRuns, slot.running);
  const epoch = await store.epoch();
  const runKey = store.k.run(runId);
  const heartbeat = setInterval(
    () =>
      void store
        .heartbeatRun(runId, SLOT_TTL_MS)
        .then(async (held) => {
          if (!held) log.error("run lost its slot (presumed dead by others); it will not commit");
          await o.redis.expire(runKey, RUN_TTL_S);
        })
        .catch(() => undefined),
    SLOT_TTL_MS / 3,
  );
  const started = Date.now();
  const previous = await o.redis.lindex(store.k.history, 0);
  const previousRunId = previous ? (JSON.parse(previous) as RunSummary).runId : null;
  const queue = new Queue<BatchJobData>(queueName(o.job), { connection: o.bullConnection, prefix: o.cfg.prefix });
  queue.on("error", (err) => log.warn("queue connection error", { reason: err.message }));
  let unlockPlanning = async () => undefined as void;
  try {
    await o.redis.multi().hset(runKey, { job: o.job, status: "planning", startedAt: started, mode }).expire(runKey, RUN_TTL_S).exec();
    const bandMs = job.bookmark.maxBand * 1000;
    if (mode === "enable") unlockPlanning = await store.lockPlanning(runId);
    const unseenStale = new Map<string, Map<string, string>>();
    const plan = await planRun({
      source: await openSource(job.source.path, o.cfg.s3, { recurse: job.source.recurse }),
      partitionKeys: job.source.partitionKeys,
      exclusions: job.source.exclusions,
      bound,
      isNew: await selectionRule(store, mode, runId, bandMs, from, to, unseenStale),
      onPage: (listed) => o.onProgress?.({ phase: "listing", listed, files: 0, bytes: 0, filesDone: 0, bytesDone: 0 }),
    });
    // Leases of failed runs on files deleted since then would hold the watermark forever.
    if (mode === "enable") for (const [p, stale] of unseenStale) if (stale.size) await store.dropStaleLeases(p, stale);
    backlogFiles.set({ tranche_job: o.job }, plan.remainingFiles);
    backlogBytes.set({ tranche_job: o.job }, plan.remainingBytes);
    backlogOldestAge.set({ tranche_job: o.job }, plan.oldestUnprocessed === null ? 0 : (Date.now() - plan.oldestUnprocessed) / 1000);
    log.info("planned", {
      bound: describeBound(bound),
      mode,
      listed: plan.listed,
      excluded: plan.excluded,
      files: plan.files,
      bytes: plan.bytes,
      remainingFiles: plan.remainingFiles,
    });

    // Lease the selection; a file another live run holds is left to it.
    let selected = plan.selected;
    if (mode === "enable" && selected.length) {
      const leased = new Set<string>();
      for (const [p, files] of groupByPartition(selected))
        for (const k of await store.lease(p, runId, files, bandMs)) leased.add(`${p}\u0000${k}`);
      selected = selected.filter((f) => leased.has(`${f.partition}\u0000${f.key}`));
    }
    await unlockPlanning();
    const batches = splitIntoBatches(selected, job.batchFiles);
    const files = selected.length;
    const bytes = selected.reduce((s, f) => s + f.size, 0);
    await o.redis.hset(runKey, { status: "running", batches: batches.length, filesPlanned: files, bytesPlanned: bytes });

    const ids = batches.map((b) => batchId(o.job, runId, b.partition, b.index));
    if (batches.length) {
      await queue.addBulk(
        batches.map((b, i) => ({
          name: "batch",
          data: {
            job: o.job,
            runId,
            prefix: o.cfg.prefix,
            partition: b.partition,
            partitionValues: plan.partitionValues.get(b.partition) ?? {},
            index: b.index,
            files: b.files.map((f) => ({ key: f.key, size: f.size, lastModified: f.lastModified, etag: f.etag })),
            spec: {
              sourceUri: job.source.path,
              outputUri: job.output.path,
              processor: job.processor,
              processorOptions: job.processorOptions,
              s3: o.cfg.s3,
              deadLetterAfterRuns: job.bookmark.deadLetterAfterRuns,
              updateState: mode === "enable",
            },
          },
          opts: {
            jobId: ids[i],
            attempts: job.attempts,
            backoff: { type: "exponential", delay: job.backoffMs },
            removeOnComplete: { age: 3600, count: 1000 },
            removeOnFail: { age: 7 * 24 * 3600, count: 5000 },
          },
        })),
      );
    }

    // Wait for every batch to commit or fail for good.
    const pollMs = o.pollMs ?? 200;
    let lastStateCheck = Date.now();
    const COUNTERS = [
      "batchesOk",
      "batchesFailed",
      "progressFiles",
      "progressBytes",
      "filesStaged",
      "bytesStaged",
      "fileFailures",
      "badRecords",
    ] as const;
    let h: Record<string, string> = {};
    for (;;) {
      const values = await o.redis.hmget(runKey, ...COUNTERS);
      h = Object.fromEntries(COUNTERS.map((c, i) => [c, values[i] ?? "0"]));
      const finished = Number(h.batchesOk ?? 0) + Number(h.batchesFailed ?? 0);
      o.onProgress?.({
        phase: "processing",
        listed: plan.listed,
        files,
        bytes,
        filesDone: Number(h.progressFiles ?? 0),
        bytesDone: Number(h.progressBytes ?? 0),
      });
      if (finished >= batches.length) break;
      if (Date.now() - lastStateCheck > 2000) {
        lastStateCheck = Date.now();
        // Ground truth from BullMQ, in case the worker that failed a batch died before recording it.
        const done = ids.length ? await o.redis.hmget(runKey, ...ids.map((id) => `batch:${id}`)) : [];
        for (const [i, id] of ids.entries()) {
          if (done[i]) continue;
          const state = await queue.getJobState(id);
          if (state === "failed") {
            const j = await queue.getJob(id);
            await markBatchFailed(o.redis, o.cfg.prefix, runId, id, j?.failedReason ?? "failed");
          } else if (state === "unknown") {
            await markBatchFailed(o.redis, o.cfg.prefix, runId, id, "batch vanished from the queue");
          }
        }
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
    const batchesFailed = Number(h.batchesFailed ?? 0);
    const status: RunStatus = batches.length === 0 ? "empty" : batchesFailed > 0 ? "failed" : "succeeded";
    const errors = await o.redis.lrange(store.k.runErrors(runId), 0, 9);
    const written = Number(h.filesStaged ?? 0);
    const writtenBytes = Number(h.bytesStaged ?? 0);
    const commits = mode === "enable" && status === "succeeded";
    const ended = Date.now();
    const summary: RunSummary = {
      runId,
      job: o.job,
      status,
      attempt: 0,
      previousRunId,
      mode,
      bound: describeBound(bound),
      files: written,
      bytes: writtenBytes,
      committed: commits,
      version: null,
      batches: batches.length,
      batchesFailed,
      fileFailures: Number(h.fileFailures ?? 0),
      badRecords: Number(h.badRecords ?? 0),
      // Without a commit nothing left the backlog.
      remainingFiles: plan.remainingFiles + (commits ? 0 : plan.files),
      remainingBytes: plan.remainingBytes + (commits ? 0 : plan.bytes),
      listed: plan.listed,
      startedAt: new Date(started).toISOString(),
      endedAt: new Date(ended).toISOString(),
      durationMs: ended - started,
      errors,
    };
    if (mode === "pause" || mode === "disable") {
      summary.remainingFiles = plan.remainingFiles;
      summary.remainingBytes = plan.remainingBytes;
    }
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
      });
      summary.version = version;
    } else {
      await store.recordRun(summary, job.bookmark.historySize);
    }
    await o.redis.hset(runKey, { status, endedAt: ended });
    runsTotal.inc({ tranche_job: o.job, status });
    log.info("run finished", {
      status,
      files: summary.files,
      bytes: summary.bytes,
      remainingFiles: summary.remainingFiles,
      durationMs: summary.durationMs,
    });
    return summary;
  } catch (err) {
    await o.redis.hset(runKey, { status: "failed", endedAt: Date.now(), error: String(err) }).catch(() => undefined);
    // The history shows runs that broke off too (best effort: Redis may be what failed).
    const ended = Date.now();
    await store
      .recordRun(
        {
          runId,
          job: o.job,
          status: "failed",
          attempt: 0,
          previousRunId,
          mode,
          bound: describeBound(bound),
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
    runsTotal.inc({ tranche_job: o.job, status: "failed" });
    throw err;
  } finally {
    await unlockPlanning().catch(() => undefined);
    clearInterval(heartbeat);
    await store.releaseRun(runId).catch(() => undefined);
    await queue.close();
  }
}
