import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { ConfigError } from "../errors.js";
import { compileSchedule } from "../triggers/schedule.js";
import { parseS3Uri } from "../source/s3-client.js";
import { redact, redactUrl } from "../redact.js";
import { parseBoundOptions } from "./bounds.js";
import { prefixHashTag } from "../bookmark/keys.js";
import { clusterSchema, configSchema, redisUrl, type TrancheConfig } from "./schema.js";

/** Formats zod issues as `field: got VALUE; expected …` lines. */
function formatIssues(issues: z.core.$ZodIssue[], raw: unknown): string {
  return issues
    .map((i) => {
      const field = i.path.length ? i.path.join(".") : "(top level)";
      let value: unknown = raw;
      for (const p of i.path) value = value && typeof value === "object" ? (value as Record<PropertyKey, unknown>)[p] : undefined;
      const got = value === undefined ? "missing" : JSON.stringify(redact(value));
      if (i.code === "unrecognized_keys")
        return `${field}: unknown option(s) ${i.keys.join(", ")}; check the spelling (see README "Configuration")`;
      return `${field}: got ${got}; ${i.message}`;
    })
    .join("\n  ");
}

/**
 * Resolves a source/output path: `s3://bucket/prefix/` stays (checked), `file:///abs/…` stays
 * (checked), relative paths become `file:///abs/…`. Errors name `field`.
 */
export function resolveLocation(p: string, baseDir: string, field = "path"): string {
  const bad = (why: string) =>
    new ConfigError(
      `${field}: got ${JSON.stringify(p)}; ${why}; use s3://bucket/prefix/, file:///abs/path or a path relative to the config file`,
    );
  if (p.startsWith("s3://")) {
    try {
      parseS3Uri(p);
    } catch (err) {
      throw bad((err as Error).message);
    }
    return p;
  }
  if (p.startsWith("file:")) {
    try {
      fileURLToPath(p);
    } catch (err) {
      throw bad(`not a file URL with an absolute path (${(err as Error).message})`);
    }
    return p;
  }
  if (/^[a-z0-9+.-]+:\/\//i.test(p)) throw bad("unsupported location");
  return pathToFileURL(path.resolve(baseDir, p)).href;
}

/** A processor given by path (`./x.mjs`, `/abs/x.js`, `lib/p.js`), not by a built-in name. */
function looksLikePath(p: string): boolean {
  return p.includes("/") || p.includes(path.sep) || p.startsWith(".") || /\.(m?js|cjs|ts)$/i.test(p);
}

/** The closest built-in name, for "did you mean". */
function closest(name: string, options: readonly string[]): string | undefined {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let prev = d[0]!;
      d[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const t = d[j]!;
        d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = t;
      }
    }
    return d[b.length]!;
  };
  const best = options.map((o) => [o, dist(name.toLowerCase(), o)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 2 ? best[0] : undefined;
}

export const BUILT_IN_PROCESSORS = ["ndjson", "csv", "copy", "sql"] as const;

/** Validates a parsed config object (already read from YAML), applying env overrides. */
export function validateConfig(raw: unknown, opts: { baseDir?: string; env?: NodeJS.ProcessEnv; file?: string } = {}): TrancheConfig {
  const env = opts.env ?? process.env;
  const file = opts.file ?? "config";
  const parsed = configSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    throw new ConfigError(`invalid configuration in ${file}:\n  ${formatIssues(parsed.error.issues, raw)}`);
  }
  const cfg = parsed.data;
  if (env.TRANCHE_REDIS_URL && env.TRANCHE_REDIS_CLUSTER_NODES)
    throw new ConfigError(
      "TRANCHE_REDIS_URL and TRANCHE_REDIS_CLUSTER_NODES are both set; set TRANCHE_REDIS_URL for one Redis (redis.url) or TRANCHE_REDIS_CLUSTER_NODES for a Redis Cluster (redis.cluster.nodes), not both",
    );
  // Either variable replaces the config's `redis` section: one Redis or a cluster.
  if (env.TRANCHE_REDIS_URL) {
    const u = redisUrl.safeParse(env.TRANCHE_REDIS_URL);
    if (!u.success) throw new ConfigError(`TRANCHE_REDIS_URL: ${u.error.issues[0]?.message ?? "not a Redis URL"}`);
    cfg.redis = { url: env.TRANCHE_REDIS_URL };
  }
  if (env.TRANCHE_REDIS_CLUSTER_NODES) {
    const nodes = env.TRANCHE_REDIS_CLUSTER_NODES.split(",")
      .map((n) => n.trim())
      .filter((n) => n !== "");
    const c = clusterSchema.safeParse({ nodes });
    if (!c.success) {
      const i = c.error.issues[0];
      const at = typeof i?.path[1] === "number" ? ` node ${JSON.stringify(redactUrl(nodes[i.path[1]] ?? ""))}` : "";
      throw new ConfigError(
        `TRANCHE_REDIS_CLUSTER_NODES:${at} ${i?.message ?? "not a list of Redis URLs"} (comma-separated, e.g. redis://host:7000,redis://host:7001)`,
      );
    }
    cfg.redis = { cluster: { nodes: c.data.nodes } };
  }
  if (env.TRANCHE_PREFIX) {
    const p = configSchema.shape.prefix.safeParse(env.TRANCHE_PREFIX);
    if (!p.success)
      throw new ConfigError(`TRANCHE_PREFIX=${JSON.stringify(env.TRANCHE_PREFIX)}: ${p.error.issues[0]?.message ?? "not a valid prefix"}`);
    cfg.prefix = env.TRANCHE_PREFIX;
  }
  checkClusterPrefix(cfg, env.TRANCHE_PREFIX ? "TRANCHE_PREFIX" : "prefix");
  const baseDir = opts.baseDir ?? process.cwd();
  for (const [name, job] of Object.entries(cfg.jobs)) {
    // Bounds are checked here, before anything is listed or read.
    parseBoundOptions(job.source, `${file}: jobs.${name}.source`);
    if (job.source.path !== undefined) job.source.path = resolveLocation(job.source.path, baseDir, `jobs.${name}.source.path`);
    job.output.path = resolveLocation(job.output.path, baseDir, `jobs.${name}.output.path`);
    if (job.output.catalog && !job.output.path.startsWith("s3://"))
      throw new ConfigError(
        `jobs.${name}.output.catalog: catalog partitions point at S3 locations, but output.path is ${JSON.stringify(job.output.path)}; use an s3:// output or leave output.catalog out`,
      );
    if (!(BUILT_IN_PROCESSORS as readonly string[]).includes(job.processor)) {
      if (!looksLikePath(job.processor)) {
        const guess = closest(job.processor, BUILT_IN_PROCESSORS);
        throw new ConfigError(
          `jobs.${name}.processor: got ${JSON.stringify(job.processor)}; not a built-in processor (${BUILT_IN_PROCESSORS.join(", ")})${guess ? `: did you mean ${guess}?` : ""}; for your own, give a path to its module (e.g. ./my-processor.mjs)`,
        );
      }
      job.processor = path.resolve(baseDir, job.processor);
    }
    checkTriggers(cfg, name);
    if (typeof job.processorOptions.transform === "string") {
      job.processorOptions.transform = path.resolve(baseDir, job.processorOptions.transform);
    }
  }
  return cfg;
}

