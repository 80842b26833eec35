/** Listing strategies and partition filters (pure), and the local source's folder and StartAfter listing. */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compileFilter } from "../src/source/partition-filter.js";
import { chooseListing, listPages, parseFullListingEvery } from "../src/source/listing.js";
import { LocalSource } from "../src/source/local-source.js";
import { validateConfig } from "../src/config/load.js";
import { writeInput } from "./helpers/files.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const loadConfigText = (job: Record<string, unknown>) =>
  validateConfig({ jobs: { j: { processor: "ndjson", output: { path: "out" }, ...job } } }, { baseDir: "/tmp" });

describe("partitionFilter (Glue's GetPartitions Expression)", () => {
  const keys = ["dt", "region", "hour"];
  const f = (src: string, v: Record<string, string>) => compileFilter(src, keys)(v);
  it("evaluates every operator", () => {
    const v = { dt: "2024-01-02", region: "eu", hour: "07" };
    expect(f("dt = '2024-01-02'", v)).toBe(true);
    expect(f("dt <> '2024-01-02'", v)).toBe(false);
    expect(f("dt != '2024-01-01'", v)).toBe(true);
    expect(f("dt < '2024-01-03' AND dt > '2024-01-01'", v)).toBe(true);
    expect(f("dt <= '2024-01-01' OR dt >= '2024-01-02'", v)).toBe(true);
    expect(f("region IN ('eu', 'us')", v)).toBe(true);
    expect(f("region NOT IN ('eu')", v)).toBe(false);
    expect(f("dt BETWEEN '2024-01-01' AND '2024-01-02'", v)).toBe(true);
    expect(f("dt NOT BETWEEN '2024-01-01' AND '2024-01-02'", v)).toBe(false);
    expect(f("region LIKE 'e%'", v)).toBe(true);
    expect(f("region LIKE 'e_'", v)).toBe(true);
    expect(f("region NOT LIKE 'u%'", v)).toBe(true);
    expect(f("NOT (region = 'eu')", v)).toBe(false);
    expect(f("hour IS NULL", v)).toBe(false);
    expect(f("hour IS NOT NULL", v)).toBe(true);
    expect(f("hour IS NULL", { ...v, hour: "__HIVE_DEFAULT_PARTITION__" })).toBe(true);
    // SQL's NULL: no comparison with it is true, not even under NOT.
    const nul = { ...v, hour: "__HIVE_DEFAULT_PARTITION__" };
    expect(f("hour >= 9", nul)).not.toBe(true);
    expect(f("NOT hour IN (8, 11)", nul)).not.toBe(true);
    expect(f("hour NOT IN (8, 11)", nul)).not.toBe(true);
    // Number literals compare numerically ('07' = 7, and '10' > 9 although '10' < '9' as text).
    expect(f("hour = 7", v)).toBe(true);
    expect(f("hour > 9", { ...v, hour: "10" })).toBe(true);
    expect(f("hour > '9'", { ...v, hour: "10" })).toBe(false);
    expect(f("region = 'it''s'", { ...v, region: "it's" })).toBe(true);
    expect(f("(dt = '2024-01-01' OR dt = '2024-01-02') AND region = 'eu'", v)).toBe(true);
  });
  it("is three-valued: unknown keys make a comparison unknown, so a folder is pruned only when nothing below can match", () => {
    expect(f("dt >= '2024-01-02' AND region = 'eu'", { dt: "2024-01-01" })).toBe(false);
    expect(f("dt >= '2024-01-02' AND region = 'eu'", { dt: "2024-01-03" })).toBe(null);
    expect(f("dt = '2024-01-01' OR region = 'eu'", { dt: "2024-01-02" })).toBe(null);
    expect(f("dt = '2024-01-01' OR region = 'eu'", { dt: "2024-01-01" })).toBe(true);
    expect(f("NOT region = 'eu'", { dt: "x" })).toBe(null);
  });
  it("refuses bad filters, naming the problem", () => {
    expect(() => compileFilter("day = '1'", keys)).toThrow(/"day" is not a partition key \(source.partitionKeys: dt, region, hour\)/);
    expect(() => compileFilter("dt = ", keys)).toThrow(/expected a value at the end/);
    expect(() => compileFilter("dt = '1' AND", keys)).toThrow(/expected a partition key/);
    expect(() => compileFilter("dt ~ '1'", keys)).toThrow(/cannot read/);
    expect(() => compileFilter("dt = '1' region = 'x'", keys)).toThrow(/unexpected text at "region"/);
    expect(() => loadConfigText({ source: { path: "in", partitionKeys: ["dt"], partitionFilter: "dte = '1'" } })).toThrow(
      /partitionFilter.*"dte" is not a partition key/,
    );
    expect(() => loadConfigText({ source: { path: "in", listing: "partitions" } })).toThrow(
      /listing: partitions needs source.partitionKeys/,
    );
    expect(() => loadConfigText({ source: { path: "in", listing: "lexical", fullListingEvery: "soon" } })).toThrow(/fullListingEvery/);
  });
});

