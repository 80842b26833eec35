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

  it("takes a Redis Cluster (redis.cluster) instead of redis.url, with a hash-tagged prefix", () => {
    const base = { jobs: { e: job } };
    const nodes = ["redis://:pw@10.0.0.1:7000", "redis://10.0.0.2:7000"];
    const cfg = validateConfig({ ...base, prefix: "{tranche}", redis: { cluster: { nodes } } }, { env: {} });
    expect(cfg.redis).toEqual({ cluster: { nodes } });
    expect(validateConfig(base, { env: {} }).redis).toEqual({ url: "redis://127.0.0.1:6379" });
    expect(() => validateConfig({ ...base, prefix: "{t}", redis: { url: "redis://a:6379", cluster: { nodes } } }, { env: {} })).toThrow(
      /redis: .*redis\.url and redis\.cluster are both set/,
    );
    // Every key must land in one slot: no tag, an empty tag or an unclosed one is refused, naming prefix.
    for (const prefix of ["tranche", "a{", "x}{y"]) {
      expect(() => validateConfig({ ...base, prefix, redis: { cluster: { nodes } } }, { env: {} })).toThrow(
        /prefix: got .*needs a non-empty hash tag.*use prefix: "\{/,
      );
    }
    expect(() => validateConfig({ ...base, redis: { cluster: { nodes } } }, { env: {} })).toThrow(
      /prefix: got "tranche"; on a Redis Cluster \(redis\.cluster\).*use prefix: "\{tranche\}"/,
    );
    expect(validateConfig({ ...base, prefix: "app-{jobs}", redis: { cluster: { nodes } } }, { env: {} }).prefix).toBe("app-{jobs}");
    expect(() => validateConfig({ ...base, prefix: "{t}", redis: { cluster: { nodes: ["http://a:1"] } } }, { env: {} })).toThrow(
      /redis\.cluster\.nodes\.0: got "http:\/\/a:1"; scheme http: is not supported/,
    );
    expect(() => validateConfig({ ...base, prefix: "{t}", redis: { cluster: { nodes: ["redis://a:1/2"] } } }, { env: {} })).toThrow(
      /redis\.cluster\.nodes\.0: .*only database 0/,
    );
    expect(() => validateConfig({ ...base, prefix: "{t}", redis: { cluster: { nodes: [] } } }, { env: {} })).toThrow(
      /redis\.cluster\.nodes: .*at least one node/,
    );
    expect(() =>
      validateConfig({ ...base, prefix: "{t}", redis: { cluster: { nodes: ["redis://a:1", "rediss://b:1"] } } }, { env: {} }),
    ).toThrow(/redis\.cluster\.nodes: .*mixes redis:\/\/ and rediss:\/\//);
    expect(() =>
      validateConfig({ ...base, prefix: "{t}", redis: { cluster: { nodes: ["redis://:a@a:1", "redis://:b@b:1"] } } }, { env: {} }),
    ).toThrow(/different users or passwords/);
  });

  it("TRANCHE_REDIS_CLUSTER_NODES replaces the redis section, like TRANCHE_REDIS_URL; the prefix rule applies after the overrides", () => {
    const base = { jobs: { e: job }, prefix: "{t}" };
    const env = { TRANCHE_REDIS_CLUSTER_NODES: " redis://h1:7000 , redis://h2:7001," };
    expect(validateConfig(base, { env }).redis).toEqual({ cluster: { nodes: ["redis://h1:7000", "redis://h2:7001"] } });
    expect(
      validateConfig({ ...base, redis: { cluster: { nodes: ["redis://x:1"] } } }, { env: { TRANCHE_REDIS_URL: "redis://y:2" } }).redis,
    ).toEqual({
      url: "redis://y:2",
    });
    expect(() => validateConfig(base, { env: { ...env, TRANCHE_REDIS_URL: "redis://y:2" } })).toThrow(
      /TRANCHE_REDIS_URL and TRANCHE_REDIS_CLUSTER_NODES are both set/,
    );
    expect(() => validateConfig(base, { env: { TRANCHE_REDIS_CLUSTER_NODES: "redis://:secret@h:1,mysql://h:2" } })).toThrow(
      /TRANCHE_REDIS_CLUSTER_NODES: node "mysql:\/\/h:2" scheme mysql: is not supported/,
    );
    expect(() => validateConfig(base, { env: { TRANCHE_REDIS_CLUSTER_NODES: "redis://:secret@h:1/3" } })).toThrow(
      /node "redis:\/\/:\*\*\*@h:1\/3" database 3/,
    );
    expect(() => validateConfig({ jobs: { e: job } }, { env })).toThrow(/prefix: got "tranche"/);
    expect(() => validateConfig(base, { env: { ...env, TRANCHE_PREFIX: "plain" } })).toThrow(/TRANCHE_PREFIX: got "plain"/);
  });

  it("refuses a misspelt built-in processor and bad locations, naming the field", () => {
    expect(() => validateConfig({ jobs: { e: { ...job, processor: "ndjosn" } } }, { env: {} })).toThrow(
      /jobs\.e\.processor: got "ndjosn"; not a built-in processor \(ndjson, csv, copy, sql\): did you mean ndjson\?/,
    );
    expect(() => validateConfig({ jobs: { e: { ...job, output: { path: "file://relative/x" } } } }, { env: {} })).toThrow(
      /jobs\.e\.output\.path: got "file:\/\/relative\/x"/,
    );
    expect(() => validateConfig({ jobs: { e: { ...job, source: { ...job.source, path: "s3://" } } } }, { env: {} })).toThrow(
      /jobs\.e\.source\.path: got "s3:\/\/"/,
    );
    expect(() => validateConfig({ jobs: { e: { ...job, source: { ...job.source, path: "ftp://x/y" } } } }, { env: {} })).toThrow(
      /jobs\.e\.source\.path: got "ftp:\/\/x\/y"; unsupported location/,
    );
  });

  it("says where to look when the file is missing", () => {
    expect(() => loadConfig("/nonexistent/tranche.yaml", {})).toThrow(/config file not found: \/nonexistent\/tranche\.yaml/);
  });
});
