/**
 * Listing that costs what is new: LIST requests of whole `tranche run`s against a real
 * S3-protocol server (s3rver), counted by a proxy in front of it.
 */
import { appendFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, writeConfig } from "./helpers/cli.js";
import { listFiles } from "./helpers/files.js";
import { cleanPrefix, REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";
import { startS3Proxy, type S3Proxy } from "./helpers/s3-proxy.js";
import { startS3, type S3Fixture } from "./helpers/s3rver.js";
import { secondNodeRun } from "./helpers/second-node.js";

const redis = redisClient();
const prefix = uniquePrefix("listing");
let s3: S3Fixture;
let proxy: S3Proxy;
let dir: string;
beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket("lex");
  await s3.createBucket("parts");
  proxy = await startS3Proxy(s3.endpoint);
  dir = await mkdtemp(path.join(os.tmpdir(), "tranche-listing-runs-"));
});
afterAll(async () => {
  await cleanPrefix(redis, prefix);
  await redis.quit();
  await proxy?.close();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function put(bucket: string, keys: string[]): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (i < keys.length) {
        const Key = keys[i++]!;
        await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: "{}\n", ContentLength: 3 }));
      }
    }),
  );
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const N = Number(process.env.TRANCHE_LISTING_KEYS ?? 2500); // the bench figure: TRANCHE_LISTING_KEYS=20000
const key = (i: number) => `logs/e-${String(i).padStart(6, "0")}.json`;

async function config(job: string, source: Record<string, unknown>): Promise<string> {
  await mkdir(path.join(dir, job), { recursive: true });
  return writeConfig(path.join(dir, job), {
    redis: { url: REDIS_URL },
    prefix,
    s3: { ...s3.settings, endpoint: proxy.endpoint },
    jobs: {
      [job]: {
        source,
        processor: "copy",
        output: { path: pathToFileURL(path.join(dir, job, "out")).href },
        worker: { threads: 2 },
        bookmark: { maxBand: 1 },
      },
    },
  });
}
const lists = () => proxy.counts().ListObjectsV2 ?? 0;

describe("listing strategies, counted on a real S3-protocol server", () => {
  it.skipIf(secondNodeRun)(
    `lexical: after ${N} drained keys a run with 100 new files makes ≤ 2 LIST requests (a full listing makes one per 1,000 keys); a periodic full listing catches a key out of order`,
    async () => {
      await put(
        "lex",
        Array.from({ length: N }, (_, i) => `lex/${key(i)}`),
      );
      // s3rver stamps the upload time: the drained objects must end up below the band (maxBand: 1 s).
      await sleep(2100);
      await put("lex", [`lex/${key(N)}`]);
      const cfgFile = await config("lex", { path: "s3://lex/lex/", listing: "lexical", fullListingEvery: 100 });
      const drain = await cli(["run", "lex", "--config", cfgFile, "--drain", "--bounded-files", "1000", "--json"]);
      expect(drain.code, drain.stderr).toBe(0);
      expect(await listFiles(path.join(dir, "lex", "out"))).toHaveLength(N + 1);

      await sleep(1100);
      await put(
        "lex",
        Array.from({ length: 100 }, (_, i) => `lex/${key(N + 1 + i)}`),
      );
      proxy.reset();
      const r = await cli(["run", "lex", "--config", cfgFile, "--json"]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout.trim().split("\n").pop()!)).toMatchObject({ files: 100 });
      // One for the preflight check of the source, one page from the cursor.
      const lexicalLists = lists();
      expect(lexicalLists).toBeLessThanOrEqual(2);
      proxy.reset();
      const st = await cli(["status", "lex", "--config", cfgFile, "--json", "--fresh"]);
      expect(JSON.parse(st.stdout).backlog.files).toBe(0);
      expect(lists()).toBe(Math.ceil((N + 101) / 1000)); // a full listing: every page
      await mkdir("test-results", { recursive: true });
      await appendFile(
        "test-results/scale.txt",
        `listing after ${N} drained keys: lexical run ${lexicalLists} LISTs, full listing ${lists()}\n`,
      );
      proxy.reset();
      const cached = await cli(["status", "lex", "--config", cfgFile, "--json"]);
      expect(cached.code).toBe(0);
      expect(lists()).toBe(0); // status without --fresh lists nothing

      // A key written out of order (before the cursor): the lexical listing cannot see it...
      await put("lex", ["lex/logs/a-late.json"]);
      const skip = await cli(["run", "lex", "--config", cfgFile, "--json"]);
      expect(JSON.parse(skip.stdout.trim().split("\n").pop()!)).toMatchObject({ files: 0 });
      // ...the periodic full listing finds it, takes it, and says so.
      const every1 = await config("lex", { path: "s3://lex/lex/", listing: "lexical", fullListingEvery: 1 });
      const full = await cli(["run", "lex", "--config", every1, "--json"], { TRANCHE_LOG_LEVEL: "warn" });
      expect(full.code, full.stderr).toBe(0);
      expect(JSON.parse(full.stdout.trim().split("\n").pop()!)).toMatchObject({ files: 1 });
      expect(full.stderr).toMatch(/"msg":"the full listing found unprocessed files the lexical listing skipped.*"missed":1/);
      expect(await listFiles(path.join(dir, "lex", "out"))).toContain("logs/a-late.json");
    },
    Math.max(180_000, N * 40),
  );

  it("partitions: lists only the Hive partitions the filter can match", async () => {
    // s3rver reports a common prefix only when an object sits directly under it, so each folder
    // gets a marker object ("dt=…/", as the S3 console writes them); real S3 needs none.
    const keys: string[] = [];
    for (const dt of ["2024-01-01", "2024-01-02", "2024-01-03"]) {
      keys.push(`p/dt=${dt}/`);
      for (const region of ["eu", "us"]) {
        keys.push(`p/dt=${dt}/region=${region}/`);
        for (let i = 0; i < 3; i++) keys.push(`p/dt=${dt}/region=${region}/f${i}.json`);
      }
    }
    await put("parts", keys);
    const cfgFile = await config("parts", {
      path: "s3://parts/p/",
      partitionKeys: ["dt", "region"],
      listing: "partitions",
      partitionFilter: "dt >= '2024-01-02' AND region = 'eu'",
    });
    proxy.reset();
    const r = await cli(["run", "parts", "--config", cfgFile, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split("\n").pop()!)).toMatchObject({ files: 6 });
    expect((await listFiles(path.join(dir, "parts", "out"))).sort()).toEqual(
      ["2024-01-02", "2024-01-03"].flatMap((dt) => [0, 1, 2].map((i) => `dt=${dt}/region=eu/f${i}.json`)),
    );
    // check (1) + the dt folders (1) + the region folders of the two dates kept (2) + the two partitions (2).
    expect(lists()).toBe(6);
  }, 60_000);
});
