/**
 * The lexical listing's cursor and stale leases (regressions found in review): a lease before the
 * cursor is never dropped as "deleted" by a listing that could not see it, a lease in a partition
 * that never committed holds the cursor back, and the format 1 → 2 migration can be run again.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { cli, writeConfig } from "./helpers/cli.js";
import { listFiles, writeInput } from "./helpers/files.js";
import { BookmarkStore } from "../src/bookmark/store.js";
import { selectionRule } from "../src/run/selection.js";
import { chooseListing, listingCovers, type ListingChoice } from "../src/source/listing.js";
import { migrateState } from "../src/state-version.js";
import { stateKey } from "../src/bookmark/keys.js";
import { cleanPrefix, REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";

const redis = redisClient();
const prefixes: string[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await cleanPrefix(redis, p);
  await redis.quit();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
const BAND = 10_000;
function store(name: string) {
  const prefix = uniquePrefix(name);
  prefixes.push(prefix);
  return new BookmarkStore(redis, prefix, name);
}
type F = { key: string; lastModified: number };
async function commit(s: BookmarkStore, runId: string, p: string, files: F[]) {
  await s.slots.acquire(runId, 100, 30_000);
  const withSize = files.map((f) => ({ ...f, size: 1 }));
  expect((await s.lease(p, runId, withSize, BAND)).size).toBe(files.length);
  await s.stageBatch({ partition: p, runId, commitId: `${runId}-c`, finalBatchId: "b", files: withSize });
  await s.commitRun({
    runId,
    bandMs: BAND,
    maxFilesInBand: 100_000,
    historySize: 10,
    summary: { runId, status: "succeeded", mode: "enable" },
  });
  await s.slots.release(runId);
}
/** The runner's plan step over one listing: which files are new, and stale leases dropped only where the listing covers them. */
async function plan(s: BookmarkStore, runId: string, choice: ListingChoice, page: (F & { partition: string })[]) {
  const unseen = new Map<string, Map<string, string>>();
  const fresh = await (await selectionRule(s, "enable", runId, BAND, undefined, undefined, unseen))(page);
  const covers = listingCovers(choice, [], undefined);
  for (const [p, stale] of unseen) {
    for (const k of [...stale.keys()]) if (!covers(k)) stale.delete(k);
    if (stale.size) await s.dropStaleLeases(p, stale);
  }
  return fresh;
}
const full: ListingChoice = { strategy: "full", reason: "" };

