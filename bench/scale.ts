/**
 * Bookmarks and listing at scale (`npm run bench:scale [-- --only bulk|commit|planner|list] [--json]`):
 *  - bulk: the job's Redis bytes after a real `tranche run --drain` of 20,000 and 100,000 files
 *    whose times fall in one minute (boundedFiles 1000), by key family, and the first and last
 *    runs' durations (runs must not slow down as the band fills);
 *  - commit: commit latency, 3 runs of 500 files at once, with 30 / 20,000 / 100,000 files in the
 *    band (caller's time and the script's own time in Redis, and the slowest command meanwhile);
 *  - planner: live data heap (compiled code left out; two forced GCs after each page; the median
 *    of 50 page samples) planning over 1,000,000 listed objects vs 10,000, and the peak;
 *  - band: bytes per file of the compact band with 100,000 files in it.
 *  - list: LIST requests of an incremental `lexical` run after draining 20,000 keys from a real
 *    S3-protocol server, counted by a proxy in front of it (runs test/listing-runs.test.ts with
 *    TRANCHE_LISTING_KEYS, about 5 minutes, so only with `--only list`; `--keys N` for another size).
 * Figures are reported, not asserted; the bounds are asserted by the tests.
 */
import { Redis } from "ioredis";
import { commitLatency, dataHeap, deletePrefix, median, plannerPeak, realDrain, syntheticBookmark } from "./scale-lib.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : undefined;
const json = process.argv.includes("--json");
const want = (p: string) => only === undefined || only.split(",").includes(p);
const sizes = (name: string, dflt: number[]) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]!.split(",").map(Number) : dflt;
};
const out: Record<string, unknown> = {};
const say = (s: string) => json || process.stdout.write(s + "\n");
const mb = (b: number) => `${(b / 1024 / 1024).toFixed(2)} MB`;
const ms = (x: number) => `${x.toFixed(2)} ms`;

if (want("bulk")) {
  for (const n of sizes("bulk", [20_000, 100_000])) {
    const r = await realDrain({ files: n, bound: 1000, redisUrl: REDIS_URL, prefix: `bench-bulk-${n}` });
    out[`bulk${n}`] = r;
    say(
      `bulk ${n}: ${r.files} files in ${r.runs} runs (${(r.wallMs / 1000).toFixed(1)} s); Redis keys ${mb(r.bytes.total)} (${Object.entries(
        r.bytes.families,
      )
        .map(([k, v]) => `${k} ${mb(v)}`)
        .join(", ")}); first run ${(r.durations[0]! / 1000).toFixed(2)} s, last ${(r.durations.at(-1)! / 1000).toFixed(2)} s`,
    );
  }
}
if (want("band")) {
  const redis = new Redis(REDIS_URL);
  const prefix = "bench-band";
  const r = await syntheticBookmark({ files: 100_000, bound: 1000, redis, prefix });
  out.band = { state: r.state, band: r.band, history: r.history, bandFiles: r.bandFiles, bytesPerFile: r.bytesPerFile };
  say(
    `band: ${r.bandFiles} files in the band: ${mb(r.band)} (${r.bytesPerFile.toFixed(1)} B a file); state ${mb(r.state)}, history ${mb(r.history)}`,
  );
  await deletePrefix(redis, prefix);
  await redis.quit();
}
if (want("commit")) {
  for (const inBand of sizes("band", [30, 20_000, 100_000])) {
    for (const spread of [false, true]) {
      const r = await commitLatency({ inBand, rounds: 30, redisUrl: REDIS_URL, prefix: `bench-commit-${inBand}`, spread });
      out[`commit${inBand}${spread ? "spread" : ""}`] = r;
      say(
        `commit${spread ? " (files anywhere in the minute)" : " (the next oldest files)"}, ${r.inBand} files in the band (${r.inBandAtEnd} at the end), ${r.commits} commits of 500 files, 3 at once: script in Redis p50 ${ms(r.scriptP50)} p99 ${ms(r.scriptP99)}; caller p50 ${ms(r.callerP50)} p99 ${ms(r.callerP99)}; slowest command ${ms(r.slowestCommandMs)}`,
      );
    }
  }
}
if (want("planner")) {
  const redis = new Redis(REDIS_URL);
  const prefix = "bench-planner";
  // A first listing warms the code up, so that neither measured one carries the JIT's own
  // allocations; then every listing is measured from the same heap, taken after it.
  await plannerPeak({ listed: 10_000, bound: 1000, redis, prefix });
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc");
  await new Promise((r) => setImmediate(r));
  gc();
  gc();
  const baseHeap = dataHeap();
  // 50 samples each: the last 5 pages of ten listings of 10,000 (the first pages of a listing are
  // still filling the selection and the client's buffers), and the last 50 pages of 1,000,000.
  const smalls = [];
  for (let i = 0; i < 10; i++) smalls.push(await plannerPeak({ listed: 10_000, bound: 1000, redis, prefix, baseHeap }));
  const bigRun = await plannerPeak({ listed: sizes("listed", [1_000_000])[0]!, bound: 1000, redis, prefix, baseHeap });
  const small = {
    listed: 10_000,
    liveBytes: median(smalls.flatMap((r) => r.last.slice(-5))),
    peakBytes: Math.max(...smalls.map((r) => r.peakBytes)),
  };
  const big = { listed: bigRun.listed, liveBytes: median(bigRun.last), peakBytes: bigRun.peakBytes };
  out.planner = { small, big, ratio: big.liveBytes / small.liveBytes };
  say(
    `planner: live heap ${mb(small.liveBytes)} (peak ${mb(small.peakBytes)}) over ${small.listed} listed, ${mb(big.liveBytes)} (peak ${mb(big.peakBytes)}) over ${big.listed} listed: ratio ${(big.liveBytes / small.liveBytes).toFixed(2)}`,
  );
  await deletePrefix(redis, prefix);
  await redis.quit();
}
if (only !== undefined && want("list")) {
  // The s3rver fixture and the counting proxy are the tests' own (test/helpers): run that test.
  const keys = sizes("keys", [20_000])[0]!;
  const { execFileSync } = await import("node:child_process");
  const { readFileSync } = await import("node:fs");
  execFileSync(process.execPath, ["node_modules/vitest/vitest.mjs", "run", "test/listing-runs.test.ts", "-t", "lexical"], {
    env: { ...process.env, TRANCHE_LISTING_KEYS: String(keys), TRANCHE_LOG_LEVEL: "error" },
    stdio: json ? "ignore" : "inherit",
  });
  const line = readFileSync("test-results/scale.txt", "utf8")
    .trim()
    .split("\n")
    .filter((l) => l.startsWith(`listing after ${keys} `))
    .pop();
  out.list = line ?? null;
  say(line ?? "list: no figure written (see the test's output)");
}
if (json) process.stdout.write(JSON.stringify(out) + "\n");
