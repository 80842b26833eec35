import { PutObjectCommand } from "@aws-sdk/client-s3";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resolveBound } from "../src/config/bounds.js";
import { escapePartitionValue, partitionPrefix } from "../src/catalog/location.js";
import { makeGlueClient } from "../src/catalog/glue-client.js";
import { catalogPartitions } from "../src/catalog/partitions.js";
import { catalogSourceOptions, getCatalogTable } from "../src/catalog/table.js";
import { catalogWhere } from "../src/catalog/where.js";
import { AccessDeniedError, ConfigError } from "../src/errors.js";
import { JobError } from "../src/failures.js";
import { log } from "../src/log.js";
import { parsePartition } from "../src/source/partitions.js";
import type { StoredPlan } from "../src/run/enqueue-step.js";
import { previewPlan } from "../src/run/plan-preview.js";
import { startGlueStandin, type GlueStandin } from "./helpers/glue-standin.js";
import { closeHarnesses, harness } from "./helpers/harness.js";
import { listAll as listS3, startS3, type S3Fixture } from "./helpers/s3rver.js";
import { cli, writeConfig } from "./helpers/cli.js";
import { REDIS_URL } from "./helpers/redis.js";

let s3: S3Fixture;
let glue: GlueStandin;
beforeAll(async () => {
  [s3, glue] = await Promise.all([startS3(), startGlueStandin()]);
  await s3.createBucket("lake");
  await s3.createBucket("clean");
});
afterAll(async () => {
  await glue?.close();
  await s3?.stop();
});
afterEach(closeHarnesses);

const ref = (table: string, database = "raw") => ({ database, table, endpoint: glue.endpoint });
const client = () => makeGlueClient(s3.settings, { endpoint: glue.endpoint }, { maxAttempts: 2 });

async function put(key: string, body: string): Promise<void> {
  await s3.client.send(new PutObjectCommand({ Bucket: "lake", Key: key, Body: body }));
}

const listAll = (bucket: string, prefix: string) => listS3(s3.client, bucket, prefix);

async function collect(gen: AsyncIterable<{ values: string[]; location: string | undefined }[]>) {
  const out: { values: string[]; location: string | undefined }[] = [];
  for await (const page of gen) out.push(...page);
  return out;
}

