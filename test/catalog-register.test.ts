import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { CatalogRegistrar } from "../src/catalog/register.js";
import { outputPartitions, registrationOf, retryDelayMs } from "../src/catalog/registration.js";
import { log } from "../src/log.js";
import { registry } from "../src/metrics/registry.js";
import { jobStatus } from "../src/run/job-status.js";
import { startGlueStandin, type GlueStandin } from "./helpers/glue-standin.js";
import { writeInput } from "./helpers/files.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { cleanPrefix, redisClient, uniquePrefix } from "./helpers/redis.js";
import { startS3, type S3Fixture } from "./helpers/s3rver.js";
import { waitFor } from "./helpers/cli.js";

let s3: S3Fixture;
let glue: GlueStandin;
beforeAll(async () => {
  [s3, glue] = await Promise.all([startS3(), startGlueStandin()]);
  await s3.createBucket("clean");
});
afterAll(async () => {
  await glue?.close();
  await s3?.stop();
});
afterEach(async () => {
  await closeHarnesses();
  glue.reset();
});

const T0 = Date.UTC(2024, 0, 1);
const DENIED = { status: 400, type: "AccessDeniedException", message: "no glue:BatchCreatePartition" };

/** A job from a local folder (partitions dt) into s3://clean/<name>/, registered in curated.<name> (partitioned by dt). */
async function registeredJob(name: string, job: Record<string, unknown> = {}) {
  glue.putTable("curated", name, {
    location: `s3://clean/${name}/`,
    partitionKeys: ["dt"],
    storageDescriptor: { SerdeInfo: { SerializationLibrary: "org.openx.data.jsonserde.JsonSerDe", Parameters: { x: "1" } } },
  });
  const h = await harness(
    name,
    {
      source: { partitionKeys: ["dt"] },
      output: { path: `s3://clean/${name}/`, catalog: { database: "curated", table: name, endpoint: glue.endpoint } },
      ...job,
    },
    { s3: s3.settings },
  );
  return h;
}

const pending = (h: Harness) => h.redis.hlen(`${h.prefix}:cat:${h.name}:reg`);

async function metric(outcome: string, job: string): Promise<number> {
  const m = (await registry.getSingleMetric("tranche_catalog_registrations_total")!.get()).values;
  return m.find((v) => v.labels.outcome === outcome && v.labels.tranche_job === job)?.value ?? 0;
}

describe("output folders → output table partitions (pure)", () => {
  it("values from k=v folders in the table's key order, location up to the last key, duplicates merged, the rest unmatched", () => {
    expect(
      outputPartitions(
        "s3://clean/out",
        ["dt", "region"],
        [
          "dt=2024-01-01/region=eu",
          "dt=2024-01-01/region=eu/sub",
          "region=us/dt=2024-01-02",
          "dt=2024%2F01/region=eu",
          "dt=2024-01-03",
          "misc",
        ],
      ),
    ).toEqual({
      partitions: [
        { values: ["2024-01-01", "eu"], location: "s3://clean/out/dt=2024-01-01/region=eu/" },
        { values: ["2024-01-02", "us"], location: "s3://clean/out/region=us/dt=2024-01-02/" },
        { values: ["2024/01", "eu"], location: "s3://clean/out/dt=2024%2F01/region=eu/" },
      ],
      unmatched: ["dt=2024-01-03", "misc"],
    });
    expect(retryDelayMs(1)).toBe(2000);
    expect(retryDelayMs(3)).toBe(8000);
    expect(retryDelayMs(50)).toBe(300_000);
  });
});