/** A bad cron, time zone or `after` job is E_CONFIG naming the field. */
function checkTriggers(cfg: TrancheConfig, name: string): void {
  const t = cfg.jobs[name]!.triggers;
  if (!t) return;
  const field = `jobs.${name}.triggers`;
  if (t.schedule) compileSchedule(t.schedule, `${field}.schedule`);
  const src = cfg.jobs[name]!.source.path;
  if (t.events && src === undefined)
    throw new ConfigError(
      `${field}.events: event-fed runs are not supported for a catalog source (source.catalog); use a schedule or drain trigger`,
    );
  if (t.events && !src!.startsWith("s3://"))
    throw new ConfigError(
      `${field}.events: S3 event notifications name a bucket and key, but this job's source is ${JSON.stringify(src)}; events need an s3:// source (use a schedule or drain trigger for a local folder)`,
    );
  t.after?.conditions.forEach((c, i) => {
    if (!cfg.jobs[c.job]) {
      const guess = closest(c.job, Object.keys(cfg.jobs));
      throw new ConfigError(
        `${field}.after.conditions[${i}].job: no job ${JSON.stringify(c.job)} in this configuration${guess ? `: did you mean ${guess}?` : ""}`,
      );
    }
  });
}

/**
 * On a Redis Cluster every key of tranche (BullMQ's included) must hash to one slot, because the
 * Lua scripts and transactions touch many keys at once: the prefix must carry a hash tag.
 */
function checkClusterPrefix(cfg: TrancheConfig, field: string): void {
  if (!cfg.redis.cluster || prefixHashTag(cfg.prefix) !== null) return;
  const suggestion = `{${cfg.prefix.replace(/[{}]/g, "") || "tranche"}}`;
  throw new ConfigError(
    `${field}: got ${JSON.stringify(cfg.prefix)}; on a Redis Cluster (redis.cluster) the prefix needs a non-empty hash tag {…}, so that every key of tranche and BullMQ lands in one slot (the Lua scripts touch many keys at once); use prefix: ${JSON.stringify(suggestion)}`,
  );
}

/**
 * Loads the config: `--config`, else `TRANCHE_CONFIG`, else `./tranche.yaml`.
 * Relative paths inside it are relative to the file's folder.
 */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): TrancheConfig {
  const f = path.resolve(file ?? env.TRANCHE_CONFIG ?? "tranche.yaml");
  if (!existsSync(f)) {
    throw new ConfigError(`config file not found: ${f}; pass --config FILE, set TRANCHE_CONFIG, or try 'tranche demo'`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(f, "utf8"));
  } catch (err) {
    throw new ConfigError(`cannot parse ${f} as YAML: ${(err as Error).message}`);
  }
  return validateConfig(raw, { baseDir: path.dirname(f), env, file: f });
}

export function getJob(cfg: TrancheConfig, name: string) {
  const job = cfg.jobs[name];
  if (!job) {
    const known = Object.keys(cfg.jobs);
    throw new ConfigError(`unknown job "${name}"; configured jobs: ${known.length ? known.join(", ") : "(none)"}`);
  }
  return job;
}
