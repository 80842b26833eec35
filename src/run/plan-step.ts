import { DelayedError, type Job } from "bullmq";
import { describeBound, resolveBound, type Bound, type BoundOptions, type BoundSource } from "../config/bounds.js";
import type { CatalogListing, ResolvedCatalogSource } from "../catalog/catalog-source.js";
import type { CatalogLocation } from "../catalog/location.js";
import { catalogWhere } from "../catalog/where.js";
import type { BookmarkMode, TrancheConfig } from "../config/schema.js";
import { ConfigError, TrancheError } from "../errors.js";
import { JobError } from "../failures.js";
import { jobFingerprint } from "../config/fingerprint.js";
import type { Logger } from "../log.js";
import { backlogBytes, backlogFiles, backlogOldestAge, JOB_LABEL, lexicalMissed } from "../metrics/registry.js";
import { BookmarkStore } from "../bookmark/store.js";
import { groupByPartition, splitIntoBatches, type PlannedFile } from "../planner/batches.js";
import { planRun, type Plan } from "../planner/plan.js";
import type { StepJobData } from "../queue/batch-job.js";
import { findOutputCollision } from "../sink/output-name.js";
import { selectEvents, settleAfterLease, type EventPlan } from "../events/select.js";
import { enqueueRun, type StoredCatalog, type StoredPlan } from "./enqueue-step.js";
import { reprocessSelection } from "./reprocess.js";
import { finishRun } from "./finish-step.js";
import { recordFullListing, recordListing, runListing } from "./listing-step.js";
import { selectionRule } from "./selection.js";
import { slotTtlMs } from "./start-run.js";
import type { StepContext } from "./step-context.js";
import { TERMINAL } from "./states.js";

/** What planning needs to know of the job and this process. */
interface PlanInputs {
  cfg: TrancheConfig;
  job: string;
  log: Logger;
  onListed?(listed: number): void;
  /** The processor's own output names of some keys (when it has an `outputName`): the plan is refused when two inputs share one. */
  outputNames?(keys: string[]): Promise<(string | null)[]>;
}

/**
 * Errors that mean the run could not start: bad configuration, an unreachable or refusing source
 * (typed job failures), a worker whose configuration differs from the starter's. The run ends
 * ERROR at once; other errors (a Redis hiccup) are retried.
 */
function cannotStart(err: unknown): boolean {
  return (err instanceof TrancheError && (err.exitCode === 2 || err.exitCode === 4)) || err instanceof JobError;
}

/**
 * The plan step of a run (docs/runs.md): waits for a slot when the run is WAITING, lists and
 * selects within the bound, stores the selection, leases it, stores the plan, and enqueues the
 * run's flow. Every stage is stored before the next, so a retry after a crash resumes: a stored
 * selection is leased again (a run's own leases are its to take again), a stored plan is enqueued
 * again (the flow's ids are deterministic). A run that takes nothing finishes here.
 */
