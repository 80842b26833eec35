/**
 * A table of bad inputs. For each, the outcome must be one of: processed (an output with its good
 * records, bad records reported with key and line), recorded (gone or skipped, with key and
 * reason), or dead-lettered (with key and reason), and never silently missing.
 */
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { BookmarkStore } from "../../src/bookmark/store.js";
import type { RunSummary } from "../../src/run/summary.js";
import { closeHarnesses, harness, type Harness } from "../helpers/harness.js";
import { listFiles, writeInput } from "../helpers/files.js";
import { report, table } from "./report.js";

afterAll(closeHarnesses);
const T0 = Date.UTC(2024, 0, 1);

type Outcome = "processed" | "processed with bad records" | "gone" | "dead-lettered";
interface Case {
  key: string;
  body: Buffer | string;
  what: string;
  /** Allowed outcomes. */
  expect: Outcome[];
}

const good = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ i })).join("\n") + "\n";
const gz = gzipSync(good(200));
const longName = `${"n".repeat(245)}.json`; // 250 bytes

const NDJSON_CASES: Case[] = [
  {
    key: "corrupt.json.gz",
    body: Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]),
    what: "corrupt gzip",
    expect: ["dead-lettered"],
  },
  { key: "truncated.json.gz", body: gz.subarray(0, Math.floor(gz.length / 2)), what: "truncated gzip", expect: ["dead-lettered"] },
  { key: "empty.json", body: "", what: "0-byte file", expect: ["processed"] },
  { key: "empty-gz.json.gz", body: "", what: "0-byte file named .gz", expect: ["processed"] },
  { key: "one-bad-line.json", body: good(3) + "{oops\n", what: "a bad line among good ones", expect: ["processed with bad records"] },
  {
    key: "huge-line.json",
    body: JSON.stringify({ pad: "x".repeat(50 * 1024 * 1024) }) + "\n",
    what: "a 50 MB line",
    expect: ["processed", "dead-lettered"],
  },
  {
    key: "binary.json",
    body: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)),
    what: "binary content",
    expect: ["dead-lettered"],
  },
  {
    key: "utf16.json",
    body: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(good(20), "utf16le")]),
    what: "UTF-16 text",
    expect: ["dead-lettered"],
  },
  { key: "with space ü é 名.json", body: good(2), what: "key with spaces and non-ASCII", expect: ["processed"] },
  { key: longName, body: good(2), what: "250-byte file name", expect: ["processed"] },
  { key: "deleted-after-listing.json", body: good(2), what: "file deleted after listing", expect: ["gone"] },
  { key: "rewritten.json", body: good(2), what: "file rewritten while processed", expect: ["processed"] },
  { key: "same", body: good(1), what: "names differing only by extension (1/4)", expect: ["processed"] },
  { key: "same.json", body: good(2), what: "names differing only by extension (2/4)", expect: ["processed"] },
  { key: "same.json.gz", body: gzipSync(good(3)), what: "names differing only by extension (3/4)", expect: ["processed"] },
  { key: "same.jsonl", body: good(4), what: "names differing only by extension (4/4)", expect: ["processed"] },
];
const CSV_CASES: Case[] = [
  { key: "ragged.csv", body: "a,b,c\n1,2,3\n4,5\n6,7,8\n9,10,11\n", what: "ragged CSV rows", expect: ["processed with bad records"] },
  {
    key: "unterminated.csv",
    body: 'a,b\n1,2\n3,"never closed\n',
    what: "unterminated CSV quote",
    expect: ["processed with bad records", "dead-lettered"],
  },
  { key: "x.csv", body: "a\n1\n", what: "x.csv next to x.tsv", expect: ["processed"] },
  { key: "x.tsv", body: "a\n2\n", what: "x.tsv next to x.csv", expect: ["processed"] },
];

/** Runs until a run finds nothing (at most 6), doing `between` after the first run's plan. */
async function drain(h: Harness, between?: () => Promise<void>): Promise<RunSummary[]> {
  const runs: RunSummary[] = [];
  for (let i = 0; i < 6; i++) {
    if (i === 0 && between) {
      await h.stopWorker();
      const first = h.run();
      await h.planNow(await h.newestRun()); // planned here; its batches wait for the worker
      await between();
      h.startWorker(2);
      runs.push(await first);
      continue;
    }
    const r = await h.run();
    runs.push(r);
    if (r.status === "empty") break;
  }
  return runs;
}