describe("lexical cursor and stale leases", () => {
  it("an out-of-order key leased by a failed full-listing run is not dropped by the next lexical run, and forces a full listing", async () => {
    const s = store("lexloss");
    await commit(s, "r0", "_", [{ key: "b", lastModified: 1000 }]);
    await commit(s, "r1", "_", [{ key: "c", lastModified: 20_000 }]);
    expect((await s.lexicalCursor(BAND)).cursor).toBe("b");
    // A full listing run takes the out-of-order key a (t=15 s, above the edge of 10 s) and fails.
    await s.slots.acquire("rf", 100, 30_000);
    const all = [
      { key: "a", lastModified: 15_000, partition: "_" },
      { key: "b", lastModified: 1000, partition: "_" },
      { key: "c", lastModified: 20_000, partition: "_" },
    ];
    expect(await plan(s, "rf", full, all)).toEqual([true, false, false]);
    await s.lease("_", "rf", [{ key: "a", lastModified: 15_000, size: 1 }], BAND);
    await s.slots.release("rf");
    // The next lexical run (from b) cannot see a: its lease must stay (it holds the watermark).
    const lex: ListingChoice = { strategy: "lexical", startAfter: "b", reason: "" };
    const page = [
      { key: "c", lastModified: 20_000, partition: "_" },
      { key: "d", lastModified: 30_000, partition: "_" },
    ];
    await s.slots.acquire("r2", 100, 30_000);
    expect(await plan(s, "r2", lex, page)).toEqual([false, true]);
    await s.slots.release("r2");
    expect((await s.summary()).partitions[0]!.leased).toBe(1);
    await commit(s, "r2", "_", [{ key: "d", lastModified: 30_000 }]);
    expect((await s.summary()).partitions[0]!.wm).toBe(20_000); // held by the lease on a (it never moves back)
    // A leased file before the cursor makes the next run list in full, which takes a.
    const c = await s.lexicalCursor(BAND);
    expect(c.leasedUpToCursor).toBe(true);
    const choice = chooseListing({
      configured: "lexical",
      cursor: c.cursor,
      enableMode: true,
      retryPending: false,
      leasedBeforeCursor: c.leasedUpToCursor,
      every: { runs: 100 },
      runsSinceFull: 0,
      lastFullAt: null,
      now: 0,
    });
    expect(choice.strategy).toBe("full");
    await s.slots.acquire("r3", 100, 30_000);
    expect((await plan(s, "r3", full, [all[0]!, ...page]))[0]).toBe(true);
  });

  it("a lease in a partition that never committed holds the cursor back", async () => {
    const s = store("lexgap");
    await s.slots.acquire("r1", 100, 30_000);
    expect((await s.lease("us", "r1", [{ key: "T00/region=us/a", lastModified: 1000, size: 1 }], BAND)).size).toBe(1);
    await commit(s, "r2", "eu", [{ key: "T01/region=eu/b", lastModified: 2000 }]);
    await commit(s, "r3", "eu", [{ key: "T05/region=eu/c", lastModified: 20_000 }]);
    const { cursor } = await s.lexicalCursor(BAND);
    expect(cursor === null || cursor < "T00/region=us/a").toBe(true);
  });

  it("a file a lexical run missed is found by the next full listing even after the watermark passed it by more than the band", async () => {
    const s = store("lexkeep");
    const commitAs = async (runId: string, files: F[], keepMode: "lexical" | "full", keep = false) => {
      await s.slots.acquire(runId, 100, 30_000);
      const withSize = files.map((f) => ({ ...f, size: 1 }));
      expect((await s.lease("_", runId, withSize, BAND, { keep })).size).toBe(files.length);
      await s.stageBatch({ partition: "_", runId, commitId: `${runId}-c`, finalBatchId: "b", files: withSize });
      await s.commitRun({ runId, bandMs: BAND, maxFilesInBand: 100_000, historySize: 10, summary: { runId }, keepMode });
      await s.slots.release(runId);
    };
    await commitAs("r0", [{ key: "e-01", lastModified: 1000 }], "full", true); // the first run lists in full
    await commitAs("r1", [{ key: "e-02", lastModified: 20_000 }], "lexical");
    // e-00 (an earlier name, written later, t=15 s) is not seen by the next lexical run, which
    // moves the watermark to 40 s: the band edge (30 s) passes e-00.
    await commitAs("r2", [{ key: "e-03", lastModified: 40_000 }], "lexical");
    const missed = { key: "e-00", lastModified: 15_000 };
    expect(await s.newFiles("_", await s.loadView("_", BAND), [missed], "x")).toEqual([false]); // settled for a normal run
    // The full listing of the lexical job checks down to its last full listing: e-00 is new, the
    // committed ones are not.
    const view = await s.loadView("_", BAND, { keep: true });
    const all = [missed, { key: "e-01", lastModified: 1000 }, { key: "e-02", lastModified: 20_000 }, { key: "e-03", lastModified: 40_000 }];
    expect(await s.newFiles("_", view, all, "r3")).toEqual([true, false, false, false]);
    await commitAs("r3", [missed], "full", true);
    // That full listing moves 'keep' up to the edge it saw, and the band is pruned below it.
    expect(await s.bandHolds("_", all)).toEqual([false, false, false, true]);
    expect(await s.newFiles("_", await s.loadView("_", BAND, { keep: true }), all, "r4")).toEqual([false, false, false, false]);
  });

  it("a job that becomes lexical (or an upgrade) does not take its committed files again; rewind restores 'keep' and the kept band", async () => {
    const s = store("lexkeep2");
    const commitAs = async (runId: string, files: F[], keepMode: "" | "lexical" | "full", keep = false) => {
      await s.slots.acquire(runId, 100, 30_000);
      const withSize = files.map((f) => ({ ...f, size: 1 }));
      await s.lease("_", runId, withSize, BAND, { keep });
      await s.stageBatch({ partition: "_", runId, commitId: `${runId}-c`, finalBatchId: "b", files: withSize });
      await s.commitRun({ runId, bandMs: BAND, maxFilesInBand: 100_000, historySize: 20, summary: { runId }, keepMode });
      await s.slots.release(runId);
    };
    // Committed as a full-listing job: the band is pruned at the edge, no 'keep'.
    const old = [0, 1, 2, 3, 4, 5].map((i) => ({ key: `k-${i}`, lastModified: 1000 + i * 20_000 }));
    for (const [i, f] of old.entries()) await commitAs(`f${i}`, [f], "");
    const asFull = await s.newFiles("_", await s.loadView("_", BAND, { keep: true }), old, "x");
    expect(asFull).toEqual(old.map(() => false));
    // Now lexical: a full listing run, then lexical runs; then rewind to the second of them.
    await commitAs("l1", [{ key: "m-1", lastModified: 120_000 }], "full", true);
    await commitAs("l2", [{ key: "m-2", lastModified: 140_000 }], "lexical");
    const missed = { key: "a-0", lastModified: 145_000 };
    await commitAs("l3", [{ key: "m-3", lastModified: 170_000 }], "lexical");
    await commitAs("l4", [missed], "full", true); // the full listing takes the missed file
    await commitAs("l5", [{ key: "m-5", lastModified: 300_000 }], "lexical");
    await s.rewind("l3", BAND);
    const view = await s.loadView("_", BAND, { keep: true });
    const committedByThen = [
      { key: "m-1", lastModified: 120_000 },
      { key: "m-2", lastModified: 140_000 },
      { key: "m-3", lastModified: 170_000 },
    ];
    // After the rewind to l3: its files are done, the file l4 took is new again (l4 was undone).
    expect(await s.newFiles("_", view, [...committedByThen, missed, ...old], "y")).toEqual([
      false,
      false,
      false,
      true,
      ...old.map(() => false),
    ]);
  });

  it("end to end (CLI, local folder): an early-named file written later is taken by the periodic full listing, with a warning naming it", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-lexkeep-"));
    dirs.push(dir);
    const prefix = uniquePrefix("lexcli");
    prefixes.push(prefix);
    const inDir = path.join(dir, "in");
    const T0 = Date.UTC(2024, 0, 2);
    const config = await writeConfig(dir, {
      redis: { url: REDIS_URL },
      prefix,
      jobs: {
        ev: {
          source: { path: "in", listing: "lexical", fullListingEvery: 2 },
          processor: "copy",
          output: { path: pathToFileURL(path.join(dir, "out")).href },
          worker: { threads: 1 },
          bookmark: { maxBand: 60 },
        },
      },
    });
    const run = async (extra: string[] = []) => {
      const r = await cli(["run", "ev", "--config", config, "--json", ...extra]);
      expect(r.code, r.stderr).toBe(0);
      return { files: (JSON.parse(r.stdout.trim().split("\n").pop()!) as { files: number }).files, stderr: r.stderr };
    };
    for (let i = 0; i < 3; i++) await writeInput(inDir, `ev-2024-01-02-0${i}.json`, "{}\n", T0 + i * 5000);
    expect((await run()).files).toBe(3); // no cursor yet: a full listing
    await writeInput(inDir, "ev-2024-01-02-10.json", "{}\n", T0 + 200_000);
    expect((await run()).files).toBe(1); // the first run is now settled: the cursor is its greatest key
    // An early name written later, and a later name written after it: the lexical run sees only the
    // later one, and its commit moves the band edge past the early one.
    await writeInput(inDir, "ev-2023-12-29-00.json", "{}\n", T0 + 210_000);
    await writeInput(inDir, "ev-2023-12-29-01.json", "{}\n", T0 + 211_000);
    await writeInput(inDir, "ev-2024-01-02-20.json", "{}\n", T0 + 400_000);
    expect((await run()).files).toBe(1);
    // fullListingEvery: 2. The full listing finds both, but this run's bound takes one: it does not
    // count as a full listing, so the next run lists in full again and takes the other.
    const full = await run(["--bounded-files", "1"]);
    expect(full.files).toBe(1);
    expect(full.stderr).toMatch(/lexical listing skipped.*"missed":2,"keys":\["ev-2023-12-29-00.json","ev-2023-12-29-01.json"\]/);
    expect(full.stderr).toMatch(/more missed files than this run's bound/);
    const again = await run(["--bounded-files", "1"]);
    expect(again.files).toBe(1);
    expect(again.stderr).toMatch(/"keys":\["ev-2023-12-29-01.json"\]/);
    // Nothing left; later full listings that take nothing still move 'keep' up, so the band is pruned.
    expect((await run()).files).toBe(0);
    expect((await run()).files).toBe(0);
    expect(Number(await redis.hget(`${prefix}:bm:ev:p:_:meta`, "keep"))).toBe(T0 + 400_000 - 60_000);
    expect((await listFiles(path.join(dir, "out"))).sort()).toEqual((await listFiles(inDir)).sort());
  }, 60_000);

  it("format 1 → 2 run again after an interrupted migration keeps the converted band and deltas", async () => {
    const s = store("mig");
    const bm = `${s.prefix}:bm:mig`;
    await redis.hset(stateKey(s.prefix), "version", "1");
    await redis.sadd(`${bm}:parts`, "_");
    await redis.hset(`${bm}:p:_:meta`, "wm", "3000", "hwm", "3000", "files", "2");
    await redis.zadd(`${bm}:p:_:done`, 2000, "a", 3000, "b");
    await redis.lpush(
      `${s.prefix}:runs:mig:history`,
      JSON.stringify({
        runId: "r1",
        committed: true,
        version: 1,
        state: {
          _: {
            wm: "3000",
            files: 2,
            band: [
              ["a", 2000],
              ["b", 3000],
            ],
          },
        },
        parts: ["_"],
      }),
    );
    await migrateState(redis, s.prefix, ["mig"]);
    await redis.hset(stateKey(s.prefix), "version", "1"); // as if the step had died before the version bump
    await migrateState(redis, s.prefix, ["mig"]);
    const files = [
      { key: "a", lastModified: 2000 },
      { key: "b", lastModified: 3000 },
    ];
    expect(await s.bandHolds("_", files)).toEqual([true, true]);
    expect((await s.summary()).partitions[0]!.bandFiles).toBe(2);
    expect((await s.history())[0]!.delta).toEqual(["_"]);
  });
});
