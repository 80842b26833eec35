import { afterEach, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { log } from "../src/log.js";
import { lastListing } from "../src/run/listing-step.js";
import { previewPlan } from "../src/run/plan-preview.js";
import { cli, writeConfig } from "./helpers/cli.js";
import { writeInput } from "./helpers/files.js";
import { closeHarnesses, harness } from "./helpers/harness.js";

afterEach(closeHarnesses);
const T0 = Date.UTC(2024, 0, 1);

describe("plan preview", () => {
  it("shows exactly what the next run then takes, and leases and writes nothing", async () => {
    const h = await harness("preview", { source: { partitionKeys: ["dt"], boundedFiles: "7" } });
    for (let i = 0; i < 20; i++)
      await writeInput(h.inDir, `dt=2024-01-0${(i % 3) + 1}/f${String(i).padStart(2, "0")}.json`, `{"i":${i}}\n`, T0 + i * 1000);
    const store = new BookmarkStore(h.redis, h.prefix, h.name);
    h.startWorker(2);
    const first = await h.run(); // some history: the preview must go through the bookmark
    expect(first.files).toBe(7);
    const before = { listing: await lastListing(store), summary: await store.summary() };
    const p = await previewPlan(h.cfg, h.name, h.redis, log);
    expect(p).toMatchObject({
      mode: "enable",
      bound: "boundedFiles=7",
      boundSource: "job",
      next: { files: 7 },
      backlog: { files: 13 },
      runsNeeded: 2,
      listing: { strategy: "full", objectsListed: 20 },
    });
    expect(p.listing.listRequests).toBeGreaterThanOrEqual(1);
    expect(p.next.oldest).toBe(new Date(T0 + 7000).toISOString());
    expect(p.next.newest).toBe(new Date(T0 + 13_000).toISOString());
    // Nothing leased, nothing recorded.
    expect({ listing: await lastListing(store), summary: await store.summary() }).toEqual(before);
    const next = await h.run();
    expect([next.files, next.bytes]).toEqual([p.next.files, p.next.bytes]);
    expect(next.partitions.map((x) => [x.partition, x.files])).toEqual(p.next.partitions.map((x) => [x.partition, x.files]));
    expect(next.remainingFiles).toBe(p.backlog.files - p.next.files);
    // With an override, the bound's source says so.
    expect(await previewPlan(h.cfg, h.name, h.redis, log, { override: { boundedFiles: "100" } })).toMatchObject({
      boundSource: "override",
      next: { files: 6 },
      runsNeeded: 1,
    });
  });

  it("tranche plan prints it (and --json), exit 0; a bad bound is exit 2", async () => {
    const h = await harness("plancli", {});
    for (let i = 0; i < 3; i++) await writeInput(h.inDir, `f${i}.json`, "{}\n", T0 + i);
    const config = await writeConfig(h.dir, { ...h.cfg, jobs: { [h.name]: h.cfg.jobs[h.name] } });
    const text = await cli(["plan", h.name, "--config", config]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/next run: 3 files, .* in 1 partition/);
    expect(text.stdout).toMatch(/nothing leased or written/);
    const json = JSON.parse((await cli(["plan", h.name, "--config", config, "--json", "--bounded-files", "2"])).stdout);
    expect(json).toMatchObject({ boundSource: "override", next: { files: 2 }, runsNeeded: 2 });
    const bad = await cli(["plan", h.name, "--config", config, "--bounded-files", "0"]);
    expect(bad.code).toBe(2);
  });
});