describe("the Glue catalog through the real SDK client and the stand-in", () => {
  it("GetTable gives the location, partition keys and parameters; bad parameters are E_CONFIG naming the table and parameter", async () => {
    glue.putTable("raw", "events", {
      location: "s3://lake/tables/events",
      partitionKeys: ["dt", { Name: "region", Type: "string" }],
      parameters: {
        boundedFiles: "7",
        exclusions: '["**.tmp", "**/_SUCCESS"]',
        recurse: "false",
        classification: "json",
        compressionType: "gzip",
      },
    });
    const c = client();
    const t = await getCatalogTable(c, ref("events"));
    expect(t).toMatchObject({ database: "raw", table: "events", location: "s3://lake/tables/events/", partitionKeys: ["dt", "region"] });
    expect(t.storageDescriptor.InputFormat).toMatch(/TextInputFormat/);
    expect(catalogSourceOptions(t)).toEqual({
      bounds: { boundedFiles: "7" },
      exclusions: ["**.tmp", "**/_SUCCESS"],
      recurse: false,
      classification: "json",
      compressionType: "gzip",
    });
    const bad = (parameters: Record<string, string>) => {
      glue.setParameters("raw", "events", parameters);
      return getCatalogTable(c, ref("events")).then((x) => catalogSourceOptions(x));
    };
    await expect(bad({ boundedFiles: "5", boundedSize: "100" })).rejects.toThrow(
      /catalog table raw\.events parameters: both boundedFiles \("5"\) and boundedSize \("100"\) are set/,
    );
    await expect(bad({ boundedFiles: "1.5" })).rejects.toThrow(/catalog table raw\.events parameters: boundedFiles = "1\.5" is not valid/);
    await expect(bad({ boundedSize: "-3" })).rejects.toThrow(/catalog table raw\.events parameters: boundedSize = "-3" is not valid/);
    await expect(bad({ exclusions: "**.tmp" })).rejects.toThrow(
      /raw\.events parameters: exclusions = "\*\*\.tmp" is not valid: give a JSON list/,
    );
    await expect(bad({ recurse: "yes" })).rejects.toThrow(/raw\.events parameters: recurse = "yes" is not valid/);
    await expect(bad({ boundedFiles: "0" })).rejects.toBeInstanceOf(ConfigError);
    // A missing table or database: E_CONFIG naming them.
    const missing = await getCatalogTable(c, ref("nope")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConfigError);
    expect(String(missing)).toMatch(/GetTable of catalog table raw\.nope: EntityNotFoundException/);
    await expect(getCatalogTable(c, ref("events", "nodb"))).rejects.toThrow(
      /nodb\.events: EntityNotFoundException: Database nodb not found/,
    );
    // Access denied: E_ACCESS (not retried by the SDK); throttling: a retryable job error after the SDK's own retries.
    glue.failNext("GetTable", 1, { status: 400, type: "AccessDeniedException", message: "not allowed" });
    const denied = await getCatalogTable(c, ref("events")).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(AccessDeniedError);
    expect((denied as AccessDeniedError).code).toBe("E_ACCESS");
    glue.reset();
    glue.failNext("GetTable", 2, { status: 400, type: "ThrottlingException" });
    const throttled = (await getCatalogTable(c, ref("events")).catch((e: unknown) => e)) as JobError;
    expect([throttled instanceof JobError, throttled.code, throttled.retryable]).toEqual([true, "E_THROTTLED", true]);
    expect(glue.calls().GetTable).toBe(2); // the SDK retried once (maxAttempts 2)
    glue.reset();
    glue.failNext("GetTable", 1, { status: 503, type: "InternalServiceException" });
    expect((await getCatalogTable(c, ref("events"))).table).toBe("events"); // a 5xx retried by the SDK
    c.destroy();
  });

  it("GetPartitions: pages of 1000 over 2,500 partitions, disjoint Segments, and the Expression filter", async () => {
    glue.putTable("raw", "big", { location: "s3://lake/big/", partitionKeys: ["dt", "region"] });
    const parts = [];
    for (let d = 0; d < 250; d++)
      for (const region of ["eu", "us", "ap", "sa", "af", "me", "oc", "an", "ca", "in"])
        parts.push({
          values: [`2024-${String(1 + Math.floor(d / 28)).padStart(2, "0")}-${String(1 + (d % 28)).padStart(2, "0")}`, region],
          location: `s3://lake/big/x${d}-${region}/`,
        });
    glue.putPartitions("raw", "big", parts);
    const c = client();
    glue.reset();
    const one = await collect(catalogPartitions(c, ref("big"), { segments: 1 }));
    expect(one.length).toBe(2500);
    expect(glue.calls().GetPartitions).toBe(3);
    const reqs = glue.requests("GetPartitions");
    expect(reqs.map((r) => r.MaxResults)).toEqual([1000, 1000, 1000]);
    expect([reqs[0]!.NextToken, typeof reqs[1]!.NextToken, typeof reqs[2]!.NextToken]).toEqual([undefined, "string", "string"]);
    expect(reqs.every((r) => r.Segment === undefined)).toBe(true);

    glue.reset();
    const ten = await collect(catalogPartitions(c, ref("big"), { segments: 10 }));
    expect(new Set(ten.map((p) => p.values.join("/"))).size).toBe(2500); // every partition once
    expect(ten.length).toBe(2500);
    const segs = glue.requests("GetPartitions").map((r) => r.Segment as { SegmentNumber: number; TotalSegments: number });
    expect(segs.map((s) => s.SegmentNumber).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(new Set(segs.map((s) => s.TotalSegments))).toEqual(new Set([10]));

    glue.reset();
    const expr = "dt >= '2024-09-01' AND region IN ('eu', 'us') AND NOT dt LIKE '%-0_'";
    const some = await collect(catalogPartitions(c, ref("big"), { expression: expr, segments: 3, pageSize: 7 }));
    expect(some.length).toBeGreaterThan(0);
    for (const p of some)
      expect(p.values[0]! >= "2024-09-01" && ["eu", "us"].includes(p.values[1]!) && !/-0.$/.test(p.values[0]!)).toBe(true);
    const expected = parts.filter((p) => p.values[0]! >= "2024-09-01" && ["eu", "us"].includes(p.values[1]!) && !/-0.$/.test(p.values[0]!));
    expect(some.length).toBe(expected.length);
    expect(glue.requests("GetPartitions").every((r) => r.Expression === expr && r.MaxResults === 7)).toBe(true);
    // A filter the catalog refuses: E_CONFIG naming the table and the filter.
    await expect(collect(catalogPartitions(c, ref("big"), { expression: "nope = 1" }))).rejects.toThrow(
      /GetPartitions of catalog table raw\.big was refused as invalid: InvalidInputException.*partition filter "nope = 1"/,
    );
    c.destroy();
  });

  it("keys of catalog partitions: values escaped as Hive does, parsed back exactly", () => {
    for (const v of ["2024-01-01", "a/b", "50%", "x=y", "sp ace", "ü", "#1", "__HIVE_DEFAULT_PARTITION__"]) {
      const prefix = partitionPrefix(["dt", "k"], [v, "eu"]);
      expect(parsePartition(`${prefix}part-0.json`, ["dt", "k"])).toEqual({ id: `dt=${v}/k=eu`, values: { dt: v, k: "eu" } });
    }
    expect(escapePartitionValue("a/b:c")).toBe("a%2Fb%3Ac");
  });

  it("bound precedence: run-time override, then job config, then the catalog table's parameters, then the default", () => {
    const where = catalogWhere({ database: "raw", table: "events" });
    const cat = { boundedFiles: "7" };
    expect(resolveBound({ override: { boundedFiles: "2" }, job: { boundedSize: "100" }, catalog: cat, catalogWhere: where })).toEqual({
      bound: { kind: "files", limit: 2 },
      source: "override",
    });
    expect(resolveBound({ job: { boundedSize: "100" }, catalog: cat, catalogWhere: where }).source).toBe("job");
    expect(resolveBound({ job: {}, catalog: cat, catalogWhere: where })).toEqual({ bound: { kind: "files", limit: 7 }, source: "catalog" });
    expect(resolveBound({ job: {}, catalog: {}, catalogWhere: where }).source).toBe("default");
    // A bad catalog value fails even when a higher level wins, naming the table.
    expect(() => resolveBound({ override: { boundedFiles: "2" }, catalog: { boundedFiles: "abc" }, catalogWhere: where })).toThrow(
      /catalog table raw\.events parameters: boundedFiles = "abc"/,
    );
  });
});

describe("a catalog table as a job's source", () => {
  /** A table whose partitions lie inside, outside and beside its location; stray files under the location. */
  async function seedTable(table: string, parameters: Record<string, string> = {}) {
    glue.putTable("raw", table, { location: `s3://lake/tables/${table}/`, partitionKeys: ["dt"], parameters });
    glue.putPartitions("raw", table, [
      { values: ["2024-01-01"], location: `s3://lake/tables/${table}/dt=2024-01-01/` },
      // Outside the table's location, in a folder that does not say its value.
      { values: ["2024-01-02"], location: `s3://lake/elsewhere/${table}/batch-7` },
      { values: ["2024-01-03"], location: `s3://lake/tables/${table}/dt=2024-01-03/` },
      // A value that needs escaping.
      { values: ["2024/01/04"], location: `s3://lake/tables/${table}/odd/` },
    ]);
    await put(`tables/${table}/dt=2024-01-01/a.json`, '{"a":1}\n');
    await put(`tables/${table}/dt=2024-01-01/sub/b.json`, '{"b":1}\n');
    if (parameters.exclusions) await put(`tables/${table}/dt=2024-01-01/skip.tmp`, "x");
    await put(`elsewhere/${table}/batch-7/c.json`, '{"c":1}\n');
    await put(`elsewhere/${table}/batch-7/d.json`, '{"d":1}\n');
    await put(`tables/${table}/dt=2024-01-03/e.json`, '{"e":1}\n');
    await put(`tables/${table}/odd/f.json`, '{"f":1}\n');
    // Under the table's location but in no partition: never listed.
    await put(`tables/${table}/dt=2024-01-09/stray.json`, '{"stray":1}\n');
  }

  function catalogJob(table: string, source: Record<string, unknown> = {}, job: Record<string, unknown> = {}) {
    return harness(
      `cat${table}`,
      {
        source: { path: undefined, catalog: { ...ref(table), segments: 2 }, ...source },
        output: { path: `s3://clean/${table}/` },
        ...job,
      },
      { s3: s3.settings },
    );
  }

  it("lists only the matching partitions' own locations, keys files by the catalog's values, bound from the table", async () => {
    await seedTable("ev1", { boundedFiles: "3", exclusions: '["**.tmp"]' });
    const h = await catalogJob("ev1", { partitionFilter: "dt <= '2024-01-02' OR dt = '2024/01/04'" });
    glue.reset();
    h.startWorker();
    const r1 = await h.run();
    expect([r1.status, r1.files, r1.remainingFiles, r1.bound]).toEqual(["succeeded", 3, 2, "boundedFiles=3"]);
    // One GetTable per run (its plan step), GetPartitions in 2 segments with the filter as Expression.
    expect(glue.calls()).toEqual({ GetTable: 1, GetPartitions: 2 });
    expect(glue.requests("GetPartitions")[0]!.Expression).toBe("dt <= '2024-01-02' OR dt = '2024/01/04'");
    // What the run used of the table is on its stored plan, and stays with its run record.
    const rec = await h.redis.hgetall(`${h.prefix}:run:${r1.runId}`);
    expect(rec.boundSource).toBe("catalog");
    expect(JSON.parse(rec.catalog!)).toMatchObject({
      database: "raw",
      table: "ev1",
      location: "s3://lake/tables/ev1/",
      partitionKeys: ["dt"],
      parameters: { boundedFiles: "3", exclusions: '["**.tmp"]' },
      expression: "dt <= '2024-01-02' OR dt = '2024/01/04'",
      partitionsListed: 3,
    });
    const r2 = await h.run();
    expect([r2.status, r2.files, r2.remainingFiles]).toEqual(["succeeded", 2, 0]);
    expect((await h.run()).status).toBe("empty");
    expect((await listAll("clean", "ev1/")).filter((k) => !k.startsWith("_tranche/"))).toEqual([
      "dt=2024%2F01%2F04/f.json.ndjson",
      "dt=2024-01-01/a.json.ndjson",
      "dt=2024-01-01/sub/b.json.ndjson",
      "dt=2024-01-02/c.json.ndjson",
      "dt=2024-01-02/d.json.ndjson",
    ]);
    // The bookmark's partitions are the catalog's values, as for a path source.
    const parts = (await h.redis.smembers(`${h.prefix}:bm:${h.name}:parts`)).sort();
    expect(parts).toEqual(["dt=2024-01-01", "dt=2024-01-02", "dt=2024/01/04"]);
    // A new file in the partition outside the table's location is taken by the next run, alone.
    await new Promise((r) => setTimeout(r, 1100));
    await put("elsewhere/ev1/batch-7/g.json", '{"g":1}\n');
    const r4 = await h.run();
    expect([r4.status, r4.files]).toEqual(["succeeded", 1]);
  });

  it("workers never ask the catalog: a run planned while Glue answers is processed while it refuses everything", async () => {
    await seedTable("ev2");
    const h = await catalogJob("ev2", { partitionFilter: "dt = '2024-01-02'" });
    const running = h.run();
    const runId = await h.newestRun();
    await h.planNow(runId);
    // The stored plan holds what the run used of the table, and where the selected partitions are read.
    const plan = JSON.parse((await h.redis.get(`${h.prefix}:run:${runId}:plan`))!) as StoredPlan;
    expect([plan.boundSource, plan.catalog?.table, plan.catalog?.expression]).toEqual(["default", "ev2", "dt = '2024-01-02'"]);
    expect(plan.locations).toEqual({ "dt=2024-01-02": { uri: "s3://lake/elsewhere/ev2/batch-7/", strip: "dt=2024-01-02/" } });
    glue.failNext("GetTable", 1000, { status: 400, type: "AccessDeniedException" });
    glue.failNext("GetPartitions", 1000, { status: 400, type: "AccessDeniedException" });
    const before = glue.calls();
    h.startWorker();
    const r = await running;
    expect([r.status, r.files]).toEqual(["succeeded", 2]);
    expect(glue.calls()).toEqual(before);
    glue.reset();
  });

  it("bound precedence in runs and plans: override, then job, then table parameters; plan and status say which", async () => {
    const params = { boundedFiles: "2", exclusions: '["**.tmp"]' };
    await seedTable("ev3", params);
    const h = await catalogJob("ev3");
    let p = await previewPlan(h.cfg, h.name, h.redis, log);
    expect([p.bound, p.boundSource, p.next.files, p.backlog.files]).toEqual(["boundedFiles=2", "catalog", 2, 6]);
    expect(p.catalog).toMatchObject({ table: "ev3", partitionsListed: 4, parameters: { boundedFiles: "2" } });
    p = await previewPlan(h.cfg, h.name, h.redis, log, { override: { boundedFiles: "5" } });
    expect([p.bound, p.boundSource, p.next.files]).toEqual(["boundedFiles=5", "override", 5]);
    h.cfg.jobs[h.name]!.source.boundedFiles = "4";
    p = await previewPlan(h.cfg, h.name, h.redis, log);
    expect([p.bound, p.boundSource, p.next.files]).toEqual(["boundedFiles=4", "job", 4]);
    delete h.cfg.jobs[h.name]!.source.boundedFiles;
    glue.setParameters("raw", "ev3", {});
    p = await previewPlan(h.cfg, h.name, h.redis, log);
    expect([p.bound, p.boundSource]).toEqual(["boundedFiles=10000", "default"]);
    glue.setParameters("raw", "ev3", params);

    // The CLI: `tranche plan` and `tranche status` say the bound is the catalog table's.
    const config = await writeConfig(h.dir, {
      redis: { url: REDIS_URL },
      prefix: h.prefix,
      s3: s3.settings,
      jobs: { [h.name]: { source: { catalog: ref("ev3") }, processor: "ndjson", output: { path: "s3://clean/ev3/" } } },
    });
    const plan = await cli(["plan", h.name, "-c", config]);
    expect(plan.stdout).toMatch(/boundedFiles=2 from the catalog table raw\.ev3 parameters/);
    expect(plan.stdout).toMatch(
      /catalog: table raw\.ev3 at s3:\/\/lake\/tables\/ev3\/, partition keys dt; 4 partitions listed \(\d+ GetPartitions requests?\); parameters boundedFiles=2/,
    );
    const run = await cli(["run", h.name, "-c", config, "--json"]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: "succeeded", files: 2, bound: "boundedFiles=2" });
    const status = await cli(["status", h.name, "-c", config]);
    expect(status.stdout).toMatch(/bound: boundedFiles=2 from the catalog table raw\.ev3 parameters \(run /);
    const overridden = await cli(["run", h.name, "-c", config, "--bounded-files", "3", "--json"]);
    expect(JSON.parse(overridden.stdout)).toMatchObject({ status: "succeeded", files: 3, bound: "boundedFiles=3" });
    expect((await cli(["status", h.name, "-c", config])).stdout).toMatch(/bound: boundedFiles=3 from the command line/);
  });

  it("without any AWS credentials, plan says it could not load them and what to set (E_ACCESS, exit 4), not that access was denied", async () => {
    await seedTable("ev9");
    const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-nocreds-"));
    try {
      const { accessKeyId: _a, secretAccessKey: _s, ...noKeys } = s3.settings;
      const config = await writeConfig(dir, {
        redis: { url: REDIS_URL },
        prefix: "tranche-test-nocreds",
        s3: noKeys,
        jobs: { ev9: { source: { catalog: ref("ev9") }, processor: "ndjson", output: { path: "s3://clean/ev9/" } } },
      });
      const none = "/nonexistent/tranche-no-aws";
      const r = await cli(["plan", "ev9", "-c", config], {
        ...Object.fromEntries(
          [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
          ].map((k) => [k, ""]),
        ),
        AWS_SHARED_CREDENTIALS_FILE: none,
        AWS_CONFIG_FILE: none,
        AWS_EC2_METADATA_DISABLED: "true",
      });
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(
        /E_ACCESS\]: Glue GetTable of catalog table raw\.ev9: could not load AWS credentials \(.*\); set s3\.accessKeyId/,
      );
      expect(r.stderr).not.toMatch(/access denied/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("catalog values that break tranche's rules fail the run before anything is leased (E_CONFIG naming table and parameter)", async () => {
    await seedTable("ev4", { boundedFiles: "10", boundedSize: "1000" });
    const h = await catalogJob("ev4");
    h.startWorker();
    const err = (await h.run().catch((e: unknown) => e)) as { code: string; exitCode: number; message: string };
    expect([err.code, err.exitCode]).toEqual(["E_CONFIG", 2]);
    expect(err.message).toMatch(/catalog table raw\.ev4 parameters: both boundedFiles \("10"\) and boundedSize \("1000"\) are set/);
    expect(await h.redis.keys(`${h.prefix}:bm:${h.name}:p:*`)).toEqual([]);
    glue.setParameters("raw", "ev4", { boundedSize: "1e6" });
    expect(String(await h.run().catch((e: unknown) => e))).toMatch(/catalog table raw\.ev4 parameters: boundedSize = "1e6" is not valid/);
    // A missing table, and a filter on a column that is not a partition key.
    const gone = await catalogJob("nosuch");
    gone.startWorker();
    const missing = (await gone.run().catch((e: unknown) => e)) as { code: string; message: string };
    expect([missing.code, missing.message]).toEqual([
      "E_CONFIG",
      expect.stringMatching(/GetTable of catalog table raw\.nosuch: EntityNotFoundException/),
    ]);
    glue.setParameters("raw", "ev4", {});
    const badFilter = await catalogJob("ev4", { partitionFilter: "region = 'eu'" });
    badFilter.startWorker();
    expect(String(await badFilter.run().catch((e: unknown) => e))).toMatch(
      /"region" is not a partition key .*catalog table raw\.ev4 has partition keys: dt/,
    );
  });

  it("a catalog partition located in the output is refused (E_CONFIG naming it) before anything is leased", async () => {
    await seedTable("ev6");
    // A partition pointing into the job's output (s3://clean/ev6/): its files would be outputs.
    glue.putPartitions("raw", "ev6", [{ values: ["2024-01-05"], location: "s3://clean/ev6/dt=2024-01-05/" }]);
    const h = await catalogJob("ev6");
    h.startWorker();
    const err = (await h.run().catch((e: unknown) => e)) as { code: string; message: string };
    expect(err.code).toBe("E_CONFIG");
    expect(err.message).toMatch(
      /partition \("2024-01-05"\) of catalog table raw\.ev6 is located at s3:\/\/clean\/ev6\/dt=2024-01-05\/, which overlaps output\.path/,
    );
    expect(await h.redis.keys(`${h.prefix}:bm:${h.name}:p:*`)).toEqual([]);
  });

  it("config: exactly one of path or catalog; no partitionKeys or lexical listing with a catalog; events refused", async () => {
    const { validateConfig } = await import("../src/config/load.js");
    const job = (source: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      validateConfig({ jobs: { j: { source, processor: "ndjson", output: { path: "s3://clean/x/" }, ...extra } } }, { env: {} });
    expect(() => job({})).toThrow(/give source\.path .* or source\.catalog/);
    expect(() => job({ path: "s3://lake/x/", catalog: { database: "a", table: "b" } })).toThrow(
      /source\.path and source\.catalog are both set/,
    );
    expect(() => job({ catalog: { database: "a", table: "b" }, partitionKeys: ["dt"] })).toThrow(
      /partitionKeys: .*takes its partition keys from the table/,
    );
    expect(() => job({ catalog: { database: "a", table: "b" }, listing: "lexical" })).toThrow(/listing: lexical does not apply/);
    expect(() => job({ catalog: { database: "a", table: "b", segments: 11 } })).toThrow(/segments/);
    expect(() => job({ catalog: { database: "a", table: "b" } }, { triggers: { events: { batchSize: 5 } } })).toThrow(
      /not supported for a catalog source/,
    );
    expect(job({ catalog: { database: "a", table: "b" } }).jobs.j!.source.catalog).toEqual({ database: "a", table: "b", segments: 4 });
  });
});
