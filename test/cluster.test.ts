/**
 * The whole pipeline on a REAL 3-node Redis Cluster started by this test (redis-server
 * --cluster-enabled, redis-cli --cluster create): `tranche run --drain` as a child process over a
 * partitioned local folder in several bounded runs, a run that finds nothing, `bookmark show`,
 * `bookmark rewind`, a corrupt gzip file dead-lettered, a prefix without a hash tag refused before
 * anything is written, and every key of tranche and BullMQ in one slot.
 *
 * Skipped (with a message) when `redis-server` or `redis-cli` is not on PATH.
 */
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Cluster, Redis } from "ioredis";
import { connectRedis } from "../src/redis.js";
import type { RunSummary } from "../src/run/summary.js";
import { cli, writeConfig } from "./helpers/cli.js";
import { listFiles, writeInput } from "./helpers/files.js";
import { cleanPrefix } from "./helpers/redis.js";
import { clusterKeyCount, clusterUnavailable, startRedisCluster, type RedisClusterServer } from "./helpers/redis-cluster.js";

const UNAVAILABLE = clusterUnavailable();
if (UNAVAILABLE) console.warn(`test/cluster.test.ts: Redis Cluster tests skipped: ${UNAVAILABLE}`);

const T0 = Date.UTC(2024, 0, 1);
const CORRUPT = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]);
const PREFIX = "{tranche-ct}";
const PARTS = ["dt=2024-01-01", "dt=2024-01-02", "dt=2024-01-03"];
const BROKEN = "dt=2024-01-02/broken.json.gz";
/** The good inputs: 6 per partition. */
const GOOD = PARTS.flatMap((p, pi) => Array.from({ length: 6 }, (_, i) => ({ key: `${p}/f${i}.json`, i: pi * 6 + i })));

// The CLI's environment: only the config says where Redis is.
const ENV = { TRANCHE_REDIS_URL: "", TRANCHE_REDIS_CLUSTER_NODES: "", TRANCHE_PREFIX: "" };

const parseRuns = (stdout: string) =>
  stdout
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as RunSummary);

