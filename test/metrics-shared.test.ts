import { afterAll, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { registry } from "../src/metrics/registry.js";
import { exportBacklogFromRedis } from "../src/metrics/shared-backlog.js";
import { cleanPrefix, redisClient, uniquePrefix } from "./helpers/redis.js";

const redis = redisClient();
const prefix = uniquePrefix("sharedbacklog");
afterAll(async () => {
  await cleanPrefix(redis, prefix);
  await redis.quit();
});

describe("backlog gauges shared through Redis", () => {
  it("every process exports the last plan's figures, whichever worker planned, never its own stale value", async () => {
    const store = new BookmarkStore(redis, prefix, "shared");
    const stop = exportBacklogFromRedis(redis, prefix, ["shared"]);
    try {
      // Another worker planned: 42 files left, the oldest an hour old.
      await redis.hset(store.k.backlog, {
        runId: "r1",
        at: Date.now(),
        files: 42,
        bytes: 4200,
        oldestUnprocessed: Date.now() - 3_600_000,
        listed: 50,
      });
      let text = await registry.metrics();
      expect(text).toMatch(/tranche_backlog_files\{tranche_job="shared"\} 42/);
      expect(Number(/tranche_backlog_oldest_age_seconds\{tranche_job="shared"\} ([\d.]+)/.exec(text)![1])).toBeGreaterThanOrEqual(3600);
      // A later plan (elsewhere) drained it: the next scrape says so.
      await redis.hset(store.k.backlog, { runId: "r2", at: Date.now(), files: 0, bytes: 0, oldestUnprocessed: "" });
      await new Promise((r) => setTimeout(r, 1100));
      text = await registry.metrics();
      expect(text).toMatch(/tranche_backlog_files\{tranche_job="shared"\} 0/);
      expect(text).toMatch(/tranche_backlog_oldest_age_seconds\{tranche_job="shared"\} 0/);
      // A bookmark reset makes the last listing's figures meaningless: the series go until a run lists again.
      await redis.hset(store.k.backlog, { runId: "r3", at: Date.now(), files: 6, bytes: 60, oldestUnprocessed: "" });
      await new Promise((r) => setTimeout(r, 1100));
      expect(await registry.metrics()).toMatch(/tranche_backlog_files\{tranche_job="shared"\} 6/);
      await store.reset();
      await new Promise((r) => setTimeout(r, 1100));
      expect(await registry.metrics()).not.toMatch(/tranche_backlog_files\{tranche_job="shared"\}/);
    } finally {
      stop();
    }
  });
});
