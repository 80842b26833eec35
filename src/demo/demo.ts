import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { stringify } from "yaml";
import { validateConfig } from "../config/load.js";
import { runCommand } from "../cli/run-command.js";
import { formatBytes, plural } from "../cli/render.js";
import { connectRedis } from "../redis.js";
import { generateBacklog } from "./generate.js";
import { demoRedis } from "./redis-launcher.js";
import { demoService } from "./service.js";

export interface DemoOptions {
  dir?: string;
  files?: number;
  partitions?: number;
  records?: number;
  boundedFiles?: number;
  threads?: number;
  json?: boolean;
  /** Delete the demo folder and its bookmark first. */
  fresh?: boolean;
  /** Delete the demo folder and its Redis keys, then exit. */
  clean?: boolean;
  /** Run the job as a service: a scheduler and two workers, a drain trigger. */
  service?: boolean;
  /** With --service: show the service processes' log lines. */
  verbose?: boolean;
}

/** The demo's key prefix: fixed per demo folder, so a second `tranche demo` finds the first one's bookmark. */
export function demoPrefix(dir: string): string {
  return `tranche-demo-${createHash("sha256").update(path.resolve(dir)).digest("hex").slice(0, 8)}`;
}

async function deleteKeys(url: string, prefix: string): Promise<number> {
  const redis = await connectRedis(url);
  let n = 0;
  try {
    let cursor = "0";
    do {
      const [next, ks] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (ks.length) n += await redis.del(...ks);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  return n;
}

/**
 * `tranche demo`: a sample backlog in `.tranche-demo/` (or `--dir`), drained in bounded runs,
 * with progress and a summary. It keeps its data, config and bookmark, so running it again finds
 * nothing left to do; `--clean` removes all of it. When no Redis answers it starts a private
 * `redis-server` that keeps its data in the demo folder.
 */
export async function demoCommand(o: DemoOptions): Promise<void> {
  const out = process.stdout;
  const dir = path.resolve(o.dir ?? ".tranche-demo");
  const raw = path.join(dir, "raw");
  const prefix = demoPrefix(dir);
  // The demo shows its own lines; the runs' log lines only when asked for (TRANCHE_LOG_LEVEL=info).
  process.env.TRANCHE_LOG_LEVEL ||= "warn";
  if (o.clean || o.fresh) {
    const redis = await demoRedis({ ...process.env }, undefined, path.join(dir, "redis"));
    const n = await deleteKeys(redis.url, prefix).finally(() => redis.stop());
    await rm(dir, { recursive: true, force: true });
    out.write(`removed ${dir} and ${plural(n, "Redis key")} under prefix ${prefix}\n`);
    if (o.clean) return;
  }
  const files = o.files ?? 3000;
  const partitions = o.partitions ?? 6;
  // Redis first: a TRANCHE_REDIS_URL that does not answer stops the demo before it writes data.
  const redis = await demoRedis(process.env, undefined, path.join(dir, "redis"));
  try {
    const t0 = Date.now();
    const existing = existsSync(raw) ? (await readdir(raw)).length : 0;
    if (existing) {
      out.write(`tranche demo: reusing the sample backlog in ${raw} (--fresh to start over)\n`);
    } else {
      out.write(`tranche demo: writing ${files} gzipped JSON-lines files over ${partitions} date partitions to ${raw} …\n`);
      const gen = await generateBacklog({ dir: raw, files, partitions, recordsPerFile: o.records ?? 200 });
      out.write(`  ${plural(gen.files, "file")}, ${formatBytes(gen.bytes)} in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
    }
    out.write(
      redis.started
        ? `  no Redis answered at 127.0.0.1:6379: started a private redis-server at ${redis.url}, keeping its data in ${path.join(dir, "redis")} (stopped at the end)\n`
        : `  using Redis at ${redis.url}\n`,
    );
    const boundedFiles = o.boundedFiles ?? 500;
    const raw_cfg = {
      redis: { url: redis.url },
      prefix: prefix,
      metrics: { port: 0 },
      jobs: {
        events: {
          source: { path: pathToFileURL(raw).href, partitionKeys: ["dt"], exclusions: ["**.tmp"], boundedFiles: String(boundedFiles) },
          processor: "ndjson",
          output: { path: pathToFileURL(path.join(dir, "out")).href },
          worker: { threads: o.threads ?? 2, maxOldGenerationSizeMb: 256 },
          batchFiles: 50,
          // Used by `tranche scheduler` (demo --service): one bounded run after another until the backlog is drained.
          triggers: { drain: true },
        },
      },
    };
    const configFile = path.join(dir, "tranche.yaml");
    await writeFile(configFile, `# Written by 'tranche demo'.\n${stringify(raw_cfg)}`);
    const cfg = validateConfig(raw_cfg, { env: {}, file: configFile });
    out.write(
      `  draining job "events" in bounded runs of boundedFiles=${boundedFiles} (config ${configFile}, Redis key prefix ${prefix})\n`,
    );
    const t1 = Date.now();
    const runs = o.service
      ? await demoService(cfg, configFile, { verbose: o.verbose })
      : await runCommand("events", { drain: true, json: o.json }, cfg);
    const secs = (Date.now() - t1) / 1000;
    const total = runs.reduce((a, r) => ({ files: a.files + r.files, bytes: a.bytes + r.bytes, bad: a.bad + r.badRecords }), {
      files: 0,
      bytes: 0,
      bad: 0,
    });
    const rel = dir.startsWith(process.cwd() + path.sep) ? path.relative(process.cwd(), dir) : dir;
    if (total.files === 0) {
      out.write(`\nnothing left to do: the bookmark in Redis covers every file of ${raw}\n  output: ${path.join(dir, "out")}\n`);
    } else {
      out.write(
        `\ndone: ${plural(runs.length, "run")}, ${plural(total.files, "file")}, ${formatBytes(total.bytes)} in ${secs.toFixed(1)}s ` +
          `(${(total.files / secs).toFixed(0)} files/s, ${(total.bytes / 1e6 / secs).toFixed(1)} MB/s); ${plural(total.bad, "bad record")} skipped and reported\n` +
          `  input:  ${raw}\n  output: ${path.join(dir, "out")}\n` +
          `  run 'npx tranche demo${o.dir ? ` --dir ${rel}` : ""}' again and nothing is left to do: the bookmark in Redis covers every file\n`,
      );
    }
    out.write(
      (redis.started
        ? `  the demo's private Redis stops now and keeps its data in ${path.join(dir, "redis")}; 'npx tranche demo' starts it again\n`
        : `  look around: npx tranche status events -c ${path.join(rel, "tranche.yaml")}\n`) +
        `  remove everything: npx tranche demo${o.dir ? ` --dir ${rel}` : ""} --clean\n`,
    );
  } finally {
    await redis.stop();
  }
}
