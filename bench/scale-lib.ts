/**
 * Bookmark and listing at scale: the measurements behind `npm run bench:scale` (bench/scale.ts)
 * and the bounds test/bookmark-scale.test.ts asserts. Everything runs on real Redis; the drain is
 * a real `tranche run --drain` in a child process over a local folder.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { getHeapSpaceStatistics } from "node:v8";
import { Redis } from "ioredis";
import { stringify } from "yaml";
import { BookmarkStore } from "../src/bookmark/store.js";
import { planRun } from "../src/planner/plan.js";
import { selectionRule } from "../src/run/selection.js";
import type { Source, SourceObject } from "../src/source/types.js";

const exec = promisify(execFile);
/** bin/tranche.js, from bench/ (tests, via vitest) or from dist/bench/ (the built bench). */
const binPath = () =>
  fileURLToPath(new URL(import.meta.url.includes("/dist/bench/") ? "../../bin/tranche.js" : "../bin/tranche.js", import.meta.url));

/** Bytes (MEMORY USAGE) of every key under a prefix, by family. */
export async function prefixBytes(
  redis: Redis,
  prefix: string,
): Promise<{ total: number; families: Record<string, number>; keys: number }> {
  const families: Record<string, number> = {};
  let total = 0;
  let keys = 0;
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    const pipe = redis.pipeline();
    for (const k of batch) pipe.call("MEMORY", "USAGE", k, "SAMPLES", "0");
    const res = batch.length ? (await pipe.exec())! : [];
    batch.forEach((k, i) => {
      const b = Number(res[i]![1] ?? 0);
      const rest = k.slice(prefix.length + 1);
      const fam = rest.startsWith("bm:")
        ? "bookmark"
        : /^runs:[^:]+:(history|deltas)$/.test(rest)
          ? "history"
          : rest.startsWith("run:")
            ? "run records"
            : rest.startsWith("runs:")
              ? "runs (slots, listing)"
              : rest.startsWith("batches.")
                ? "BullMQ"
                : "other";
      families[fam] = (families[fam] ?? 0) + b;
      total += b;
      keys++;
    });
  } while (cursor !== "0");
  return { total, families, keys };
}

export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (batch.length) await redis.unlink(...batch);
  } while (cursor !== "0");
}

/** Writes `n` small files whose last-modified times all fall inside one minute (a bulk upload). */
export async function bulkBacklog(dir: string, n: number, t0 = Date.UTC(2024, 0, 1)): Promise<void> {
  await mkdir(dir, { recursive: true });
  const per = 60_000 / n;
  for (let i = 0; i < n; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, n - i) }, async (_, j) => {
        const f = path.join(dir, `part-${String(i + j).padStart(7, "0")}.json`);
        await writeFile(f, `{"i":${i + j}}\n`);
        const t = new Date(t0 + Math.floor((i + j) * per));
        await utimes(f, t, t);
      }),
    );
  }
}

export interface DrainResult {
  files: number;
  runs: number;
  /** Duration of each run that processed files, ms. */
  durations: number[];
  bytes: { total: number; families: Record<string, number>; keys: number };
  wallMs: number;
}

/**
 * A real drain: `n` bulk-uploaded files, `tranche run --drain --bounded-files <bound>` in a child
 * process, then the bytes of every key under the job's prefix (bookmark, history, run records,
 * BullMQ's retained batches).
 */