export async function planStepJob(ctx: StepContext, job: Job<StepJobData>, token?: string): Promise<string> {
  const { runId, job: jobName } = job.data;
  const jc = ctx.cfg.jobs[jobName]!;
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, jobName);
  const runKey = store.k.run(runId);
  const log = ctx.log.child({ job: jobName, runId });
  let rec = await ctx.runs.get(runId);
  if (!rec) return "gone";
  if (TERMINAL.has(rec.state)) {
    // Ended by a step whose worker died before recording the end: record it now.
    if (rec.finished !== "1") await finishRun(ctx, jobName, runId);
    return rec.state;
  }
  if (rec.state === "STOPPING") {
    await finishRun(ctx, jobName, runId);
    return "stopped";
  }
  if (rec.state === "WAITING") {
    const slot = await store.slots.acquire(runId, jc.maxConcurrentRuns, slotTtlMs(jc.timeout));
    if (!slot.ok) {
      await job.moveToDelayed(Date.now() + 1000 + Math.floor(Math.random() * 1000), token);
      throw new DelayedError();
    }
    const m = await ctx.runs.move(runId, "STARTING");
    if (!m.moved) {
      await store.slots.release(runId);
      return m.from ?? "gone";
    }
    rec = (await ctx.runs.get(runId))!;
  }
  if (!rec.startedAt) await ctx.redis.hset(runKey, "startedAt", Date.now());
  // A reprocess run selects no files through the bookmark and commits nothing (mode disable's rules).
  const mode = (rec.mode === "reprocess" ? "disable" : rec.mode || jc.bookmark.mode) as BookmarkMode;
  const perRun = rec.mode !== "" || rec.from !== "" || rec.to !== "";
  const [from, to] = perRun ? [rec.from || undefined, rec.to || undefined] : [jc.bookmark.from, jc.bookmark.to];
  const override = rec.bound ? (JSON.parse(rec.bound) as BoundOptions) : undefined;
  const bandMs = jc.bookmark.maxBand * 1000;
  const outputNames = ctx.pool
    ? (keys: string[]) => ctx.pool!.outputNames({ processor: jc.processor, processorOptions: jc.processorOptions, keys })
    : undefined;
  let stored = await readPlan(ctx, store, runId);
  try {
    // The run is executed as the starter's configuration says: a worker with another one refuses it.
    if (rec.fingerprint && rec.fingerprint !== jobFingerprint(ctx.cfg, jc))
      throw new JobError(
        "E_CONFIG_MISMATCH",
        `this worker's configuration of job "${jobName}" differs from the one that started run ${runId} (fingerprint ${jobFingerprint(ctx.cfg, jc)} vs ${rec.fingerprint}); deploy the same configuration to every worker`,
        { retryable: false },
      );
    if (!stored || stored.stage === "selected") {
      // A catalog source: the table is read once per run, here (GetTable); what was used goes on
      // the stored plan, and batches carry their partitions' locations: workers never ask the catalog.
      const catalog =
        !stored && jc.source.catalog ? await (await import("../catalog/catalog-source.js")).resolveCatalogSource(ctx.cfg, jc) : undefined;
      const { bound, source: boundSource } = resolveBound({
        override,
        job: jc.source,
        catalog: catalog?.options.bounds,
        catalogWhere: catalog && catalogWhere(catalog.table),
      });
      if (mode === "disable" && !rec.reprocess)
        log.warn("bookmark mode is disable: every run selects the same oldest files", { bound: describeBound(bound) });
      const unlock = mode === "enable" ? await store.slots.lockPlanning(runId, { log }) : async () => undefined;
      try {
        // Another execution of this step (its lock on the BullMQ job had expired) may have planned
        // while this one waited for the planning lock: resume from what it stored.
        stored = await readPlan(ctx, store, runId);
        const inputs: PlanInputs = {
          cfg: ctx.cfg,
          job: jobName,
          log,
          outputNames,
          onListed: throttle((listed) => void ctx.redis.hset(runKey, "listed", listed).catch(() => undefined), 1000),
        };
        let plan: PlanStep;
        if (stored?.stage === "leased") plan = fromStored(stored);
        else if (!stored) {
          plan = rec.reprocess
            ? await reprocessSelection(ctx, store, rec, runId, log)
            : rec.trigger === "events"
              ? eventPlanStep(await selectEvents(ctx, store, { job: jobName, runId, mode, bound, bandMs, log }))
              : await listAndSelect(inputs, store, { runId, mode, bound, boundSource, bandMs, from, to, catalog });
          stored = toStored("selected", plan, mode, bound, boundSource);
          await writePlan(ctx, store, runId, stored);
        } else {
          plan = fromStored(stored);
          log.info("plan step resumed: leasing the stored selection again");
        }
        const selected = stored.stage === "leased" ? stored.selected : await leaseStep(inputs, store, plan, { runId, mode, bandMs, log });
        // An event-fed run keeps the events of the files it leased; the others are settled or go back in line.
        if (rec.trigger === "events") await settleAfterLease(ctx, jobName, runId, selected, stored.eventsDone ?? []);
        // A complete listing moves the watermarks over what it found all done (event-fed runs' files).
        if (plan.coveredUpTo?.size && mode === "enable") await store.advanceWatermarks(plan.coveredUpTo, rec.epoch ?? "0", bandMs);
        if (selected.length === 0 && plan.keepMode === "full") await store.advanceKeep(plan.keepEdges);
        if (selected.length === 0 && plan.fullListing) await recordFullListing(store);
        stored = { ...stored, stage: "leased", selected, files: selected.length, bytes: selected.reduce((s, f) => s + f.size, 0) };
        await writePlan(ctx, store, runId, stored);
      } finally {
        await unlock();
      }
    }
  } catch (err) {
    const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    if (cannotStart(err) || last) {
      log.error("run could not start", { reason: (err as Error).message });
      const e = err as Error & { code?: string; exitCode?: number };
      await ctx.redis.hset(runKey, {
        error: e.message,
        errorCode: e.code ?? "E_RUN_ERROR",
        errorExit: e.exitCode ?? 1,
        errorName: e.name,
        ...(err instanceof JobError ? { jobFailure: `${e.code}: ${e.message}` } : {}),
      });
      await ctx.runs.move(runId, "ERROR");
      await finishRun(ctx, jobName, runId);
      return "ERROR";
    }
    throw err;
  }
  const batches = splitIntoBatches(stored.selected, jc.batchFiles);
  await ctx.redis.hset(runKey, {
    planned: 1,
    batches: batches.length,
    partitions: new Set(batches.map((b) => b.partition)).size,
    filesPlanned: stored.files,
    bytesPlanned: stored.bytes,
    listed: stored.listed,
    keepMode: stored.keepMode,
    // Kept with the run record (the stored plan goes when the run ends): where the bound came from, the catalog table as used.
    ...(stored.boundSource ? { boundSource: stored.boundSource } : {}),
    ...(stored.catalog ? { catalog: JSON.stringify(stored.catalog) } : {}),
  });
  const moved = await ctx.runs.move(runId, "RUNNING", "runningAt");
  if (!moved.moved && moved.from !== "RUNNING") {
    // Stopped or timed out while planning: its leases go to the next run.
    await finishRun(ctx, jobName, runId);
    return moved.from ?? "gone";
  }
  if (batches.length === 0) {
    await finishRun(ctx, jobName, runId);
    return "empty";
  }
  await enqueueRun(ctx, jobName, runId, stored, batches);
  return "enqueued";
}

