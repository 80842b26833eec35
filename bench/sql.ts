/**
 * The sql processor against the raw limit: `npm run bench:sql [-- --files N --records N --threads T
 * --native-mb M --rounds R]`. The same gzipped NDJSON files (4 `dt=` partitions) go, in interleaved
 * rounds, through
 *  - tranche: a real `tranche run` (one bounded run over all the files) of a job with
 *    `processor: sql` (default SQL, Parquet zstd out): preflight, bookmark, BullMQ, Piscina threads,
 *    gunzip and spooling, DuckDB, the local sink's fsync and rename, the commit;
 *  - bare: a Piscina pool of as many threads whose task is the same DuckDB COPY (one instance per
 *    thread, same settings, the partition value as a column) from the input file to a Parquet file.
 * Each contender runs in its own child process, so that its peak RSS (getrusage maxrss, all threads)
 * is its own. Reported: median wall time, throughput, CPU seconds, the ratio tranche/bare (goal ≥ 0.85:
 * the median of the rounds' own ratios, each of two runs side by side in time, so that the machine's
 * drift over the rounds is not in it; and the ratio of the medians) and the
 * peak memory per thread against worker.nativeMemoryMb. Default data set ("large"): 32 files ×
 * 200,000 records (982 MiB of JSON, 119 MiB gzipped).
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { DuckDBInstance } from "@duckdb/node-api";
import { Redis } from "ioredis";
import { Piscina } from "piscina";
import { validateConfig } from "../src/config/load.js";
import { runCommand } from "../src/cli/run-command.js";
import { demoRedis } from "../src/demo/redis-launcher.js";
import { deletePrefix } from "./scale-lib.js";
import type { BareTask } from "./sql-bare-worker.js";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
function sarg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const PARTITIONS = 4;

/** Gzipped NDJSON files under dt=… folders; no malformed record (DuckDB fails a file on one). */
async function generate(dir: string, files: number, records: number): Promise<{ gz: number; raw: number; keys: string[] }> {
  let gz = 0;
  let raw = 0;
  const keys: string[] = [];
  const t0 = Date.UTC(2024, 0, 1);
  for (let i = 0; i < files; i++) {
    const dt = new Date(t0 + (i % PARTITIONS) * 86_400_000).toISOString().slice(0, 10);
    const key = `dt=${dt}/events-${String(i).padStart(5, "0")}.json.gz`;
    const lines: string[] = [];
    for (let r = 0; r < records; r++) {
      lines.push(
        JSON.stringify({
          id: `${i}-${r}`,
          ts: new Date(t0 + i * 60_000 + r).toISOString(),
          user: `u${(i * 31 + r) % 9973}`,
          event: r % 3 ? "view" : "click",
          value: (i * r) % 1001,
          price: ((i + r) % 10000) / 100,
          tags: [`t${r % 7}`, `t${r % 11}`],
          geo: { country: ["FR", "DE", "US", "JP"][r % 4], city: `c${r % 97}` },
        }),
      );
    }
    const text = lines.join("\n") + "\n";
    const body = gzipSync(text);
    const f = path.join(dir, key);
    await mkdir(path.dirname(f), { recursive: true });
    await writeFile(f, body);
    const t = new Date(t0 + i * 1000);
    await utimes(f, t, t);
    gz += body.length;
    raw += Buffer.byteLength(text);
    keys.push(key);
  }
  return { gz, raw, keys };
}

interface ChildResult {
  kind: "tranche" | "bare";
  secs: number;
  files: number;
  startRssMb: number;
  maxRssMb: number;
  /** CPU seconds of the whole process (all threads, user + system). */
  cpuSecs: number;
}

