/**
 * Durable runs (docs/runs.md): the process that started a run is SIGKILLed while the run plans,
 * while it processes and while its partitions commit; the run still ends SUCCEEDED, finished by
 * another process (a `tranche worker`, or a `tranche run` that attaches to it), every input has
 * exactly one output, and no partition commits twice. Real processes, real Redis, real BullMQ.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { RunRecords } from "../src/run/run-record.js";
import { cleanPrefix, REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";
import { cli, startWorkerProcess, waitFor, writeConfig } from "./helpers/cli.js";
import { listFiles, writeInput } from "./helpers/files.js";
import { kill, tranche, type Proc } from "./chaos/procs.js";

const PROCESSOR = path.resolve("test/chaos/ledger-processor.mjs");
const T0 = Date.UTC(2024, 0, 1);
const redis = redisClient();
const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  await redis.quit();
});

async function setup(name: string, files: number, job: Record<string, unknown> = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `tranche-durable-${name}-`));
  const prefix = uniquePrefix(name);
  cleanup.push(async () => {
    await cleanPrefix(redis, prefix);
    await rm(dir, { recursive: true, force: true });
  });
  const keys: string[] = [];
  for (let i = 0; i < files; i++) {
    const key = `dt=2024-01-0${(i % 3) + 1}/f-${String(i).padStart(3, "0")}.json`;
    keys.push(key);
    await writeInput(path.join(dir, "in"), key, `{"i":${i}}\n`, T0 + i * 1000);
  }
  const ledger = path.join(dir, "ledger.txt");
  const config = await writeConfig(dir, {
    redis: { url: REDIS_URL },
    prefix,
    metrics: { port: 0 },
    jobs: {
      events: {
        source: { path: "in", partitionKeys: ["dt"] },
        processor: PROCESSOR,
        processorOptions: { ledger, sleepMs: 40 },
        output: { path: pathToFileURL(path.join(dir, "out")).href },
        batchFiles: 3,
        backoffMs: 100,
        worker: { lockDurationMs: 2000, stalledIntervalMs: 1000, threads: 2 },
        ...job,
      },
    },
  });
  const store = new BookmarkStore(redis, prefix, "events");
  const runs = new RunRecords(redis, prefix);
  return { dir, prefix, keys, config, store, runs, out: path.join(dir, "out") };
}
type Setup = Awaited<ReturnType<typeof setup>>;

async function newestRun(s: Setup): Promise<string> {
  let id = "";
  await waitFor(async () => {
    id = (await redis.zrevrange(s.store.k.runIndex, 0, 0))[0] ?? "";
    return id !== "";
  });
  return id;
}

/** Starts a `tranche worker` process and waits until it has finished the run (SUCCEEDED). */
async function finishWithWorker(s: Setup, runId: string): Promise<void> {
  const worker = startWorkerProcess(s.config);
  try {
    await waitFor(async () => (await s.runs.state(runId)) === "SUCCEEDED", 60_000, "the run to succeed");
  } finally {
    worker.kill("SIGTERM");
    await worker.exited;
  }
}

/** Every input has exactly one output, each partition of the run committed once, and the bookmark counts each file once. */
async function checkExactlyOnce(s: Setup, runId: string): Promise<void> {
  expect(await listFiles(s.out)).toEqual(s.keys.map((k) => `${k}.out`).sort());
  const commits = (await s.store.historyEntries()).filter((e) => e.runId === runId && e.kind === "commit");
  const parts = commits.map((e) => e.partition);
  expect(new Set(parts).size).toBe(parts.length);
  expect((await s.store.summary()).partitions.reduce((a, p) => a + p.files, 0)).toBe(s.keys.length);
  expect((await s.store.history()).filter((e) => e.runId === runId)).toHaveLength(1);
}