describe("chooseListing", () => {
  const base = {
    configured: "lexical" as const,
    cursor: "k",
    enableMode: true,
    retryPending: false,
    every: { runs: 5 },
    runsSinceFull: 0,
    lastFullAt: 0,
    now: 1_000_000,
  };
  it("lists from the cursor, and in full when it must", () => {
    expect(chooseListing(base)).toEqual({ strategy: "lexical", startAfter: "k", reason: expect.any(String) });
    expect(chooseListing({ ...base, cursor: null }).strategy).toBe("full");
    expect(chooseListing({ ...base, enableMode: false }).strategy).toBe("full");
    expect(chooseListing({ ...base, retryPending: true }).strategy).toBe("full");
    expect(chooseListing({ ...base, runsSinceFull: 3 }).strategy).toBe("lexical");
    expect(chooseListing({ ...base, runsSinceFull: 4 }).strategy).toBe("full");
    expect(chooseListing({ ...base, every: parseFullListingEvery("10m"), lastFullAt: 1_000_000 - 599_000 }).strategy).toBe("lexical");
    expect(chooseListing({ ...base, every: parseFullListingEvery("10m"), lastFullAt: 1_000_000 - 600_000 }).strategy).toBe("full");
    expect(chooseListing({ ...base, configured: "full" }).strategy).toBe("full");
    expect(chooseListing({ ...base, configured: "partitions" }).strategy).toBe("partitions");
    expect(() => parseFullListingEvery("0h")).toThrow(/fullListingEvery/);
  });
});

describe("local source: folders, StartAfter, partitions listing", () => {
  it("lists sub-folders, keys after a key, and only the partitions a filter can match", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "tranche-listing-"));
    dirs.push(root);
    for (const dt of ["2024-01-01", "2024-01-02", "2024-01-03"])
      for (const region of ["eu", "us"]) await writeInput(root, `dt=${dt}/region=${region}/a.json`, "{}\n", Date.UTC(2024, 0, 1));
    await writeInput(root, "other/b.json", "{}\n", Date.UTC(2024, 0, 1));
    const src = new LocalSource(root);
    expect(await src.folders("")).toEqual(["dt=2024-01-01/", "dt=2024-01-02/", "dt=2024-01-03/", "other/"]);
    expect(await src.folders("dt=2024-01-02/")).toEqual(["dt=2024-01-02/region=eu/", "dt=2024-01-02/region=us/"]);
    const keysOf = async (it: AsyncIterable<{ key: string }[]>) => {
      const out: string[] = [];
      for await (const p of it) out.push(...p.map((o) => o.key));
      return out.sort();
    };
    expect(await keysOf(src.list({ startAfter: "dt=2024-01-02/region=eu/a.json" }))).toEqual([
      "dt=2024-01-02/region=us/a.json",
      "dt=2024-01-03/region=eu/a.json",
      "dt=2024-01-03/region=us/a.json",
      "other/b.json",
    ]);
    const keys = ["dt", "region"];
    const filter = compileFilter("dt >= '2024-01-02' AND region = 'eu'", keys);
    expect(await keysOf(listPages(src, { choice: { strategy: "partitions", reason: "" }, partitionKeys: keys, filter }))).toEqual([
      "dt=2024-01-02/region=eu/a.json",
      "dt=2024-01-03/region=eu/a.json",
    ]);
    // The filter applies to a full listing too (files outside the Hive layout never match it).
    expect(await keysOf(listPages(src, { choice: { strategy: "full", reason: "" }, partitionKeys: keys, filter }))).toHaveLength(2);
  });
});