export async function realDrain(o: {
  files: number;
  bound: number;
  redisUrl: string;
  prefix: string;
  onProgress?: (s: string) => void;
}): Promise<DrainResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-scale-"));
  const redis = new Redis(o.redisUrl);
  try {
    await bulkBacklog(path.join(dir, "in"), o.files);
    const config = path.join(dir, "tranche.yaml");
    await writeFile(
      config,
      stringify({
        redis: { url: o.redisUrl },
        prefix: o.prefix,
        jobs: {
          bulk: {
            source: { path: "in", boundedFiles: String(o.bound) },
            processor: "copy",
            output: { path: pathToFileURL(path.join(dir, "out")).href },
            worker: { threads: 2 },
            batchFiles: 250,
          },
        },
      }),
    );
    const t0 = Date.now();
    const { stdout } = await exec(process.execPath, [binPath(), "run", "bulk", "--config", config, "--drain", "--json"], {
      maxBuffer: 256 * 1024 * 1024,
      env: { ...process.env, TRANCHE_LOG_LEVEL: "error" },
    });
    const wallMs = Date.now() - t0;
    const runs = stdout
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { files: number; durationMs: number; status: string });
    const worked = runs.filter((r) => r.files > 0);
    return {
      files: worked.reduce((s, r) => s + r.files, 0),
      runs: worked.length,
      durations: worked.map((r) => r.durationMs),
      bytes: await prefixBytes(redis, o.prefix),
      wallMs,
    };
  } finally {
    await deletePrefix(redis, o.prefix);
    await redis.quit();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The bookmark alone, synthetically: `n` bulk-uploaded files (one minute) committed in runs of
 * `bound` through the real scripts (lease, stage, commit). Returns bytes of the bookmark state
 * and of the history (summaries + deltas), and the band's bytes per file.
 */
export async function syntheticBookmark(o: { files: number; bound: number; redis: Redis; prefix: string; historySize?: number }) {
  const store = new BookmarkStore(o.redis, o.prefix, "synthetic");
  const t0 = Date.UTC(2024, 0, 1);
  const per = 60_000 / o.files;
  for (let done = 0, run = 0; done < o.files; done += o.bound, run++) {
    const runId = `r${run}`;
    await store.slots.acquire(runId, 10, 60_000);
    const files = Array.from({ length: Math.min(o.bound, o.files - done) }, (_, i) => ({
      key: `backfill/2024/01/01/part-${String(done + i).padStart(7, "0")}.json.gz`,
      lastModified: t0 + Math.floor((done + i) * per),
      size: 1000,
    }));
    await store.lease("_", runId, files, 900_000);
    for (let i = 0; i < files.length; i += 250)
      await store.stageBatch({ partition: "_", runId, commitId: `${runId}-${i}`, files: files.slice(i, i + 250) });
    await store.commitRun({
      runId,
      bandMs: 900_000,
      maxFilesInBand: 100_000,
      historySize: o.historySize ?? 100,
      summary: { runId, status: "succeeded", mode: "enable" },
    });
    await store.slots.release(runId);
  }
  const usage = async (keys: string[]) => {
    let b = 0;
    for (const k of keys) b += Number((await o.redis.call("MEMORY", "USAGE", k, "SAMPLES", "0")) ?? 0);
    return b;
  };
  const state = await usage(await store.stateKeys());
  const band = await usage([store.k.band("_"), store.k.bandIndex("_")]);
  const history = await usage(store.historyKeys());
  const bandFiles = (await store.summary()).partitions[0]!.bandFiles;
  return { state, band, history, bandFiles, bytesPerFile: band / bandFiles, store };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

/**
 * Commit latency with `inBand` files already in the band: `rounds` rounds of 3 runs at once, each
 * committing 500 new files. Reports the caller's time and the commit script's own time in Redis
 * (SLOWLOG with a 0 µs threshold), and the slowest command of any kind meanwhile.
 */
export async function commitLatency(o: { inBand: number; rounds: number; redisUrl: string; prefix: string; spread?: boolean }) {
  const redis = new Redis(o.redisUrl);
  const conns = [0, 1, 2].map(() => new Redis(o.redisUrl));
  try {
    const { store } = await syntheticBookmark({ files: o.inBand, bound: 5000, redis, prefix: o.prefix, historySize: 100 });
    const stores = conns.map((c) => new BookmarkStore(c, o.prefix, "synthetic"));
    // New files land in the same minute as the bulk upload already in the band (as another sync would).
    const t0 = Date.UTC(2024, 0, 1);
    const startBand = (await store.summary()).partitions[0]!.bandFiles;
    const caller: number[] = [];
    const prevThreshold = (await redis.config("GET", "slowlog-log-slower-than")) as string[];
    const prevLen = (await redis.config("GET", "slowlog-max-len")) as string[];
    await redis.config("SET", "slowlog-max-len", "100000");
    await redis.config("SET", "slowlog-log-slower-than", "0");
    await redis.slowlog("RESET");
    for (let round = 0; round < o.rounds; round++) {
      const ids = [0, 1, 2].map((i) => `c${round}-${i}`);
      await Promise.all(
        ids.map(async (runId, i) => {
          const s = stores[i]!;
          await s.slots.acquire(runId, 10, 60_000);
          const files = Array.from({ length: 500 }, (_, j) => ({
            key: `new/${runId}/f${j}.json`,
            // As a drain of a bulk upload: each run takes the next oldest files, contiguous in time
            // (1,667 files a second, 100,000 a minute); `spread`: anywhere in the minute (worst case).
            lastModified: o.spread ? t0 + Math.floor(Math.random() * 60_000) : t0 + 60_000 + Math.floor(((round * 3 + i) * 500 + j) * 0.6),
            size: 10,
          }));
          await s.lease("_", runId, files, 900_000);
          await s.stageBatch({ partition: "_", runId, commitId: runId, files });
        }),
      );
      await Promise.all(
        ids.map(async (runId, i) => {
          const t = performance.now();
          await stores[i]!.commitRun({ runId, bandMs: 900_000, maxFilesInBand: 200_000, historySize: 100, summary: { runId } });
          caller.push(performance.now() - t);
          await stores[i]!.slots.release(runId);
        }),
      );
    }
    const log = (await redis.slowlog("GET", -1)) as [number, number, number, string[]][];
    await redis.config("SET", "slowlog-log-slower-than", prevThreshold[1] ?? "10000");
    await redis.config("SET", "slowlog-max-len", prevLen[1] ?? "128");
    const commitSha = (await import("../src/bookmark/scripts.js")).scriptSha("trancheCommitPartition");
    const script = log
      .filter((e) => e[3][0]?.toUpperCase().startsWith("EVAL") && e[3].some((a) => a === commitSha))
      .map((e) => e[2] / 1000);
    const slowest = Math.max(...log.map((e) => e[2] / 1000));
    return {
      inBand: startBand,
      inBandAtEnd: (await store.summary()).partitions[0]!.bandFiles,
      commits: caller.length,
      callerP50: pct(caller, 50),
      callerP99: pct(caller, 99),
      scriptP50: pct(script, 50),
      scriptP99: pct(script, 99),
      slowestCommandMs: slowest,
    };
  } finally {
    await deletePrefix(redis, o.prefix);
    await redis.quit();
    for (const c of conns) await c.quit();
  }
}

/** A synthetic source of `n` objects in pages of 1,000 (keys in one partition, times spread over a day). */
function syntheticSource(n: number): Source {
  return {
    uri: "synthetic://",
    check: async () => undefined,
    async *list() {
      const t0 = Date.UTC(2024, 0, 1);
      for (let i = 0; i < n; i += 1000) {
        const page: SourceObject[] = [];
        for (let j = i; j < Math.min(n, i + 1000); j++)
          page.push({ key: `logs/2024/01/01/part-${String(j).padStart(8, "0")}.json.gz`, size: 1000, lastModified: t0 + j, etag: "" });
        yield page;
      }
    },
    open: () => Promise.reject(new Error("not used")),
  };
}

/**
 * Planner live heap over a synthetic listing of `n` objects, with the real bookmark asked page by
 * page. Needs `--expose-gc`. After every page of 1,000 objects, two forced GCs, then the heap's
 * data in use above the start ({@link dataHeap}) is a sample. Reported: `last`, the last 50
 * samples (the heap once all but the last pages were listed: what the planner keeps is largest
 * there if it grows with the listing),
 * and `peakBytes`, the largest sample. A sample varies by ±0.3 MB with whether a page is still in
 * flight, so compare medians of as many samples, not peaks of 10 against peaks of 1,000. `baseHeap`:
 * the heap in use to measure from (default: at the start of this listing).
 */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/**
 * The heap's data in use: every V8 heap space but code (and, on newer V8, the trusted spaces that
 * hold bytecode and deoptimization data beside it). Compiled code is not what the planner keeps,
 * and how much of it V8 holds depends on when its optimizing compiler ran (a loaded machine's
 * timing), not on the listing: counted in, it moved the ratio by a quarter under CPU load.
 */
export function dataHeap(): number {
  return getHeapSpaceStatistics()
    .filter((s) => !/code|trusted/.test(s.space_name))
    .reduce((n, s) => n + s.space_used_size, 0);
}

export async function plannerPeak(o: { listed: number; bound: number; redis: Redis; prefix: string; baseHeap?: number }) {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc");
  const collect = () => {
    gc();
    gc();
  };
  const store = new BookmarkStore(o.redis, o.prefix, "synthetic");
  collect();
  const before = o.baseHeap ?? dataHeap();
  const last: number[] = [];
  let peak = 0;
  // Every page, even where its sample is not kept: the heap the last pages see is then the one
  // a planner collected all along (sampling only the last pages read 1.36 once on Node 24).
  const sample = () => {
    collect();
    const used = dataHeap() - before;
    peak = Math.max(peak, used);
    last.push(used);
    if (last.length > 50) last.shift();
  };
  const plan = await planRun({
    source: syntheticSource(o.listed),
    partitionKeys: [],
    exclusions: [],
    bound: { kind: "files", limit: o.bound },
    newIn: await selectionRule(store, "enable", "plan", 900_000, undefined, undefined, new Map()),
    onPage: sample,
  });
  return { listed: plan.listed, selected: plan.files, last, peakBytes: peak };
}