/** Child: one contender over the data set; prints its figures as one JSON line. */
async function child(kind: "tranche" | "bare"): Promise<void> {
  const dir = sarg("dir")!;
  const out = sarg("out")!;
  const threads = arg("threads", 2);
  const nativeMb = arg("native-mb", 512);
  const keys = sarg("keys")!.split(",");
  const startRssMb = process.memoryUsage().rss / 2 ** 20;
  const cpu0 = process.cpuUsage();
  const t = process.hrtime.bigint();
  let files = 0;
  if (kind === "tranche") {
    const name = "benchsql";
    const cfg = validateConfig(
      {
        redis: { url: sarg("redis")! },
        prefix: sarg("prefix")!,
        jobs: {
          [name]: {
            source: { path: pathToFileURL(dir).href, partitionKeys: ["dt"], boundedFiles: String(keys.length) },
            processor: "sql",
            output: { path: pathToFileURL(out).href },
            worker: { threads, nativeMemoryMb: nativeMb, filesPerThread: arg("files-per-thread", 1) },
            batchFiles: Math.max(1, Math.ceil(keys.length / PARTITIONS / threads)),
          },
        },
      },
      { env: {} },
    );
    const runs = await runCommand(name, { json: false }, cfg);
    files = runs.reduce((a, r) => a + r.files, 0);
  } else {
    const tempDir = path.join(out, "_spill");
    const pool = new Piscina({
      filename: new URL("./sql-bare-worker.js", import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      resourceLimits: { maxOldGenerationSizeMb: 256 },
    });
    await Promise.all(
      keys.map(async (key) => {
        const output = path.join(out, `${key}.parquet`);
        await mkdir(path.dirname(output), { recursive: true });
        const task: BareTask = { input: path.join(dir, key), output, dt: /dt=([^/]+)/.exec(key)![1]!, memoryMb: nativeMb, tempDir };
        await pool.run(task);
        files++;
      }),
    );
    await pool.close();
  }
  const secs = Number(process.hrtime.bigint() - t) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const r: ChildResult = {
    kind,
    secs,
    files,
    startRssMb,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    cpuSecs: (cpu.user + cpu.system) / 1e6,
  };
  process.stdout.write(JSON.stringify(r) + "\n");
}

function runChild(args: string[]): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, TRANCHE_LOG_LEVEL: process.env.TRANCHE_LOG_LEVEL ?? "warn" },
    });
    let text = "";
    p.stdout.on("data", (d: Buffer) => (text += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => {
      const line = text.trim().split("\n").at(-1) ?? "";
      if (code !== 0 || !line.startsWith("{")) return reject(new Error(`bench child ${args[1]} exited ${code}: ${text.slice(-500)}`));
      resolve(JSON.parse(line) as ChildResult);
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const files = arg("files", 32);
  const records = arg("records", 200_000);
  const threads = arg("threads", 2);
  const nativeMb = arg("native-mb", 512);
  const rounds = arg("rounds", 5);
  const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-bench-sql-"));
  const inDir = path.join(dir, "in");
  process.stdout.write(`generating ${files} files × ${records} records …\n`);
  const gen = await generate(inDir, files, records);
  const redis = await demoRedis();
  const results: ChildResult[] = [];
  const prefixOf = (r: number) => `tranche-bench-sql-${path.basename(dir)}-${r}`;
  let rows: { tranche: number; bare: number } | undefined;
  try {
    for (let r = 0; r < rounds; r++) {
      for (const kind of r % 2 ? (["bare", "tranche"] as const) : (["tranche", "bare"] as const)) {
        const out = path.join(dir, `out-${kind}-${r}`);
        const res = await runChild([
          "--child",
          kind,
          "--dir",
          inDir,
          "--out",
          out,
          "--threads",
          String(threads),
          "--native-mb",
          String(nativeMb),
          "--files-per-thread",
          String(arg("files-per-thread", 1)),
          "--keys",
          gen.keys.join(","),
          "--redis",
          redis.url,
          "--prefix",
          prefixOf(r),
        ]);
        if (res.files !== files) throw new Error(`${kind} processed ${res.files} files, not ${files}`);
        results.push(res);
        process.stdout.write(
          `round ${r + 1} ${kind.padEnd(7)} ${res.secs.toFixed(2)} s, CPU ${res.cpuSecs.toFixed(2)} s, peak RSS ${res.maxRssMb.toFixed(0)} MiB\n`,
        );
      }
      if (r === rounds - 1) {
        // Both wrote every record, with the partition column.
        const db = await DuckDBInstance.create(":memory:", { threads: "1" });
        const c = await db.connect();
        const count = async (kind: string) =>
          Number(
            (
              await c.runAndReadAll(
                `SELECT count(*) FROM read_parquet('${path.join(dir, `out-${kind}-${r}`)}/dt=*/*.parquet', hive_partitioning=false) WHERE dt IS NOT NULL`,
              )
            ).getRows()[0]![0],
          );
        rows = { tranche: await count("tranche"), bare: await count("bare") };
        c.closeSync();
        db.closeSync();
      }
      for (const kind of ["tranche", "bare"]) await rm(path.join(dir, `out-${kind}-${r}`), { recursive: true, force: true });
    }
  } finally {
    const r = new Redis(redis.url);
    for (let i = 0; i < rounds; i++) await deletePrefix(r, prefixOf(i));
    await r.quit();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const of = (k: string) => results.filter((x) => x.kind === k);
  const t = median(of("tranche").map((x) => x.secs));
  const b = median(of("bare").map((x) => x.secs));
  const mib = (x: number) => `${(x / 2 ** 20).toFixed(0)} MiB`;
  process.stdout.write(
    `\n${files} files × ${records} records: ${mib(gen.raw)} of JSON, ${mib(gen.gz)} gzipped; ${threads} threads, nativeMemoryMb ${nativeMb}, ${os.cpus().length} cores, ${rounds} rounds\n`,
  );
  for (const [name, secs, rs] of [
    ["tranche (sql processor)", t, of("tranche")],
    ["bare Piscina + DuckDB", b, of("bare")],
  ] as const) {
    const peak = Math.max(...rs.map((x) => x.maxRssMb));
    const perThread = Math.max(...rs.map((x) => (x.maxRssMb - x.startRssMb) / threads));
    process.stdout.write(
      `${name.padEnd(24)} ${secs.toFixed(2).padStart(7)} s  ${(gen.raw / 2 ** 20 / secs).toFixed(1).padStart(6)} MiB/s JSON  ${((files * records) / secs / 1000).toFixed(0).padStart(5)}k rec/s  peak RSS ${peak.toFixed(0)} MiB, ${perThread.toFixed(0)} MiB/thread above start (nativeMemoryMb ${nativeMb})\n`,
    );
  }
  // Each round's own ratio: its two runs ran one after the other, on the machine as it was then.
  const paired = of("tranche").map((x, i) => of("bare")[i]!.secs / x.secs);
  process.stdout.write(
    `ratio tranche/bare throughput: ${median(paired).toFixed(2)}× (goal ≥ 0.85; median of the rounds' ratios ${paired.map((x) => x.toFixed(2)).join(", ")}; ratio of the medians ${(b / t).toFixed(2)}×)\n`,
  );
  if (rows) process.stdout.write(`rows written: tranche ${rows.tranche}, bare ${rows.bare} (expected ${files * records})\n`);
}

if (process.argv.includes("--child")) await child(sarg("child") as "tranche" | "bare");
else await main();
