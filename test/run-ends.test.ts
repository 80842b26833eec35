/** A run always ends, and says what happened: lost runs, dead planners, refused runs. */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { RunSlots } from "../src/bookmark/run-slots.js";
import { RunLostError } from "../src/errors.js";
import { closeHarnesses, harness } from "./helpers/harness.js";
import { cli, writeConfig } from "./helpers/cli.js";
import { writeInput } from "./helpers/files.js";
import { cleanPrefix, holdLiveRun, REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";

afterEach(closeHarnesses);
const T0 = Date.UTC(2024, 0, 1);
const redis = redisClient();
const prefixes: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await cleanPrefix(redis, p);
  await redis.quit();
});

describe("a run whose Redis lost its data ends E_RUN_LOST, within 60 s", () => {
  it("ends lost when its keys vanish mid-run (a Redis restart without persistence), instead of waiting for ever", async () => {
    const h = await harness("lostdata", {
      processor: path.resolve("test/fixtures/slow-processor.mjs"),
      processorOptions: { sleepMs: 400 },
    });
    for (let i = 0; i < 20; i++) await writeInput(h.inDir, `f${i}.json`, "{}\n", T0 + i * 1000);
    h.startWorker(1);
    const started = Date.now();
    const running = h.run();
    const store = new BookmarkStore(h.redis, h.prefix, h.name);
    for (let i = 0; i < 200 && (await store.slots.live()).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 500));
    await cleanPrefix(h.redis, h.prefix); // everything of tranche is gone, as after a restart
    const err = await running.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunLostError);
    expect((err as Error).message).toMatch(/Redis no longer holds its run record|lost its run slot/);
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});

describe("run slots and the planning lock (Redis clock)", () => {
  it("an expired slot (a run whose every step was lost, past its timeout) frees its place by Redis' clock", async () => {
    const p = uniquePrefix("slots");
    prefixes.push(p);
    const slots = new RunSlots(redis, p, "j");
    await slots.acquire("r1", 1, 50);
    expect(await slots.acquire("r2", 1, 30_000)).toEqual({ ok: false, running: ["r1"] });
    await new Promise((r) => setTimeout(r, 120));
    expect(await slots.live()).toEqual([]);
    expect(await slots.acquire("r2", 1, 30_000)).toEqual({ ok: true });
    expect(await redis.zscore(slots.k.active, "r1")).toBeNull();
  });

  it("a planner killed while holding the lock blocks the next one only until the lock's TTL (10 s) runs out, and the wait is logged", async () => {
    const p = uniquePrefix("planlock");
    prefixes.push(p);
    // A real process takes the lock (and renews it), then is SIGKILLed.
    const holder = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { Redis } from "ioredis"; import { RunSlots } from "${path.resolve("dist/src/bookmark/run-slots.js")}";
         const r = new Redis(process.env.REDIS_URL); await new RunSlots(r, "${p}", "j").lockPlanning("doomed"); console.log("held");`,
      ],
      { env: { ...process.env, REDIS_URL }, stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((res) => holder.stdout!.once("data", () => res()));
    await new Promise((r) => setTimeout(r, 4000)); // past one renewal
    holder.kill("SIGKILL");
    const killedAt = Date.now();
    // What the lock has left when its holder dies: at most its TTL (10 s) since the last renewal.
    const left = await redis.pttl(new RunSlots(redis, p, "j").k.planLock);
    const logged: string[] = [];
    const fakeLog = { info: (m: string) => logged.push(m), debug() {}, warn() {}, error() {}, child: () => fakeLog };
    const release = await new RunSlots(redis, p, "j").lockPlanning("next", { log: fakeLog });
    const waited = Date.now() - killedAt;
    await release();
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(10_000);
    // The next planner takes it as soon as it expires (polling every 25-75 ms); 1 s of slack for a
    // loaded machine's timers.
    expect(waited).toBeLessThan(left + 1_000);
    expect(waited).toBeGreaterThan(3000); // it really was held, and renewed
    expect(logged).toContain("waiting for another run of the job to finish planning");
  });

  it("the planning lock is renewed while held, so a long listing keeps it", async () => {
    const p = uniquePrefix("planlock2");
    prefixes.push(p);
    const slots = new RunSlots(redis, p, "j");
    const release = await slots.lockPlanning("long", { ttlMs: 600 });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await redis.get(slots.k.planLock)).toBe("long");
    await release();
  });

  it("a batch's final failure is recorded once, atomically, with the job's fault kept", async () => {
    const p = uniquePrefix("markfail");
    prefixes.push(p);
    const s = new BookmarkStore(redis, p, "j");
    await s.finishBatch({ partition: "_", runId: "r", commitId: "c1", batchId: "b1", jobFailure: "E_SINK: disk full" });
    expect(await s.markBatchFailed("r", "b1", "3 attempts", "job")).toBe(true);
    expect(await s.markBatchFailed("r", "b1", "3 attempts", "job")).toBe(false);
    expect(await redis.hmget(s.k.run("r"), "batchesFailed", "jobFailure")).toEqual(["1", "E_SINK: disk full"]);
  });
});

describe("a refused run exits 3, every time", () => {
  it("20 refused runs in a row: exit 3 and the documented line each time", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-refused-"));
    const prefix = uniquePrefix("refused");
    prefixes.push(prefix);
    try {
      await writeInput(path.join(dir, "in"), "a.json", "{}\n", T0);
      const config = await writeConfig(dir, {
        redis: { url: REDIS_URL },
        prefix,
        jobs: {
          events: {
            source: { path: "in" },
            processor: "ndjson",
            output: { path: pathToFileURL(path.join(dir, "out")).href },
            worker: { threads: 1 },
          },
        },
      });
      await holdLiveRun(redis, prefix, "events", "someone-else");
      const codes: (number | null)[] = [];
      for (let round = 0; round < 5; round++) {
        const rs = await Promise.all([0, 1, 2, 3].map(() => cli(["run", "events", "-c", config])));
        for (const r of rs) {
          codes.push(r.code);
          if (r.code !== 3) throw new Error(`exit ${r.code}: ${r.stderr}`);
          expect(r.stderr).toMatch(/^error \[E_CONCURRENT_RUNS\]: concurrent runs exceeded/m);
        }
      }
      expect(codes).toEqual(Array(20).fill(3));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