async function outcomes(h: Harness, cases: Case[], runs: RunSummary[], outName: (k: string) => string) {
  const outs = new Set(await listFiles(h.outDir));
  const dl = new BookmarkStore(h.redis, h.prefix, h.name).deadLetters;
  const dead = new Map(
    (
      await dl.get(
        "deadLetters",
        cases.map((c) => c.key),
      )
    ).map((r) => [r.key, r.reason]),
  );
  // Each run's errors as recorded in Redis (the summary shows only the first 10).
  const errors: string[] = [];
  for (const r of runs) errors.push(...(await h.redis.lrange(new BookmarkStore(h.redis, h.prefix, h.name).k.runErrors(r.runId), 0, -1)));
  return cases.map((c) => {
    const found: { outcome: Outcome; detail: string }[] = [];
    const out = outName(c.key);
    const bad = errors.find((e) => e.startsWith(`${c.key}:`) && /:\d+: /.test(e.slice(c.key.length)));
    if ([...outs].some((o) => o === out || o.startsWith(out.slice(0, 200))))
      found.push(bad ? { outcome: "processed with bad records", detail: bad } : { outcome: "processed", detail: "" });
    if (dead.has(c.key)) found.push({ outcome: "dead-lettered", detail: dead.get(c.key)! });
    const gone = errors.find((e) => e.startsWith("gone:") && e.includes(c.key));
    if (gone) found.push({ outcome: "gone", detail: gone });
    return { c, found };
  });
}

describe("chaos: bad inputs", () => {
  it("each bad input is processed, recorded or dead-lettered, never silently missing", async () => {
    const rows: (string | number)[][] = [];
    const check = (results: Awaited<ReturnType<typeof outcomes>>) => {
      for (const { c, found } of results) {
        rows.push([
          c.what,
          `\`${c.key.length > 40 ? c.key.slice(0, 20) + "…" : c.key}\``,
          found.map((f) => f.outcome).join(" + ") || "MISSING",
          (found[0]?.detail ?? "").slice(0, 90).replace(/\|/g, "/"),
        ]);
        expect(found, `${c.what}: ${JSON.stringify(found)}`).toHaveLength(1);
        expect(c.expect, `${c.what}`).toContain(found[0]!.outcome);
      }
    };

    const nd = await harness("badin", { attempts: 2, bookmark: { deadLetterAfterRuns: 2 }, batchFiles: 100 });
    for (const [i, c] of NDJSON_CASES.entries()) await writeInput(nd.inDir, c.key, c.body, T0 + i * 1000);
    // Enough good files around them that one batch of bad files is not judged a broken job.
    for (let i = 0; i < 40; i++) await writeInput(nd.inDir, `good/g-${i}.json`, good(2), T0 + 100_000 + i);
    const runs = await drain(nd, async () => {
      await rm(path.join(nd.inDir, "deleted-after-listing.json"));
      await writeInput(nd.inDir, "rewritten.json", good(5), Date.now() - 60_000);
    });
    check(await outcomes(nd, NDJSON_CASES, runs, (k) => `${k}.ndjson`));
    // The rewrite (a newer time) was processed by a later run: the output holds the new content.
    expect(await readFile(path.join(nd.outDir, "rewritten.json.ndjson"), "utf8")).toBe(good(5));
    expect(runs.at(-1)!.status).toBe("empty");

    const csv = await harness("badcsv", { processor: "csv", attempts: 2, bookmark: { deadLetterAfterRuns: 2 } });
    for (const [i, c] of CSV_CASES.entries()) await writeInput(csv.inDir, c.key, c.body, T0 + i * 1000);
    for (let i = 0; i < 10; i++) await writeInput(csv.inDir, `good/g-${i}.csv`, "a\n1\n", T0 + 100_000 + i);
    csv.startWorker(2);
    const csvRuns = await drain(csv);
    check(await outcomes(csv, CSV_CASES, csvRuns, (k) => `${k}.ndjson`));
    expect(csvRuns.at(-1)!.status).toBe("empty");

    report("Bad inputs", table(["input", "key", "outcome", "recorded reason"], rows));
  }, 300_000);
});
