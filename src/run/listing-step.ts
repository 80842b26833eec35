import type { JobConfig, TrancheConfig } from "../config/schema.js";
import type { BookmarkStore } from "../bookmark/store.js";
import { chooseListing, listingCovers, listPages, parseFullListingEvery, type ListingChoice } from "../source/listing.js";
import { compileFilter } from "../source/partition-filter.js";
import { openSource } from "../source/open.js";
import type { Source, SourceObject } from "../source/types.js";
import type { Plan } from "../planner/plan.js";

/** What a run's listing learned, kept for `tranche status` (which then need not list): the unprocessed files it left for later runs. */
export interface ListingRecord {
  runId: string;
  at: number;
  strategy: string;
  files: number;
  bytes: number;
  oldestUnprocessed: number | null;
  listed: number;
}

/**
 * The pages one run plans over: the listing strategy in force for this run (see
 * src/source/listing.ts) applied to the job's source, filtered by `source.partitionFilter`.
 */
export async function runListing(
  cfg: TrancheConfig,
  job: JobConfig,
  store: BookmarkStore,
  o: { enableMode: boolean; bandMs: number; forceFull?: boolean },
): Promise<{
  source: Source;
  choice: ListingChoice;
  cursor: string | null;
  pages: AsyncIterable<SourceObject[]>;
  /** Whether this listing shows a key when it exists (see listingCovers). */
  covers: (key: string) => boolean;
}> {
  const source = await openSource(job.source.path, cfg.s3, { recurse: job.source.recurse });
  const s = job.source;
  let cursor: string | null = null;
  let choice: ListingChoice;
  if (o.forceFull) {
    choice = { strategy: s.listing === "partitions" ? "partitions" : "full", reason: "asked for" };
  } else if (s.listing === "lexical") {
    const lex = await store.lexicalCursor(o.bandMs);
    cursor = lex.cursor;
    const [rec, retryPending] = await Promise.all([store.redisOf().hgetall(store.k.backlog), store.retryPending()]);
    choice = chooseListing({
      configured: "lexical",
      cursor,
      enableMode: o.enableMode,
      retryPending,
      leasedBeforeCursor: lex.leasedUpToCursor,
      every: parseFullListingEvery(s.fullListingEvery),
      runsSinceFull: Number(rec.runsSinceFull ?? 0),
      lastFullAt: rec.lastFullAt === undefined ? null : Number(rec.lastFullAt),
      now: Date.now(),
    });
  } else {
    choice = { strategy: s.listing, reason: "configured" };
  }
  const filter = s.partitionFilter === undefined ? undefined : compileFilter(s.partitionFilter, s.partitionKeys);
  return {
    source,
    choice,
    cursor,
    pages: listPages(source, { choice, partitionKeys: s.partitionKeys, filter }),
    covers: listingCovers(choice, s.partitionKeys, filter),
  };
}

/** Records what a run's listing learned (backlog figures, and when the source was last listed in full). */
export async function recordListing(store: BookmarkStore, runId: string, choice: ListingChoice, plan: Plan): Promise<void> {
  const r = store.redisOf();
  const m = r.multi().hset(store.k.backlog, {
    runId,
    at: Date.now(),
    strategy: choice.strategy,
    files: plan.remainingFiles,
    bytes: plan.remainingBytes,
    // What the run leaves: with nothing left, nothing is unprocessed (the oldest was selected).
    oldestUnprocessed: plan.remainingFiles > 0 ? (plan.oldestUnprocessed ?? "") : "",
    listed: plan.listed,
  });
  if (choice.strategy === "lexical") m.hincrby(store.k.backlog, "runsSinceFull", 1);
  await m.exec();
}

/**
 * Records a full listing as done, once its run committed or had nothing to take (a run that
 * failed leaves the periodic full listing due, so the next run lists in full again).
 */
export async function recordFullListing(store: BookmarkStore): Promise<void> {
  await store.redisOf().hset(store.k.backlog, { runsSinceFull: 0, lastFullAt: Date.now() });
}

/** The last run's listing figures, or null. */
export async function lastListing(store: BookmarkStore): Promise<ListingRecord | null> {
  const h = await store.redisOf().hgetall(store.k.backlog);
  if (!h.runId) return null;
  return {
    runId: h.runId,
    at: Number(h.at),
    strategy: h.strategy ?? "full",
    files: Number(h.files ?? 0),
    bytes: Number(h.bytes ?? 0),
    oldestUnprocessed: h.oldestUnprocessed ? Number(h.oldestUnprocessed) : null,
    listed: Number(h.listed ?? 0),
  };
}
