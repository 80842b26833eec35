/** Dead letters are loud (summary, --json, status, metric, exit 6) and can be listed, retried and cleared. */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registry } from "../src/metrics/registry.js";
import { drainGoesOn } from "../src/cli/run-command.js";
import type { RunSummary } from "../src/run/summary.js";
import { closeHarnesses, harness } from "./helpers/harness.js";
import { cli, writeConfig } from "./helpers/cli.js";
import { listFiles, writeInput } from "./helpers/files.js";
import { cleanPrefix, REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";

const T0 = Date.UTC(2024, 0, 1);
const CORRUPT = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]);

describe("dead letters through the CLI", () => {
  let dir: string;
  let config: string;
  const prefix = uniquePrefix("dlcli");
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "tranche-dl-"));
    for (let i = 0; i < 6; i++) await writeInput(path.join(dir, "in"), `f${i}.json`, `{"i":${i}}\n`, T0 + i * 1000);
    await writeInput(path.join(dir, "in"), "broken.json.gz", CORRUPT, T0 + 2500);
    config = await writeConfig(dir, {
      redis: { url: REDIS_URL },
      prefix,
      jobs: {
        events: {
          source: { path: "in", boundedFiles: "100" },
          processor: "ndjson",
          output: { path: pathToFileURL(path.join(dir, "out")).href },
          worker: { threads: 1 },
          attempts: 1,
          backoffMs: 10,
          bookmark: { deadLetterAfterRuns: 2 },
        },
      },
    });
  });
  afterAll(async () => {
    const r = redisClient();
    await cleanPrefix(r, prefix);
    await r.quit();
    await rm(dir, { recursive: true, force: true });
  });

  it("--drain goes on past a run that failed on a file error, dead-letters it, and exits 6 naming it", async () => {
    const r = await cli(["run", "events", "-c", config, "--drain", "--json"]);
    const runs = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as RunSummary);
    expect(runs.map((x) => [x.status, x.files, x.deadLettered])).toEqual([
      ["failed", 6, 0],
      ["succeeded", 6, 1],
    ]);
    expect(runs[1]!.deadLetteredKeys).toEqual(["broken.json.gz"]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/error \[E_DEAD_LETTERED\]: job "events": 1 file was set aside as dead letters \(broken\.json\.gz\)/);
    expect(await listFiles(path.join(dir, "out"))).toHaveLength(6);

    const st = JSON.parse((await cli(["status", "events", "-c", config, "--json"])).stdout);
    expect(st.deadLetters).toBe(1);
    expect((await cli(["status", "events", "-c", config])).stdout).toMatch(/DEAD LETTERS: 1 file set aside/);
  });

  it("list shows every dead letter with its reason; retry puts it back; clear forgets it", async () => {
    const list = await cli(["dead-letters", "list", "events", "-c", config]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^broken\.json\.gz\t2024-01-01T00:00:02\.500Z\t_\t\S+\t.*corrupt or truncated gzip/m);
    const json = (await cli(["dead-letters", "list", "events", "-c", config, "--json"])).stdout.trim().split("\n");
    expect(json.map((l) => JSON.parse(l).key)).toEqual(["broken.json.gz"]);

    // Fixed in place with the same last-modified time: only a retry brings it back.
    await writeInput(path.join(dir, "in"), "broken.json.gz", gzipSync('{"fixed":true}\n'), T0 + 2500);
    expect((await cli(["run", "events", "-c", config, "--json"])).stdout).toMatch(/"status":"empty"/);
    expect((await cli(["dead-letters", "retry", "events", "-c", config])).stdout).toMatch(/1 dead letter of job events put back/);
    const again = JSON.parse((await cli(["run", "events", "-c", config, "--json"])).stdout);
    expect([again.status, again.files]).toEqual(["succeeded", 1]);
    expect(await listFiles(path.join(dir, "out"))).toContain("broken.json.gz.ndjson");
    expect((await cli(["dead-letters", "list", "events", "-c", config, "--json"])).stdout.trim()).toBe("");
    expect((await cli(["run", "events", "-c", config, "--json"])).stdout).toMatch(/"status":"empty"/);
    expect((await cli(["dead-letters", "clear", "events", "-c", config])).stdout).toMatch(/0 dead letters of job events forgotten/);
  });
});

describe("dead letters in the library", () => {
  afterAll(closeHarnesses);

  it("are counted in tranche_dead_letters_total and the list is not capped", async () => {
    const h = await harness("dlmany", { attempts: 1, bookmark: { deadLetterAfterRuns: 1 }, batchFiles: 500 });
    // Two good files per bad one, so the batch is not judged a job failure.
    for (let i = 0; i < 150; i++) {
      await writeInput(h.inDir, `bad-${i}.json.gz`, CORRUPT, T0 + i * 10);
      await writeInput(h.inDir, `ok-${i}-a.json`, "{}\n", T0 + i * 10 + 1);
      await writeInput(h.inDir, `ok-${i}-b.json`, "{}\n", T0 + i * 10 + 2);
    }
    h.startWorker(2);
    const r = await h.run();
    expect([r.status, r.deadLettered, r.deadLetteredKeys.length]).toEqual(["succeeded", 150, 150]);
    const { BookmarkStore } = await import("../src/bookmark/store.js");
    let listed = 0;
    for await (const page of new BookmarkStore(h.redis, h.prefix, h.name).deadLetters.list()) listed += page.length;
    expect(listed).toBe(150);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(new RegExp(`tranche_dead_letters_total\\{tranche_job="${h.name}"\\} 150`));
  });
});

describe("drain stopping rule (pure)", () => {
  const s = (o: Partial<RunSummary>): RunSummary =>
    ({ status: "succeeded", mode: "enable", remainingFiles: 0, jobFailure: null, fileFailures: 0, ...o }) as RunSummary;
  it("goes on after progress or file errors bound for dead letters; stops on job errors, no progress, or nothing left", () => {
    expect(drainGoesOn(s({ remainingFiles: 5 }), 3)).toBe(true);
    expect(drainGoesOn(s({ remainingFiles: 0 }), 3)).toBe(false);
    expect(drainGoesOn(s({ status: "failed", fileFailures: 2 }), 3)).toBe(true);
    expect(drainGoesOn(s({ status: "failed", fileFailures: 2 }), 0)).toBe(false); // never dead-lettered: no endless loop
    expect(drainGoesOn(s({ status: "failed", jobFailure: "E_SINK: disk full" }), 3)).toBe(false);
    expect(drainGoesOn(s({ status: "empty" }), 3)).toBe(false);
    expect(drainGoesOn(s({ status: "lost" }), 3)).toBe(false);
    expect(drainGoesOn(s({ mode: "pause", remainingFiles: 5 }), 3)).toBe(false);
  });
});
