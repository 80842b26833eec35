/**
 * Bookmarks at scale (bounds, not timings): a bulk-uploaded backlog drained by real runs, the
 * compact band, history bounded by historySize × bound, and planner memory that does not grow
 * with the listing. Figures are printed to test-results/scale.txt; `npm run bench:scale` reports more.
 */
import { execFile } from "node:child_process";
import { mkdir, appendFile } from "node:fs/promises";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { deletePrefix, realDrain, syntheticBookmark } from "../bench/scale-lib.js";
import { REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";
import { secondNodeRun } from "./helpers/second-node.js";

const redis = redisClient();
const prefixes: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await deletePrefix(redis, p);
  await redis.quit();
});
const report = async (line: string) => {
  await mkdir("test-results", { recursive: true });
  await appendFile("test-results/scale.txt", `${new Date().toISOString()} ${line}\n`);
};
const MB = 1024 * 1024;

describe("bookmark at scale", () => {
  it.skipIf(secondNodeRun)(
    "a 20,000-file bulk-uploaded backlog drained in 20 real runs leaves the job's Redis keys under 4 MB",
    async () => {
      const prefix = uniquePrefix("bulk20k");
      prefixes.push(prefix);
      const r = await realDrain({ files: 20_000, bound: 1000, redisUrl: REDIS_URL, prefix });
      await report(`bulk 20k: ${JSON.stringify({ ...r, durations: [r.durations[0], r.durations.at(-1)] })}`);
      expect(r.files).toBe(20_000);
      expect(r.runs).toBe(20);
      expect(r.bytes.total, JSON.stringify(r.bytes.families)).toBeLessThan(4 * MB);
    },
    300_000,
  );

  it("100,000 bulk files in the band: a compact band (< 16 B a file) and bookmark + history under 20 MB", async () => {
    const prefix = uniquePrefix("band100k");
    prefixes.push(prefix);
    const r = await syntheticBookmark({ files: 100_000, bound: 1000, redis, prefix });
    await report(`band 100k: state ${r.state} B, band ${r.band} B (${r.bytesPerFile.toFixed(1)} B/file), history ${r.history} B`);
    expect(r.bandFiles).toBe(100_000);
    expect(r.bytesPerFile).toBeLessThan(16);
    expect(r.state + r.history).toBeLessThan(20 * MB);
  }, 120_000);

  it("history is bounded by historySize × bound, not by the band", async () => {
    const prefix = uniquePrefix("hist");
    prefixes.push(prefix);
    const r = await syntheticBookmark({ files: 30_000, bound: 1000, redis, prefix, historySize: 10 });
    await report(`history, 30 runs of 1000, historySize 10: ${r.history} B (band ${r.bandFiles} files)`);
    expect(r.bandFiles).toBe(30_000);
    expect((await r.store.history()).length).toBe(10);
    // 15 bytes a delta entry, plus the summaries and the hash's own overhead.
    expect(r.history).toBeLessThan(10 * 1000 * 32);
  }, 120_000);

  it("planner live data heap over 1,000,000 listed objects is within 1.25× of that over 10,000 (forced GC, compiled code left out, medians of 50 page samples)", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["--expose-gc", "dist/bench/scale.js", "--only", "planner", "--json"], {
      env: { ...process.env, REDIS_URL },
    });
    const p = JSON.parse(stdout.trim().split("\n").pop()!).planner as { ratio: number; big: { listed: number }; small: { listed: number } };
    await report(`planner: ${JSON.stringify(p)}`);
    expect([p.small.listed, p.big.listed]).toEqual([10_000, 1_000_000]);
    expect(p.ratio).toBeLessThanOrEqual(1.25);
  }, 120_000);
});
