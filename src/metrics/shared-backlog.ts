import type { Cluster, Redis } from "ioredis";
import { BookmarkStore } from "../bookmark/store.js";
import { lastListing } from "../run/listing-step.js";
import { backlogBytes, backlogFiles, backlogOldestAge, JOB_LABEL, scrapeRefreshers } from "./registry.js";

/**
 * Makes this process export the jobs' backlog gauges from what the last plan of each job recorded
 * in Redis (whichever worker executed it), read at scrape time: every worker and scheduler reports
 * the same, current figures, and none keeps a stale value of its own last plan. Returns a function
 * that stops it.
 */
export function exportBacklogFromRedis(redis: Redis | Cluster, prefix: string, jobs: readonly string[]): () => void {
  const refresh = async () => {
    for (const job of jobs) {
      const l = await lastListing(new BookmarkStore(redis, prefix, job));
      const labels = { [JOB_LABEL]: job };
      if (!l) {
        // Unknown (no run listed yet, or the bookmark was reset or rewound since): no stale figure.
        for (const g of [backlogFiles, backlogBytes, backlogOldestAge]) g.remove(labels);
        continue;
      }
      backlogFiles.set(labels, l.files);
      backlogBytes.set(labels, l.bytes);
      backlogOldestAge.set(labels, l.oldestUnprocessed === null ? 0 : Math.max(0, (Date.now() - l.oldestUnprocessed) / 1000));
    }
  };
  scrapeRefreshers.add(refresh);
  return () => void scrapeRefreshers.delete(refresh);
}
