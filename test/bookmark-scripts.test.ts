import { afterAll, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { classify, needsBandCheck, nextWatermark } from "../src/bookmark/rules.js";
import { bandEntry, recordsHold } from "../src/bookmark/band.js";
import { cleanPrefix, redisClient, uniquePrefix } from "./helpers/redis.js";

const redis = redisClient();
const prefixes: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await cleanPrefix(redis, p);
  await redis.quit();
});
function store(name: string, prefix = uniquePrefix(name)) {
  prefixes.push(prefix);
  return new BookmarkStore(redis, prefix, name);
}
const f = (key: string, lastModified: number, size = 10) => ({ key, lastModified, size });
/** The keys (of those given, at their times) the band of partition p holds. */
async function inBand(s: BookmarkStore, files: { key: string; lastModified: number }[], p = "p"): Promise<string[]> {
  const held = await s.bandHolds(p, files);
  return files
    .filter((_, i) => held[i])
    .map((x) => x.key)
    .sort();
}
async function commit(s: BookmarkStore, runId: string, files: ReturnType<typeof f>[], bandMs = 1000, maxFilesInBand = 100_000) {
  await s.slots.acquire(runId, 100, 30_000);
  await s.stageBatch({ partition: "p", runId, commitId: `${runId}-${Math.random()}`, finalBatchId: "b", files });
  return s.commitRun({ runId, bandMs, maxFilesInBand, historySize: 10, summary: { runId, status: "succeeded", mode: "enable" } });
}

describe("bookmark rules (pure)", () => {
  const view = { wm: 10_000, bandMs: 1000, liveLeases: new Map([["b", "r1"]]), retry: new Set(["z"]) };
  it("classifies below-band, done, leased and new files", () => {
    expect(classify(view, { key: "x", lastModified: 8999 }, "r2", false)).toBe("below-band");
    expect(needsBandCheck(view, { key: "x", lastModified: 8999 })).toBe(false);
    expect(classify(view, { key: "x", lastModified: 9000 }, "r2", false)).toBe("new");
    expect(classify(view, { key: "a", lastModified: 9500 }, "r2", true)).toBe("done");
    expect(classify(view, { key: "b", lastModified: 9700 }, "r2", false)).toBe("leased");
    expect(classify(view, { key: "b", lastModified: 9700 }, "r1", false)).toBe("new");
    expect(classify(view, { key: "z", lastModified: 100 }, "r2", true)).toBe("new"); // a retried dead letter
    expect(needsBandCheck(view, { key: "z", lastModified: 9500 })).toBe(false);
    expect(classify({ ...view, wm: null }, { key: "x", lastModified: 0 }, "r2", false)).toBe("new");
  });
  it("band entries: same second and hash, a later millisecond is a rewrite", () => {
    const e = bandEntry("a", 9500);
    expect(e.field.length + e.record.length).toBe(15);
    expect(recordsHold(e.record, e.hash, 9500 % 1000)).toBe(true);
    expect(recordsHold(e.record, e.hash, 600)).toBe(false); // rewritten at 9600
    expect(recordsHold(e.record, bandEntry("b", 9500).hash, 500)).toBe(false);
  });
  it("moves the watermark forward only, never past a lease", () => {
    expect(nextWatermark(null, 500, null)).toBe(500);
    expect(nextWatermark(400, 500, 450)).toBe(449);
    expect(nextWatermark(480, 500, 450)).toBe(480);
  });
});

