import type { Bound } from "../config/bounds.js";
import type { BookmarkMode } from "../config/schema.js";
import type { BookmarkStore } from "../bookmark/store.js";
import type { Logger } from "../log.js";
import { mapLimit } from "../map-limit.js";
import { planRun, type Plan } from "../planner/plan.js";
import { selectionRule } from "../run/selection.js";
import type { StepContext } from "../run/step-context.js";
import { openSource } from "../source/open.js";
import { parsePartition } from "../source/partitions.js";
import type { SourceObject } from "../source/types.js";
import { EventQueue, RETRY_LATER_MS, type PendingEvent } from "./queue.js";

/** Events one run takes when the job's trigger does not say (the most Glue batches). */
const DEFAULT_BATCH = 100;
/** Object lookups (Source.stat) at once. */
const LOOKUPS = 16;

/** What an event-fed run's plan step takes, and which of its events are settled already. */
export interface EventPlan extends Plan {
  /** Object keys of events whose objects are gone or already done: dropped once the run's files are leased. */
  eventsDone: string[];
  events: number;
}

/**
 * The selection of an event-fed run (docs/events.md): it takes the job's oldest pending events
 * (at most `batchSize`), looks each object up (no listing), and selects those the bookmark does
 * not cover, oldest first within the bound, as a listing run would. Events of objects that are
 * gone or done are settled; the rest go back in line once the run's files are leased (see
 * {@link settleAfterLease}).
 */
export async function selectEvents(
  ctx: StepContext,
  store: BookmarkStore,
  r: { job: string; runId: string; mode: BookmarkMode; bound: Bound; bandMs: number; log: Logger },
): Promise<EventPlan> {
  const jc = ctx.cfg.jobs[r.job]!;
  const q = new EventQueue(ctx.redis, ctx.cfg.prefix, r.job);
  const taken = await q.take(r.runId, jc.triggers?.events?.batchSize ?? DEFAULT_BATCH);
  const ids = [...taken.values()].map((e) => e.id);
  await ctx.redis.hset(store.k.run(r.runId), { eventCount: taken.size, eventIds: JSON.stringify(ids.slice(0, 100)) });
  const source = await openSource(jc.source.path!, ctx.cfg.s3, { recurse: jc.source.recurse });
  const keys = [...taken.keys()];
  const found = await mapLimit(keys, LOOKUPS, (k) => source.stat!(k));
  const objects = found.filter((o): o is SourceObject => o !== null);
  const gone = keys.filter((_, i) => found[i] === null);
  // Objects deleted since their event: counted as a run counts files deleted after its listing (`gone`).
  if (gone.length) await ctx.redis.hset(store.k.run(r.runId), "gone", gone.length);
  // A stale lease of a file no event names is not "deleted": this run listed nothing (a throwaway map).
  const rule = await selectionRule(store, r.mode, r.runId, r.bandMs, undefined, undefined, new Map(), r.log);
  const notNew: { key: string; partition: string }[] = [];
  const plan = await planRun({
    source,
    pages: (async function* () {
      if (objects.length) yield objects;
    })(),
    partitionKeys: jc.source.partitionKeys,
    exclusions: jc.source.exclusions,
    bound: r.bound,
    newIn: async (files) => {
      const fresh = await rule(files);
      files.forEach((f, i) => !fresh[i] && notNew.push(f));
      return fresh;
    },
  });
  // Not new: done (settled), or held by another live run (put back: that run may fail).
  const done: string[] = [];
  const belowEdge: string[] = [];
  for (const f of notNew) {
    if ((await ctx.redis.hexists(store.k.leaseRun(f.partition), f.key)) === 1) continue;
    done.push(f.key);
    const t = objects.find((o) => o.key === f.key)?.lastModified ?? 0;
    if (t < (rule.edgeOf?.(f.partition) ?? Number.NEGATIVE_INFINITY)) belowEdge.push(f.key);
  }
  if (belowEdge.length)
    r.log.warn("events of objects older than the band edge: the bookmark counts them done (maxBand too small for late uploads?)", {
      job: r.job,
      runId: r.runId,
      count: belowEdge.length,
      keys: belowEdge.slice(0, 10),
    });
  const excluded = objects.filter((o) => !plan.selected.some((s) => s.key === o.key) && !notNew.some((n) => n.key === o.key));
  r.log.info("event-fed run planned", {
    job: r.job,
    runId: r.runId,
    events: taken.size,
    gone: gone.length,
    done: done.length,
    files: plan.files,
    notTaken: excluded.length,
  });
  return { ...plan, eventsDone: [...gone, ...done], events: taken.size };
}

/** After leasing: the run keeps the events of its leased files, drops the settled ones, and puts the rest back in line. */
export async function settleAfterLease(
  ctx: StepContext,
  job: string,
  runId: string,
  leased: readonly { key: string }[],
  done: readonly string[],
): Promise<{ kept: number; putBack: number }> {
  const q = new EventQueue(ctx.redis, ctx.cfg.prefix, job);
  await q.settle(runId, done);
  const keep = new Set(leased.map((f) => f.key));
  const pk = ctx.cfg.jobs[job]!.source.partitionKeys;
  const lease = (k: string) => q.k.leaseRun(parsePartition(k, pk).id);
  // Over the bound: ready for the next run. Held by another live run: later (it may commit them).
  const now: string[] = [];
  const later: string[] = [];
  for (const k of (await q.held(runId)).keys()) {
    if (keep.has(k)) continue;
    const owner = await ctx.redis.hget(lease(k), k);
    (owner !== null && owner !== runId ? later : now).push(k);
  }
  return { kept: keep.size, putBack: (await q.putBack(runId, now)) + (await q.putBack(runId, later, Date.now() + RETRY_LATER_MS)) };
}

/**
 * At the run's end: events of files whose partition committed (or, outside mode enable, ended
 * DONE) are settled; the others go back in line for the next event-fed run.
 */
export async function settleAtFinish(
  ctx: StepContext,
  job: string,
  runId: string,
  partitions: readonly { partition: string; state: string }[],
): Promise<number> {
  const jc = ctx.cfg.jobs[job]!;
  const q = new EventQueue(ctx.redis, ctx.cfg.prefix, job);
  const held: Map<string, PendingEvent> = await q.held(runId);
  if (!held.size) return 0;
  const state = new Map(partitions.map((p) => [p.partition, p.state]));
  const settled: string[] = [];
  const back: string[] = [];
  const failed: string[] = [];
  for (const k of held.keys()) {
    const st = state.get(parsePartition(k, jc.source.partitionKeys).id);
    (st === "COMMITTED" || st === "DONE" ? settled : st === "FAILED" ? failed : back).push(k);
  }
  await q.settle(runId, settled);
  // A failed partition's files are retried later, not by run after run at once.
  return (await q.putBack(runId, back)) + (await q.putBack(runId, failed, Date.now() + RETRY_LATER_MS));
}
