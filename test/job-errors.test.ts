/**
 * A broken job must never turn into "done": preflight refuses it before anything is leased, and a
 * job error during a run fails the run with nothing dead-lettered, however many runs it takes.
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { ConfigError } from "../src/errors.js";
import { log } from "../src/log.js";
import { preflight } from "../src/run/preflight.js";
import { FilePool } from "../src/pool/file-pool.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { listFiles, writeInput } from "./helpers/files.js";

afterEach(closeHarnesses);

const T0 = Date.UTC(2024, 0, 1);
const FIXTURES = path.resolve("test/fixtures");

async function seed(h: Harness, n: number) {
  for (let i = 0; i < n; i++)
    await writeInput(h.inDir, `dt=2024-01-01/f-${String(i).padStart(3, "0")}.json`, `{"i":${i}}\n`, T0 + i * 1000);
}

/** Every Redis key of the harness' prefix, by suffix after the prefix. */
async function keysOf(h: Harness): Promise<string[]> {
  return (await h.redis.keys(`${h.prefix}:*`)).map((k) => k.slice(h.prefix.length + 1)).sort();
}

async function check(h: Harness): Promise<unknown> {
  const pool = new FilePool({ threads: 1 });
  try {
    return await preflight({ cfg: h.cfg, job: h.name, pool, log });
  } catch (err) {
    return err;
  } finally {
    await pool.close();
  }
}

describe("preflight: a broken job is refused before anything is read or leased", () => {
  it.each([
    [
      "a processor module that does not exist",
      { processor: "./no-such-processor.mjs" },
      /jobs\.\w+\.processor: .*cannot load processor .*no-such-processor/,
    ],
    [
      "a missing transform module",
      { processorOptions: { transform: "./no-such-transform.mjs" } },
      /jobs\.\w+\.processorOptions\.transform: .*cannot load transform module/,
    ],
    ["a misspelt processor option", { processorOptions: { transfrom: "./x.mjs" } }, /jobs\.\w+\.processorOptions: .*transfrom/],
    [
      "a bad option value",
      { processor: "csv", processorOptions: { delimiter: ";;" } },
      /jobs\.\w+\.processorOptions\.delimiter: .*single character/,
    ],
    ["an unset env reference", { processorOptions: { transform: "${env:TRANCHE_TEST_UNSET_VAR}" } }, /TRANCHE_TEST_UNSET_VAR is not set/],
  ])("%s → E_CONFIG naming the field", async (_what, job, message) => {
    const h = await harness("preflight", job);
    await seed(h, 3);
    const err = await check(h);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    expect(await keysOf(h)).toEqual([]);
  });

  it("an output inside the source, or the same folder, is refused", async () => {
    const h = await harness("overlap", {});
    const inside = await harness("overlap2", { output: { path: "file://" + path.join("/tmp", "x") } });
    await seed(h, 1);
    h.cfg.jobs[h.name]!.output.path = h.cfg.jobs[h.name]!.source.path + "/out";
    expect(String(await check(h))).toMatch(/output\.path .* overlaps jobs\.overlap\.source\.path/);
    inside.cfg.jobs[inside.name]!.output.path = inside.cfg.jobs[inside.name]!.source.path!;
    expect(String(await check(inside))).toMatch(/overlaps/);
  });

  it("a missing source folder is E_UNREACHABLE (exit 4) naming it; a file as source is E_CONFIG", async () => {
    const h = await harness("nosrc", {});
    const err = (await check(h)) as { code: string; exitCode: number; message: string };
    expect([err.code, err.exitCode]).toEqual(["E_UNREACHABLE", 4]);
    expect(err.message).toMatch(new RegExp(`source\\.path: .*${h.inDir}`));
    await mkdir(path.dirname(h.inDir), { recursive: true });
    await writeFile(h.inDir, "not a folder");
    const asFile = (await check(h)) as { code: string; message: string };
    expect(asFile.code).toBe("E_CONFIG");
    expect(asFile.message).toMatch(/source\.path/);
  });

  it("an output path with a trailing slash works (it used to fail every file and dead-letter them all)", async () => {
    const h = await harness("slash", {});
    h.cfg.jobs[h.name]!.output.path += "/";
    await seed(h, 3);
    expect(await check(h)).toMatchObject({ customOutputName: false });
    h.startWorker(1);
    const r = await h.run();
    expect([r.status, r.files, r.deadLettered]).toEqual(["succeeded", 3, 0]);
    expect(await listFiles(h.outDir)).toHaveLength(3);
  });
});

