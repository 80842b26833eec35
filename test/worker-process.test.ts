import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { listFiles, writeInput } from "./helpers/files.js";
import { startWorkerProcess, waitFor, writeConfig } from "./helpers/cli.js";
import { REDIS_URL } from "./helpers/redis.js";

let h: Harness | undefined;
const procs: ReturnType<typeof startWorkerProcess>[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) if (p.exitCode === null) p.kill("SIGKILL");
  await closeHarnesses();
});

async function ledger(f: string): Promise<{ pid: string; key: string }[]> {
  const text = await readFile(f, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [pid, ...rest] = l.split(" ");
      return { pid: pid!, key: rest.join(" ") };
    });
}

/** A job whose processor sleeps per file and logs who processed what; workers run as separate processes. */
async function setup(name: string, n: number, sleepMs: number) {
  const processor = path.resolve("test/fixtures/slow-processor.mjs");
  h = await harness(name, { processor, batchFiles: 10, source: { partitionKeys: ["dt"], boundedFiles: "1000" } });
  const led = path.join(h.dir, "ledger.txt");
  h.cfg.jobs[name]!.processorOptions = { sleepMs, ledger: led };
  const config = await writeConfig(h.dir, {
    redis: { url: REDIS_URL },
    prefix: h.prefix,
    metrics: { port: 0 },
    jobs: {
      [name]: {
        source: { path: h.cfg.jobs[name]!.source.path, partitionKeys: ["dt"] },
        processor,
        processorOptions: { sleepMs, ledger: led },
        batchFiles: 10,
        output: { path: h.cfg.jobs[name]!.output.path },
        worker: { threads: 2 },
      },
    },
  });
  const inputs: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = `dt=2024-01-0${(i % 4) + 1}/f-${String(i).padStart(4, "0")}.json`;
    inputs.push(key);
    await writeInput(h.inDir, key, `{"i":${i}}\n`, Date.UTC(2024, 0, 1) + i * 1000);
  }
  return { config, led, inputs: inputs.sort() };
}

describe("tranche worker processes", () => {
  it("a worker killed with SIGKILL mid-batch: the batch is taken again, one output per input, the bookmark covers all", async () => {
    const { config, led, inputs } = await setup("killed", 60, 100);
    const a = startWorkerProcess(config);
    procs.push(a);
    const run = h!.run();
    await waitFor(async () => (await ledger(led)).length >= 3, 20_000, "worker A to be mid-batch");
    a.kill("SIGKILL");
    await a.exited;
    const byA = (await ledger(led)).length;
    const b = startWorkerProcess(config);
    procs.push(b);
    const r = await run;
    expect(r.status).toBe("succeeded");
    expect(r.files).toBe(60);
    expect(byA).toBeLessThan(60);
    expect(await listFiles(h!.outDir)).toEqual(inputs.map((k) => `${k}.out`));
    const bm = await new BookmarkStore(h!.redis, h!.prefix, h!.name).summary();
    expect(bm.partitions.reduce((s, p) => s + p.files, 0)).toBe(60);
    expect(bm.partitions.every((p) => p.leased === 0)).toBe(true);
    expect((await h!.run()).status).toBe("empty");
  });

  it("two worker processes on one queue never process the same file twice", async () => {
    const { config, led, inputs } = await setup("twoworkers", 120, 20);
    const a = startWorkerProcess(config);
    const b = startWorkerProcess(config);
    procs.push(a, b);
    const r = await h!.run();
    expect(r.status).toBe("succeeded");
    const entries = await ledger(led);
    expect(entries.map((e) => e.key).sort()).toEqual(inputs);
    expect(new Set(entries.map((e) => e.pid)).size).toBe(2);
    expect(await listFiles(h!.outDir)).toHaveLength(120);
  });

  it("SIGTERM: the worker stops taking batches, finishes its current one and exits 0", async () => {
    const { config, led, inputs } = await setup("sigterm", 40, 100);
    const a = startWorkerProcess(config, ["--concurrency", "1"]);
    procs.push(a);
    const run = h!.run();
    await waitFor(async () => (await ledger(led)).length >= 1, 20_000, "worker to start a batch");
    a.kill("SIGTERM");
    expect(await a.exited).toBe(0);
    expect(a.output()).toMatch(/worker stopped/);
    const doneByA = (await ledger(led)).length;
    expect(doneByA % 10).toBe(0); // whole batches only
    expect(doneByA).toBeLessThan(40);
    const b = startWorkerProcess(config);
    procs.push(b);
    const r = await run;
    expect(r.status).toBe("succeeded");
    expect((await ledger(led)).map((e) => e.key).sort()).toEqual(inputs);
  });

  it("a `tranche run` killed mid-run leaves the bookmark before that run; the next run takes all of its files", async () => {
    const { config, led, inputs } = await setup("killedrun", 40, 100);
    const { spawn } = await import("node:child_process");
    const { BIN } = await import("./helpers/cli.js");
    const p = spawn(process.execPath, [BIN, "run", "killedrun", "--config", config], { stdio: "ignore" });
    await waitFor(async () => (await ledger(led)).length >= 5, 20_000, "the run to be processing");
    p.kill("SIGKILL");
    await new Promise((r) => p.once("exit", r));
    const store = new BookmarkStore(h!.redis, h!.prefix, h!.name);
    expect((await store.summary()).version).toBe(0);
    expect((await store.summary()).partitions).toEqual([]);
    // The killed run's slot expires; its leases no longer block anyone.
    await h!.redis.del(store.k.active);
    const a = startWorkerProcess(config);
    procs.push(a);
    const r = await h!.run();
    expect([r.status, r.files]).toEqual(["succeeded", 40]);
    expect(await listFiles(h!.outDir)).toEqual(inputs.map((k) => `${k}.out`));
    expect((await store.summary()).partitions.every((x) => x.leased === 0)).toBe(true);
  });
});
