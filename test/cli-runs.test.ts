/**
 * `tranche run --detach`, `tranche runs`, `tranche stop`, `tranche status` and `tranche triggers`
 * through the CLI (real processes, real Redis), and freeing the slot of a run whose starter died
 * before enqueuing it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { validateConfig } from "../src/config/load.js";
import { log } from "../src/log.js";
import { redisOptions } from "../src/redis.js";
import { slotTtlMs, startRun } from "../src/run/start-run.js";
import { stepContext } from "../src/run/step-context.js";
import { cli, writeConfig } from "./helpers/cli.js";
import { writeInput } from "./helpers/files.js";
import { cleanPrefix, REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";

const redis = redisClient();
const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  await redis.quit();
});

async function setup(name: string) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `tranche-${name}-`));
  const prefix = uniquePrefix(name);
  cleanup.push(async () => {
    await cleanPrefix(redis, prefix);
    await rm(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < 4; i++)
    await writeInput(path.join(dir, "in"), `dt=2024-01-0${(i % 2) + 1}/f${i}.json`, `{"i":${i}}\n`, Date.UTC(2024, 0, 1) + i);
  const raw = {
    redis: { url: REDIS_URL },
    prefix,
    metrics: { port: 0 },
    jobs: {
      events: {
        source: { path: pathToFileURL(path.join(dir, "in")).href, partitionKeys: ["dt"] },
        processor: "ndjson",
        output: { path: pathToFileURL(path.join(dir, "out")).href },
        triggers: { schedule: { cron: "0 3 * * *", timezone: "Europe/Paris" }, drain: true },
      },
    },
  };
  const config = await writeConfig(dir, raw);
  return { dir, prefix, config, cfg: validateConfig(raw, { env: {} }) };
}

describe("runs through the CLI", () => {
  it("run --detach returns the run id at once; runs lists it; stop ends it STOPPED; the next run does the work; status shows states", async () => {
    const s = await setup("clirun");
    const detached = await cli(["run", "events", "--detach", "--config", s.config]);
    expect(detached.code, detached.stderr).toBe(0);
    const runId = detached.stdout.trim();
    expect(runId).toMatch(/^\d{8}T\d{9}Z-[0-9a-f]{6}$/);
    // No worker: it waits to be planned.
    const listed = await cli(["runs", "events", "--config", s.config, "--json"]);
    expect(JSON.parse(listed.stdout)).toMatchObject([{ runId, state: "STARTING", trigger: "manual" }]);
    const stopped = await cli(["stop", runId, "--config", s.config]);
    expect([stopped.code, stopped.stdout]).toEqual([0, expect.stringMatching(new RegExp(`run ${runId}: STOPPED`))]);
    const again = await cli(["stop", runId, "--config", s.config]);
    expect(again.stdout).toMatch(new RegExp(`run ${runId} had already ended STOPPED: nothing to stop`));
    const unknown = await cli(["stop", "nope", "--config", s.config]);
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringMatching(/no run nope/)]);
    const run = await cli(["run", "events", "--config", s.config]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/succeeded — 4 files/);
    const text = await cli(["runs", "events", "--config", s.config]);
    const lines = text.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/SUCCEEDED manual +4 files .* partitions: 2\/2 committed/);
    expect(lines[1]).toMatch(new RegExp(`^${runId} +STOPPED +manual`));
    const status = await cli(["status", "events", "--config", s.config]);
    expect(status.stdout).toMatch(/SUCCEEDED 4 files .* \(manual\)/);
    expect(status.stdout).toMatch(/STOPPED +0 files/);
    const trig = await cli(["triggers", "events", "--config", s.config]);
    expect(trig.stdout).toMatch(/schedule: "0 3 \* \* \*" in Europe\/Paris, misfire skip; next: \d{4}-\d\d-\d\dT0[12]:00:00\.000Z/);
    expect(trig.stdout).toMatch(/\(Europe\/Paris time: \d{4}-\d\d-\d\d 03:00:00, /);
    const nosuch = await cli(["triggers", "nosuch", "--config", s.config]);
    expect([nosuch.code, nosuch.stderr]).toEqual([2, expect.stringMatching(/unknown job "nosuch"/)]);

    expect(trig.stdout).toMatch(/drain: next run after a committed run while backlog remains/);
    const trigJson = JSON.parse((await cli(["triggers", "events", "--config", s.config, "--json"])).stdout);
    expect(trigJson.schedule.next).toHaveLength(3);
  });

  it("the slot of a run whose starter died before enqueuing it is freed by the next start, not held until its timeout", async () => {
    const s = await setup("orphan");
    const store = new BookmarkStore(redis, s.prefix, "events");
    // A slot taken 60 s ago by a starter that died before writing anything else.
    const t = Date.now() - 60_000;
    await redis.zadd(store.k.active, t + slotTtlMs(s.cfg.jobs.events!.timeout), "dead-starter");
    const ctx = stepContext({ redis, bull: redisOptions(REDIS_URL), cfg: s.cfg, log });
    try {
      const r = await startRun(ctx, { job: "events", trigger: "manual" });
      expect(r).toMatchObject({ started: true, state: "STARTING" });
      expect(await redis.zscore(store.k.active, "dead-starter")).toBeNull();
      // A holder that just took its slot is left alone (it may still be writing its record).
      await redis.zadd(store.k.active, Date.now() + slotTtlMs(s.cfg.jobs.events!.timeout), "fresh-starter");
      await redis.zrem(store.k.active, (r as { runId: string }).runId);
      expect(await startRun(ctx, { job: "events", trigger: "manual" })).toEqual({ started: false, running: ["fresh-starter"] });
    } finally {
      await ctx.queues.close();
    }
  });
});
