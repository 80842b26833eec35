/**
 * A table of bad configurations: each is refused by `tranche run` with exit 2 (E_CONFIG) and the
 * field named, before anything is read or leased (no Redis key is written, no output created).
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { writeInput } from "../helpers/files.js";
import { REDIS_URL, redisClient, uniquePrefix } from "../helpers/redis.js";
import { runToEnd } from "./procs.js";
import { report, table } from "./report.js";

type Cfg = Record<string, unknown> & { jobs: { events: Record<string, unknown> } };
interface Case {
  what: string;
  change(c: Cfg, dir: string): void;
  /** What the error line must name. */
  field: RegExp;
}

const job = (c: Cfg) => c.jobs.events as Record<string, Record<string, unknown>>;
const set = (k: string, v: unknown) => (c: Cfg) => void (job(c)[k] = v as Record<string, unknown>);
const src = (k: string, v: unknown) => (c: Cfg) => void (job(c).source![k] = v);
const bm = (o: Record<string, unknown>) => (c: Cfg) => void (job(c).bookmark = o);
const wk = (o: Record<string, unknown>) => (c: Cfg) => void (job(c).worker = o);

const CASES: Case[] = [
  { what: 'boundedFiles "abc"', change: src("boundedFiles", "abc"), field: /boundedFiles = "abc"/ },
  { what: 'boundedFiles "1.5"', change: src("boundedFiles", "1.5"), field: /boundedFiles = "1\.5"/ },
  { what: 'boundedFiles "0"', change: src("boundedFiles", "0"), field: /boundedFiles = "0"/ },
  { what: 'boundedFiles "-3"', change: src("boundedFiles", "-3"), field: /boundedFiles = "-3"/ },
  { what: 'boundedFiles ""', change: src("boundedFiles", ""), field: /boundedFiles = ""/ },
  { what: "boundedSize 1.5e3", change: src("boundedSize", 1.5e3 + 0.5), field: /boundedSize = 1500\.5/ },
  {
    what: "both bounds",
    change: (c) => (src("boundedFiles", "5")(c), src("boundedSize", "100")(c)),
    field: /both boundedFiles .* and boundedSize/,
  },
  { what: "processor ndjosn", change: set("processor", "ndjosn"), field: /jobs\.events\.processor: .*ndjosn/ },
  {
    what: "processor module that does not exist",
    change: set("processor", "./no-such-processor.mjs"),
    field: /jobs\.events\.processor: .*no-such-processor/,
  },
  {
    what: "processorOptions.transfrom (typo)",
    change: set("processorOptions", { transfrom: "./t.mjs" }),
    field: /processorOptions.*transfrom/,
  },
  {
    what: "transform module missing",
    change: set("processorOptions", { transform: "./missing.mjs" }),
    field: /processorOptions\.transform: .*missing\.mjs/,
  },
  { what: "transform not a string", change: set("processorOptions", { transform: 42 }), field: /processorOptions\.transform/ },
  {
    what: "csv delimiter of 2 characters",
    change: (c) => (set("processor", "csv")(c), set("processorOptions", { delimiter: ";;" })(c)),
    field: /processorOptions\.delimiter/,
  },
  {
    what: "${env:…} of an unset variable",
    change: set("processorOptions", { transform: "${env:TRANCHE_CHAOS_UNSET}" }),
    field: /processorOptions\.transform.*TRANCHE_CHAOS_UNSET/,
  },
  {
    what: "output inside the source",
    change: (c, d) => set("output", { path: pathToFileURL(path.join(d, "in", "out")).href })(c),
    field: /output\.path .* overlaps .*source\.path/,
  },
  {
    what: "output = source",
    change: (c, d) => set("output", { path: pathToFileURL(path.join(d, "in")).href })(c),
    field: /output\.path .* overlaps/,
  },
  {
    what: "source is a file",
    change: (c, d) => src("path", path.join(d, "a-file.txt"))(c),
    field: /source\.path: .*must be a folder|is a file|not a folder/,
  },
  {
    what: "source ftp://",
    change: src("path", "ftp://host/x"),
    field: /jobs\.events\.source\.path: got "ftp:\/\/host\/x"; unsupported location/,
  },
  { what: "bookmark.mode on", change: bm({ mode: "on" }), field: /jobs\.events\.bookmark\.mode: got "on"/ },
  { what: "bookmark.maxBand -1", change: bm({ maxBand: -1 }), field: /bookmark\.maxBand: got -1/ },
  { what: "bookmark.maxFilesInBand 0", change: bm({ maxFilesInBand: 0 }), field: /bookmark\.maxFilesInBand: got 0/ },
  { what: "bookmark.from without to", change: bm({ mode: "pause", from: "r1" }), field: /bookmark.*from and to go together/ },
  { what: "bookmark.from/to with mode enable", change: bm({ mode: "enable", from: "a", to: "b" }), field: /bookmark.*need mode: pause/ },
  { what: "bookmark.historySize 0", change: bm({ historySize: 0 }), field: /bookmark\.historySize: got 0/ },
  { what: "worker.threads 0", change: wk({ threads: 0 }), field: /worker\.threads: got 0/ },
  { what: 'worker.threads "two"', change: wk({ threads: "two" }), field: /worker\.threads: got "two"/ },
  { what: "worker.maxOldGenerationSizeMb 8", change: wk({ maxOldGenerationSizeMb: 8 }), field: /worker\.maxOldGenerationSizeMb: got 8/ },
  { what: "worker.fileTimeoutSeconds 0", change: wk({ fileTimeoutSeconds: 0 }), field: /worker\.fileTimeoutSeconds: got 0/ },
  { what: "worker.lockDurationMs 10", change: wk({ lockDurationMs: 10 }), field: /worker\.lockDurationMs: got 10/ },
  { what: "batchFiles 0", change: set("batchFiles", 0), field: /jobs\.events\.batchFiles: got 0/ },
  { what: "attempts 0", change: set("attempts", 0), field: /jobs\.events\.attempts: got 0/ },
  { what: "maxConcurrentRuns 0", change: set("maxConcurrentRuns", 0), field: /maxConcurrentRuns: got 0/ },
  { what: "maxBadRecordRatio 1.5", change: set("maxBadRecordRatio", 1.5), field: /maxBadRecordRatio: got 1\.5/ },
  {
    what: "exclusion glob **.{tmp",
    change: src("exclusions", ["**.{tmp"]),
    field: /source\.exclusions\.0: got "\*\*\.\{tmp"; not a valid glob/,
  },
  { what: "unknown job option sorce", change: set("sorce", {}), field: /unknown option.*sorce/ },
  { what: "redis.url http://", change: (c) => (c.redis = { url: "http://127.0.0.1:6379" }), field: /redis\.url: .*scheme http:/ },
  {
    what: "redis.url with a named database",
    change: (c) => (c.redis = { url: "redis://127.0.0.1:6379/cache" }),
    field: /redis\.url: .*database "cache"/,
  },
  { what: 'prefix "a b"', change: (c) => (c.prefix = "a b"), field: /prefix: got "a b"/ },
  { what: "prefix with an empty hash tag", change: (c) => (c.prefix = "x{}"), field: /prefix: got "x\{\}".*empty hash tag/ },
  { what: "s3.endpoint not a URL", change: (c) => (c.s3 = { endpoint: "minio:9000" }), field: /s3\.endpoint: got "minio:9000"/ },
  { what: "metrics.port 70000", change: (c) => (c.metrics = { port: 70000 }), field: /metrics\.port: got 70000/ },
  { what: "unknown top-level option", change: (c) => (c.redsi = {}), field: /unknown option.*redsi/ },
  {
    what: "output file:// with a relative path",
    change: (c) => set("output", { path: "file://relative/x" })(c),
    field: /jobs\.events\.output\.path: got "file:\/\/relative\/x"/,
  },
  { what: "source s3:// without a bucket", change: src("path", "s3://"), field: /jobs\.events\.source\.path: got "s3:\/\/"/ },
];

