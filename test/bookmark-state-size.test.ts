import { afterAll, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { cleanPrefix, redisClient, uniquePrefix } from "./helpers/redis.js";
import { secondNodeRun } from "./helpers/second-node.js";

const redis = redisClient();
const prefixes: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await cleanPrefix(redis, p);
  await redis.quit();
});

async function memoryOf(keys: string[]): Promise<number> {
  let total = 0;
  for (const k of keys) total += Number((await redis.call("MEMORY", "USAGE", k, "SAMPLES", "0")) ?? 0);
  return total;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

describe("bookmark state size and commit time", () => {
  it.skipIf(secondNodeRun)("after 100,000 files in 200 runs the state is within 2x of its size after 2,000 files", async () => {
    const prefix = uniquePrefix("size");
    prefixes.push(prefix);
    const store = new BookmarkStore(redis, prefix, "size");
    // A backlog of a month: 4 date partitions, a file every 30 s (several per band of 900 s).
    const T0 = Date.UTC(2024, 0, 1);
    const sizes = new Map<number, { state: number; history: number }>();
    let n = 0;
    for (let run = 1; run <= 200; run++) {
      const runId = `r${String(run).padStart(4, "0")}`;
      await store.slots.acquire(runId, 3, 60_000);
      const byPart = new Map<string, { key: string; lastModified: number; size: number }[]>();
      for (let i = 0; i < 500; i++, n++) {
        const p = `dt=2024-01-0${(n % 4) + 1}`;
        const f = { key: `${p}/part-${String(n).padStart(7, "0")}.json.gz`, lastModified: T0 + n * 30_000, size: 1000 };
        byPart.set(p, [...(byPart.get(p) ?? []), f]);
      }
      for (const [p, files] of byPart) {
        await store.lease(p, runId, files, 900_000);
        await store.stageBatch({ partition: p, runId, commitId: `${runId}-${p}`, finalBatchId: p, files });
      }
      await store.commitRun({ runId, bandMs: 900_000, maxFilesInBand: 100_000, historySize: 100, summary: { runId, status: "succeeded" } });
      await store.slots.release(runId);
      if ([2_000, 20_000, 100_000].includes(n)) {
        sizes.set(n, { state: await memoryOf(await store.stateKeys()), history: await memoryOf([store.k.history]) });
      }
    }
    const s2k = sizes.get(2_000)!;
    const s100k = sizes.get(100_000)!;
    console.log(
      `bookmark state (MEMORY USAGE): ${[...sizes].map(([k, v]) => `${k} files: ${v.state} B state + ${v.history} B history`).join("; ")}`,
    );
    expect(s100k.state).toBeLessThanOrEqual(2 * s2k.state);
    // History keeps the last historySize runs, so it is bounded too (not by files processed).
    expect(await store.history()).toHaveLength(100);
    expect((await store.summary()).partitions.reduce((a, p) => a + p.files, 0)).toBe(100_000);
  });

  it("commit time of a 500-file run under 3 concurrent runs (reported)", async () => {
    const prefix = uniquePrefix("commit");
    prefixes.push(prefix);
    const store = new BookmarkStore(redis, prefix, "commit");
    const T0 = Date.UTC(2024, 0, 1);
    const times: number[] = [];
    let n = 0;
    for (let round = 0; round < 40; round++) {
      await Promise.all(
        [0, 1, 2].map(async (c) => {
          const runId = `r${round}-${c}`;
          const s = new BookmarkStore(redis.duplicate(), prefix, "commit");
          await s.slots.acquire(runId, 3, 60_000);
          const files = Array.from({ length: 500 }, () => {
            const i = n++;
            return { key: `part-${String(i).padStart(7, "0")}`, lastModified: T0 + i * 1000, size: 1000 };
          });
          const got = await s.lease("_", runId, files, 900_000);
          expect(got.size).toBe(500);
          await s.stageBatch({ partition: "_", runId, commitId: runId, finalBatchId: "b", files });
          const t = process.hrtime.bigint();
          await s.commitRun({ runId, bandMs: 900_000, maxFilesInBand: 100_000, historySize: 100, summary: { runId } });
          times.push(Number(process.hrtime.bigint() - t) / 1e6);
          await s.slots.release(runId);
          await (s as unknown as { r: { quit(): Promise<void> } }).r.quit();
        }),
      );
    }
    console.log(
      `commit of a 500-file run under 3 concurrent runs: p50 ${percentile(times, 50).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms (${times.length} commits)`,
    );
    expect((await store.summary()).partitions[0]!.files).toBe(60_000);
    expect((await store.summary()).partitions[0]!.leased).toBe(0);
  });
});
