import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConcurrentRunsExceededError } from "../src/errors.js";
import { BookmarkStore } from "../src/bookmark/store.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { holdLiveRun } from "./helpers/redis.js";
import { listFiles, writeInput } from "./helpers/files.js";

let h: Harness | undefined;
afterEach(closeHarnesses);

const T0 = Date.UTC(2024, 0, 1);
const line = (i: number) => JSON.stringify({ i }) + "\n";

async function seed(
  root: string,
  n: number,
  opts: { from?: number; mtime?: (i: number) => number; partitions?: number; size?: (i: number) => number } = {},
) {
  const from = opts.from ?? 0;
  for (let i = from; i < from + n; i++) {
    const p = opts.partitions ? `dt=2024-01-0${(i % opts.partitions) + 1}/` : "";
    const body = opts.size ? line(i).padEnd(opts.size(i) - 1, " ") + "\n" : line(i);
    await writeInput(root, `${p}f-${String(i).padStart(5, "0")}.json`, body, opts.mtime ? opts.mtime(i) : T0 + i * 1000);
  }
}

describe("bounded runs on a local folder", () => {
  it("the seed's example: 1000 files with boundedFiles 500 take exactly two runs; a third finds nothing", async () => {
    h = await harness("seed1000", { source: { boundedFiles: "500", partitionKeys: ["dt"] }, batchFiles: 100 });
    await seed(h.inDir, 1000, { partitions: 4 });
    h.startWorker();
    const r1 = await h.run();
    expect([r1.status, r1.files, r1.remainingFiles]).toEqual(["succeeded", 500, 500]);
    const r2 = await h.run();
    expect([r2.status, r2.files, r2.remainingFiles]).toEqual(["succeeded", 500, 0]);
    const r3 = await h.run();
    expect([r3.status, r3.files, r3.remainingFiles]).toEqual(["empty", 0, 0]);
    const outs = await listFiles(h.outDir);
    expect(outs).toHaveLength(1000);
    expect(outs[0]).toBe("dt=2024-01-01/f-00000.json.ndjson");
    // Oldest first: the first run took files 0..499.
    expect(r1.previousRunId).toBeNull();
    expect(r2.previousRunId).toBe(r1.runId);
    const committed = (await new BookmarkStore(h.redis, h.prefix, h.name).summary()).partitions.reduce((a, p) => a + p.files, 0);
    expect(committed).toBe(1000);
  });

  it("with boundedSize no run exceeds the bound, and a lone oversize file goes alone", async () => {
    h = await harness("bsize", { source: { boundedSize: "1000" } });
    // 30 files of 100 bytes, and one of 5000 bytes in the middle of the order.
    await seed(h.inDir, 31, { size: (i) => (i === 12 ? 5000 : 100) });
    h.startWorker();
    const runs = [];
    for (;;) {
      const r = await h.run();
      if (r.status === "empty") break;
      runs.push(r);
      expect(r.bytes <= 1000 || r.files === 1).toBe(true);
    }
    expect(runs.map((r) => r.files)).toEqual([10, 2, 1, 10, 8]);
    expect(runs[2]!.bytes).toBe(5000);
    expect(runs.reduce((a, r) => a + r.files, 0)).toBe(31);
  });

  it("files that arrive between runs are picked up by the next run, exactly once", async () => {
    h = await harness("arrivals", { source: { boundedFiles: "50" } });
    await seed(h.inDir, 60);
    h.startWorker();
    expect((await h.run()).files).toBe(50);
    // New files, newer than everything so far; and one late file inside the band (older mtime).
    await seed(h.inDir, 20, { from: 60 });
    await writeInput(h.inDir, "late.json", line(-1), T0 + 5500);
    const r2 = await h.run();
    expect(r2.files).toBe(31);
    expect((await h.run()).status).toBe("empty");
    expect(await listFiles(h.outDir)).toHaveLength(81);
  });

  it("is exact when many files share the last-modified second right at the cursor", async () => {
    h = await harness("ties", { source: { boundedFiles: "7" }, bookmark: { maxBand: 0 } });
    // 25 files all at the same whole second (as S3 reports), then 5 later ones.
    await seed(h.inDir, 25, { mtime: () => T0 });
    await seed(h.inDir, 5, { from: 25, mtime: (i) => T0 + i * 1000 });
    h.startWorker();
    const seen: number[] = [];
    for (;;) {
      const r = await h.run();
      if (r.status === "empty") break;
      seen.push(r.files);
    }
    expect(seen).toEqual([7, 7, 7, 7, 2]);
    expect(await listFiles(h.outDir)).toHaveLength(30);
  });

  it("reprocesses a rewritten file and ignores a deleted one", async () => {
    h = await harness("rewrite", {});
    await seed(h.inDir, 5);
    h.startWorker();
    expect((await h.run()).files).toBe(5);
    await writeInput(h.inDir, "f-00002.json", JSON.stringify({ v: 2 }) + "\n", T0 + 100_000);
    const { rm } = await import("node:fs/promises");
    await rm(path.join(h.inDir, "f-00003.json"));
    const r = await h.run();
    expect(r.files).toBe(1);
    expect(await readFile(path.join(h.outDir, "f-00002.json.ndjson"), "utf8")).toBe('{"v":2}\n');
  });

  it("reports a malformed record with the file's key and line, and still commits the file", async () => {
    h = await harness("badrec", {});
    await writeInput(h.inDir, "a b ü.json", '{"ok":1}\n{"broken":\n{"ok":2}\n', T0);
    h.startWorker();
    const r = await h.run();
    expect(r.status).toBe("succeeded");
    expect(r.badRecords).toBe(1);
    expect(r.errors.join("\n")).toMatch(/a b ü\.json:2: invalid JSON/);
    expect(await readFile(path.join(h.outDir, "a b ü.json.ndjson"), "utf8")).toBe('{"ok":1}\n{"ok":2}\n');
  });

  it("fails a run on an unreadable file, names it, leaves the bookmark where it was, and the next run takes the files again", async () => {
    h = await harness("corrupt", { attempts: 2 });
    await seed(h.inDir, 3);
    await writeInput(h.inDir, "bad.json.gz", Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]), T0 + 1500);
    h.startWorker();
    const r = await h.run();
    expect([r.status, r.files, r.committed, r.remainingFiles]).toEqual(["failed", 3, false, 4]);
    expect(r.errors.join("\n")).toMatch(/bad\.json\.gz/);
    expect((await new BookmarkStore(h.redis, h.prefix, h.name).summary()).version).toBe(0);
    await writeInput(h.inDir, "bad.json.gz", (await import("node:zlib")).gzipSync('{"x":1}\n'), T0 + 1500);
    const r2 = await h.run();
    expect([r2.status, r2.files, r2.committed]).toEqual(["succeeded", 4, true]);
    expect(await listFiles(h.outDir)).toHaveLength(4);
  });

  it("works end to end with a {hash-tag} prefix, as Redis Cluster needs", async () => {
    h = await harness("hashtag", { source: { boundedFiles: "3" } }, { prefix: `{t-hashtag-${Date.now()}}` });
    await seed(h.inDir, 5);
    h.startWorker();
    expect((await h.run()).files).toBe(3);
    expect((await h.run()).files).toBe(2);
    const keys = await h.redis.keys(`${h.prefix}*`);
    expect(keys.some((k) => k.startsWith(`${h!.prefix}:batches.hashtag:`))).toBe(true);
  });

  it("an empty source (only empty folders) gives an empty run", async () => {
    h = await harness("emptysrc", { source: { partitionKeys: ["dt"] } });
    const { mkdir } = await import("node:fs/promises");
    await mkdir(path.join(h.inDir, "dt=2024-01-01", "nested"), { recursive: true });
    h.startWorker();
    const r = await h.run();
    expect([r.status, r.files, r.listed]).toEqual(["empty", 0, 0]);
  });

  it("enqueuing the same batch twice is a no-op (deterministic batch ids)", async () => {
    h = await harness("dedupe", {});
    const { Queue } = await import("bullmq");
    const { batchId, queueName } = await import("../src/queue/batch-job.js");
    const { redisOptions } = await import("../src/redis.js");
    const { REDIS_URL } = await import("./helpers/redis.js");
    const q = new Queue(queueName(h.name), { connection: redisOptions(REDIS_URL), prefix: h.prefix });
    const id = batchId(h.name, "run-1", "dt=2024-01-01", 0);
    expect(batchId(h.name, "run-1", "dt=2024-01-01", 0)).toBe(id);
    expect(batchId(h.name, "run-1", "dt=2024-01-02", 0)).not.toBe(id);
    await q.add("batch", { n: 1 }, { jobId: id });
    await q.add("batch", { n: 2 }, { jobId: id });
    expect((await q.getJobCounts("waiting")).waiting).toBe(1);
    expect((await q.getJob(id))!.data).toEqual({ n: 1 });
    await q.close();
  });

  it("dead-letters a file that fails in deadLetterAfterRuns runs, so the backlog moves on", async () => {
    h = await harness("deadletter", { attempts: 1, bookmark: { deadLetterAfterRuns: 2 } });
    await seed(h.inDir, 3);
    await writeInput(h.inDir, "bad.json.gz", Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]), T0 + 1500);
    h.startWorker();
    const r1 = await h.run();
    expect([r1.status, r1.committed]).toEqual(["failed", false]);
    const r2 = await h.run();
    expect([r2.status, r2.committed, r2.files, r2.deadLettered, r2.deadLetteredKeys]).toEqual(["succeeded", true, 3, 1, ["bad.json.gz"]]);
    expect((await h.run()).status).toBe("empty");
    const dl = new BookmarkStore(h.redis, h.prefix, h.name).deadLetters;
    expect(await dl.count()).toEqual({ deadLetters: 1, skipped: 0 });
    expect((await dl.get("deadLetters", ["bad.json.gz"]))[0]).toMatchObject({
      key: "bad.json.gz",
      runs: 2,
      reason: expect.stringMatching(/bad\.json\.gz: corrupt or truncated gzip: unexpected end of file/),
    });
    expect(await listFiles(h.outDir)).toHaveLength(3);
  });

  it("refuses a second run while one holds the slot (maxConcurrentRuns 1)", async () => {
    h = await harness("slot", {});
    const store = new BookmarkStore(h.redis, h.prefix, h.name);
    await holdLiveRun(h.redis, h.prefix, h.name, "other-run");
    expect(await store.slots.live()).toEqual(["other-run"]);
    await expect(h.run()).rejects.toBeInstanceOf(ConcurrentRunsExceededError);
  });

  it("runs in disable mode process everything and leave the bookmark alone", async () => {
    h = await harness("disable", {});
    await seed(h.inDir, 4);
    h.startWorker();
    expect((await h.run({ mode: "disable" })).files).toBe(4);
    expect((await h.run({ mode: "disable" })).files).toBe(4);
    expect((await new BookmarkStore(h.redis, h.prefix, h.name).summary()).version).toBe(0);
    expect((await h.run()).files).toBe(4);
  });
});
