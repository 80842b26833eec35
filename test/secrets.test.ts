/** No credential reaches Redis, errors, logs or --json; a worker with another configuration refuses batches. */
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RunRecords } from "../src/run/run-record.js";
import { BookmarkStore } from "../src/bookmark/store.js";
import { log } from "../src/log.js";
import { FilePool } from "../src/pool/file-pool.js";
import { BatchWorker } from "../src/queue/batch-worker.js";
import { connectRedis } from "../src/redis.js";
import { redact, redactText } from "../src/redact.js";
import { closeHarnesses, harness } from "./helpers/harness.js";
import { cli } from "./helpers/cli.js";
import { listFiles, writeInput } from "./helpers/files.js";
import type { Redis } from "ioredis";

afterEach(closeHarnesses);
const T0 = Date.UTC(2024, 0, 1);

/** Every value stored under a prefix, as text. */
async function dump(redis: Redis, prefix: string): Promise<string> {
  const out: string[] = [];
  for (const k of await redis.keys(`${prefix}:*`)) {
    const t = await redis.type(k);
    if (t === "string") out.push((await redis.get(k)) ?? "");
    else if (t === "hash") out.push(JSON.stringify(await redis.hgetall(k)));
    else if (t === "list") out.push(JSON.stringify(await redis.lrange(k, 0, -1)));
    else if (t === "set") out.push(JSON.stringify(await redis.smembers(k)));
    else if (t === "zset") out.push(JSON.stringify(await redis.zrange(k, 0, -1)));
    else if (t === "stream") out.push(JSON.stringify(await redis.xrange(k, "-", "+")));
  }
  return out.join("\n");
}

describe("secrets", () => {
  it("batches carry no credentials or secret options; ${env:NAME} is resolved on the worker", async () => {
    process.env.TRANCHE_TEST_API_KEY = "sk-live-0123456789";
    const h = await harness(
      "secrets",
      {
        processor: path.resolve("test/fixtures/slow-processor.mjs"),
        processorOptions: { apiKey: "${env:TRANCHE_TEST_API_KEY}", ledger: "" },
      },
      {
        s3: {
          accessKeyId: "AKIAEXAMPLEKEYID0000",
          secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
          sessionToken: "FQoGZXIvYXdzEXAMPLETOKEN",
        },
      },
    );
    try {
      for (let i = 0; i < 3; i++) await writeInput(h.inDir, `f${i}.json`, "{}\n", T0 + i);
      h.startWorker(1);
      const r = await h.run();
      expect(r.status).toBe("succeeded");
      const all = await dump(h.redis, h.prefix);
      expect(all).toContain("f1.json"); // the dump does see batch data
      for (const secret of ["sk-live-0123456789", "AKIAEXAMPLEKEYID0000", "wJalrXUtnFEMI", "FQoGZXIvYXdzEXAMPLETOKEN"])
        expect(all).not.toContain(secret);
      expect(JSON.stringify(r)).not.toContain("sk-live");
    } finally {
      delete process.env.TRANCHE_TEST_API_KEY;
    }
  });

  it("a worker whose configuration differs refuses the batch as a job error (never applies other options)", async () => {
    const h = await harness("fingerprint", { attempts: 3 });
    for (let i = 0; i < 3; i++) await writeInput(h.inDir, `f${i}.json`, "{}\n", T0 + i);
    const stale = structuredClone(h.cfg);
    stale.jobs[h.name]!.maxBadRecordRatio = 0.9; // an old ConfigMap
    const pool = new FilePool({ threads: 1 });
    // A run planned by a worker with the right configuration (here): the stale worker refuses its batches.
    const running = h.run();
    await h.planNow(await h.newestRun());
    const worker = new BatchWorker({ redis: h.redis, connection: h.bull, cfg: stale, jobs: [h.name], pool, log });
    await worker.start();
    try {
      const r = await running;
      expect([r.status, r.deadLettered, r.files]).toEqual(["failed", 0, 0]);
      expect(r.jobFailure).toMatch(/E_CONFIG_MISMATCH: this worker's configuration of job "fingerprint" differs/);
      expect(await listFiles(h.outDir)).toEqual([]);
      expect(await new BookmarkStore(h.redis, h.prefix, h.name).deadLetters.count()).toEqual({ deadLetters: 0, skipped: 0 });
      // The only worker has another configuration: it refuses to start a run (ERROR), reading nothing.
      await expect(h.run()).rejects.toMatchObject({
        code: "E_CONFIG_MISMATCH",
        message: expect.stringMatching(/this worker's configuration of job "fingerprint" differs/),
      });
      const [rec] = await new RunRecords(h.redis, h.prefix).list(h.name);
      expect(rec!.state).toBe("ERROR");
      expect(await listFiles(h.outDir)).toEqual([]);
    } finally {
      await worker.close();
      await pool.close();
    }
  });

  it("no password in E_REDIS errors, CLI output, or log lines", async () => {
    const err = (await connectRedis("redis://admin:hunter2-secret@127.0.0.1:1").catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/cannot reach Redis at redis:\/\/admin:\*\*\*@127\.0\.0\.1:1/);
    expect(err.message).not.toContain("hunter2");
    const r = await cli(["status", "--config", "/nonexistent.yaml"], { TRANCHE_REDIS_URL: "redis://:hunter2-secret@127.0.0.1:1" });
    expect(r.stderr).not.toContain("hunter2");
    expect(redact({ s3: { secretAccessKey: "abc", region: "x" }, url: "https://u:p4ss@h/x", password: "p" })).toEqual({
      s3: { secretAccessKey: "***", region: "x" },
      url: "https://u:***@h/x",
      password: "***",
    });
    expect(redactText("failed at rediss://default:pa55@cache:6380/0")).toBe("failed at rediss://default:***@cache:6380/0");
    const lines: string[] = [];
    const level = process.env.TRANCHE_LOG_LEVEL;
    process.env.TRANCHE_LOG_LEVEL = "info";
    const spy = vi.spyOn(console, "error").mockImplementation((s: unknown) => void lines.push(String(s)));
    try {
      log.info("connecting to redis://u:topsecret@h:6379", { sessionToken: "tok-123", nested: { apiKey: "k-9" } });
    } finally {
      spy.mockRestore();
      process.env.TRANCHE_LOG_LEVEL = level;
    }
    expect(lines.join("")).toMatch(/connecting to redis:\/\/u:\*\*\*@h:6379/);
    expect(lines.join("")).not.toMatch(/topsecret|tok-123|k-9/);
  });
});
