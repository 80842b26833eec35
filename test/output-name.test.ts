import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FileError } from "../src/failures.js";
import {
  checkOutputKey,
  defaultOutputName,
  findOutputCollision,
  fitOutputKey,
  LOCAL_OUTPUT_LIMITS,
  S3_OUTPUT_LIMITS,
  type OutputKeyLimits,
} from "../src/sink/output-name.js";
import copy from "../workers/processors/copy.js";
import csv from "../workers/processors/csv.js";
import ndjson from "../workers/processors/ndjson.js";

const bytes = (s: string) => Buffer.byteLength(s);
const fitsLimits = (key: string, l: OutputKeyLimits) =>
  bytes(key) <= l.maxKeyBytes && key.split("/").every((s) => bytes(s) <= l.maxSegmentBytes);
const collision = (keys: string[], name: (k: string) => string) => findOutputCollision(keys.map((k) => ({ input: k, output: name(k) })));

describe("built-in output names are injective", () => {
  // Side by side in one folder, these all became a.ndjson (ndjson), x.ndjson (csv), x (copy).
  const siblings = ["dt=1/a", "dt=1/a.json", "dt=1/a.json.gz", "dt=1/a.jsonl", "dt=1/a.ndjson", "dt=1/a.txt", "dt=1/a.JSON"];

  it("ndjson: a, a.json, a.json.gz, a.jsonl, a.ndjson get one output each", () => {
    expect(collision(siblings, ndjson.outputName!)).toBeUndefined();
    expect(ndjson.outputName!("dt=1/a.json.gz")).toBe("dt=1/a.json.gz.ndjson");
  });

  it("csv: x.csv and x.tsv (and x.csv.gz) get one output each", () => {
    expect(collision(["x.csv", "x.tsv", "x.csv.gz", "x"], csv.outputName!)).toBeUndefined();
    expect(csv.outputName!("dt=1/x.csv.gz")).toBe("dt=1/x.csv.gz.ndjson");
  });

  it("copy: x and x.gz get one output each, the key itself", () => {
    expect(collision(["x", "x.gz", "x.GZ"], copy.outputName!)).toBeUndefined();
    expect(copy.outputName!("dt=1/x.gz")).toBe("dt=1/x.gz");
    expect(copy.decompress).toBe(false);
    expect(defaultOutputName("dt=1/x.gz")).toBe("dt=1/x.gz");
  });

  it("property: distinct keys never share an output under any built-in naming", () => {
    // Few stems and folders, many extension chains: siblings like a.json / a.json.gz are common.
    const exts = fc.array(fc.constantFrom(".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".txt", ".gz", ".GZ"), { maxLength: 3 });
    const key = fc
      .tuple(fc.constantFrom("", "dt=1/", "a/"), fc.constantFrom("a", "b", "a.json"), exts)
      .map(([dir, stem, e]) => dir + stem + e.join(""));
    fc.assert(
      fc.property(fc.uniqueArray(key, { maxLength: 40 }), (keys) => {
        for (const name of [ndjson.outputName!, csv.outputName!, copy.outputName!, defaultOutputName]) {
          expect(collision(keys, name)).toBeUndefined();
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("checkOutputKey", () => {
  it.each([
    ["", /empty/],
    ["a//b", /empty segment/],
    ["/a", /empty segment/],
    ["a/", /empty segment/],
    ["./a", /"\." segment/],
    ["a/../b", /"\.\." segment/],
    ["..", /"\.\." segment/],
    ["a\0b", /NUL/],
    ["_tranche/tmp/x", /tranche's own folder/],
  ])("refuses %j with a FileError E_OUTPUT_NAME naming it", (key, why) => {
    let err: unknown;
    try {
      checkOutputKey(key);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FileError);
    expect(err).toMatchObject({ code: "E_OUTPUT_NAME", message: expect.stringContaining(JSON.stringify(key)) });
    expect((err as Error).message).toMatch(why);
  });

  it("accepts ordinary, dotted and non-ASCII keys", () => {
    for (const k of ["a", "dt=2024-01-01/a b ü.json.gz", ".hidden", "a/..b/c..", "日本/語.txt", "x/_tranche/y"]) {
      expect(() => checkOutputKey(k)).not.toThrow();
    }
  });
});

describe("fitOutputKey", () => {
  it("returns a key that fits unchanged", () => {
    const k = "dt=2024-01-01/" + "a".repeat(255);
    expect(fitOutputKey(k, LOCAL_OUTPUT_LIMITS)).toBe(k);
    expect(fitOutputKey("x/".repeat(500) + "y", S3_OUTPUT_LIMITS)).toBe("x/".repeat(500) + "y");
  });

  it("shortens a long segment to prefix~hash.ext within the limit, keeping the extension", () => {
    const seg = "b".repeat(300) + ".json.gz.ndjson";
    const out = fitOutputKey(`dt=1/${seg}`, LOCAL_OUTPUT_LIMITS);
    expect(out).toMatch(/^dt=1\/b+~[0-9a-f]{16}\.ndjson$/);
    expect(bytes(out.split("/")[1]!)).toBe(255);
  });

  it("cuts at a UTF-8 character boundary", () => {
    const seg = "ü".repeat(200); // 400 bytes
    const out = fitOutputKey(seg, LOCAL_OUTPUT_LIMITS);
    expect(out).toMatch(/^ü+~[0-9a-f]{16}$/);
    expect(bytes(out)).toBeLessThanOrEqual(255);
    expect(Buffer.from(out).toString("utf8")).toBe(out);
    const emoji = fitOutputKey("😀".repeat(100) + ".txt", LOCAL_OUTPUT_LIMITS);
    expect(emoji).toMatch(/^(😀)+~[0-9a-f]{16}\.txt$/u);
  });

  it("shortens a key longer than maxKeyBytes as a whole, keeping its leading folders", () => {
    const key = "dt=2024-01-01/" + Array.from({ length: 40 }, (_, i) => `folder-${i}`.padEnd(40, "x")).join("/") + "/file.json.ndjson";
    expect(bytes(key)).toBeGreaterThan(1024);
    const out = fitOutputKey(key, S3_OUTPUT_LIMITS);
    expect(bytes(out)).toBeLessThanOrEqual(1024);
    expect(out.startsWith("dt=2024-01-01/folder-0")).toBe(true);
    expect(out).toMatch(/~[0-9a-f]{16}\.ndjson$/);
    // The last segment fits a segment limit too.
    const local = fitOutputKey(key, { maxSegmentBytes: 64, maxKeyBytes: 300 });
    expect(fitsLimits(local, { maxSegmentBytes: 64, maxKeyBytes: 300 })).toBe(true);
  });

  it("two long names that differ only at the end stay two names", () => {
    const a = "c".repeat(400) + "-1.json.ndjson";
    const b = "c".repeat(400) + "-2.json.ndjson";
    expect(fitOutputKey(a, LOCAL_OUTPUT_LIMITS)).not.toBe(fitOutputKey(b, LOCAL_OUTPUT_LIMITS));
  });

  it("refuses limits too small to hold a shortened name", () => {
    expect(() => fitOutputKey("a", { maxSegmentBytes: 10, maxKeyBytes: 1024 })).toThrow(RangeError);
  });

  // Segments drawn so that long ones often share a long prefix and differ only at the end (where
  // a plain cut would merge them), with non-ASCII and astral characters.
  const char = fc.constantFrom("a", "b", ".", "-", "=", "ü", "語", "😀", " ", "~");
  const tail = fc.string({ unit: char, minLength: 0, maxLength: 12 });
  const base = fc.constantFrom("", "x".repeat(250), "ü".repeat(130), "日本語".repeat(30), "😀".repeat(70), "p".repeat(1100));
  const ext = fc.constantFrom("", ".ndjson", ".json.gz", ".csv", ".");
  const segment = fc
    .tuple(base, tail, ext)
    .map(([b, t, e]) => b + t + e)
    .filter((s) => s !== "" && s !== "." && s !== "..");
  const key = fc.array(segment, { minLength: 1, maxLength: 6 }).map((s) => s.join("/"));
  const limits = fc.oneof(
    fc.constant<OutputKeyLimits>(LOCAL_OUTPUT_LIMITS),
    fc.constant<OutputKeyLimits>(S3_OUTPUT_LIMITS),
    fc.record({ maxSegmentBytes: fc.integer({ min: 64, max: 300 }), maxKeyBytes: fc.integer({ min: 64, max: 1500 }) }),
  );

  it("property: distinct keys never map to one output, and every output fits", () => {
    fc.assert(
      fc.property(fc.uniqueArray(key, { minLength: 2, maxLength: 30 }), limits, (keys, l) => {
        const pairs = keys.map((k) => ({ input: k, output: fitOutputKey(k, l) }));
        expect(findOutputCollision(pairs)).toBeUndefined();
        for (const { input, output } of pairs) {
          expect(fitsLimits(output, l)).toBe(true);
          expect(() => checkOutputKey(output)).not.toThrow();
          if (fitsLimits(input, l)) expect(output).toBe(input);
          expect(fitOutputKey(input, l)).toBe(output); // deterministic
        }
      }),
      { numRuns: 400 },
    );
  });

  it("property: the default names followed by fitting stay injective", () => {
    fc.assert(
      fc.property(fc.uniqueArray(key, { minLength: 2, maxLength: 20 }), (keys) => {
        for (const name of [ndjson.outputName!, copy.outputName!]) {
          const pairs = keys.map((k) => ({ input: k, output: fitOutputKey(name(k), LOCAL_OUTPUT_LIMITS) }));
          expect(findOutputCollision(pairs)).toBeUndefined();
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("findOutputCollision", () => {
  it("returns the first two inputs that share an output", () => {
    const pairs = [
      { input: "a.json", output: "a.ndjson" },
      { input: "b.json", output: "b.ndjson" },
      { input: "a.jsonl", output: "a.ndjson" },
      { input: "a", output: "a.ndjson" },
    ];
    expect(findOutputCollision(pairs)).toEqual({ a: "a.json", b: "a.jsonl", output: "a.ndjson" });
    expect(findOutputCollision(pairs.slice(0, 2))).toBeUndefined();
    expect(findOutputCollision([])).toBeUndefined();
  });

  it("does not count one input listed twice as a collision", () => {
    expect(
      findOutputCollision([
        { input: "a", output: "o" },
        { input: "a", output: "o" },
      ]),
    ).toBeUndefined();
  });
});
