/**
 * `tranche reprocess`: exactly the named files (a partition, a time range, a key list) are run
 * again through the queue in bounded, chained runs of mode reprocess; outputs are overwritten in
 * place (not doubled) and the bookmark does not move. Real Redis, real BullMQ, real threads.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { runKeys } from "../src/bookmark/keys.js";
import { log } from "../src/log.js";
import { chunkByBound, startReprocess, type ReprocessSpec } from "../src/run/reprocess.js";
import { stepContext } from "../src/run/step-context.js";
import { listFiles, writeInput } from "./helpers/files.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { holdLiveRun, releaseLiveRun } from "./helpers/redis.js";

afterEach(closeHarnesses);

const T0 = Date.UTC(2024, 0, 1);
const line = (i: number) => `{"i":${i}}\n`;

/** Everything of the bookmark a reprocess must leave alone: cursors, bands, leases, history, meta. */
async function bookmarkDump(h: Harness): Promise<string> {
  const store = new BookmarkStore(h.redis, h.prefix, h.name);
  const keys = (await h.redis.keys(`${h.prefix}:bm:${h.name}:*`)).sort();
  const out: Record<string, unknown> = { summary: await store.summary(), history: await h.redis.lrange(store.k.history, 0, -1) };
  for (const k of keys) {
    const t = await h.redis.type(k);
    out[k] =
      t === "hash"
        ? await h.redis.hgetall(k)
        : t === "zset"
          ? await h.redis.zrange(k, 0, -1, "WITHSCORES")
          : t === "set"
            ? (await h.redis.smembers(k)).sort()
            : t;
  }
  return JSON.stringify(out);
}

async function reprocess(h: Harness, spec: ReprocessSpec) {
  const ctx = stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log });
  try {
    const r = await startReprocess(ctx, h.name, spec, "manual");
    const key = runKeys(h.prefix).reprocess(r.reprocessId);
    for (let i = 0; r.runId && i < 600; i++) {
      if ((await h.redis.hget(key, "state")) !== "RUNNING") break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const req = await h.redis.hgetall(key);
    const runIds = Object.keys(req)
      .filter((k) => k.startsWith("run:"))
      .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))
      .map((k) => req[k]!);
    for (const id of runIds)
      for (let i = 0; i < 200 && (await h.redis.hget(`${h.prefix}:run:${id}`, "finished")) !== "1"; i++)
        await new Promise((res) => setTimeout(res, 50));
    const runs = await Promise.all(
      runIds.map(async (id): Promise<Record<string, string>> => ({ id, ...(await h.redis.hgetall(`${h.prefix}:run:${id}`)) })),
    );
    return { r, req, runs };
  } finally {
    await ctx.queues.close();
  }
}

/** Marks every output so that a rewrite shows: the marker line is gone after reprocessing. */
async function markOutputs(h: Harness): Promise<string[]> {
  const outs = await listFiles(h.outDir);
  for (const o of outs) await writeFile(path.join(h.outDir, o), "stale\n");
  return outs;
}
async function rewritten(h: Harness): Promise<string[]> {
  const out: string[] = [];
  for (const o of await listFiles(h.outDir)) if ((await readFile(path.join(h.outDir, o), "utf8")) !== "stale\n") out.push(o);
  return out.sort();
}