describe("chaos: bad configurations", () => {
  const redis = redisClient();
  afterAll(() => redis.quit());

  it(`refuses ${CASES.length} bad configurations with exit 2 and the field named, before anything is read or leased`, async () => {
    const rows: string[][] = [];
    const queue = [...CASES];
    const one = async (c: Case) => {
      const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-badcfg-"));
      try {
        const prefix = uniquePrefix("badcfg");
        await writeInput(path.join(dir, "in"), "dt=2024-01-01/a.json", "{}\n", Date.UTC(2024, 0, 1));
        await writeFile(path.join(dir, "a-file.txt"), "x");
        await mkdir(path.join(dir, "in", "out"), { recursive: true }).catch(() => undefined);
        const cfg: Cfg = {
          redis: { url: REDIS_URL },
          prefix,
          metrics: { port: 0 },
          jobs: {
            events: {
              source: { path: "in", partitionKeys: ["dt"] },
              processor: "ndjson",
              output: { path: pathToFileURL(path.join(dir, "out")).href },
            },
          },
        };
        c.change(cfg, dir);
        const file = path.join(dir, "tranche.yaml");
        await writeFile(file, stringify(cfg));
        const r = await runToEnd(["run", "events", "-c", file]);
        const lines = r.out.trim().split("\n");
        const at = Math.max(
          0,
          lines.findIndex((l) => l.startsWith("error")),
        );
        const line = lines[at] ?? "";
        // Schema errors put the field on the next line.
        const said = (line.endsWith(":") ? `${line} ${lines[at + 1]?.trim() ?? ""}` : line).replace(/\/tmp\/tranche-badcfg-\w+\//g, "");
        rows.push([c.what, String(r.code), said.replace(/\|/g, "/").slice(0, 160)]);
        expect(r.code, `${c.what}: ${r.out}`).toBe(2);
        expect(line, c.what).toMatch(/^error \[E_CONFIG\]: /);
        expect(r.out, c.what).toMatch(c.field);
        // Nothing read or leased: no key under the prefix, no output folder.
        expect(await redis.keys(`${prefix}:*`), c.what).toEqual([]);
        expect(existsSync(path.join(dir, "out")), c.what).toBe(false);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };
    const failures: unknown[] = [];
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        for (let c = queue.shift(); c; c = queue.shift()) await one(c).catch((e: unknown) => failures.push(e));
      }),
    );
    report(`Bad configurations (${CASES.length})`, table(["configuration", "exit", "what tranche says"], rows));
    if (failures.length) throw failures[0];
    expect(CASES.length).toBeGreaterThanOrEqual(30);
  }, 300_000);
});