describe("durable runs: the starter dies, the run finishes", () => {
  it("killed while planning: a worker process plans it again from its stored stage and it SUCCEEDS", async () => {
    const s = await setup("killplan", 12);
    // Hold the planning lock so that the run is caught in its plan step.
    await redis.set(s.store.k.planLock, "test", "PX", 60_000);
    const starter = tranche(["run", "events", "--config", s.config]);
    const runId = await newestRun(s);
    await waitFor(async () => (await s.runs.state(runId)) === "STARTING");
    await new Promise((r) => setTimeout(r, 300)); // the plan step is waiting for the lock
    await kill(starter);
    await redis.del(s.store.k.planLock);
    await finishWithWorker(s, runId);
    await checkExactlyOnce(s, runId);
  });

  it("killed while processing: a second `tranche run` attaches to the run, works on it and reports its outcome", async () => {
    const s = await setup("killproc", 18);
    const starter = tranche(["run", "events", "--config", s.config]);
    const runId = await newestRun(s);
    await waitFor(async () => Number((await redis.hget(s.store.k.run(runId), "progressFiles")) ?? 0) >= 2, 30_000, "files processed");
    await kill(starter);
    expect(await s.runs.state(runId)).toBe("RUNNING");
    // The starter's mark expires 10 s after its death; then a `tranche run` attaches instead of exit 3.
    const busy = await cli(["run", "events", "--config", s.config]);
    expect([busy.code, busy.stderr]).toEqual([3, expect.stringMatching(/E_CONCURRENT_RUNS|maxConcurrentRuns/)]);
    await waitFor(async () => (await redis.exists(s.store.k.starter(runId))) === 0, 15_000, "the starter mark to expire");
    const attached = await cli(["run", "events", "--config", s.config, "--json"]);
    expect(attached.code, attached.stderr).toBe(0);
    expect(attached.stderr).toMatch(new RegExp(`busy with run ${runId}, whose starter is gone: attached`));
    const summary = JSON.parse(attached.stdout.trim().split("\n")[0]!) as { runId: string; state: string; files: number; bytes: number };
    expect([summary.runId, summary.state]).toEqual([runId, "SUCCEEDED"]);
    // Work redone after the kill is counted once.
    const inputBytes = s.keys.reduce((n, k) => n + Buffer.byteLength(`{"i":${Number(/f-(\d+)/.exec(k)![1])}}\n`), 0);
    expect([summary.files, summary.bytes]).toEqual([s.keys.length, inputBytes]);
    await checkExactlyOnce(s, runId);
    // Nothing was processed twice except what the killed process had in flight.
    const ledger = (await readFile(path.join(s.dir, "ledger.txt"), "utf8")).trim().split("\n");
    expect(ledger.length).toBeLessThanOrEqual(s.keys.length + 4);
  });

  it("killed while committing (one partition committed, the others not yet): the others commit once, the run SUCCEEDS", async () => {
    const s = await setup("killcommit", 18, { partitionConcurrency: 1 });
    const starter: Proc = tranche(["run", "events", "--config", s.config]);
    const runId = await newestRun(s);
    await waitFor(async () => (await redis.hlen(s.store.k.runParts(runId))) >= 1, 60_000, "a first partition commit");
    await kill(starter);
    expect(await redis.hlen(s.store.k.runParts(runId))).toBeLessThan(3);
    await finishWithWorker(s, runId);
    await checkExactlyOnce(s, runId);
    const parts = await s.runs.partitions(runId);
    expect(parts.map((p) => p.state)).toEqual(["COMMITTED", "COMMITTED", "COMMITTED"]);
    // Each commit wrote its manifest under _tranche/manifests/<runId>/.
    for (const p of parts) expect(p.manifest).toMatch(new RegExp(`^_tranche/manifests/${runId}/part-[0-9a-f]{12}\\.json$`));
    const m = JSON.parse(await readFile(path.join(s.out, parts[0]!.manifest!), "utf8")) as { files: { input: string; output: string }[] };
    expect(m.files).toHaveLength(6);
    expect(m.files.every((f) => f.output === `${f.input}.out`)).toBe(true);
  });
});