function throttle(f: (n: number) => void, ms: number): (n: number) => void {
  let last = 0;
  return (n) => {
    const now = Date.now();
    if (now - last >= ms) {
      last = now;
      f(n);
    }
  };
}

async function readPlan(ctx: StepContext, store: BookmarkStore, runId: string): Promise<StoredPlan | null> {
  const raw = await ctx.redis.get(store.k.runPlan(runId));
  return raw ? (JSON.parse(raw) as StoredPlan) : null;
}

async function writePlan(ctx: StepContext, store: BookmarkStore, runId: string, p: StoredPlan): Promise<void> {
  await ctx.redis.set(store.k.runPlan(runId), JSON.stringify(p), "EX", 7 * 24 * 3600);
}

function toStored(stage: StoredPlan["stage"], plan: PlanStep, mode: BookmarkMode, bound: Bound, boundSource: BoundSource): StoredPlan {
  return {
    stage,
    mode,
    bound: describeBound(bound),
    boundSource,
    ...(plan.catalog ? { catalog: plan.catalog } : {}),
    ...(plan.locations ? { locations: plan.locations } : {}),
    selected: plan.selected,
    partitionValues: Object.fromEntries(plan.partitionValues),
    keepMode: plan.keepMode,
    leaseKeep: plan.leaseKeep,
    keepEdges: [...plan.keepEdges].filter(([, e]) => Number.isFinite(e)),
    ...(plan.eventsDone ? { eventsDone: plan.eventsDone } : {}),
    fullListing: plan.fullListing,
    listed: plan.listed,
    files: plan.files,
    bytes: plan.bytes,
    remainingFiles: plan.remainingFiles,
    remainingBytes: plan.remainingBytes,
  };
}

