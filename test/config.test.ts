import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, validateConfig } from "../src/config/load.js";

const job = { source: { path: "data/in", partitionKeys: ["dt"], boundedFiles: "500" }, processor: "ndjson", output: { path: "data/out" } };

describe("config", () => {
  it("loads the documented shape and resolves relative paths against the file's folder", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-cfg-"));
    const f = path.join(dir, "tranche.yaml");
    await writeFile(
      f,
      `redis: { url: redis://127.0.0.1:6379 }
prefix: "{tranche}"
s3: { region: us-east-1, endpoint: "http://127.0.0.1:9000", forcePathStyle: true }
jobs:
  events:
    source:
      path: raw/events
      partitionKeys: [dt]
      exclusions: ["**.tmp"]
      boundedFiles: "500"
    processor: ndjson
    output: { path: "s3://bucket/out/events/" }
    bookmark: { mode: enable }
    worker: { threads: 2, maxOldGenerationSizeMb: 256 }
`,
    );
    const cfg = loadConfig(f, {});
    expect(cfg.prefix).toBe("{tranche}");
    expect(cfg.jobs.events!.source.path).toBe(`file://${dir}/raw/events`);
    expect(cfg.jobs.events!.output.path).toBe("s3://bucket/out/events/");
    expect(cfg.jobs.events!.bookmark.maxBand).toBe(900);
    expect(loadConfig(f, { TRANCHE_REDIS_URL: "redis://other:6380" }).redis.url).toBe("redis://other:6380");
    expect(loadConfig(undefined, { TRANCHE_CONFIG: f }).jobs.events).toBeDefined();
    await rm(dir, { recursive: true, force: true });
  });

  it("names the field, the bad value and what is allowed", () => {
    expect(() => validateConfig({ jobs: { e: { ...job, worker: { threads: "two" } } } }, { env: {} })).toThrow(
      /jobs\.e\.worker\.threads: got "two"/,
    );
    expect(() => validateConfig({ jobs: { e: { ...job, bookmark: { mode: "on" } } } }, { env: {} })).toThrow(
      /jobs\.e\.bookmark\.mode: got "on".*enable.*disable.*pause/s,
    );
    expect(() => validateConfig({ jobs: { e: { ...job, sorce: {} } } }, { env: {} })).toThrow(/unknown option.*sorce/);
    expect(() => validateConfig({ jobs: { e: { ...job, source: { ...job.source, boundedFiles: "1.5" } } } }, { env: {} })).toThrow(
      /jobs\.e\.source: boundedFiles = "1\.5" is not valid/,
    );
    expect(() => validateConfig({ jobs: { e: { ...job, source: { ...job.source, boundedSize: "100" } } } }, { env: {} })).toThrow(
      /both boundedFiles/,
    );
    expect(() => validateConfig({ jobs: { e: { ...job, source: { ...job.source, path: "ftp://x/y" } } } }, { env: {} })).toThrow(
      /unsupported location/,
    );
  });

  it("validates redis.url, exclusion globs and the environment overrides", () => {
    const base = { jobs: { e: job } };
    expect(() => validateConfig({ ...base, redis: { url: "http://localhost:6379" } }, { env: {} })).toThrow(
      /redis\.url: .*scheme http: is not supported/,
    );
    expect(() => validateConfig({ ...base, redis: { url: "redis://localhost:6379/cache" } }, { env: {} })).toThrow(
      /redis\.url: .*database "cache" is not a number/,
    );
    expect(() => validateConfig({ ...base, redis: { url: "localhost:6379" } }, { env: {} })).toThrow(/redis\.url/);
    expect(validateConfig({ ...base, redis: { url: "rediss://u:p@cache:6380/2" } }, { env: {} }).redis.url).toBe(
      "rediss://u:p@cache:6380/2",
    );
    expect(() => validateConfig({ jobs: { e: { ...job, source: { ...job.source, exclusions: ["**.{tmp"] } } } }, { env: {} })).toThrow(
      /jobs\.e\.source\.exclusions\.0: got "\*\*\.\{tmp"; not a valid glob/,
    );
    expect(() => validateConfig(base, { env: { TRANCHE_REDIS_URL: "mysql://x" } })).toThrow(
      /TRANCHE_REDIS_URL: scheme mysql: is not supported/,
    );
    expect(() => validateConfig(base, { env: { TRANCHE_PREFIX: "a b" } })).toThrow(/TRANCHE_PREFIX="a b"/);
    expect(() => validateConfig({ jobs: { e: { ...job, maxBadRecordRatio: 2 } } }, { env: {} })).toThrow(
      /jobs\.e\.maxBadRecordRatio: got 2/,
    );
  });

  it("says where to look when the file is missing", () => {
    expect(() => loadConfig("/nonexistent/tranche.yaml", {})).toThrow(/config file not found: \/nonexistent\/tranche\.yaml/);
  });
});
