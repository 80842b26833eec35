/**
 * The run lifecycle (docs/runs.md) on real Redis, BullMQ and worker threads: timeout, stop,
 * whenBusy skip and queue, partitions processed side by side and committing on their own, and the
 * scheduler's drain and after triggers.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { lastListing } from "../src/run/listing-step.js";
import { partialNote } from "../src/cli/bookmark-commands.js";
import { globalKeys } from "../src/bookmark/keys.js";
import { log } from "../src/log.js";
import { RunRecords } from "../src/run/run-record.js";
import { startRun } from "../src/run/start-run.js";
import { stepContext, type StepContext } from "../src/run/step-context.js";
import { stopRun } from "../src/run/stop-run.js";
import { waitForRun } from "../src/run/wait-run.js";
import { Scheduler } from "../src/triggers/scheduler.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { waitFor } from "./helpers/cli.js";
import { listFiles, writeInput } from "./helpers/files.js";

const PROCESSOR = path.resolve("test/chaos/ledger-processor.mjs");
const T0 = Date.UTC(2024, 0, 1);
const contexts: StepContext[] = [];
afterEach(async () => {
  for (const c of contexts.splice(0)) await c.queues.close();
  await closeHarnesses();
});

async function ledgerHarness(name: string, job: Record<string, unknown> = {}, options: Record<string, unknown> = {}) {
  const h = await harness(name, { processor: PROCESSOR, ...job });
  const ledger = path.join(h.dir, "ledger.txt");
  const startLedger = path.join(h.dir, "started.txt");
  h.cfg.jobs[name]!.processorOptions = { ledger, startLedger, ...options };
  const ctx = stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log });
  contexts.push(ctx);
  const lines = async (f: string) =>
    (await readFile(f, "utf8").catch(() => ""))
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [t, , key] = l.split(" ");
        return { t: Number(t), key: key! };
      });
  return {
    h,
    ctx,
    store: new BookmarkStore(h.redis, h.prefix, name),
    runs: new RunRecords(h.redis, h.prefix),
    done: () => lines(ledger),
    started: () => lines(startLedger),
  };
}

async function seed(h: Harness, n: number, partitions = 1) {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = `dt=2024-01-0${(i % partitions) + 1}/f-${String(i).padStart(4, "0")}.json`;
    keys.push(key);
    await writeInput(h.inDir, key, `{"i":${i}}\n`, T0 + i * 1000);
  }
  return keys.sort();
}

describe("timeout and stop", () => {
  it("a run past its timeout ends TIMEOUT, its queued batches are removed, and the next run takes exactly its files", async () => {
    const t = await ledgerHarness("timeout", { timeout: 0.03, batchFiles: 1, source: { partitionKeys: ["dt"] } }, { sleepMs: 400 });
    const keys = await seed(t.h, 10);
    await t.h.startWorker(1);
    const s = await t.h.run();
    expect(s.state).toBe("TIMEOUT");
    expect([s.status, s.committed]).toEqual(["timeout", false]);
    // ~1.8 s at 400 ms a file on one thread: some files ran, the rest were removed from the queue.
    const ran = (await t.done()).length;
    expect(ran).toBeGreaterThan(0);
    expect(ran).toBeLessThan(10);
    expect((await t.store.summary()).version).toBe(0);
    const q = t.ctx.queues.queue(t.h.name);
    expect(await q.getWaitingCount()).toBe(0);
    t.h.cfg.jobs[t.h.name]!.timeout = 2880;
    t.h.cfg.jobs[t.h.name]!.processorOptions.sleepMs = 0;
    const next = await t.h.run();
    expect([next.state, next.files]).toEqual(["SUCCEEDED", 10]);
    expect(
      (await t.done())
        .slice(ran)
        .map((l) => l.key)
        .sort(),
    ).toEqual(keys);
    expect((await t.h.run()).status).toBe("empty");
  });

  it("tranche stop: files in flight finish, the rest is released, the run ends STOPPED and the next run takes the rest", async () => {
    const t = await ledgerHarness("stop", { batchFiles: 1 }, { sleepMs: 300 });
    // 20 files of 300 ms on one worker: the stop comes after the first is done, while most still
    // wait on the queue, even on a loaded machine (8 files were all taken before it once).
    const n = 20;
    const keys = await seed(t.h, n);
    await t.h.startWorker(1);
    const running = t.h.run();
    const runId = await t.h.newestRun();
    await waitFor(async () => (await t.done()).length >= 1, 20_000, "a file done");
    const stopped = await stopRun(t.ctx, runId);
    expect(["STOPPING", "STOPPED"]).toContain(stopped.state);
    expect(stopped.removed).toBeGreaterThan(0);
    const s = await running;
    expect([s.state, s.committed]).toEqual(["STOPPED", false]);
    // `status` (the last listing's figures) still counts the stopped run's files as backlog.
    expect(await lastListing(t.store)).toMatchObject({ runId, files: n });
    const ran = (await t.done()).length;
    expect(ran).toBeLessThan(n);
    // Stopping a run that ended is a no-op that says how it ended.
    expect((await stopRun(t.ctx, runId)).state).toBe("STOPPED");
    t.h.cfg.jobs[t.h.name]!.processorOptions.sleepMs = 0;
    const next = await t.h.run();
    expect([next.state, next.files]).toEqual(["SUCCEEDED", n]);
    expect(new Set((await t.done()).map((l) => l.key))).toEqual(new Set(keys));
  });
});

describe("steps that die half-way", () => {
  it("a run ended by a step that died before recording it is recorded by the retried step: slot freed, end published once", async () => {
    const t = await ledgerHarness("halfend", {});
    await seed(t.h, 2);
    const waiting = t.h.run(); // no worker: the run waits in its plan step
    const runId = await t.h.newestRun();
    // As if a finish had moved the run to its end state and its worker died right after.
    await t.h.redis.hset(t.store.k.run(runId), "state", "SUCCEEDED");
    expect(await t.store.slots.live()).toEqual([runId]);
    await t.h.planNow(runId); // the plan job, retried by another worker
    expect(await t.store.slots.live()).toEqual([]);
    const s = await waiting;
    expect(s.state).toBe("SUCCEEDED");
    const ends = await t.h.redis.xrange(globalKeys(t.h.prefix).events, "-", "+");
    expect(ends.filter(([, f]) => f.includes(runId))).toHaveLength(1);
    await t.h.planNow(runId); // once more: nothing happens twice
    expect((await t.h.redis.xrange(globalKeys(t.h.prefix).events, "-", "+")).filter(([, f]) => f.includes(runId))).toHaveLength(1);
    expect((await t.store.history()).filter((e) => e.runId === runId)).toHaveLength(1);
  });
});

describe("whenBusy", () => {
  it("skip: a run asked for at maxConcurrentRuns is not started; queue: it WAITS and runs once the slot frees", async () => {
    const t = await ledgerHarness("busy", { batchFiles: 2 }, { sleepMs: 150 });
    await seed(t.h, 6);
    await t.h.startWorker(1);
    const first = await startRun(t.ctx, { job: t.h.name, trigger: "manual" });
    expect(first).toMatchObject({ started: true, state: "STARTING" });
    const skipped = await startRun(t.ctx, { job: t.h.name, trigger: "manual", whenBusy: "skip" });
    expect(skipped).toEqual({ started: false, running: [(first as { runId: string }).runId] });
    const queued = await startRun(t.ctx, { job: t.h.name, trigger: "manual", whenBusy: "queue" });
    expect(queued).toMatchObject({ started: true, state: "WAITING" });
    const qid = (queued as { runId: string }).runId;
    expect(await t.runs.state(qid)).toBe("WAITING");
    // A second queued run, stopped while it waits: STOPPED at once, it never plans.
    const third = await startRun(t.ctx, { job: t.h.name, trigger: "manual", whenBusy: "queue" });
    const tid = (third as { runId: string }).runId;
    expect(await stopRun(t.ctx, tid)).toEqual({ state: "STOPPED", removed: 0 });
    expect(await waitForRun(t.ctx, t.h.name, tid)).toMatchObject({ state: "STOPPED", files: 0 });
    const a = await waitForRun(t.ctx, t.h.name, (first as { runId: string }).runId);
    const b = await waitForRun(t.ctx, t.h.name, qid);
    expect([a.state, a.files]).toEqual(["SUCCEEDED", 6]);
    // The queued run planned after the first committed: nothing was left for it.
    expect([b.state, b.status]).toEqual(["SUCCEEDED", "empty"]);
    expect(Number(await t.h.redis.hget(t.store.k.run(qid), "startedAt"))).toBeGreaterThanOrEqual(
      Date.parse(a.endedAt) - 50, // it started planning only after the first run ended
    );
  });
});

describe("partition workflows", () => {
  it("with 2 threads and 2 partitions both partitions are processed at the same time", async () => {
    const t = await ledgerHarness("sidebyside", { batchFiles: 1, source: { partitionKeys: ["dt"] } }, { sleepMs: 300 });
    await seed(t.h, 8, 2);
    await t.h.startWorker(2);
    const s = await t.h.run();
    expect(s.partitions.map((p) => [p.partition, p.state, p.files])).toEqual([
      ["dt=2024-01-01", "COMMITTED", 4],
      ["dt=2024-01-02", "COMMITTED", 4],
    ]);
    // Intervals [start, end] of each file: some file of one partition overlaps one of the other.
    const starts = new Map((await t.started()).map((l) => [l.key, l.t]));
    const spans = (await t.done()).map((l) => ({ p: l.key.split("/")[0], from: starts.get(l.key)!, to: l.t }));
    const a = spans.filter((x) => x.p === "dt=2024-01-01");
    const b = spans.filter((x) => x.p === "dt=2024-01-02");
    expect(a.some((x) => b.some((y) => x.from < y.to && y.from < x.to))).toBe(true);
  });

  it("a partition whose files all fail leaves the other committed and the run FAILED; the next run takes only the failed partition's files", async () => {
    const t = await ledgerHarness(
      "partfail",
      { batchFiles: 2, attempts: 1, source: { partitionKeys: ["dt"] } },
      { failKeys: "^dt=2024-01-02/" },
    );
    const keys = await seed(t.h, 8, 2);
    await t.h.startWorker(2);
    const s = await t.h.run();
    expect(s.state).toBe("FAILED");
    expect(s.partitions.map((p) => [p.partition, p.state])).toEqual([
      ["dt=2024-01-01", "COMMITTED"],
      ["dt=2024-01-02", "FAILED"],
    ]);
    expect(s.partitions[1]!.error).toMatch(/failKeys matches/);
    expect([s.committed, s.filesCommitted]).toEqual([true, 4]);
    expect(await lastListing(t.store)).toMatchObject({ runId: s.runId, files: 4, oldestUnprocessed: Date.UTC(2024, 0, 1) + 1000 });
    expect((await t.store.summary()).partitions.map((p) => [p.partition, p.files])).toEqual([["dt=2024-01-01", 4]]);
    // The next run (the files now fine) takes exactly the failed partition's files.
    delete t.h.cfg.jobs[t.h.name]!.processorOptions.failKeys;
    const before = (await t.done()).length;
    const next = await t.h.run();
    expect([next.state, next.files]).toEqual(["SUCCEEDED", 4]);
    expect(
      (await t.done())
        .slice(before)
        .map((l) => l.key)
        .sort(),
    ).toEqual(keys.filter((k) => k.startsWith("dt=2024-01-02/")));
    // `rewind` to the partly committed run uses the state after its committed partition, and says so.
    expect(await t.store.committedPartitions(s.runId)).toMatchObject({ state: "FAILED", partitions: ["dt=2024-01-01"] });
    expect(await partialNote(t.store, s.runId)).toMatch(
      /run \S+ ended FAILED and committed only partition dt=2024-01-01; .*partition dt=2024-01-02 as before the run/,
    );
    await t.store.rewind(s.runId, t.h.cfg.jobs[t.h.name]!.bookmark.maxBand * 1000);
    expect((await t.store.summary()).partitions.map((p) => [p.partition, p.files])).toEqual([["dt=2024-01-01", 4]]);
    const again = await t.h.run();
    expect([again.state, again.files, again.partitions.map((p) => p.partition)]).toEqual(["SUCCEEDED", 4, ["dt=2024-01-02"]]);
  });

  it("partitionConcurrency 1: one partition at a time, each committing before the next starts", async () => {
    const t = await ledgerHarness("oneatatime", { batchFiles: 2, partitionConcurrency: 1, source: { partitionKeys: ["dt"] } });
    await seed(t.h, 9, 3);
    await t.h.startWorker(2);
    const s = await t.h.run();
    expect(s.partitions.map((p) => p.state)).toEqual(["COMMITTED", "COMMITTED", "COMMITTED"]);
    const starts = new Map((await t.started()).map((l) => [l.key, l.t]));
    const done = await t.done();
    const byPart = new Map<string, { from: number; to: number }>();
    for (const l of done) {
      const p = l.key.split("/")[0]!;
      const cur = byPart.get(p) ?? { from: Infinity, to: -Infinity };
      byPart.set(p, { from: Math.min(cur.from, starts.get(l.key)!), to: Math.max(cur.to, l.t) });
    }
    const spans = [...byPart.values()].sort((x, y) => x.from - y.from);
    for (let i = 1; i < spans.length; i++) expect(spans[i]!.from).toBeGreaterThanOrEqual(spans[i - 1]!.to);
  });
});

describe("triggers (tranche scheduler, in process)", () => {
  it("drain empties a 1,000-file backlog in ceil(1000 / bound) runs without a person", async () => {
    const t = await ledgerHarness("drain", { source: { boundedFiles: "250" }, batchFiles: 50, triggers: { drain: true } });
    await seed(t.h, 1000);
    await t.h.startWorker(2);
    const scheduler = new Scheduler(t.ctx, { tickMs: 100 });
    scheduler.start();
    try {
      await waitFor(
        async () => (await t.store.summary()).partitions.reduce((a, p) => a + p.files, 0) === 1000,
        120_000,
        "the backlog drained",
      );
      await waitFor(async () => (await t.store.slots.live()).length === 0, 20_000, "the last run to end");
      await new Promise((r) => setTimeout(r, 500)); // a drain that went on would have started by now
    } finally {
      await scheduler.stop();
    }
    const runs = await t.runs.list(t.h.name, 100);
    expect(runs.map((r) => [r.state, r.trigger])).toEqual(Array.from({ length: 4 }, () => ["SUCCEEDED", "drain"]));
    expect(await listFiles(t.h.outDir)).toHaveLength(1000);
  }, 180_000);

  it("after: AND fires once every condition has a matching run end, ANY on the first; over the four end states", async () => {
    const t = await ledgerHarness("after", {});
    const events = globalKeys(t.h.prefix).events;
    const end = (job: string, state: string) => t.h.redis.xadd(events, "*", "type", "run.ended", "job", job, "runId", "x", "state", state);
    const cfg = t.h.cfg;
    const base = cfg.jobs[t.h.name]!;
    // Four jobs with `after` triggers (only the scheduler starts them; no worker: they stay STARTING).
    const afterJob = (logical: "AND" | "ANY", conditions: { job: string; state: "SUCCEEDED" | "FAILED" | "TIMEOUT" | "STOPPED" }[]) => ({
      ...base,
      triggers: { misfire: "skip" as const, drain: false, drainPauseSeconds: 0, after: { logical, conditions } },
      maxConcurrentRuns: 10,
    });
    cfg.jobs.andJob = afterJob("AND", [
      { job: "a", state: "SUCCEEDED" },
      { job: "b", state: "FAILED" },
    ]);
    cfg.jobs.anyJob = afterJob("ANY", [
      { job: "a", state: "TIMEOUT" },
      { job: "b", state: "STOPPED" },
    ]);
    delete base.triggers;
    const scheduler = new Scheduler(t.ctx, { tickMs: 50 });
    const fired = async (job: string) => (await t.runs.list(job, 100)).filter((r) => r.trigger === "after").length;
    await scheduler.poll(); // takes the lead; the triggers start from now
    await end("a", "SUCCEEDED");
    await end("a", "SUCCEEDED");
    await scheduler.poll();
    expect(await fired("andJob")).toBe(0); // b has not FAILED yet
    await end("b", "SUCCEEDED"); // not the state it waits for
    await scheduler.poll();
    expect(await fired("andJob")).toBe(0);
    await end("b", "FAILED");
    await scheduler.poll();
    expect(await fired("andJob")).toBe(1);
    await end("b", "FAILED"); // a new round: a's earlier ends were used up by the firing
    await scheduler.poll();
    expect(await fired("andJob")).toBe(1);
    expect(await fired("anyJob")).toBe(0);
    await end("b", "STOPPED");
    await scheduler.poll();
    expect(await fired("anyJob")).toBe(1);
    await end("a", "TIMEOUT");
    await end("a", "TIMEOUT");
    await scheduler.poll();
    expect(await fired("anyJob")).toBe(3);
    // A second scheduler replica does not lead while the first holds the lease, and fires nothing.
    const other = new Scheduler(t.ctx, { tickMs: 50 });
    await end("a", "TIMEOUT");
    await other.poll();
    expect([other.isLeader, await fired("anyJob")]).toEqual([false, 3]);
    await scheduler.poll();
    expect(await fired("anyJob")).toBe(4);
    await scheduler.stop();
  });

  it("after, end to end: a real run of one job SUCCEEDS and the scheduler starts the next job, recording its trigger", async () => {
    const t = await ledgerHarness("chain", {});
    await seed(t.h, 3);
    const cfg = t.h.cfg;
    cfg.jobs.chainNext = {
      ...cfg.jobs[t.h.name]!,
      output: { path: cfg.jobs[t.h.name]!.output.path + "-next" },
      triggers: {
        misfire: "skip",
        drain: false,
        drainPauseSeconds: 0,
        after: { logical: "ANY", conditions: [{ job: t.h.name, state: "SUCCEEDED" }] },
      },
    };
    await t.h.startWorker(2);
    const { BatchWorker } = await import("../src/queue/batch-worker.js");
    const { FilePool } = await import("../src/pool/file-pool.js");
    const pool = new FilePool({ threads: 1 });
    const w = new BatchWorker({ redis: t.h.redis, connection: t.h.bull, cfg, jobs: ["chainNext"], pool, log });
    await w.start();
    const scheduler = new Scheduler(t.ctx, { tickMs: 100 });
    scheduler.start();
    try {
      await waitFor(async () => scheduler.isLeader, 5000, "the scheduler to lead");
      const first = await t.h.run();
      expect(first.state).toBe("SUCCEEDED");
      await waitFor(async () => (await t.runs.list("chainNext")).some((r) => r.state === "SUCCEEDED"), 30_000, "the next job's run");
      const [next] = await t.runs.list("chainNext");
      expect(next!.trigger).toBe("after");
      expect(JSON.parse(next!.summary!)).toMatchObject({ state: "SUCCEEDED", files: 3, trigger: "after" });
    } finally {
      await scheduler.stop();
      await w.close();
      await pool.close();
    }
  });
});
