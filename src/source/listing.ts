import { ConfigError } from "../errors.js";
import type { Filter } from "./partition-filter.js";
import { parsePartition } from "./partitions.js";
import type { Source, SourceObject } from "./types.js";

/**
 * Listing strategies (`source.listing`):
 *  - `full`: every object under the source, every run. Safe for any key layout.
 *  - `partitions`: walks the Hive folders one partition key at a time (ListObjectsV2 with a
 *    delimiter) and lists only the partitions `source.partitionFilter` can match.
 *  - `lexical`: lists from StartAfter = the greatest key already settled below the band, for keys
 *    written in increasing lexical order; a full listing every `source.fullListingEvery` runs (or
 *    that much time) catches what the assumption missed.
 *  - `catalog` (a `source.catalog` job, whatever `listing` says): the locations of the catalog
 *    table's partitions that match the filter (src/catalog/catalog-source.ts).
 * `source.partitionFilter` also filters the files of the `full` and `lexical` listings.
 */
export type ListingStrategy = "full" | "partitions" | "lexical" | "catalog";

/** What one run lists: the strategy in force, the key it starts after, and why. */
export interface ListingChoice {
  strategy: ListingStrategy;
  startAfter?: string;
  reason: string;
}

/** How often a lexical job lists in full: every N runs, or after a duration ("6h", "30m", "1d"). */
export type FullListingEvery = { runs: number } | { ms: number };

export function parseFullListingEvery(v: number | string): FullListingEvery {
  if (typeof v === "number") return { runs: v };
  const m = /^(\d+)\s*(s|m|h|d)$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0) {
    throw new ConfigError(
      `source.fullListingEvery ${JSON.stringify(v)}: give a number of runs (e.g. 20) or a duration such as "30m", "6h", "1d"`,
    );
  }
  return { ms: Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s"] };
}

/**
 * Decides one run's listing (pure). A `lexical` job lists in full when it has no cursor yet, when
 * dead letters were put back for retry (their keys may lie before the cursor), for `pause`/
 * `disable` runs and replays, and when the periodic full listing is due.
 */
export function chooseListing(o: {
  configured: ListingStrategy;
  cursor: string | null;
  enableMode: boolean;
  retryPending: boolean;
  /** Files at or before the cursor are leased by runs that have not committed them. */
  leasedBeforeCursor?: boolean;
  every: FullListingEvery;
  runsSinceFull: number;
  lastFullAt: number | null;
  now: number;
}): ListingChoice {
  if (o.configured !== "lexical") return { strategy: o.configured, reason: "configured" };
  if (!o.enableMode) return { strategy: "full", reason: "bookmark mode is not enable" };
  if (o.cursor === null) return { strategy: "full", reason: "no key is settled below the band yet" };
  if (o.retryPending) return { strategy: "full", reason: "dead letters were put back for retry" };
  if (o.leasedBeforeCursor) return { strategy: "full", reason: "files before the cursor are leased by a run that did not commit them" };
  if ("runs" in o.every ? o.runsSinceFull + 1 >= o.every.runs : o.lastFullAt === null || o.now - o.lastFullAt >= o.every.ms) {
    return { strategy: "full", reason: "periodic full listing (source.fullListingEvery)" };
  }
  return { strategy: "lexical", startAfter: o.cursor, reason: "keys after the settled cursor" };
}

/**
 * Whether a listing under this choice shows a key (when it exists): the lexical listing shows only
 * keys after its cursor, a partition filter only its partitions, the partitions walk only the Hive
 * layout. The planner drops a stale lease as "file deleted" only for keys its listing covers.
 */
export function listingCovers(
  choice: ListingChoice,
  partitionKeys: readonly string[],
  filter: Filter | undefined,
): (key: string) => boolean {
  return (key) => {
    if (choice.startAfter !== undefined && key <= choice.startAfter) return false;
    if (choice.strategy === "partitions" && partitionKeys.length > 0 && parsePartition(key, partitionKeys).id === "_") return false;
    return !filter || filter(parsePartition(key, partitionKeys).values) === true;
  };
}

/** Keeps the objects whose partition the filter accepts (unknown or false: left out). */
function filtered(page: SourceObject[], partitionKeys: readonly string[], filter: Filter | undefined): SourceObject[] {
  if (!filter) return page;
  return page.filter((o) => filter(parsePartition(o.key, partitionKeys).values) === true);
}

/** Streams the pages one run lists under a strategy. */
export async function* listPages(
  source: Source,
  o: { choice: ListingChoice; partitionKeys: readonly string[]; filter?: Filter },
): AsyncIterable<SourceObject[]> {
  if (o.choice.strategy !== "partitions") {
    for await (const page of source.list(o.choice.startAfter !== undefined ? { startAfter: o.choice.startAfter } : {})) {
      const kept = filtered(page, o.partitionKeys, o.filter);
      if (kept.length) yield kept;
    }
    return;
  }
  if (!source.folders) throw new ConfigError(`source.listing partitions: this source (${source.uri}) cannot list folders`);
  if (o.partitionKeys.length === 0) throw new ConfigError("source.listing partitions needs source.partitionKeys");
  yield* walk(source, o.partitionKeys, o.filter, "", {}, 0);
}

async function* walk(
  source: Source,
  keys: readonly string[],
  filter: Filter | undefined,
  under: string,
  values: Record<string, string>,
  level: number,
): AsyncIterable<SourceObject[]> {
  if (level === keys.length) {
    for await (const page of source.list({ under })) {
      const kept = filtered(page, keys, filter);
      if (kept.length) yield kept;
    }
    return;
  }
  for (const folder of await source.folders!(under)) {
    const name = folder.slice(under.length).replace(/\/$/, "");
    const eq = name.indexOf("=");
    if (eq <= 0 || name.slice(0, eq) !== keys[level]) continue; // not the next partition key's folder
    let v = name.slice(eq + 1);
    try {
      v = decodeURIComponent(v);
    } catch {
      // keep it as written
    }
    const next = { ...values, [keys[level]!]: v };
    if (filter && filter(next) === false) continue;
    yield* walk(source, keys, filter, folder, next, level + 1);
  }
}
