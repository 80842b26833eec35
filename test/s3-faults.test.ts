/**
 * S3 failures end to end: a real s3rver behind the fault-injecting proxy (test/helpers/s3-proxy.ts),
 * real Redis, real BullMQ and real worker threads. Each case checks what the user sees (run status,
 * job failure, dead letters, gone and archived files, exit codes) and that nothing is marked done
 * that was not processed.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { Queue } from "bullmq";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { stateKey } from "../src/bookmark/keys.js";
import { log } from "../src/log.js";
import { registry } from "../src/metrics/registry.js";
import { FilePool } from "../src/pool/file-pool.js";
import { queueName } from "../src/queue/batch-job.js";
import { preflight } from "../src/run/preflight.js";
import { STATE_VERSION } from "../src/state-version.js";
import { makeS3Client } from "../src/source/s3-client.js";
import type { S3Settings } from "../src/source/types.js";
import { cli, writeConfig } from "./helpers/cli.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { cleanPrefix, REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";
import { MULTIPART_OPS, startS3Proxy, type S3Proxy } from "./helpers/s3-proxy.js";
import { startS3, type S3Fixture } from "./helpers/s3rver.js";

const RAW = "fault-raw";
const CLEAN = "fault-clean";

let s3: S3Fixture;
let proxy: S3Proxy;
beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket(RAW);
  await s3.createBucket(CLEAN);
  proxy = await startS3Proxy(s3.endpoint);
});
afterEach(async () => {
  proxy.clear();
  await closeHarnesses();
});
afterAll(async () => {
  await proxy?.close();
  await s3?.stop();
});

/** Client settings that go through the proxy. */
const viaProxy = (extra: S3Settings = {}): S3Settings => ({ ...s3.settings, endpoint: proxy.endpoint, ...extra });

/** Puts objects straight into s3rver (not through the proxy) under `<name>/dt=2024-01-01/`. */
async function seed(name: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [k, body] of Object.entries(files)) {
    await s3.client.send(new PutObjectCommand({ Bucket: RAW, Key: `${name}/dt=2024-01-01/${k}`, Body: body }));
  }
}

const GOOD = { "a.json": '{"a":1}\n{"a":2}\n', "b.json.gz": gzipSync('{"b":1}\n'), "c.json": '{"c":1}\n' };

/** A job reading s3://RAW/<name>/ and writing s3://CLEAN/<name>/, through the proxy. */
async function s3Harness(name: string, job: Record<string, unknown> = {}, s3extra: S3Settings = {}): Promise<Harness> {
  return harness(
    name,
    { source: { path: `s3://${RAW}/${name}/`, partitionKeys: ["dt"] }, output: { path: `s3://${CLEAN}/${name}/` }, ...job },
    { s3: viaProxy(s3extra) },
  );
}

/** Output keys under s3://CLEAN/<name>/ (relative), tranche's own _tranche/ included but for commit manifests. */
async function outputs(name: string): Promise<string[]> {
  const r = await s3.client.send(new ListObjectsV2Command({ Bucket: CLEAN, Prefix: `${name}/` }));
  return (r.Contents ?? [])
    .map((o) => o.Key!.slice(name.length + 1))
    .filter((k) => !k.startsWith("_tranche/manifests/"))
    .sort();
}

const store = (h: Harness) => new BookmarkStore(h.redis, h.prefix, h.name);

async function records(h: Harness, which: "deadLetters" | "skipped") {
  const out = [];
  for await (const page of store(h).deadLetters.list(which)) out.push(...page);
  return out;
}

/** Files of the job that failed with file errors and are counted toward dead letters. */
async function counted(h: Harness): Promise<number> {
  return h.redis.hlen(store(h).k.failures);
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((s, v) => s + v.value, 0);
}

