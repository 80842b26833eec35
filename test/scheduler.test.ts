/**
 * Two `tranche scheduler` processes and a `tranche worker` on one configuration with a
 * seconds-level cron: every tick starts exactly one run; SIGKILL the leader and the other takes
 * over within 10 s, no tick doubled. Real processes, real Redis.
 */
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { RunRecords } from "../src/run/run-record.js";
import { cleanPrefix, REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";
import { cli, startWorkerProcess, waitFor, writeConfig } from "./helpers/cli.js";
import { kill, tranche, type Proc } from "./chaos/procs.js";

const redis = redisClient();
const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  await redis.quit();
});

/** Lines a process logged (JSON), with the time they were seen. */
function watch(p: Proc): { lines: () => { t: number; msg: string; scheduler?: string }[] } {
  const lines: { t: number; msg: string; scheduler?: string }[] = [];
  let buf = "";
  const onData = (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const j = JSON.parse(l) as { msg: string; scheduler?: string };
        lines.push({ t: Date.now(), msg: j.msg, scheduler: j.scheduler });
      } catch {
        // not a log line
      }
    }
  };
  p.child.stdout!.on("data", onData);
  p.child.stderr!.on("data", onData);
  return { lines: () => lines };
}

describe("tranche scheduler", () => {
  it("two replicas, a cron every second over 20+ ticks: one run per tick; the leader killed, the other leads within 10 s, no tick doubled", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-sched-"));
    const prefix = uniquePrefix("sched");
    cleanup.push(async () => {
      await cleanPrefix(redis, prefix);
      await rm(dir, { recursive: true, force: true });
    });
    await mkdir(path.join(dir, "in"));
    const config = await writeConfig(dir, {
      redis: { url: REDIS_URL },
      prefix,
      metrics: { port: 0 },
      jobs: {
        tick: {
          source: { path: "in" },
          processor: "ndjson",
          output: { path: pathToFileURL(path.join(dir, "out")).href },
          maxConcurrentRuns: 5,
          triggers: { schedule: { cron: "* * * * * *" }, misfire: "skip" },
        },
      },
    });
    const listed = await cli(["triggers", "--config", config]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/schedule: "\* \* \* \* \* \*" in UTC, misfire skip; next: \d{4}-/);

    const worker = startWorkerProcess(config);
    const env = { TRANCHE_LOG_LEVEL: "info", TRANCHE_LOG_FORMAT: "json" };
    const a = tranche(["scheduler", "--config", config, "--metrics-port", "0"], env);
    const b = tranche(["scheduler", "--config", config, "--metrics-port", "0"], env);
    const wa = watch(a);
    const wb = watch(b);
    cleanup.push(async () => {
      await kill(a);
      await kill(b);
      worker.kill("SIGKILL");
    });
    const leads = (w: ReturnType<typeof watch>) => w.lines().filter((l) => l.msg === "scheduler leads: firing triggers");
    await waitFor(() => leads(wa).length + leads(wb).length > 0, 15_000, "a leader");
    const [leader, follower, wFollower] = leads(wa).length ? [a, b, wb] : [b, a, wa];
    const runs = new RunRecords(redis, prefix);
    const count = async () => (await runs.list("tick", 1000)).length;
    await waitFor(async () => (await count()) >= 12, 30_000, "12 scheduled runs");
    const killedAt = Date.now();
    await kill(leader);
    await waitFor(() => leads(wFollower).length > 0, 12_000, "the other replica to lead");
    const handover = leads(wFollower)[0]!.t - killedAt;
    expect(handover).toBeLessThanOrEqual(10_000);
    await waitFor(async () => (await count()) >= 24, 40_000, "24 scheduled runs");
    await kill(follower);
    await waitFor(
      async () => (await runs.list("tick", 1000)).every((r) => ["SUCCEEDED", "FAILED", "ERROR"].includes(r.state)),
      20_000,
      "runs to end",
    );
    worker.kill("SIGTERM");
    await worker.exited;

    const all = await runs.list("tick", 1000);
    const ticks = all.map((r) => Number(r.firing.split("|")[1]));
    expect(all.every((r) => r.trigger === "schedule" && r.firing.startsWith("schedule|"))).toBe(true);
    // No tick started two runs.
    expect(new Set(ticks).size).toBe(ticks.length);
    // Every tick from the first to the last started exactly one run, except ticks during the handover (misfire: skip).
    const first = Math.min(...ticks);
    const last = Math.max(...ticks);
    const have = new Set(ticks);
    const missing: number[] = [];
    for (let t = first; t <= last; t += 1000) if (!have.has(t)) missing.push(t);
    for (const t of missing) {
      expect(t, `tick ${new Date(t).toISOString()} missing outside the handover`).toBeGreaterThanOrEqual(killedAt - 1500);
      expect(t).toBeLessThanOrEqual(killedAt + handover + 1500);
    }
    console.log(`scheduler: ${ticks.length} ticks fired, ${missing.length} skipped in the handover, handover ${handover} ms, 0 doubled`);
    expect(ticks.length).toBeGreaterThanOrEqual(20);
    expect(all.every((r) => r.state === "SUCCEEDED")).toBe(true);
  }, 120_000);

  it("a bad cron or time zone is E_CONFIG naming the field", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-sched-bad-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const base = { source: { path: "in" }, processor: "ndjson", output: { path: "out" } };
    for (const [triggers, field] of [
      [{ schedule: { cron: "61 * * * *" } }, /jobs\.j\.triggers\.schedule\.cron/],
      [{ schedule: { cron: "* * *" } }, /jobs\.j\.triggers\.schedule\.cron: .* has 3 fields/],
      [{ schedule: { cron: "* * * * *", timezone: "Mars/Olympus" } }, /jobs\.j\.triggers\.schedule\.timezone: unknown time zone/],
      [
        { after: { logical: "AND", conditions: [{ job: "nope", state: "SUCCEEDED" }] } },
        /jobs\.j\.triggers\.after\.conditions\[0\]\.job: no job "nope"/,
      ],
      [{ after: { logical: "XOR", conditions: [{ job: "j" }] } }, /logical/],
      [{ misfire: "sometimes" }, /misfire/],
    ] as const) {
      const config = await writeConfig(dir, { jobs: { j: { ...base, triggers } } });
      const r = await cli(["triggers", "--config", config]);
      expect([r.code, r.stderr], JSON.stringify(triggers)).toEqual([2, expect.stringMatching(field)]);
    }
  });
});
