import type { TrancheConfig } from "../config/schema.js";
import type { BookmarkStore } from "../bookmark/store.js";
import { planRun } from "../planner/plan.js";
import { selectionRule } from "./selection.js";
import { runListing } from "./listing-step.js";

/**
 * The backlog of a job, listed now: unprocessed files and bytes, and the age of the oldest one.
 * A full listing (or the partitions walk), with the job's partition filter.
 */
export async function backlog(cfg: TrancheConfig, job: string, store: BookmarkStore) {
  const j = cfg.jobs[job]!;
  const bandMs = j.bookmark.maxBand * 1000;
  const listing = await runListing(cfg, j, store, { enableMode: true, bandMs, forceFull: true });
  const plan = await planRun({
    source: listing.source,
    pages: listing.pages,
    partitionKeys: listing.partitionKeys,
    exclusions: listing.exclusions,
    bound: { kind: "files", limit: 1 },
    newIn: await selectionRule(store, "enable", "status", bandMs, undefined, undefined, new Map()),
  });
  return {
    files: plan.files + plan.remainingFiles,
    bytes: plan.bytes + plan.remainingBytes,
    oldestUnprocessed: plan.oldestUnprocessed,
    listed: plan.listed,
    excluded: plan.excluded,
  };
}