describe.skipIf(UNAVAILABLE)("a real 3-node Redis Cluster", () => {
  let cluster: RedisClusterServer;
  let dir: string;
  let config: string;
  const out = () => path.join(dir, "out");
  const job = (prefix: string, redis: unknown) => ({
    ...(redis === undefined ? {} : { redis }),
    prefix,
    metrics: { port: 0 },
    jobs: {
      events: {
        source: { path: "in", partitionKeys: ["dt"], boundedFiles: "5" },
        processor: "ndjson",
        output: { path: pathToFileURL(out()).href },
        worker: { threads: 1 },
        batchFiles: 2,
        attempts: 1,
        backoffMs: 10,
        bookmark: { deadLetterAfterRuns: 2 },
      },
    },
  });
  /** The CLI with the cluster config; on failure the assertion messages carry its stderr. */
  const tranche = (args: string[], env: NodeJS.ProcessEnv = {}) => cli([...args, "--config", config], { ...ENV, ...env });

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    dir = await mkdtemp(path.join(os.tmpdir(), "tranche-cluster-"));
    for (const f of GOOD) await writeInput(path.join(dir, "in"), f.key, `{"i":${f.i}}\n`, T0 + f.i * 1000);
    await writeInput(path.join(dir, "in"), BROKEN, CORRUPT, T0 + 7500);
    // Two of the three nodes as seeds: the client discovers the third.
    config = await writeConfig(dir, job(PREFIX, { cluster: { nodes: cluster.nodes.slice(0, 2) } }));
  });
  // Quiet unless something fails: then the servers' output helps.
  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail" && cluster) console.error(`--- redis cluster output ---\n${cluster.output()}`);
  });
  afterAll(async () => {
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("refuses a prefix without a hash tag (and url plus cluster) with E_CONFIG before anything is written", async () => {
    const bad = path.join(dir, "bad");
    await mkdir(bad, { recursive: true });
    const noTag = await cli(
      ["run", "events", "--config", await writeConfig(bad, job("tranche", { cluster: { nodes: cluster.nodes } }))],
      ENV,
    );
    expect(noTag.code, noTag.stderr).toBe(2);
    expect(noTag.stderr).toMatch(
      /error \[E_CONFIG\]: prefix: got "tranche"; on a Redis Cluster \(redis\.cluster\).*use prefix: "\{tranche\}"/,
    );

    const both = await cli(
      [
        "run",
        "events",
        "--config",
        await writeConfig(bad, job(PREFIX, { url: "redis://127.0.0.1:6379", cluster: { nodes: cluster.nodes } })),
      ],
      ENV,
    );
    expect(both.code, both.stderr).toBe(2);
    expect(both.stderr).toMatch(/E_CONFIG.*redis\.url and redis\.cluster are both set/s);

    expect(await clusterKeyCount(cluster.ports)).toBe(0);
    expect(await listFiles(out())).toEqual([]);
  });

  it("an unreachable cluster is E_REDIS naming its nodes, passwords masked", async () => {
    const err = (await connectRedis({ cluster: { nodes: ["redis://:s3cret-pw@127.0.0.1:1", "redis://127.0.0.1:2"] } }).catch(
      (e: unknown) => e,
    )) as Error & { code?: string };
    expect(err.code).toBe("E_REDIS");
    expect(err.message).toMatch(/cannot reach the Redis Cluster at nodes redis:\/\/:\*\*\*@127\.0\.0\.1:1, redis:\/\/127\.0\.0\.1:2/);
    expect(err.message).not.toContain("s3cret-pw");
  });

  let firstCommitted: RunSummary;
  let drainedRuns: RunSummary[];

  it("drains the backlog in bounded runs: one output per input, the corrupt file dead-lettered, a last run finds nothing", async () => {
    const r = await tranche(["run", "events", "--drain", "--json"]);
    drainedRuns = parseRuns(r.stdout);
    // Exit 6: the drain set a file aside.
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(/E_DEAD_LETTERED.*broken\.json\.gz/);
    expect(drainedRuns.length).toBeGreaterThanOrEqual(4);
    expect(drainedRuns.every((s) => s.files <= 5)).toBe(true);
    // The run that first met the corrupt file failed: its other partitions committed, the corrupt
    // file's partition did not; the next run dead-lettered it.
    expect(drainedRuns.filter((s) => s.status === "failed")).toHaveLength(1);
    expect(drainedRuns.flatMap((s) => s.deadLetteredKeys)).toEqual([BROKEN]);
    const committed = drainedRuns.filter((s) => s.committed);
    expect(committed.reduce((a, s) => a + s.filesCommitted, 0)).toBe(GOOD.length);
    expect(drainedRuns.at(-1)!.remainingFiles).toBe(0);
    firstCommitted = committed[0]!;

    const outputs = await listFiles(out());
    expect(outputs).toEqual(GOOD.map((f) => `${f.key}.ndjson`).sort());
    for (const f of GOOD) expect(await readFile(path.join(out(), `${f.key}.ndjson`), "utf8")).toBe(`{"i":${f.i}}\n`);

    const last = await tranche(["run", "events", "--json"]);
    expect(last.code, last.stderr).toBe(0);
    expect(parseRuns(last.stdout).map((s) => [s.status, s.files])).toEqual([["empty", 0]]);
  });

  it("bookmark show --json and dead-letters list work (the cluster named by TRANCHE_REDIS_CLUSTER_NODES)", async () => {
    await mkdir(path.join(dir, "env"), { recursive: true });
    const envConfig = await writeConfig(path.join(dir, "env"), job(PREFIX, undefined));
    const show = await cli(["bookmark", "show", "events", "--json", "--config", envConfig], {
      ...ENV,
      TRANCHE_REDIS_CLUSTER_NODES: cluster.nodes.slice(1).join(","),
    });
    expect(show.code, show.stderr).toBe(0);
    const entry = JSON.parse(show.stdout) as {
      JobName: string;
      Version: number;
      Run: number;
      Partitions: { partition: string; files: number }[];
      DeadLetters: number;
      History: { runId: string; committed: boolean }[];
    };
    const committedRuns = drainedRuns.filter((s) => s.committed).length;
    // The version counts partition commits (each partition of a run commits on its own).
    const partitionCommits = drainedRuns.reduce((a, s) => a + s.partitions.filter((p) => p.state === "COMMITTED").length, 0);
    expect([entry.JobName, entry.Version, entry.Run, entry.DeadLetters]).toEqual(["events", partitionCommits, committedRuns, 1]);
    expect(entry.Partitions.map((p) => p.partition).sort()).toEqual(PARTS);
    // Committed files per partition: the 6 good ones, plus the dead letter in its partition.
    expect(entry.Partitions.map((p) => p.files).reduce((a, b) => a + b, 0)).toBe(GOOD.length + 1);
    expect(entry.History.map((h) => h.runId)).toContain(firstCommitted.runId);

    const dead = await tranche(["dead-letters", "list", "events", "--json"]);
    expect(dead.code, dead.stderr).toBe(0);
    const recs = dead.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { key: string; reason: string });
    expect(recs.map((d) => d.key)).toEqual([BROKEN]);
    expect(recs[0]!.reason).toMatch(/gzip/);
  });

  it("rewinds to the first run: the next drain takes exactly the later files again, outputs overwritten, not doubled", async () => {
    const rw = await tranche(["bookmark", "rewind", "events", "--to-run", firstCommitted.runId]);
    expect(rw.code, rw.stderr).toBe(0);
    const again = await tranche(["run", "events", "--drain", "--json"]);
    // The corrupt file is new again after the rewind: dead-lettered again two runs later.
    expect([0, 6]).toContain(again.code);
    const runs = parseRuns(again.stdout);
    expect(runs.reduce((a, s) => a + s.filesCommitted, 0)).toBe(GOOD.length - firstCommitted.filesCommitted);
    expect(await listFiles(out())).toEqual(GOOD.map((f) => `${f.key}.ndjson`).sort());
    const last = await tranche(["run", "events", "--json"]);
    expect(parseRuns(last.stdout).map((s) => s.status)).toEqual(["empty"]);
  });

  it("every key of tranche and BullMQ is in the prefix's one slot", async () => {
    const { nodes } = cluster;
    const redis = (await connectRedis({ cluster: { nodes } })) as Cluster;
    try {
      const keys: string[] = [];
      for (const node of redis.nodes("master")) {
        let cursor = "0";
        do {
          const [next, ks] = await (node as Redis).scan(cursor, "COUNT", 1000);
          cursor = next;
          keys.push(...ks);
        } while (cursor !== "0");
      }
      expect(keys.some((k) => k.startsWith(`${PREFIX}:batches.events:`))).toBe(true);
      expect(keys.some((k) => k.startsWith(`${PREFIX}:bm:events:`))).toBe(true);
      expect(keys.every((k) => k.startsWith(`${PREFIX}:`))).toBe(true);
      const slots = new Set(await Promise.all(keys.map((k) => redis.cluster("KEYSLOT", k) as Promise<number>)));
      expect(slots.size).toBe(1);
      await cleanPrefix(redis, PREFIX);
      expect(await clusterKeyCount(cluster.ports)).toBe(0);
    } finally {
      await redis.quit();
    }
  });
});