describe("reprocess", () => {
  it("chunks files into runs within the bound (pure)", () => {
    const f = (size: number) => ({ size });
    expect(chunkByBound([f(1), f(1), f(1), f(1), f(1)], { kind: "files", limit: 2 }).map((c) => c.length)).toEqual([2, 2, 1]);
    expect(chunkByBound([f(5), f(20), f(5), f(5)], { kind: "bytes", limit: 10 }).map((c) => c.length)).toEqual([1, 1, 2]);
    expect(chunkByBound([], { kind: "files", limit: 2 })).toEqual([]);
  });

  it("a partition: exactly its files, in chained bounded runs, outputs overwritten, the bookmark unchanged", async () => {
    const h = await harness("rp-part", { source: { partitionKeys: ["dt"], boundedFiles: 2 } });
    for (let i = 0; i < 5; i++) await writeInput(h.inDir, `dt=2024-01-01/a-${i}.json`, line(i), T0 + i * 1000);
    for (let i = 0; i < 3; i++) await writeInput(h.inDir, `dt=2024-01-02/b-${i}.json`, line(i), T0 + 10_000 + i * 1000);
    await h.startWorker();
    for (let i = 0; i < 4; i++) await h.run();
    const outs = await markOutputs(h);
    expect(outs).toHaveLength(8);
    const before = await bookmarkDump(h);
    const { r, runs } = await reprocess(h, { partitions: ["dt=2024-01-01"] });
    expect(r).toMatchObject({ files: 5, runs: 3, missing: [], leased: [] });
    expect(runs.map((x) => x.state)).toEqual(["SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]);
    expect(runs.every((x) => x.mode === "reprocess" && x.trigger === "manual")).toBe(true);
    expect(runs.map((x) => Number(x.filesPlanned))).toEqual([2, 2, 1]);
    expect(await rewritten(h)).toEqual(outs.filter((o) => o.startsWith("dt=2024-01-01/")));
    expect(await listFiles(h.outDir)).toEqual(outs); // overwritten in place, not doubled
    expect(await bookmarkDump(h)).toEqual(before);
    // The runs show in the job's run list, with mode reprocess; the history (the bookmark's) does not hold them.
    const store = new BookmarkStore(h.redis, h.prefix, h.name);
    expect((await store.history()).some((e) => runs.some((x) => x.id === e.runId))).toBe(false);
  });

  it("a time range and a key list: exactly those files; missing keys and files a live run holds are reported", async () => {
    // Two runs at once: the live run below holds one slot, the reprocess runs take the other.
    const h = await harness("rp-keys", { source: { partitionKeys: ["dt"] }, maxConcurrentRuns: 2 });
    for (let i = 0; i < 6; i++) await writeInput(h.inDir, `dt=2024-01-01/f-${i}.json`, line(i), T0 + i * 60_000);
    await h.startWorker();
    await h.run();
    let outs = await markOutputs(h);
    const before = await bookmarkDump(h);
    // [T0 + 1 min, T0 + 3 min): files 1 and 2.
    const range = await reprocess(h, { since: new Date(T0 + 60_000).toISOString(), until: String(T0 + 180_000) });
    expect(range.r).toMatchObject({ files: 2, runs: 1 });
    expect(await rewritten(h)).toEqual(outs.filter((o) => /f-[12]\./.test(o)));
    outs = await markOutputs(h);
    // A key list with a key that does not exist, and one file a live run holds.
    const store = new BookmarkStore(h.redis, h.prefix, h.name);
    await holdLiveRun(h.redis, h.prefix, h.name, "live-run");
    const f5 = {
      key: "dt=2024-01-01/f-5.json",
      size: (await stat(path.join(h.inDir, "dt=2024-01-01/f-5.json"))).size,
      lastModified: T0 + 300_000,
      etag: "",
      partition: "dt=2024-01-01",
    };
    // The lease of a live run (as its plan step leaves it), written the way lease-files does.
    await h.redis
      .multi()
      .zadd(store.k.lease(f5.partition), f5.lastModified, f5.key)
      .hset(store.k.leaseRun(f5.partition), f5.key, "live-run")
      .exec();
    const before2 = await bookmarkDump(h);
    const keys = await reprocess(h, { keys: ["dt=2024-01-01/f-0.json", "dt=2024-01-01/f-4.json", "dt=2024-01-01/nope.json", f5.key] });
    expect(keys.r).toMatchObject({ files: 2, runs: 1, missing: ["dt=2024-01-01/nope.json"], leased: [f5.key] });
    expect(await rewritten(h)).toEqual(outs.filter((o) => /f-[04]\./.test(o)));
    expect(await bookmarkDump(h)).toEqual(before2);
    await releaseLiveRun(h.redis, h.prefix, h.name, "live-run");
    await h.redis.multi().zrem(store.k.lease(f5.partition), f5.key).hdel(store.k.leaseRun(f5.partition), f5.key).exec();
    expect(await bookmarkDump(h)).toEqual(before);
  });

  it("bad criteria are E_CONFIG naming the option; nothing matched starts no run", async () => {
    const h = await harness("rp-bad", { source: { partitionKeys: ["dt"] } });
    await writeInput(h.inDir, "dt=2024-01-01/x.json", line(0), T0);
    const ctx = stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log });
    try {
      await expect(startReprocess(ctx, h.name, {})).rejects.toMatchObject({ code: "E_CONFIG" });
      await expect(startReprocess(ctx, h.name, { partitions: ["region=eu"] })).rejects.toThrow(/partition keys dt, not "region"/);
      await expect(startReprocess(ctx, h.name, { since: "yesterday" })).rejects.toThrow(/--since/);
      const r = await startReprocess(ctx, h.name, { partitions: ["dt=2030-01-01"] });
      expect(r).toMatchObject({ runId: null, files: 0, runs: 0 });
      expect(await h.redis.zcard(`${h.prefix}:runs:${h.name}:index`)).toBe(0);
    } finally {
      await ctx.queues.close();
    }
  });
});