function fromStored(s: StoredPlan): PlanStep {
  return {
    selected: s.selected,
    files: s.files,
    bytes: s.bytes,
    remainingFiles: s.remainingFiles,
    remainingBytes: s.remainingBytes,
    oldestUnprocessed: null,
    listed: s.listed,
    excluded: 0,
    partitionValues: new Map(Object.entries(s.partitionValues)),
    unseenStale: new Map(),
    keepMode: s.keepMode,
    leaseKeep: s.leaseKeep,
    keepEdges: new Map(s.keepEdges),
    fullListing: s.fullListing,
    eventsDone: s.eventsDone,
    catalog: s.catalog,
    locations: s.locations,
  };
}

/** An event-fed run's selection as the plan step hands it on (no listing: no stale leases, no band keeping). */
function eventPlanStep(p: EventPlan): PlanStep {
  return { ...p, unseenStale: new Map(), keepMode: "events", leaseKeep: false, keepEdges: new Map(), fullListing: false };
}

/** What the plan step hands on: the plan, stale leases to drop, and a lexical job's band keeping. */
export type PlanStep = Plan & {
  unseenStale: Map<string, Map<string, string>>;
  /** "events": an event-fed run (its commit moves no cursor, see commit-partition.lua). */
  keepMode: "" | "lexical" | "full" | "events";
  /** An event-fed run: object keys of its events already settled (gone or done). */
  eventsDone?: string[];
  /**
   * A complete listing: per partition, the time up to which every listed file is done or leased
   * (see advance-watermark-6.lua).
   */
  coveredUpTo?: Map<string, number>;
  /** Leases may go down to 'keep' (the full listing of a lexical job). */
  leaseKeep: boolean;
  /** Band edges as planned, per partition seen (a complete full listing of a lexical job). */
  keepEdges: Map<string, number>;
  /** A complete full listing (see recordFullListing). */
  fullListing: boolean;
  /** Listing pages read (one LIST request each on S3), and the listing strategy in force. */
  pages?: number;
  listingStrategy?: string;
  /** A catalog source: the table as this run used it. */
  catalog?: StoredCatalog;
  /** A catalog source: where each selected partition's files are read. */
  locations?: Record<string, CatalogLocation>;
};

/** Counts the pages of a listing as they are read. */
async function* counted<T>(pages: AsyncIterable<T>, onPage: () => void): AsyncIterable<T> {
  for await (const p of pages) {
    onPage();
    yield p;
  }
}