describe("job errors during a run: the run fails, nothing is dead-lettered, the files stay leased", () => {
  it("a processor that throws JobError fails the run in every run, never dead-letters", async () => {
    const h = await harness("joberr", {
      processor: path.join(FIXTURES, "job-error-processor.mjs"),
      attempts: 1,
      bookmark: { deadLetterAfterRuns: 2 },
    });
    await seed(h, 3);
    h.startWorker(1);
    for (let i = 0; i < 4; i++) {
      const r = await h.run();
      expect([r.status, r.committed, r.deadLettered]).toEqual(["failed", false, 0]);
      expect(r.jobFailure).toMatch(/E_LOOKUP_DOWN/);
    }
    const store = new BookmarkStore(h.redis, h.prefix, h.name);
    expect(await store.deadLetters.count()).toEqual({ deadLetters: 0, skipped: 0 });
    expect((await store.summary()).version).toBe(0);
  });

  it("the output folder refusing writes mid-run (a file where a folder must go) is a job error, not dead letters", async () => {
    const h = await harness("sinkerr", { attempts: 1, bookmark: { deadLetterAfterRuns: 1 } });
    await seed(h, 3);
    await mkdir(h.outDir, { recursive: true });
    await writeFile(path.join(h.outDir, "dt=2024-01-01"), "I block the partition folder");
    h.startWorker(1);
    const r = await h.run();
    expect([r.status, r.deadLettered]).toEqual(["failed", 0]);
    expect(r.jobFailure).toMatch(/E_SINK|E_IO|cannot write output/);
    await rm(path.join(h.outDir, "dt=2024-01-01"));
    const r2 = await h.run();
    expect([r2.status, r2.files, r2.deadLettered]).toEqual(["succeeded", 3, 0]);
  });

  it("when ≥ 80% and ≥ 5 files of a batch fail with one error class, the job is at fault", async () => {
    const h = await harness("sameclass", {
      processor: path.join(FIXTURES, "throwing-processor.mjs"),
      attempts: 1,
      bookmark: { deadLetterAfterRuns: 1 },
    });
    await seed(h, 6);
    h.startWorker(1);
    const r = await h.run();
    expect([r.status, r.deadLettered]).toEqual(["failed", 0]);
    expect(r.jobFailure).toMatch(/6 of 6 files of the batch failed with E_PROCESSOR/);
    expect(await new BookmarkStore(h.redis, h.prefix, h.name).deadLetters.count()).toEqual({ deadLetters: 0, skipped: 0 });
  });

  it("a thread that runs out of memory with filesPerThread > 1 cannot blame one file: retried, never dead-lettered", async () => {
    const h = await harness("oomshared", {
      processor: path.join(FIXTURES, "hog-processor.mjs"),
      attempts: 1,
      bookmark: { deadLetterAfterRuns: 1 },
    });
    for (let i = 0; i < 3; i++) await writeInput(h.inDir, `ok-${i}.json`, `{"i":${i}}\n`, T0 + i * 1000);
    await writeInput(h.inDir, "hog.json", "{}\n", T0 + 1500);
    h.startWorker(1, { filesPerThread: 4 });
    const r = await h.run();
    expect([r.status, r.deadLettered]).toEqual(["failed", 0]);
    expect(r.jobFailure).toMatch(/E_THREAD_LOST.*filesPerThread=4/);
  });
});

describe("file errors", () => {
  it("a file whose records are mostly malformed fails (E_BAD_RECORDS); an empty file is processed", async () => {
    const h = await harness("badratio", { attempts: 1, bookmark: { deadLetterAfterRuns: 1 } });
    await writeInput(h.inDir, "mostly-bad.json", '{"ok":1}\nnot json\nnor this\n', T0);
    await writeInput(h.inDir, "empty.json", "", T0 + 1000);
    await writeInput(h.inDir, "fine.json", '{"ok":1}\n{"ok":2}\nbad\n', T0 + 2000);
    h.startWorker(1);
    const r = await h.run();
    expect([r.status, r.files, r.deadLettered, r.deadLetteredKeys]).toEqual(["succeeded", 2, 1, ["mostly-bad.json"]]);
    expect(await listFiles(h.outDir)).toEqual(["empty.json.ndjson", "fine.json.ndjson"]);
    const rec = (await new BookmarkStore(h.redis, h.prefix, h.name).deadLetters.get("deadLetters", ["mostly-bad.json"]))[0]!;
    expect(rec.reason).toMatch(/2 of 3 records are malformed \(more than maxBadRecordRatio 0\.5\)/);
  });

  it("a file deleted between listing and reading is recorded as gone and does not fail the run", async () => {
    const h = await harness("gone", {});
    await seed(h, 4);
    const running = h.run(); // no worker yet: the run is enqueued
    await h.planNow(await h.newestRun()); // planned and leased here; its batches wait for a worker
    await rm(path.join(h.inDir, "dt=2024-01-01/f-002.json"));
    h.startWorker(1);
    const r = await running;
    expect([r.status, r.files, r.gone, r.deadLettered]).toEqual(["succeeded", 3, 1, 0]);
    expect(r.errors.join("\n")).toMatch(/gone: .*f-002\.json/);
    expect((await h.run()).status).toBe("empty");
  });

  it("a hung file fails alone after worker.fileTimeoutSeconds, naming its key and the timeout", async () => {
    const h = await harness("hang", {
      processor: path.join(FIXTURES, "slow-processor.mjs"),
      processorOptions: {},
      attempts: 1,
      worker: { fileTimeoutSeconds: 1 },
    });
    await writeInput(h.inDir, "a.json", "{}\n", T0);
    await writeInput(h.inDir, "hang-b.json", "{}\n", T0 + 1000);
    await writeInput(h.inDir, "c.json", "{}\n", T0 + 2000);
    h.startWorker(2);
    const r = await h.run();
    expect([r.status, r.fileFailures, r.jobFailure]).toEqual(["failed", 1, null]);
    expect(r.errors.join("\n")).toMatch(/hang-b\.json: timed out after 1 s \(worker\.fileTimeoutSeconds\)/);
    expect(await listFiles(h.outDir)).toEqual(["a.json.out", "c.json.out"]);
  });
});
