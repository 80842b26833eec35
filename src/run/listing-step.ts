import type { JobConfig, TrancheConfig } from "../config/schema.js";
import type { BookmarkStore } from "../bookmark/store.js";
import { chooseListing, listingCovers, listPages, parseFullListingEvery, type ListingChoice } from "../source/listing.js";
import { compileFilter } from "../source/partition-filter.js";
import { openSource } from "../source/open.js";
import type { Source, SourceObject } from "../source/types.js";
import type { Plan } from "../planner/plan.js";
import type { CatalogListing, ResolvedCatalogSource } from "../catalog/catalog-source.js";
import type { Logger } from "../log.js";
import { parsePartition, UNPARTITIONED } from "../source/partitions.js";

/** What a run's listing learned, kept for `tranche status` (which then need not list): the unprocessed files it left for later runs. */
export interface ListingRecord {
  runId: string;
  at: number;
  strategy: string;
  files: number;
  bytes: number;
  oldestUnprocessed: number | null;
  listed: number;
  /** The bound in force for that run (`boundedFiles=500`) and where it came from (override, job, catalog, default), when recorded. */
  bound?: string;
  boundSource?: string;
  /** A catalog source: the table (`database.table`). */
  catalogTable?: string;
}

/**
 * The pages one run plans over: the listing strategy in force for this run (see
 * src/source/listing.ts) applied to the job's source, filtered by `source.partitionFilter`.
 */
export async function runListing(
  cfg: TrancheConfig,
  job: JobConfig,
  store: BookmarkStore,
  o: {
    enableMode: boolean;
    bandMs: number;
    forceFull?: boolean;
    /** A catalog source as the run resolved it (resolved here when not given). */
    catalog?: ResolvedCatalogSource;
    log?: Logger;
  },
): Promise<RunListing> {
  if (job.source.catalog) return catalogListing(cfg, job, o.catalog, o.log);
  const source = await openSource(job.source.path!, cfg.s3, { recurse: job.source.recurse });
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
    partitionKeys: s.partitionKeys,
    exclusions: s.exclusions,
  };
}

/** What one run lists (see {@link runListing}). */
export interface RunListing {
  source: Source;
  choice: ListingChoice;
  cursor: string | null;
  pages: AsyncIterable<SourceObject[]>;
  /** Whether this listing shows a key when it exists (see listingCovers). */
  covers: (key: string) => boolean;
  /** The partition keys and exclusions in force (a catalog table's keys; its exclusions added to the job's). */
  partitionKeys: readonly string[];
  exclusions: readonly string[];
  /** A catalog source: the table as resolved, and the listing's partition locations and figures. */
  catalog?: { resolved: ResolvedCatalogSource; listing: CatalogListing };
}

/**
 * A catalog source's listing: the matching partitions' locations (GetPartitions with the partition
 * filter as Expression), files keyed by the catalog's partition values. The table's `exclusions`
 * are added to the job's; recursion is off when the job or the table's `recurse` says false.
 */
async function catalogListing(
  cfg: TrancheConfig,
  job: JobConfig,
  given: ResolvedCatalogSource | undefined,
  log?: Logger,
): Promise<RunListing> {
  // Loaded only for catalog jobs: the Glue SDK costs start-up time in every process that loads it.
  const { compiledFilter, listCatalog, resolveCatalogSource } = await import("../catalog/catalog-source.js");
  const resolved = given ?? (await resolveCatalogSource(cfg, job));
  const { table, options } = resolved;
  const s = job.source;
  const filter = s.partitionFilter === undefined ? undefined : compiledFilter(s.partitionFilter, table);
  const listing = listCatalog(cfg, job, resolved, { recurse: s.recurse && options.recurse !== false, filter, log });
  const { S3Source } = await import("../source/s3-source.js");
  const { makeS3Client } = await import("../source/s3-client.js");
  const partitioned = table.partitionKeys.length > 0;
  return {
    source: new S3Source(table.location, makeS3Client(cfg.s3)),
    choice: { strategy: "catalog", reason: `partitions of catalog table ${table.database}.${table.table}` },
    cursor: null,
    pages: listing.pages,
    // Only the partitions the catalog listed (by then the listing is done): a file of a partition
    // the catalog no longer has, or one whose location is elsewhere, was not looked for.
    covers: (key) => {
      if (!partitioned) return true;
      const p = parsePartition(key, table.partitionKeys);
      return p.id !== UNPARTITIONED && listing.locations.has(p.id);
    },
    partitionKeys: table.partitionKeys,
    exclusions: [...s.exclusions, ...options.exclusions],
    catalog: { resolved, listing },
  };
}

/** Records what a run's listing learned (backlog figures, the bound in force, and when the source was last listed in full). */
export async function recordListing(
  store: BookmarkStore,
  runId: string,
  choice: ListingChoice,
  plan: Plan,
  used: { bound?: string; boundSource?: string; catalogTable?: string } = {},
): Promise<void> {
  const r = store.redisOf();
  const m = r.multi().hset(store.k.backlog, {
    bound: used.bound ?? "",
    boundSource: used.boundSource ?? "",
    catalogTable: used.catalogTable ?? "",
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
    ...(h.bound ? { bound: h.bound } : {}),
    ...(h.boundSource ? { boundSource: h.boundSource } : {}),
    ...(h.catalogTable ? { catalogTable: h.catalogTable } : {}),
  };
}