describe("bookmark Lua scripts (real Redis)", () => {
  it("commit adds files to the band, moves the watermark and prunes below the band", async () => {
    const s = store("commit");
    await commit(s, "r1", [f("a", 1000), f("b", 2000)]);
    let v = await s.loadView("p", 1000);
    expect(v.wm).toBe(2000);
    expect(await inBand(s, [f("a", 1000), f("b", 2000), f("c", 5000)])).toEqual(["a", "b"]);
    await commit(s, "r2", [f("c", 5000)]);
    v = await s.loadView("p", 1000);
    expect(v.wm).toBe(5000);
    expect(await inBand(s, [f("a", 1000), f("b", 2000), f("c", 5000)])).toEqual(["c"]); // a, b pruned: below 5000 - 1000
    const sum = await s.summary();
    expect(sum.partitions[0]).toMatchObject({ partition: "p", files: 3, bandFiles: 1 });
    expect(sum.version).toBe(2);
  });

  it("a replayed stage changes nothing; a committed file is not counted twice", async () => {
    const s = store("replay");
    const args = { partition: "p", runId: "r1", commitId: "c1", files: [f("a", 1000)] };
    await s.slots.acquire("r1", 5, 30_000);
    expect(await s.stageBatch(args)).toBe(1);
    expect(await s.stageBatch(args)).toBe(0);
    await s.commitRun({ runId: "r1", bandMs: 1000, maxFilesInBand: 10, historySize: 10, summary: { runId: "r1" } });
    await commit(s, "r2", [f("a", 1000)]);
    expect((await s.summary()).partitions[0]!.files).toBe(1);
    expect((await s.summary()).version).toBe(2);
  });

  it("nothing reaches the bookmark until the run commits; each partition commits on its own, once", async () => {
    const s = store("atomic");
    await s.slots.acquire("r1", 5, 30_000);
    await s.stageBatch({ partition: "p1", runId: "r1", commitId: "c1", files: [f("a", 1000)] });
    await s.stageBatch({ partition: "p2", runId: "r1", commitId: "c2", files: [f("b", 2000)] });
    expect((await s.summary()).partitions).toEqual([]);
    await s.commitRun({ runId: "r1", bandMs: 1000, maxFilesInBand: 10, historySize: 10, summary: { runId: "r1" } });
    expect((await s.summary()).partitions.map((p) => [p.partition, p.files])).toEqual([
      ["p1", 1],
      ["p2", 1],
    ]);
    // The history: one entry per partition commit (each with its partition's delta), then the run.
    const h = await s.historyEntries();
    expect(h.map((e) => [e.kind, e.partition, e.version])).toEqual([
      ["run", undefined, 2],
      ["commit", "p2", 2],
      ["commit", "p1", 1],
    ]);
    expect(h[0]).toMatchObject({ runId: "r1", committed: true });
    expect(Object.keys(h[1]!.state!)).toEqual(["p2"]);
    expect((await s.summary()).runs).toBe(1); // a run counts once, whatever it committed
    // Committing a partition again (a retried commit step) changes nothing.
    const again = await s.commitPartition({
      runId: "r1",
      partition: "p1",
      bandMs: 1000,
      maxFilesInBand: 10,
      historySize: 10,
      entry: {},
      epoch: "0",
    });
    expect(again).toMatchObject({ version: 1, again: true });
    expect((await s.summary()).version).toBe(2);
  });

  it("history trimming keeps the commits of runs it keeps, also when runs overlapped (their commits lie below older runs)", async () => {
    const s = store("overlap");
    for (const r of ["R1", "R2", "R3"]) await s.slots.acquire(r, 5, 30_000);
    const commit = async (runId: string, p: string, lm: number) => {
      await s.stageBatch({ partition: p, runId, commitId: `${runId}${p}`, files: [f(`${p}${lm}`, lm)] });
      await s.commitPartition({ runId, partition: p, bandMs: 1000, maxFilesInBand: 10, historySize: 1, entry: { runId }, epoch: "0" });
    };
    await commit("R1", "a", 1000);
    await s.recordRun({ runId: "R1", committed: true }, 1);
    await commit("R2", "a", 2000);
    await commit("R3", "b", 2000); // R3 runs alongside R2 and ends after it
    await s.recordRun({ runId: "R2", committed: true }, 1);
    await s.recordRun({ runId: "R3", committed: true }, 1);
    expect((await s.historyEntries()).map((e) => `${e.kind}:${e.runId}`)).toEqual(["run:R3", "commit:R3"]);
    expect(await s.committedPartitions("R3")).toMatchObject({ partitions: ["b"] });
    for (const r of ["R1", "R2", "R3"]) await s.slots.release(r);
    await expect(s.rewind("R3", 1000)).resolves.toMatchObject({ version: expect.any(Number) });
  });

  it("a run that holds its slot takes it again (a retried plan step), even when the job is at maxConcurrentRuns", async () => {
    const s = store("reacquire");
    expect(await s.slots.acquire("W1", 1, 30_000)).toEqual({ ok: true });
    expect(await s.slots.acquire("W1", 1, 30_000)).toEqual({ ok: true });
    expect(await s.slots.acquire("W2", 1, 30_000)).toEqual({ ok: false, running: ["W1"] });
  });

  it("one partition commits while another of the same run is still staging; a run recorded twice is recorded once", async () => {
    const s = store("perpart");
    await s.slots.acquire("r1", 5, 30_000);
    await s.lease("p1", "r1", [f("a", 1000)], 1000);
    await s.lease("p2", "r1", [f("b", 1000)], 1000);
    await s.stageBatch({ partition: "p1", runId: "r1", commitId: "c1", files: [f("a", 1000)] });
    await s.commitPartition({ runId: "r1", partition: "p1", bandMs: 1000, maxFilesInBand: 10, historySize: 10, entry: {}, epoch: "0" });
    const sum = await s.summary();
    expect(sum.partitions.map((p) => [p.partition, p.files, p.leased])).toEqual([["p1", 1, 0]]);
    // p2's lease is untouched: the next run cannot take b while r1 lives.
    expect(await s.newFiles("p2", await s.loadView("p2", 1000), [f("b", 1000)], "r2")).toEqual([false]);
    expect(await s.recordRun({ runId: "r1", committed: true }, 10)).toBe(true);
    expect(await s.recordRun({ runId: "r1", committed: true }, 10)).toBe(false);
    expect(await s.history()).toHaveLength(1);
  });

  it("caps the band at maxFilesInBand by raising its floor, never splitting files of one time", async () => {
    const s = store("cap");
    // The band keeps whole seconds: the floor rises to the start of the oldest second kept.
    const files = [f("a", 1000), f("b", 2001), f("c", 3002), f("d", 3002), f("e", 4003)];
    await commit(s, "r1", files, 60_000, 3);
    const v = await s.loadView("p", 60_000);
    expect(v.floor).toBe(3000);
    expect(await inBand(s, files)).toEqual(["c", "d", "e"]);
    expect(classify(v, { key: "a", lastModified: 1000 }, "x", false)).toBe("below-band");
    expect(await s.newFiles("p", v, [f("late", 3002), f("c", 3002)], "x")).toEqual([true, false]);
    const x = [f("x1", 4003), f("x2", 4003), f("x3", 4003), f("x4", 4003)];
    await commit(s, "r2", x, 60_000, 3);
    // Five files share the newest second: all stay, over the cap (the floor never passes the
    // watermark), so none is taken twice.
    expect(await inBand(s, [...files, ...x])).toEqual(["e", "x1", "x2", "x3", "x4"]);
    expect((await s.summary()).partitions[0]!.bandFiles).toBe(5);
  });

  it("a lease holds the watermark below its file until it is committed", async () => {
    const s = store("lease");
    await s.slots.acquire("r1", 5, 30_000);
    await s.slots.acquire("r2", 5, 30_000);
    expect([...(await s.lease("p", "r1", [f("old", 1000)], 1000))]).toEqual(["old"]);
    // Another live run cannot take it.
    expect([...(await s.lease("p", "r2", [f("old", 1000)], 1000))]).toEqual([]);
    await s.lease("p", "r2", [f("new", 50_000)], 1000);
    await commit(s, "r2", [f("new", 50_000)]);
    expect((await s.loadView("p", 1000)).wm).toBe(999);
    // r1 dies: its lease no longer blocks others, and the file is still selectable.
    await s.slots.release("r1");
    const v = await s.loadView("p", 1000);
    expect(await s.newFiles("p", v, [f("old", 1000)], "r3")).toEqual([true]);
    await s.slots.acquire("r3", 5, 30_000);
    expect([...(await s.lease("p", "r3", [f("old", 1000)], 1000))]).toEqual(["old"]);
    await commit(s, "r3", [f("old", 1000)]);
    expect((await s.loadView("p", 1000)).wm).toBe(50_000);
  });

  it("run slots: the limit is enforced atomically under contention and expired slots are dropped", async () => {
    const s = store("slots");
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => s.slots.acquire(`r${i}`, 3, 30_000)));
    expect(results.filter((r) => r.ok)).toHaveLength(3);
    const refused = results.find((r) => !r.ok) as { ok: false; running: string[] };
    expect(refused.running).toHaveLength(3);
    const t = store("slots-ttl");
    await t.slots.acquire("dead", 1, 1);
    await new Promise((r) => setTimeout(r, 5));
    expect((await t.slots.acquire("alive", 1, 30_000)).ok).toBe(true);
  });

  it("pending() skips committed files and files leased by another live run", async () => {
    const s = store("pending");
    await s.slots.acquire("r1", 5, 30_000);
    await s.slots.acquire("r2", 5, 30_000);
    await commit(s, "r0", [f("done", 1000)]);
    await s.lease("p", "r2", [f("theirs", 1500)], 1000);
    await s.lease("p", "r1", [f("mine", 1500)], 1000);
    const files = [f("done", 1000), f("theirs", 1500), f("mine", 1500), f("free", 1600)];
    expect((await s.pending("p", "r1", files)).map((x) => x.key)).toEqual(["mine", "free"]);
  });

  it("works with a {hash-tag} prefix (all keys in one Redis Cluster slot)", async () => {
    const s = store("tagged", `{${uniquePrefix("tag")}}`);
    await commit(s, "r1", [f("a", 1000)]);
    expect((await s.summary()).partitions[0]!.files).toBe(1);
    for (const k of await s.stateKeys()) expect(k.startsWith(s.prefix)).toBe(true);
  });

  it("refuses a lease below the current band edge (a concurrent commit moved it after planning)", async () => {
    const s = store("edge");
    await commit(s, "r1", [f("new", 100_000)]);
    await s.slots.acquire("r2", 5, 30_000);
    // r2 planned before r1's commit and selected a late file that is now below the band.
    expect([...(await s.lease("p", "r2", [f("late", 500), f("inband", 99_500)], 1000))]).toEqual(["inband"]);
  });

  it("a run that lost its slot, or outlived a reset, cannot commit", async () => {
    const { RunLostError } = await import("../src/errors.js");
    const s = store("lost");
    await s.slots.acquire("r1", 5, 30_000);
    await s.stageBatch({ partition: "p", runId: "r1", commitId: "c1", files: [f("a", 1000)] });
    await s.slots.release("r1");
    await expect(s.commitRun({ runId: "r1", bandMs: 1000, maxFilesInBand: 10, historySize: 10, summary: {} })).rejects.toBeInstanceOf(
      RunLostError,
    );

    await s.slots.acquire("r2", 5, 30_000);
    const epoch = await s.slots.epoch();
    await s.stageBatch({ partition: "p", runId: "r2", commitId: "c2", files: [f("b", 2000)] });
    await s.slots.release("r2");
    await s.reset();
    await s.slots.acquire("r2", 5, 30_000); // even if it got a slot back
    await expect(s.commitRun({ runId: "r2", bandMs: 1000, maxFilesInBand: 10, historySize: 10, summary: {}, epoch })).rejects.toThrow(
      /reset or rewound while it ran/,
    );
    expect((await s.summary()).partitions).toEqual([]);
  });

  it("drops all of a run's leases at commit, also on files it did not stage", async () => {
    const s = store("orphans");
    await s.slots.acquire("r1", 5, 30_000);
    await s.lease("p", "r1", [f("a", 1000), f("skipped", 1100)], 1000);
    await s.lease("q", "r1", [f("b", 1000)], 1000);
    await s.stageBatch({ partition: "p", runId: "r1", commitId: "c1", files: [f("a", 1000)] });
    await s.commitRun({ runId: "r1", bandMs: 1000, maxFilesInBand: 10, historySize: 10, summary: {} });
    const sum = await s.summary();
    expect(sum.partitions.every((p) => p.leased === 0)).toBe(true);
  });

  it("history keeps only the partitions a run touched; rewind rebuilds the rest from older runs or leaves them", async () => {
    const s = store("delta");
    const stageAll = async (runId: string, parts: string[], lm: number) => {
      await s.slots.acquire(runId, 5, 30_000);
      for (const p of parts) await s.stageBatch({ partition: p, runId, commitId: `${runId}${p}`, files: [f(`${p}-${lm}`, lm)] });
      await s.commitRun({ runId, bandMs: 1000, maxFilesInBand: 10, historySize: 3, summary: { runId } });
      await s.slots.release(runId);
    };
    const many = Array.from({ length: 50 }, (_, i) => `d${String(i).padStart(2, "0")}`);
    await stageAll("r1", many, 1000);
    await stageAll("r2", ["d00"], 5000);
    await stageAll("r3", ["d01"], 5000);
    await stageAll("r4", ["d00", "new"], 9000);
    const hist = await s.historyEntries();
    // r1 trimmed (historySize 3 runs); a run's partition commits come before its summary.
    expect(hist.map((e) => `${e.runId}${e.partition ? `:${e.partition}` : ""}`)).toEqual([
      "r4",
      "r4:new",
      "r4:d00",
      "r3",
      "r3:d01",
      "r2",
      "r2:d00",
    ]);
    const r2 = hist.find((e) => e.runId === "r2" && e.kind === "commit")!;
    expect(Object.keys(r2.state!)).toEqual(["d00"]);
    expect(r2.parts).toHaveLength(50);
    // Rewind to r2: d00 back to its r2 state, d01 to... its state after r2 is only in r1, which is gone.
    await expect(s.rewind("r2", 1000)).rejects.toThrow(/history no longer holds partition d01's state/);
    // Rewind to r3: d00 from r2's snapshot, d01 unchanged since r3, "new" deleted, d02..d49 left as they are.
    await s.rewind("r3", 1000);
    const v = await s.loadView("d00", 1000);
    expect(v.wm).toBe(5000);
    expect(await inBand(s, [f("d00-5000", 5000), f("d00-9000", 9000)], "d00")).toEqual(["d00-5000"]);
    expect(await s.partitions()).toHaveLength(50);
    expect((await s.loadView("d49", 1000)).wm).toBe(1000);
  });
});