/** Lists the source page by page and selects the oldest unprocessed files within the bound. */
export async function listAndSelect(
  o: PlanInputs,
  store: BookmarkStore,
  r: {
    runId: string;
    mode: BookmarkMode;
    bound: Bound;
    /** Where the bound came from (recorded with the listing's figures for `tranche status`). */
    boundSource?: BoundSource;
    bandMs: number;
    from?: string;
    to?: string;
    /** A plan preview: nothing is recorded (listing figures, metrics), nothing leased by the caller. */
    preview?: boolean;
    /** A catalog source as the caller resolved it (else resolved by the listing). */
    catalog?: ResolvedCatalogSource;
  },
): Promise<PlanStep> {
  const job = o.cfg.jobs[o.job]!;
  const unseenStale = new Map<string, Map<string, string>>();
  const listing = await runListing(o.cfg, job, store, {
    enableMode: r.mode === "enable" && r.from === undefined,
    bandMs: r.bandMs,
    catalog: r.catalog,
    log: o.log,
  });
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
  let pageCount = 0;
  // A complete listing (not lexical) in mode enable: per partition, the newest file found done and
  // the oldest found new, so the watermark can move over what event-fed runs committed.
  // Only jobs fed by events have files above their watermark to absorb.
  const covering =
    job.triggers?.events !== undefined &&
    !r.preview &&
    r.mode === "enable" &&
    r.from === undefined &&
    !lexicalJob &&
    listing.choice.strategy !== "lexical";
  const maxDone = new Map<string, number>();
  const minNew = new Map<string, number>();
  const plan = await planRun({
    source: listing.source,
    pages: counted(listing.pages, () => pageCount++),
    partitionKeys: listing.partitionKeys,
    exclusions: listing.exclusions,
    bound: r.bound,
    newIn: async (files) => {
      const fresh = await rule(files);
      if (covering)
        files.forEach((f, i) => {
          const m = fresh[i] ? minNew : maxDone;
          const cur = m.get(f.partition);
          if (cur === undefined || (fresh[i] ? f.lastModified < cur : f.lastModified > cur)) m.set(f.partition, f.lastModified);
        });
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
    onPage: (listed) => o.onListed?.(listed),
  });
  const labels = { [JOB_LABEL]: o.job };
  if (missed > 0 && !r.preview) {
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
  const catalog = listing.catalog && storedCatalog(listing.catalog.resolved, listing.catalog.listing, job.source.partitionFilter);
  if (!r.preview)
    await recordListing(store, r.runId, listing.choice, plan, {
      bound: describeBound(r.bound),
      boundSource: r.boundSource ?? "",
      catalogTable: catalog ? `${catalog.database}.${catalog.table}` : "",
    });
  // A stale lease on a file the listing did not show means "deleted" only where the listing was
  // complete: not before a lexical cursor, nor outside a partition filter.
  for (const stale of unseenStale.values()) for (const k of [...stale.keys()]) if (!listing.covers(k)) stale.delete(k);
  if (!r.preview) {
    backlogFiles.set(labels, plan.remainingFiles);
    backlogBytes.set(labels, plan.remainingBytes);
    backlogOldestAge.set(labels, plan.oldestUnprocessed === null ? 0 : (Date.now() - plan.oldestUnprocessed) / 1000);
  }
  o.log[r.preview ? "debug" : "info"]("planned", {
    job: o.job,
    runId: r.runId,
    bound: describeBound(r.bound),
    mode: r.mode,
    listing: listing.choice.strategy,
    listingReason: listing.choice.reason,
    ...(listing.choice.startAfter !== undefined ? { startAfter: listing.choice.startAfter } : {}),
    ...(catalog ? { catalogTable: `${catalog.database}.${catalog.table}`, partitionsListed: catalog.partitionsListed } : {}),
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
  return {
    ...plan,
    unseenStale,
    keepMode,
    leaseKeep: keep,
    keepEdges,
    fullListing,
    pages: pageCount,
    listingStrategy: listing.choice.strategy,
    ...(catalog ? { catalog, locations: selectedLocations(plan.selected, listing.catalog!.listing.locations) } : {}),
    coveredUpTo: covering
      ? new Map([...maxDone].map(([p, t]) => [p, Math.min(t, (minNew.get(p) ?? Number.POSITIVE_INFINITY) - 1)]))
      : undefined,
  };
}

/** What a run records of the catalog table it used (on its stored plan; `tranche plan` shows it). */
function storedCatalog(resolved: ResolvedCatalogSource, listing: CatalogListing, filter: string | undefined): StoredCatalog {
  const { table, options } = resolved;
  const p = table.parameters;
  const used = ["boundedFiles", "boundedSize", "exclusions", "recurse", "classification", "compressionType"].filter(
    (k) => p[k] !== undefined,
  );
  return {
    database: table.database,
    table: table.table,
    location: table.location,
    partitionKeys: table.partitionKeys,
    parameters: Object.fromEntries(used.map((k) => [k, p[k]!])),
    ...(options.classification ? { classification: options.classification } : {}),
    ...(filter ? { expression: filter } : {}),
    partitionsListed: listing.stats.partitions,
    glueRequests: listing.stats.glueRequests,
  };
}

/** The read locations of the selected files' partitions. */
function selectedLocations(selected: readonly PlannedFile[], all: ReadonlyMap<string, CatalogLocation>): Record<string, CatalogLocation> {
  const out: Record<string, CatalogLocation> = {};
  for (const f of selected) if (!(f.partition in out) && all.has(f.partition)) out[f.partition] = all.get(f.partition)!;
  return out;
}

/**
 * Refuses a selection in which the processor's own `outputName` maps two inputs to one output,
 * then leases it (mode enable); a file another live run holds is left to it.
 */
async function leaseStep(
  o: PlanInputs,
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
