/**
 * Throughput: tranche (bounded runs, BullMQ, Piscina threads, Redis bookmarks) against a plain
 * sequential loop (read, gunzip, parse, stringify, write) on the same generated data, in one run.
 * Reports ratios, not absolute claims: `npm run bench [-- --files N --records N]`.
 */
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { gunzipSync } from "node:zlib";
import { validateConfig } from "../src/config/load.js";
import { runCommand } from "../src/cli/run-command.js";
import { generateBacklog } from "../src/demo/generate.js";
import { demoRedis } from "../src/demo/redis-launcher.js";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

async function baseline(inDir: string, outDir: string): Promise<number> {
  let n = 0;
  for (const part of (await readdir(inDir)).sort()) {
    await mkdir(path.join(outDir, part), { recursive: true });
    for (const f of (await readdir(path.join(inDir, part))).sort()) {
      const text = gunzipSync(await readFile(path.join(inDir, part, f))).toString("utf8");
      const out: string[] = [];
      for (const line of text.split("\n")) {
        if (!line.trim()) continue;
        try {
          out.push(JSON.stringify(JSON.parse(line)));
        } catch {
          /* skipped, like tranche's bad records */
        }
      }
      const dest = path.join(outDir, part, f.replace(/\.json\.gz$/, ".ndjson"));
      await writeFile(dest + ".tmp", out.join("\n") + "\n");
      await rename(dest + ".tmp", dest);
      n++;
    }
  }
  return n;
}

async function main(): Promise<void> {
  const files = arg("files", 2000);
  const records = arg("records", 200);
  const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-bench-"));
  const inDir = path.join(dir, "in");
  const gen = await generateBacklog({ dir: inDir, files, partitions: 4, recordsPerFile: records });
  const redis = await demoRedis();
  process.env.TRANCHE_LOG_LEVEL ??= "warn";
  const results: { name: string; secs: number }[] = [];
  try {
    let t = process.hrtime.bigint();
    await baseline(inDir, path.join(dir, "out-baseline"));
    results.push({ name: "baseline (sequential loop)", secs: Number(process.hrtime.bigint() - t) / 1e9 });
    for (const [threads, filesPerThread] of [
      [1, 1],
      [2, 1],
      [2, 4],
    ] as const) {
      const name = `bench${threads}x${filesPerThread}`;
      const cfg = validateConfig(
        {
          redis: { url: redis.url },
          prefix: `tranche-bench-${path.basename(dir)}-${name}`,
          jobs: {
            [name]: {
              source: { path: pathToFileURL(inDir).href, partitionKeys: ["dt"], boundedFiles: String(files) },
              processor: "ndjson",
              output: { path: pathToFileURL(path.join(dir, `out-${name}`)).href },
              worker: { threads, filesPerThread },
              batchFiles: 100,
            },
          },
        },
        { env: {} },
      );
      t = process.hrtime.bigint();
      const runs = await runCommand(name, { drain: true, json: false }, cfg);
      const secs = Number(process.hrtime.bigint() - t) / 1e9;
      if (runs.reduce((a, r) => a + r.files, 0) !== files) throw new Error(`tranche processed a different number of files than ${files}`);
      results.push({ name: `tranche, ${threads} thr × ${filesPerThread} file${filesPerThread > 1 ? "s" : ""}`, secs });
    }
  } finally {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const base = results[0]!.secs;
  process.stdout.write(
    `\n${files} files, ${(gen.bytes / 1e6).toFixed(1)} MB gzipped, ${records} records each, ${os.cpus().length} cores\n`,
  );
  for (const r of results) {
    process.stdout.write(
      `${r.name.padEnd(28)} ${r.secs.toFixed(2).padStart(7)} s  ${(files / r.secs).toFixed(0).padStart(6)} files/s  ${(gen.bytes / 1e6 / r.secs).toFixed(2).padStart(6)} MB/s  ${(base / r.secs).toFixed(2)}× baseline\n`,
    );
  }
}

await main();
