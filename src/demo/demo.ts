import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { validateConfig } from "../config/load.js";
import { runCommand } from "../cli/commands.js";
import { formatBytes } from "../cli/progress.js";
import { generateBacklog } from "./generate.js";
import { demoRedis } from "./redis-launcher.js";

export interface DemoOptions {
  dir?: string;
  files?: number;
  partitions?: number;
  records?: number;
  boundedFiles?: number;
  threads?: number;
  json?: boolean;
}

/** `tranche demo`: a sample backlog drained in bounded runs, with progress and a summary. */
export async function demoCommand(o: DemoOptions): Promise<void> {
  const out = process.stdout;
  const dir = o.dir ?? (await mkdtemp(path.join(os.tmpdir(), "tranche-demo-")));
  const files = o.files ?? 3000;
  const partitions = o.partitions ?? 6;
  const t0 = Date.now();
  out.write(`tranche demo: writing ${files} gzipped JSON-lines files over ${partitions} date partitions to ${path.join(dir, "raw")} …\n`);
  const gen = await generateBacklog({ dir: path.join(dir, "raw"), files, partitions, recordsPerFile: o.records ?? 200 });
  out.write(`  ${gen.files} files, ${formatBytes(gen.bytes)} in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
  const redis = await demoRedis();
  out.write(
    redis.started
      ? `  no Redis answered at 127.0.0.1:6379: started a private redis-server at ${redis.url} (stopped at the end)\n`
      : `  using Redis at ${redis.url}\n`,
  );
  const prefix = path.basename(dir).replace(/[^A-Za-z0-9_-]/g, "");
  const boundedFiles = o.boundedFiles ?? 500;
  const cfg = validateConfig(
    {
      redis: { url: redis.url },
      prefix,
      jobs: {
        events: {
          source: {
            path: pathToFileURL(path.join(dir, "raw")).href,
            partitionKeys: ["dt"],
            exclusions: ["**.tmp"],
            boundedFiles: String(boundedFiles),
          },
          processor: "ndjson",
          output: { path: pathToFileURL(path.join(dir, "out")).href },
          worker: { threads: o.threads ?? 2, maxOldGenerationSizeMb: 256 },
          batchFiles: 50,
        },
      },
    },
    { env: {}, file: "demo config" },
  );
  out.write(`  draining job "events" in bounded runs of boundedFiles=${boundedFiles} (Redis key prefix ${prefix})\n`);
  const t1 = Date.now();
  try {
    const runs = await runCommand("events", { drain: true, json: o.json }, cfg);
    const secs = (Date.now() - t1) / 1000;
    const total = runs.reduce((a, r) => ({ files: a.files + r.files, bytes: a.bytes + r.bytes, bad: a.bad + r.badRecords }), {
      files: 0,
      bytes: 0,
      bad: 0,
    });
    out.write(
      `\ndone: ${runs.length} runs, ${total.files} files, ${formatBytes(total.bytes)} in ${secs.toFixed(1)}s ` +
        `(${(total.files / secs).toFixed(0)} files/s, ${(total.bytes / 1e6 / secs).toFixed(1)} MB/s); ${total.bad} bad record(s) skipped and reported\n` +
        `  input:  ${path.join(dir, "raw")}\n  output: ${path.join(dir, "out")}\n` +
        `  run it again and nothing is left to do: the bookmark in Redis covers every file\n`,
    );
  } finally {
    await redis.stop();
  }
}