describe("output partitions registered in the output catalog table", () => {
  it("creates each new output partition once, with the table's storage descriptor at the partition's location", async () => {
    const h = await registeredJob("reg1");
    for (const [i, dt] of ["2024-01-01", "2024-01-02", "2024-01-03"].entries()) {
      await writeInput(h.inDir, `dt=${dt}/a.json`, '{"a":1}\n', T0 + i * 1000);
      await writeInput(h.inDir, `dt=${dt}/sub/b.json`, '{"b":1}\n', T0 + i * 1000 + 1);
    }
    h.startWorker();
    const r = await h.run();
    expect([r.status, r.files]).toEqual(["succeeded", 6]);
    const parts = glue.partitions("curated", "reg1");
    expect(parts.map((p) => [p.Values, p.StorageDescriptor.Location]).sort()).toEqual([
      [["2024-01-01"], "s3://clean/reg1/dt=2024-01-01/"],
      [["2024-01-02"], "s3://clean/reg1/dt=2024-01-02/"],
      [["2024-01-03"], "s3://clean/reg1/dt=2024-01-03/"],
    ]);
    expect(parts[0]!.StorageDescriptor).toMatchObject({
      SerdeInfo: { Parameters: { x: "1" } },
      InputFormat: expect.stringMatching(/TextInputFormat/),
    });
    // One BatchCreatePartition per partition commit (at once, by the commit step), one GetTable each.
    expect(glue.calls().BatchCreatePartition).toBe(3);
    expect(await pending(h)).toBe(0);
    expect(await metric("created", h.name)).toBe(3);
    // A later run writing into an existing partition: AlreadyExists is success, nothing is created twice.
    await writeInput(h.inDir, "dt=2024-01-02/c.json", '{"c":1}\n', T0 + 5000);
    await writeInput(h.inDir, "dt=2024-01-04/d.json", '{"d":1}\n', T0 + 6000);
    const r2 = await h.run();
    expect([r2.status, r2.files]).toEqual(["succeeded", 2]);
    expect(
      glue
        .partitions("curated", "reg1")
        .map((p) => p.Values[0])
        .sort(),
    ).toEqual(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]);
    expect([await metric("created", h.name), await metric("existing", h.name), await pending(h)]).toEqual([4, 1, 0]);
  });

  it("is idempotent: the commit queues its registration in the commit script, once; registering it again changes nothing", async () => {
    const h = await registeredJob("reg2");
    await writeInput(h.inDir, "dt=2024-02-01/a.json", '{"a":1}\n', T0);
    glue.failNext("BatchCreatePartition", 1, DENIED); // the commit step's own attempt fails: the entry stays queued
    h.startWorker();
    const r = await h.run();
    expect(r.status).toBe("succeeded");
    const reg = await h.redis.hgetall(`${h.prefix}:cat:${h.name}:reg`);
    const field = `${r.runId}|dt=2024-02-01`;
    expect(Object.keys(reg)).toEqual([field]);
    expect(JSON.parse(reg[field]!)).toMatchObject({ runId: r.runId, partition: "dt=2024-02-01", folders: ["dt=2024-02-01"], attempts: 1 });
    expect(JSON.parse(reg[field]!).lastError).toMatch(/E_ACCESS: Glue BatchCreatePartition .*curated\.reg2: access denied/);
    await h.stopWorker(); // no background retries in this test
    const registrar = new CatalogRegistrar({ redis: h.redis, cfg: h.cfg, job: h.name, log });
    // Not due yet (backoff): nothing is claimed.
    expect(await registrar.drain()).toEqual({ done: 0, failed: 0 });
    await h.redis.zadd(`${h.prefix}:cat:${h.name}:due`, 0, field);
    expect(await registrar.drain()).toEqual({ done: 1, failed: 0 });
    expect(glue.partitions("curated", "reg2").map((p) => p.Values)).toEqual([["2024-02-01"]]);
    expect(await pending(h)).toBe(0);
    // The same registration again (a retried commit step, a worker that died after registering):
    // AlreadyExistsException is success; the entry goes, no partition is added.
    const entry = registrationOf(h.cfg.jobs[h.name]!, r.runId, "dt=2024-02-01", ["dt=2024-02-01/a.json.ndjson"])!;
    await h.redis
      .multi()
      .hset(`${h.prefix}:cat:${h.name}:reg`, field, JSON.stringify(entry))
      .zadd(`${h.prefix}:cat:${h.name}:due`, 0, field)
      .exec();
    expect(await registrar.drain()).toEqual({ done: 1, failed: 0 });
    expect(glue.partitions("curated", "reg2").length).toBe(1);
    expect(await pending(h)).toBe(0);
  });

  it("the commit script queues the registration in the same atomic step, and a retried commit queues nothing more", async () => {
    const redis = redisClient();
    const prefix = uniquePrefix("regcommit");
    try {
      const s = new BookmarkStore(redis, prefix, "j");
      await s.slots.acquire("r1", 10, 30_000);
      await s.stageBatch({
        partition: "dt=1",
        runId: "r1",
        commitId: "c1",
        finalBatchId: "b",
        files: [{ key: "dt=1/a", lastModified: T0, size: 1 }],
      });
      const args = {
        runId: "r1",
        partition: "dt=1",
        bandMs: 1000,
        maxFilesInBand: 10,
        historySize: 10,
        entry: { runId: "r1" },
        epoch: "0",
      };
      const entry = { runId: "r1", partition: "dt=1", folders: ["dt=1"], at: 1 };
      expect((await s.commitPartition({ ...args, registration: entry })).again).toBe(false);
      expect(await redis.hgetall(`${prefix}:cat:j:reg`)).toEqual({ "r1|dt=1": JSON.stringify(entry) });
      expect(await redis.zrange(`${prefix}:cat:j:due`, 0, -1, "WITHSCORES")).toEqual(["r1|dt=1", "0"]);
      await redis.del(`${prefix}:cat:j:reg`, `${prefix}:cat:j:due`); // registered meanwhile
      expect((await s.commitPartition({ ...args, registration: { ...entry, at: 2 } })).again).toBe(true);
      expect(await redis.exists(`${prefix}:cat:j:reg`, `${prefix}:cat:j:due`)).toBe(0);
    } finally {
      await cleanPrefix(redis, prefix);
      await redis.quit();
    }
  });

  it("a failed registration is reported and retried by the workers until it succeeds", async () => {
    const h = await registeredJob("reg3");
    await writeInput(h.inDir, "dt=2024-03-01/a.json", '{"a":1}\n', T0);
    glue.failNext("BatchCreatePartition", 2, DENIED); // the commit step's attempt, then the workers' first retry
    h.startWorker();
    const r = await h.run();
    expect(r.status).toBe("succeeded"); // the commit stands; the registration waits
    const st = await jobStatus(h.cfg, h.redis, h.name, { listIfUnknown: false });
    expect(st.catalogRegistrations).toMatchObject({ pending: 1, failing: 1, lastError: expect.stringMatching(/E_ACCESS/) });
    // The worker's registrar retries after 2 s, fails, then after 4 s more and succeeds.
    await waitFor(async () => glue.partitions("curated", "reg3").length === 1, 20_000, "the registration retried");
    expect(glue.calls().BatchCreatePartition).toBe(3);
    expect(await metric("failed", h.name)).toBe(2);
    await waitFor(async () => (await pending(h)) === 0, 5000, "the entry removed");
    expect((await jobStatus(h.cfg, h.redis, h.name, { listIfUnknown: false })).catalogRegistrations).toMatchObject({ pending: 0 });
  });

  it("a partition the catalog has at another location is left as it is, but reported (log and metric)", async () => {
    const h = await registeredJob("reg6");
    glue.putPartitions("curated", "reg6", [{ values: ["2024-06-01"], location: "s3://clean/old-place/dt=2024-06-01/" }]);
    await writeInput(h.inDir, "dt=2024-06-01/a.json", '{"a":1}\n', T0);
    await writeInput(h.inDir, "dt=2024-06-02/a.json", '{"a":1}\n', T0 + 1);
    h.startWorker();
    expect((await h.run()).status).toBe("succeeded");
    await waitFor(async () => (await pending(h)) === 0, 10_000, "the registrations to finish");
    const parts = glue.partitions("curated", "reg6").map((p) => [p.Values[0], p.StorageDescriptor.Location]);
    expect(parts.sort()).toEqual([
      ["2024-06-01", "s3://clean/old-place/dt=2024-06-01/"],
      ["2024-06-02", "s3://clean/reg6/dt=2024-06-02/"],
    ]);
    expect([await metric("created", h.name), await metric("existing", h.name), await metric("elsewhere", h.name)]).toEqual([1, 0, 1]);
    expect(glue.calls().BatchGetPartition).toBe(1);
  });

  it("a slow Glue holds neither the partitions nor the run's end: the registration finishes after the run", async () => {
    const h = await registeredJob("reg5");
    await writeInput(h.inDir, "dt=2024-05-01/a.json", '{"a":1}\n', T0);
    await writeInput(h.inDir, "dt=2024-05-02/a.json", '{"a":1}\n', T0 + 1);
    // Glue takes 6 s to answer each BatchCreatePartition (the partitions exist once it answers).
    glue.setLatency(6000, "BatchCreatePartition");
    h.startWorker();
    const r = await h.run();
    expect([r.status, r.files]).toEqual(["succeeded", 2]);
    // The run ended before Glue answered: both registrations are still queued (claimed by the commit steps' attempts).
    expect(await pending(h)).toBe(2);
    await waitFor(async () => (await pending(h)) === 0, 20_000, "the registrations to finish");
    expect(
      glue
        .partitions("curated", "reg5")
        .map((p) => p.Values[0])
        .sort(),
    ).toEqual(["2024-05-01", "2024-05-02"]);
    // Done by the commit steps' own attempts, once each (their claims kept the workers' registrars off them).
    expect(glue.calls().BatchCreatePartition).toBe(2);
  });

  it("a registration left by a worker that stopped right after the commit is done by the next worker", async () => {
    const h = await registeredJob("reg4");
    await writeInput(h.inDir, "dt=2024-04-01/a.json", '{"a":1}\n', T0);
    await writeInput(h.inDir, "dt=2024-04-02/a.json", '{"a":1}\n', T0 + 1);
    glue.failNext("BatchCreatePartition", 1000, DENIED);
    h.startWorker();
    expect((await h.run()).status).toBe("succeeded");
    await h.stopWorker(); // the only worker goes away with both registrations pending
    expect(await pending(h)).toBe(2);
    expect(glue.partitions("curated", "reg4")).toEqual([]);
    glue.reset(); // Glue accepts again
    h.startWorker();
    await waitFor(async () => glue.partitions("curated", "reg4").length === 2, 15_000, "the next worker to register");
    await waitFor(async () => (await pending(h)) === 0, 5000, "the entries removed");
  });

  it("config: output.catalog needs an s3:// output; a missing output table fails the preflight naming it", async () => {
    const { validateConfig } = await import("../src/config/load.js");
    expect(() =>
      validateConfig(
        {
          jobs: {
            j: { source: { path: "/tmp/x" }, processor: "ndjson", output: { path: "/tmp/y", catalog: { database: "a", table: "b" } } },
          },
        },
        { env: {} },
      ),
    ).toThrow(/jobs\.j\.output\.catalog: catalog partitions point at S3 locations/);
    const { checkOutputTable } = await import("../src/catalog/register.js");
    const h = await registeredJob("reg5");
    const jc = h.cfg.jobs[h.name]!;
    expect((await checkOutputTable(h.cfg, jc)).table.partitionKeys).toEqual(["dt"]);
    await expect(
      checkOutputTable(h.cfg, { ...jc, output: { ...jc.output, catalog: { ...jc.output.catalog!, table: "missing" } } }),
    ).rejects.toThrow(/GetTable of catalog table curated\.missing: EntityNotFoundException/);
  });
});
