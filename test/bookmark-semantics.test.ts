import { writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { RunInProgressError } from "../src/errors.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { listFiles, writeInput } from "./helpers/files.js";

let h: Harness | undefined;
afterEach(closeHarnesses);

const T0 = Date.UTC(2024, 0, 1);
const put = (root: string, key: string, mtime: number) => writeInput(root, key, JSON.stringify({ key }) + "\n", mtime);
/** Keys a run wrote: the ledger processor appends one line per processed file. */
const slow = path.resolve("test/fixtures/slow-processor.mjs");

async function ledgerKeys(f: string): Promise<string[]> {
  const { readFile } = await import("node:fs/promises");
  const text = await readFile(f, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => l.slice(l.indexOf(" ") + 1));
}

/** A job whose processor logs every key it processes, so tests can see what each run took. */
async function ledgerJob(name: string, job: Record<string, unknown> = {}) {
  h = await harness(name, { processor: slow, ...job });
  const ledger = path.join(h.dir, "ledger.txt");
  h.cfg.jobs[name]!.processorOptions = { ledger };
  let seen = 0;
  return {
    h,
    /** Keys processed since the last call, sorted. */
    async taken(): Promise<string[]> {
      const all = await ledgerKeys(ledger);
      const out = all.slice(seen).sort();
      seen = all.length;
      return out;
    },
  };
}

describe("consistency band", () => {
  it("takes a late file inside the band once, skips one below it (documented), and retakes a rewritten file", async () => {
    const { h, taken } = await ledgerJob("band", { bookmark: { maxBand: 60 } });
    for (let i = 0; i < 10; i++) await put(h.inDir, `f${i}.json`, T0 + 600_000 + i * 1000);
    h.startWorker();
    await h.run();
    expect(await taken()).toHaveLength(10);
    // The watermark is T0+609s; the band reaches back to T0+549s.
    await put(h.inDir, "late-inside.json", T0 + 590_000);
    await put(h.inDir, "late-outside.json", T0 + 500_000);
    await put(h.inDir, "f3.json", T0 + 700_000); // rewritten: newer last-modified time
    expect((await h.run()).files).toBe(2);
    expect(await taken()).toEqual(["f3.json", "late-inside.json"]);
    expect((await h.run()).status).toBe("empty");
    const out = await listFiles(h.outDir);
    expect(out).not.toContain("late-outside.json.out");
  });

  it("never takes a file twice at the cursor when many share one last-modified second", async () => {
    const { h, taken } = await ledgerJob("tiesband", { source: { boundedFiles: "9" } });
    for (let i = 0; i < 40; i++) await put(h.inDir, `s${String(i).padStart(2, "0")}.json`, T0);
    h.startWorker();
    const all: string[] = [];
    for (let r = 0; r < 5; r++) {
      await h.run();
      all.push(...(await taken()));
    }
    expect(all.sort()).toEqual(Array.from({ length: 40 }, (_, i) => `s${String(i).padStart(2, "0")}.json`));
  });
});

describe("modes", () => {
  it("pause processes what is new and leaves the state unchanged; pause --from A --to B replays what arrived between A and B", async () => {
    const { h, taken } = await ledgerJob("modes");
    const store = () => new BookmarkStore(h.redis, h.prefix, h.name);
    await put(h.inDir, "a1.json", T0 + 1000);
    h.startWorker();
    const A = await h.run();
    await put(h.inDir, "b1.json", T0 + 2000);
    await put(h.inDir, "b2.json", T0 + 3000);
    const B = await h.run();
    await put(h.inDir, "c1.json", T0 + 4000);
    const C = await h.run();
    expect([A.files, B.files, C.files]).toEqual([1, 2, 1]);
    await taken();

    await put(h.inDir, "d1.json", T0 + 5000);
    const before = await store().summary();
    const p = await h.run({ mode: "pause" });
    expect([p.files, p.committed]).toEqual([1, false]);
    expect(await taken()).toEqual(["d1.json"]);
    expect(await store().summary()).toEqual(before);

    const replay = await h.run({ mode: "pause", from: A.runId, to: C.runId });
    expect(await taken()).toEqual(["b1.json", "b2.json", "c1.json"]);
    expect(replay.committed).toBe(false);
    await h.run({ mode: "pause", from: A.runId, to: B.runId });
    expect(await taken()).toEqual(["b1.json", "b2.json"]);
    expect(await store().summary()).toEqual(before);

    await expect(h.run({ mode: "pause", from: A.runId })).rejects.toThrow(/--from and --to go together/);
    await expect(h.run({ mode: "enable", from: A.runId, to: B.runId })).rejects.toThrow(/need bookmark mode pause/);
    await expect(h.run({ mode: "pause", from: "nope", to: B.runId })).rejects.toThrow(/run nope .* is not in the bookmark history/);
    // d1 is still new for the bookmark.
    expect((await h.run()).files).toBe(1);
  });
});

describe("history, rewind and reset", () => {
  it("records every run; rewind restores the state after a run, and the next run takes exactly what was committed after it", async () => {
    const { h, taken } = await ledgerJob("rewind", { source: { boundedFiles: "3", partitionKeys: ["dt"] } });
    for (let i = 0; i < 9; i++) await put(h.inDir, `dt=2024-01-0${(i % 2) + 1}/f${i}.json`, T0 + i * 1000);
    h.startWorker();
    const r1 = await h.run();
    const r2 = await h.run();
    const r3 = await h.run();
    await taken();
    const store = new BookmarkStore(h.redis, h.prefix, h.name);
    const hist = await store.history();
    expect(hist.map((e) => e.runId)).toEqual([r3.runId, r2.runId, r1.runId]);
    expect(hist[0]).toMatchObject({ previousRunId: r2.runId, committed: true, files: 3, state: "SUCCEEDED" });
    // Each partition commits on its own: r3's two partitions are two commits before its summary.
    const commits = (await store.historyEntries()).filter((e) => e.runId === r3.runId && e.kind === "commit");
    expect(commits.map((e) => Object.keys(e.state!)[0]).sort()).toEqual(["dt=2024-01-01", "dt=2024-01-02"]);
    expect(Math.max(...commits.map((e) => e.version!))).toBe(hist[0]!.version);

    await store.rewind(r1.runId, 900_000);
    const again = await h.run({ override: { boundedFiles: "100" } });
    expect(again.files).toBe(6);
    expect(await taken()).toEqual(
      ["f3.json", "f4.json", "f5.json", "f6.json", "f7.json", "f8.json"].map((f, i) => `dt=2024-01-0${((i + 3) % 2) + 1}/${f}`).sort(),
    );

    await store.reset();
    expect(await store.history()).toEqual([]);
    expect((await h.run({ override: { boundedFiles: "100" } })).files).toBe(9);
    expect(await listFiles(h.outDir)).toHaveLength(9); // output was never deleted, only overwritten

    await store.slots.acquire("busy", 5, 30_000);
    await expect(store.reset()).rejects.toBeInstanceOf(RunInProgressError);
    await expect(store.rewind(r1.runId, 900_000)).rejects.toThrow(/is not in the bookmark history/); // reset cleared history
  });
});

describe("concurrent runs", () => {
  it("3 runs at once take disjoint sets whose union is the backlog; a failed middle run's files go to the next run", async () => {
    const { h, taken } = await ledgerJob("conc", { source: { boundedFiles: "10" }, maxConcurrentRuns: 3, attempts: 1, batchFiles: 5 });
    h.cfg.jobs.conc!.processorOptions.sleepMs = 30;
    for (let i = 0; i < 30; i++) await put(h.inDir, `f${String(i).padStart(2, "0")}.json`, T0 + i * 1000);
    h.startWorker(2);
    // The middle run writes to an output that cannot be created (a file where a folder must be).
    const blocked = path.join(h.dir, "blocked");
    await writeFile(blocked, "not a folder");
    const broken = structuredClone(h.cfg);
    broken.jobs.conc!.output.path = pathToFileURL(path.join(blocked, "out")).href;
    // The workers run the job as their own configuration says: they refuse to start the other run
    // (ERROR, nothing leased), and its share goes to the next run.
    const settled = await Promise.allSettled([h.run(), h.run({ cfg: broken }), h.run()]);
    const refused = settled.filter((r) => r.status === "rejected");
    expect(refused).toHaveLength(1);
    expect(String((refused[0] as PromiseRejectedResult).reason)).toMatch(/E_CONFIG_MISMATCH|differs from the one that started run/);
    const runs = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    expect(runs.map((r) => r.status)).toEqual(["succeeded", "succeeded"]);
    const processed = await taken();
    expect(new Set(processed).size).toBe(processed.length - 0); // no file taken by two runs
    const okFiles = runs.reduce((a, r) => a + r.files, 0);
    expect(okFiles).toBe(20);
    // The next run takes exactly the failed run's 10 files, and then nothing is left.
    const next = await h.run();
    expect([next.status, next.files]).toEqual(["succeeded", 10]);
    expect((await h.run()).status).toBe("empty");
    expect(await listFiles(h.outDir)).toHaveLength(30);
  });

  it("a run that lost its slot while running commits nothing (its partition FAILED, the run FAILED), and the next run takes its files", async () => {
    const { h, taken } = await ledgerJob("lostslot", { batchFiles: 2 });
    h.cfg.jobs.lostslot!.processorOptions.sleepMs = 100;
    for (let i = 0; i < 6; i++) await put(h.inDir, `f${i}.json`, T0 + i * 1000);
    h.startWorker(1);
    const store = new BookmarkStore(h.redis, h.prefix, h.name);
    const run = h.run();
    let runId: string | undefined;
    for (let i = 0; i < 200 && !runId; i++) {
      runId = (await store.slots.live())[0];
      if (!runId) await new Promise((r) => setTimeout(r, 10));
    }
    await h.redis.zrem(store.k.active, runId!); // as if Redis had lost it, or the run outlived its timeout
    const s = await run;
    expect([s.state, s.committed]).toEqual(["FAILED", false]);
    expect(s.partitions[0]!.error).toMatch(/no longer holds its run slot/);
    expect((await store.summary()).version).toBe(0);
    expect((await store.history())[0]).toMatchObject({ runId, state: "FAILED", committed: false });
    await taken();
    expect((await h.run()).files).toBe(6);
  });
});
