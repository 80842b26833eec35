/**
 * Fault injection with real processes: a drain of 5,000 files while worker processes are SIGKILLed
 * (≥ 20 times), the `tranche run` process is SIGKILLed at random moments (≥ 10 times: while
 * planning, processing or committing) and Redis is SIGKILLed and restarted from its AOF (twice).
 * Afterwards every input has exactly one output with exactly its records, no temp files remain,
 * the bookmark counts each file once, and a last run finds nothing.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { QueueEvents } from "bullmq";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { log } from "../../src/log.js";
import { bullConnection, connectRedis } from "../../src/redis.js";
import { runOnce } from "../../src/run/runner.js";
import { writeConfig } from "../helpers/cli.js";
import { listFiles, writeInput } from "../helpers/files.js";
import { PrivateRedis } from "../helpers/private-redis.js";
import { between, kill, runToEnd, sleep, tranche, type Proc } from "./procs.js";
import { report, table } from "./report.js";

const PROCESSOR = path.resolve("test/chaos/ledger-processor.mjs");
const T0 = Date.UTC(2024, 0, 1);
const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

function records(i: number): string {
  return [0, 1, 2].map((r) => JSON.stringify({ id: `${i}-${r}`, v: (i * 7 + r) % 11 })).join("\n") + "\n";
}

async function setup(name: string, files: number, job: Record<string, unknown>) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `tranche-chaos-${name}-`));
  const redis = await PrivateRedis.start(path.join(dir, "redis"));
  cleanup.push(async () => {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const keys: string[] = [];
  for (let i = 0; i < files; i++) {
    const key = `dt=2024-01-${String((i % 10) + 1).padStart(2, "0")}/part-${String(i).padStart(5, "0")}.json`;
    keys.push(key);
    await writeInput(path.join(dir, "in"), key, records(i), T0 + i * 1000);
  }
  const ledger = path.join(dir, "ledger.txt");
  const config = await writeConfig(dir, {
    redis: { url: redis.url },
    prefix: "chaos",
    metrics: { port: 0 },
    jobs: {
      events: {
        source: { path: "in", partitionKeys: ["dt"] },
        processor: PROCESSOR,
        output: { path: pathToFileURL(path.join(dir, "out")).href },
        backoffMs: 200,
        ...job,
        processorOptions: { ledger, ...(job.processorOptions as object) },
      },
    },
  });
  return { dir, redis, config, keys, ledger, out: path.join(dir, "out") };
}

describe("chaos: kills during a drain", () => {
  it("5,000 files, ≥ 20 worker kills, ≥ 10 run kills, 2 Redis restarts: nothing lost, nothing doubled", async () => {
    const s = await setup("drain", 5000, {
      source: { path: "in", partitionKeys: ["dt"], boundedFiles: "250" },
      processorOptions: { sleepMs: 15 },
      batchFiles: 25,
      attempts: 10,
      worker: { threads: 2, lockDurationMs: 1000, stalledIntervalMs: 500 },
    });
    const started = Date.now();
    const workers: Proc[] = [];
    const startWorker = () => workers.push(tranche(["worker", "-c", s.config, "--metrics-port", "0"]));
    for (let i = 0; i < 3; i++) startWorker();
    const stats = { workerKills: 0, runKills: 0, redisKills: 0, runExits: new Map<string, number>(), abnormal: [] as string[] };
    // Who is busy: the ledger says which pid finished a file when.
    let ledgerSize = 0;
    const lastActive = new Map<string, number>();
    const readActivity = async () => {
      const text = await readFile(s.ledger, "utf8").catch(() => "");
      for (const l of text.slice(ledgerSize).split("\n").filter(Boolean)) lastActive.set(l.split(" ")[1]!, Date.now());
      ledgerSize = text.length;
    };
    let runner: Proc | undefined;
    let runnerStarted = 0;
    let killRunnerAt = 0;
    let nextWorkerKill = Date.now() + between(600, 1200);
    const redisKillsAt = [Date.now() + 7000, Date.now() + 18_000];
    let drained = false;
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline) {
      const now = Date.now();
      const targetsMet = stats.workerKills >= 20 && stats.runKills >= 10 && stats.redisKills >= 2;
      if (targetsMet && drained) break;
      // The run process: restarted when it ends; killed at a random moment while targets remain.
      if (!runner || !runner.alive()) {
        if (runner) {
          const code = String(runner.child.exitCode ?? runner.child.signalCode);
          stats.runExits.set(code, (stats.runExits.get(code) ?? 0) + 1);
          // 0 done, 3 refused (a killed run's slot still lives), 4 Redis down (restarting), 5 run lost.
          if (runner.child.exitCode === null || ![0, 3, 4, 5].includes(runner.child.exitCode))
            stats.abnormal.push(`${code}: ${runner.output().slice(-1500)}`);
          if (runner.child.exitCode === 0 && /"status":"empty"|"remainingFiles":0/.test(runner.output())) drained = true;
        }
        if (drained && targetsMet) break;
        runner = tranche(["run", "events", "-c", s.config, "--drain", "--json"]);
        runnerStarted = now;
        killRunnerAt = stats.runKills < 10 ? now + between(300, 2500) : Infinity;
      } else if (now >= killRunnerAt) {
        await kill(runner);
        stats.runKills++;
        killRunnerAt = Infinity;
        runner = undefined;
        continue;
      }
      await readActivity();
      // Kill a worker that is busy (it finished a file in the last 500 ms), so each kill costs work.
      const busy = workers.map((w, i) => [w, i] as const).filter(([w]) => now - (lastActive.get(String(w.child.pid)) ?? 0) < 500);
      if (stats.workerKills < 20 && now >= nextWorkerKill && busy.length) {
        const i = busy[Math.floor(Math.random() * busy.length)]![1];
        await kill(workers[i]!);
        workers.splice(i, 1);
        stats.workerKills++;
        startWorker();
        nextWorkerKill = now + between(500, 1500);
      }
      if (stats.redisKills < 2 && now >= redisKillsAt[stats.redisKills]!) {
        await s.redis.kill();
        await sleep(300);
        await s.redis.restart();
        stats.redisKills++;
      }
      await sleep(50);
      void runnerStarted;
    }
    if (runner) await kill(runner);
    // Finish: a drain with nothing killed, then a last run that must find nothing.
    let finish = { code: null as number | null, out: "" };
    for (let i = 0; i < 5 && finish.code !== 0; i++) finish = await runToEnd(["run", "events", "-c", s.config, "--drain", "--json"]);
    expect(finish.code, finish.out).toBe(0);
    const last = await runToEnd(["run", "events", "-c", s.config, "--json"]);
    expect(last.out).toMatch(/"status":"empty"/);
    const drainMs = Date.now() - started;
    for (const w of workers) await kill(w, "SIGTERM");

    // Every input has exactly one output with exactly its records.
    const outs = await listFiles(s.out);
    expect(outs.length).toBe(s.keys.length);
    expect(outs).toEqual(s.keys.map((k) => `${k}.out`).sort());
    let wrong = 0;
    for (const [i, k] of s.keys.entries()) if ((await readFile(path.join(s.out, `${k}.out`), "utf8")) !== records(i)) wrong++;
    expect(wrong).toBe(0);
    const tmp = await readdir(path.join(s.out, "_tranche", "tmp")).catch(() => []);
    expect(tmp).toEqual([]);
    // The bookmark counts each file once and holds no lease.
    const bm = JSON.parse((await runToEnd(["bookmark", "show", "events", "-c", s.config, "--json"])).out) as {
      Partitions: { files: number; leased: number }[];
    };
    expect(bm.Partitions.reduce((a, p) => a + p.files, 0)).toBe(5000);
    expect(bm.Partitions.every((p) => p.leased === 0)).toBe(true);
    const processed = (await readFile(s.ledger, "utf8")).trim().split("\n").length;
    report(
      "Kills during a drain of 5,000 files",
      table(
        [
          "inputs",
          "outputs",
          "wrong content",
          "lost",
          "doubled",
          "worker kills",
          "run kills",
          "Redis restarts",
          "files processed (incl. redone)",
          "wall time",
        ],
        [
          [
            5000,
            outs.length,
            wrong,
            5000 - outs.length,
            0,
            stats.workerKills,
            stats.runKills,
            stats.redisKills,
            processed,
            `${(drainMs / 1000).toFixed(1)} s`,
          ],
        ],
      ).concat([
        `run process exits during the chaos (exit code × times; 3 = refused while a killed run's starter mark lived, at most 10 s, before it attaches, 4 = Redis down, 5 = run lost): ${[...stats.runExits].map(([c, n]) => `${c}×${n}`).join(", ")}`,
      ]),
    );
    expect(stats.abnormal, stats.abnormal.join("\n----\n")).toEqual([]);
    expect(stats.workerKills).toBeGreaterThanOrEqual(20);
    expect(stats.runKills).toBeGreaterThanOrEqual(10);
    expect(stats.redisKills).toBe(2);
  }, 300_000);
});

describe("chaos: what one killed worker costs", () => {
  it("reports the recovery time after a SIGKILL with the default lock settings (3 s lock, 1.5 s stalled check)", async () => {
    const s = await setup("recovery", 0, { processorOptions: {}, batchFiles: 20, worker: { threads: 1 } });
    const recoveries: number[] = [];
    for (let trial = 0; trial < 5; trial++) {
      for (let i = 0; i < 20; i++)
        await writeInput(path.join(s.dir, "in"), `t${trial}/f-${i}.json`, records(i), T0 + trial * 100_000 + i * 1000);
      const ledger = path.join(s.dir, `ledger-${trial}.txt`);
      const config = await writeConfig(s.dir, {
        redis: { url: s.redis.url },
        prefix: "chaos",
        metrics: { port: 0 },
        jobs: {
          events: {
            source: { path: "in" },
            processor: PROCESSOR,
            processorOptions: { ledger, sleepMs: 150 },
            output: { path: pathToFileURL(s.out).href },
            batchFiles: 20,
            worker: { threads: 1 },
          },
        },
      });
      // Two worker processes with the default lock settings; the run is planned from this process.
      const workers = [tranche(["worker", "-c", config, "--metrics-port", "0"]), tranche(["worker", "-c", config, "--metrics-port", "0"])];
      await sleep(1500);
      const cfg = loadConfig(config);
      const redis = await connectRedis(cfg.redis);
      const running = runOnce({ cfg, job: "events", redis, bullConnection: await bullConnection(cfg.redis), log, pollMs: 50 });
      const ledgerLines = async () =>
        (await readFile(ledger, "utf8").catch(() => ""))
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((l) => l.split(" "));
      for (let i = 0; i < 400 && (await ledgerLines()).length < 2; i++) await sleep(25);
      await sleep(Math.random() * 1500); // a random moment relative to the lock's renewals
      const holder = (await ledgerLines())[0]![1];
      const victim = workers.find((w) => String(w.child.pid) === holder)!;
      const killedAt = Date.now();
      await kill(victim);
      let resumedAt = 0;
      for (let i = 0; i < 1200 && !resumedAt; i++) {
        await sleep(10);
        const after = (await ledgerLines()).filter(([t, pid]) => Number(t) > killedAt && pid !== holder);
        if (after.length) resumedAt = Number(after[0]![0]) - 150; // the resumed file started sleepMs earlier
      }
      recoveries.push(resumedAt ? resumedAt - killedAt : NaN);
      expect((await running).status).toBe("succeeded");
      await redis.quit();
      for (const w of workers) await kill(w, "SIGTERM");
    }
    const sorted = recoveries.filter(Number.isFinite).sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    report("Recovery after one killed worker (default lockDurationMs 3000, stalledIntervalMs 1500)", [
      `trials: ${recoveries.length}; recovery (SIGKILL → another worker starts on the batch), ms: ${recoveries.map((r) => Math.round(r)).join(", ")}`,
      `median ${Math.round(median)} ms, max ${Math.round(sorted.at(-1)!)} ms (before: BullMQ's 30 s lock and 15 s check cost ~10 s a kill)`,
    ]);
    expect(sorted.length).toBe(5);
    // Reported, not a timing test: this bound only catches a return to BullMQ's 30 s lock.
    expect(median).toBeLessThan(15_000);
  }, 300_000);
});

describe("chaos: no false stalls", () => {
  it("CPU-bound processors on every core do not make live workers look dead (default lock settings)", async () => {
    const s = await setup("cpu", 80, { processorOptions: { burnMs: 400 }, batchFiles: 10, worker: { threads: 2 } });
    const workers = [
      tranche(["worker", "-c", s.config, "--metrics-port", "0"]),
      tranche(["worker", "-c", s.config, "--metrics-port", "0"]),
    ];
    const cfg = loadConfig(s.config);
    const events = new QueueEvents("batches.events", { connection: await bullConnection(cfg.redis), prefix: "chaos" });
    let stalled = 0;
    events.on("stalled", () => stalled++);
    await events.waitUntilReady();
    const redis = await connectRedis(cfg.redis);
    const t = Date.now();
    const r = await runOnce({ cfg, job: "events", redis, bullConnection: await bullConnection(cfg.redis), log, pollMs: 100 });
    const secs = (Date.now() - t) / 1000;
    await redis.quit();
    await events.close();
    for (const w of workers) await kill(w, "SIGTERM");
    report("False stalls under CPU-bound processors", [
      `80 files × 400 ms of pure CPU on 2 workers × 2 threads (${os.cpus().length} cores): ${r.files} files in ${secs.toFixed(1)} s, ${stalled} stalled batches`,
    ]);
    expect([r.status, r.files, stalled]).toEqual(["succeeded", 80, 0]);
  }, 300_000);
});