/** The attempts BullMQ made of the job's batches. */
async function batchAttempts(h: Harness): Promise<number[]> {
  const q = new Queue(queueName(h.name), { connection: h.bull, prefix: h.prefix });
  try {
    return (await q.getJobs(["completed", "failed"])).map((j) => j.attemptsMade);
  } finally {
    await q.close();
  }
}

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

describe("the proxy", () => {
  it("forwards a multipart upload and a streamed read unchanged, counts operations, and answers S3 errors two clients understand", async () => {
    const client = makeS3Client(viaProxy());
    const body = randomBytes(11 * 1024 * 1024); // three parts of at least 5 MiB
    try {
      proxy.reset();
      await new Upload({ client, params: { Bucket: RAW, Key: "proxy/big.bin", Body: body }, partSize: 5 * 1024 * 1024 }).done();
      const slow = proxy.add({ op: "GetObject", times: 1, fault: { delayMs: 300 } });
      const t0 = Date.now();
      const got = await client.send(new GetObjectCommand({ Bucket: RAW, Key: "proxy/big.bin" }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
      expect([slow.hits, Date.now() - t0 >= 300]).toEqual([1, true]);
      expect(proxy.counts()).toEqual({ CreateMultipartUpload: 1, UploadPart: 3, CompleteMultipartUpload: 1, GetObject: 1 });

      // The AWS CLI (botocore signs differently) goes through as well, and sees the injected error as S3's.
      const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-proxy-"));
      const env = { ...process.env, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_DEFAULT_REGION: "us-east-1" };
      const aws = (...args: string[]) =>
        promisify(execFile)("aws", ["--endpoint-url", proxy.endpoint, ...args], { env }).catch((e: { code: number; stderr: string }) => e);
      try {
        await aws("s3", "cp", `s3://${RAW}/proxy/big.bin`, path.join(dir, "big.bin"));
        expect((await readFile(path.join(dir, "big.bin"))).equals(body)).toBe(true);
        const denied = proxy.add({
          op: "GetObject",
          key: "/proxy/big.bin",
          times: 1,
          fault: { error: "AccessDenied", message: "no reading" },
        });
        const r = (await aws("s3api", "get-object", "--bucket", RAW, "--key", "proxy/big.bin", path.join(dir, "x"))) as {
          code: number;
          stderr: string;
        };
        expect([denied.hits, r.code, r.stderr]).toEqual([1, 255, expect.stringMatching(/\(AccessDenied\).*no reading/)]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    } finally {
      client.destroy();
    }
  });
});

describe("the sink refusing writes during a run", () => {
  it("AccessDenied on the output (after preflight passed) fails every run with E_ACCESS, dead-letters nothing, commits nothing", async () => {
    const name = "sinkdenied";
    await seed(name, GOOD);
    const h = await s3Harness(name, { attempts: 2, bookmark: { deadLetterAfterRuns: 1 } });
    // Every write under the output prefix but tranche's probe.
    const rule = proxy.add({
      op: ["PutObject", ...MULTIPART_OPS],
      key: new RegExp(`^/${CLEAN}/${name}/(?!_tranche/probe)`),
      fault: { error: "AccessDenied" },
    });
    const pool = new FilePool({ threads: 1 });
    try {
      expect(await preflight({ cfg: h.cfg, job: h.name, pool, log })).toMatchObject({ warnings: [] });
    } finally {
      await pool.close();
    }
    expect(rule.hits).toBe(0);
    h.startWorker(1);
    for (let i = 0; i < 3; i++) {
      const r = await h.run();
      expect([r.status, r.committed, r.files, r.deadLettered, r.fileFailures]).toEqual(["failed", false, 0, 0, 0]);
      expect(r.jobFailure).toMatch(new RegExp(`^E_ACCESS: S3 refused access to s3://${CLEAN}/${name}/dt=2024-01-01/`));
    }
    expect(rule.hits).toBeGreaterThanOrEqual(3);
    expect(await store(h).deadLetters.count()).toEqual({ deadLetters: 0, skipped: 0 });
    expect(await counted(h)).toBe(0);
    expect((await store(h).summary()).version).toBe(0);
    expect(await outputs(name)).toEqual([]);

    rule.remove();
    const r = await h.run();
    expect([r.status, r.committed, r.files, r.deadLettered, r.version]).toEqual(["succeeded", true, 3, 0, 1]);
    expect(await outputs(name)).toEqual(["dt=2024-01-01/a.json.ndjson", "dt=2024-01-01/b.json.gz.ndjson", "dt=2024-01-01/c.json.ndjson"]);
  });
});

describe("throttling", () => {
  it("SlowDown on GetObject a few times: retried with backoff, the run succeeds, no file blamed", async () => {
    const name = "slowdown";
    await seed(name, GOOD);
    const h = await s3Harness(name, { attempts: 3, bookmark: { deadLetterAfterRuns: 1 } });
    // More than the S3 client's own 3 attempts: the batch attempt fails E_THROTTLED and BullMQ retries it.
    const rule = proxy.add({ op: "GetObject", key: `/${name}/dt=2024-01-01/a.json`, times: 4, fault: { error: "SlowDown" } });
    h.startWorker(1);
    const r = await h.run();
    expect([r.status, r.committed, r.files, r.deadLettered, r.fileFailures]).toEqual(["succeeded", true, 3, 0, 0]);
    // An attempt that a retry repaired blames nothing: the run shows no job error.
    expect(r.jobFailure).toBeNull();
    expect(rule.hits).toBe(4);
    expect(Math.max(...(await batchAttempts(h)))).toBeGreaterThanOrEqual(2);
    expect(await counted(h)).toBe(0);
    expect(await store(h).deadLetters.count()).toEqual({ deadLetters: 0, skipped: 0 });
    expect(await outputs(name)).toHaveLength(3);
  });

  it("SlowDown always: the run fails with E_THROTTLED, nothing dead-lettered or committed", async () => {
    const name = "slowalways";
    await seed(name, { "a.json": GOOD["a.json"] }); // one file: each try backs off for seconds
    const h = await s3Harness(name, { attempts: 2, bookmark: { deadLetterAfterRuns: 1 } });
    proxy.add({ op: "GetObject", key: `/${name}/`, fault: { error: "SlowDown" } });
    h.startWorker(1);
    const r = await h.run();
    expect([r.status, r.committed, r.files, r.deadLettered, r.fileFailures]).toEqual(["failed", false, 0, 0, 0]);
    expect(r.jobFailure).toMatch(/^E_THROTTLED: S3 is throttling requests/);
    expect(await counted(h)).toBe(0);
    expect(await store(h).deadLetters.count()).toEqual({ deadLetters: 0, skipped: 0 });
    expect((await store(h).summary()).version).toBe(0);
  });
});

describe("objects that cannot be read", () => {
  it("an archived object (InvalidObjectState) is skipped and recorded, never dead-lettered", async () => {
    const name = "archived";
    await seed(name, GOOD);
    const h = await s3Harness(name, { attempts: 2, bookmark: { deadLetterAfterRuns: 1 } });
    const before = await metric("tranche_files_skipped_total", { tranche_job: name, reason: "archived" });
    proxy.add({ op: "GetObject", key: `/${name}/dt=2024-01-01/c.json`, fault: { error: "InvalidObjectState" } });
    h.startWorker(1);
    proxy.reset();
    const r = await h.run();
    // One listing page, one read per file, one write per written output and one for the partition's manifest.
    expect(proxy.counts()).toEqual({ ListObjectsV2: 1, GetObject: 3, PutObject: 3 });
    expect([r.status, r.committed, r.files, r.archived, r.deadLettered, r.fileFailures, r.jobFailure]).toEqual([
      "succeeded",
      true,
      2,
      1,
      0,
      0,
      null,
    ]);
    expect(await metric("tranche_files_skipped_total", { tranche_job: name, reason: "archived" })).toBe(before + 1);
    expect((await records(h, "skipped")).map((x) => [x.key, x.reason])).toEqual([
      [
        "dt=2024-01-01/c.json",
        expect.stringContaining(`archive storage class and must be restored first: s3://${RAW}/${name}/dt=2024-01-01/c.json`),
      ],
    ]);
    expect(await records(h, "deadLetters")).toEqual([]);
    expect(await outputs(name)).toEqual(["dt=2024-01-01/a.json.ndjson", "dt=2024-01-01/b.json.gz.ndjson"]);
    // The user sees it with `tranche dead-letters list <job> --skipped` (the harness writes no state-format marker; the CLI needs one).
    await h.redis.hset(stateKey(h.prefix), "version", STATE_VERSION);
    const config = await writeConfig(h.dir, {
      redis: { url: REDIS_URL },
      prefix: h.prefix,
      s3: viaProxy(),
      jobs: { [name]: h.cfg.jobs[name] },
    });
    const listed = await cli(["dead-letters", "list", name, "--skipped", "--config", config]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain("dt=2024-01-01/c.json");
    // Recorded, so not taken again.
    expect((await h.run()).status).toBe("empty");
  });

  it("an object deleted between listing and reading (NoSuchKey) is recorded as gone, the run succeeds, nothing is committed for it", async () => {
    const name = "gone";
    await seed(name, GOOD);
    const h = await s3Harness(name, { attempts: 2, bookmark: { deadLetterAfterRuns: 1 } });
    // Really deleted, after the listing: the read is the first thing that sees it gone.
    const deleted = proxy.add({
      op: "GetObject",
      key: `/${name}/dt=2024-01-01/a.json`,
      times: 1,
      fault: { before: () => s3.client.send(new DeleteObjectCommand({ Bucket: RAW, Key: `${name}/dt=2024-01-01/a.json` })) },
    });
    // Still there, but answered NoSuchKey once (a listing that ran ahead of a delete marker): not committed, so taken again.
    proxy.add({ op: "GetObject", key: `/${name}/dt=2024-01-01/c.json`, times: 1, fault: { error: "NoSuchKey" } });
    const before = await metric("tranche_files_skipped_total", { tranche_job: name, reason: "gone" });
    h.startWorker(1);
    const r = await h.run();
    expect([r.status, r.committed, r.files, r.gone, r.deadLettered, r.fileFailures, r.jobFailure]).toEqual([
      "succeeded",
      true,
      1,
      2,
      0,
      0,
      null,
    ]);
    expect(deleted.hits).toBe(1);
    expect(r.errors.filter((e) => e.startsWith("gone:")).sort()).toEqual([
      `gone: input no longer exists: s3://${RAW}/${name}/dt=2024-01-01/a.json`,
      `gone: input no longer exists: s3://${RAW}/${name}/dt=2024-01-01/c.json`,
    ]);
    expect(await metric("tranche_files_skipped_total", { tranche_job: name, reason: "gone" })).toBe(before + 2);
    expect(await outputs(name)).toEqual(["dt=2024-01-01/b.json.gz.ndjson"]);
    expect(await store(h).deadLetters.count()).toEqual({ deadLetters: 0, skipped: 0 });
    const r2 = await h.run();
    expect([r2.status, r2.files, r2.gone]).toEqual(["succeeded", 1, 0]);
    expect(await outputs(name)).toEqual(["dt=2024-01-01/b.json.gz.ndjson", "dt=2024-01-01/c.json.ndjson"]);
  });

  it("a corrupt gzip object next to good ones: a file error, dead-lettered after deadLetterAfterRuns runs; the good files are processed", async () => {
    const name = "corrupt";
    const gz = gzipSync('{"x":1}\n'.repeat(50));
    await seed(name, { ...GOOD, "bad.json.gz": Buffer.concat([gz.subarray(0, 12), Buffer.from("this is not deflate data at all")]) });
    // Two attempts per run: fileFailures counts files, not attempts.
    const h = await s3Harness(name, { attempts: 2, bookmark: { deadLetterAfterRuns: 2 } });
    h.startWorker(1);
    const r1 = await h.run();
    expect([r1.status, r1.committed, r1.fileFailures, r1.deadLettered, r1.jobFailure]).toEqual(["failed", false, 1, 0, null]);
    expect(r1.errors.some((e) => /^E_CORRUPT: dt=2024-01-01\/bad\.json\.gz: corrupt or truncated gzip/.test(e))).toBe(true);
    const r2 = await h.run();
    expect([r2.status, r2.committed, r2.files, r2.deadLettered, r2.deadLetteredKeys]).toEqual([
      "succeeded",
      true,
      3,
      1,
      ["dt=2024-01-01/bad.json.gz"],
    ]);
    expect((await records(h, "deadLetters")).map((x) => [x.key, x.runs])).toEqual([["dt=2024-01-01/bad.json.gz", 2]]);
    expect(await outputs(name)).toEqual(["dt=2024-01-01/a.json.ndjson", "dt=2024-01-01/b.json.gz.ndjson", "dt=2024-01-01/c.json.ndjson"]);
    expect((await h.run()).status).toBe("empty");
  });

  it("a connection reset in the middle of a GetObject body is a retryable job error (E_SOURCE_READ): retried, the run succeeds", async () => {
    const name = "reset";
    await seed(name, { ...GOOD, "long.json": '{"long":true}\n'.repeat(200) });
    const h = await s3Harness(name, { attempts: 3, bookmark: { deadLetterAfterRuns: 1 } });
    const before = await metric("tranche_file_failures_total", { tranche_job: name, kind: "job", code: "E_SOURCE_READ" });
    const rule = proxy.add({ op: "GetObject", key: `/${name}/dt=2024-01-01/long.json`, times: 1, fault: { resetMidBody: true } });
    h.startWorker(1);
    const r = await h.run();
    expect([r.status, r.committed, r.files, r.deadLettered, r.fileFailures]).toEqual(["succeeded", true, 4, 0, 0]);
    expect(rule.hits).toBe(1);
    expect(await metric("tranche_file_failures_total", { tranche_job: name, kind: "job", code: "E_SOURCE_READ" })).toBe(before + 1);
    expect(r.errors.some((e) => e.startsWith(`E_SOURCE_READ: reading s3://${RAW}/${name}/dt=2024-01-01/long.json broke off`))).toBe(true);
    expect(Math.max(...(await batchAttempts(h)))).toBeGreaterThanOrEqual(2);
    expect(await counted(h)).toBe(0);
    expect(await outputs(name)).toContain("dt=2024-01-01/long.json.ndjson");
  });
});

describe("timeouts", () => {
  it("a GetObject that never answers fails the file with E_TIMEOUT naming the key, not a hang", async () => {
    const name = "hang";
    await seed(name, GOOD);
    const h = await s3Harness(name, { attempts: 1, bookmark: { deadLetterAfterRuns: 1 } }, { requestTimeoutMs: 1500 });
    const rule = proxy.add({ op: "GetObject", key: `/${name}/dt=2024-01-01/b.json.gz`, fault: { hang: true } });
    h.startWorker(1);
    const started = Date.now();
    const r = await h.run();
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(rule.hits).toBeGreaterThanOrEqual(1);
    expect([r.status, r.committed, r.deadLettered, r.fileFailures]).toEqual(["failed", false, 0, 0]);
    expect(r.jobFailure).toMatch(new RegExp(`^E_TIMEOUT: S3 request timed out at s3://${RAW}/${name}/dt=2024-01-01/b\\.json\\.gz`));
    expect(await counted(h)).toBe(0);
    expect((await store(h).summary()).version).toBe(0);
  });

  it("an endpoint on a closed port fails fast with E_UNREACHABLE", async () => {
    const name = "closedport";
    const h = await s3Harness(name, {}, { endpoint: `http://127.0.0.1:${await closedPort()}` });
    h.startWorker(1);
    const started = Date.now();
    const err = await h.run().catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err).toMatchObject({ name: "JobError", code: "E_UNREACHABLE", message: expect.stringContaining(`s3://${RAW}/${name}/`) });
  });
});

describe("preflight against S3, through the CLI", () => {
  let dir: string;
  const prefix = uniquePrefix("s3pre");
  const redis = redisClient();
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "tranche-s3pre-"));
    await seed("pre", GOOD);
  });
  afterEach(async () => {
    await cleanPrefix(redis, prefix);
  });
  afterAll(async () => {
    await redis.quit();
    await rm(dir, { recursive: true, force: true });
  });

  async function run(o: { source?: string; output?: string; s3?: S3Settings } = {}) {
    const config = await writeConfig(dir, {
      redis: { url: REDIS_URL },
      prefix,
      s3: o.s3 ?? viaProxy(),
      jobs: {
        pre: {
          source: { path: o.source ?? `s3://${RAW}/pre/`, partitionKeys: ["dt"] },
          output: { path: o.output ?? `s3://${CLEAN}/pre/` },
          processor: "ndjson",
          worker: { threads: 1 },
          attempts: 1,
        },
      },
    });
    return cli(["run", "pre", "--config", config]);
  }
  /** Redis keys under the prefix, but the state-format marker every command writes. */
  const leased = async () => (await redis.keys(`${prefix}:*`)).filter((k) => k !== stateKey(prefix));

  it("a missing output bucket is E_UNREACHABLE (exit 4) naming it, before anything is leased", async () => {
    const r = await run({ output: "s3://no-such-bucket/x/" });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(
      /error \[E_UNREACHABLE\]: jobs\.pre\.output\.path: .*s3:\/\/no-such-bucket\/x\/.*bucket no-such-bucket does not exist/,
    );
    expect(await leased()).toEqual([]);
  });

  it("a missing source bucket is E_UNREACHABLE (exit 4) naming it", async () => {
    const r = await run({ source: "s3://no-such-source-bucket/in/" });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/error \[E_UNREACHABLE\]: jobs\.pre\.source\.path: .*s3:\/\/no-such-source-bucket\/in\/.*does not exist/);
    expect(await leased()).toEqual([]);
  });

  it("the endpoint down is E_UNREACHABLE (exit 4) naming it", async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const r = await run({ s3: viaProxy({ endpoint }) });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/error \[E_UNREACHABLE\]: jobs\.pre\.source\.path: /);
    expect(r.stderr).toContain(endpoint);
    expect(await leased()).toEqual([]);
  });

  it("AccessDenied on the probe put is E_ACCESS (exit 4)", async () => {
    const rule = proxy.add({ op: "PutObject", key: `/${CLEAN}/pre/_tranche/probe-`, fault: { error: "AccessDenied" } });
    const r = await run();
    expect(rule.hits).toBe(1);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/error \[E_ACCESS\]: jobs\.pre\.output\.path: cannot write to output s3:\/\/fault-clean\/pre\//);
    expect(await leased()).toEqual([]);
  });

  it("AccessDenied on the probe's delete only is a warning: the run proceeds", async () => {
    const rule = proxy.add({ op: "DeleteObject", key: `/${CLEAN}/pre/_tranche/probe-`, fault: { error: "AccessDenied" } });
    const r = await run();
    expect(rule.hits).toBe(1);
    expect([r.code, r.stderr]).toEqual([
      0,
      expect.stringMatching(/could not delete the probe object s3:\/\/fault-clean\/pre\/_tranche\/probe-[0-9a-f]+ \(AccessDenied\)/),
    ]);
    expect(r.stdout).toMatch(/succeeded/);
    expect((await outputs("pre")).filter((k) => !k.startsWith("_tranche/"))).toHaveLength(3);
  });
});
