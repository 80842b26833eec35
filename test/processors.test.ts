import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import uppercaseNames from "../examples/processors/uppercase-names.js";
import copy from "../workers/processors/copy.js";
import { CsvParseError, CsvParser } from "../workers/processors/csv-parser.js";
import csv from "../workers/processors/csv.js";
import { readLines, writeChunk } from "../workers/processors/lines.js";
import ndjson from "../workers/processors/ndjson.js";
import type { Processor } from "../workers/processors/types.js";

interface Sink {
  stream: Writable;
  chunks: Buffer[];
  /** Largest `writableLength` seen by `_write` (bytes buffered, including the one being written). */
  maxBuffered: number;
  text(): string;
  bytes(): Buffer;
}

function sink(opts: { highWaterMark?: number; slow?: boolean } = {}): Sink {
  const s: Sink = {
    chunks: [],
    maxBuffered: 0,
    text: () => Buffer.concat(s.chunks).toString("utf8"),
    bytes: () => Buffer.concat(s.chunks),
    stream: new Writable({
      highWaterMark: opts.highWaterMark ?? 16 * 1024,
      write(chunk: Buffer | string, _enc, cb) {
        s.maxBuffered = Math.max(s.maxBuffered, s.stream.writableLength);
        s.chunks.push(Buffer.from(chunk));
        if (opts.slow) setTimeout(cb, 1);
        else cb();
      },
    }),
  };
  return s;
}

interface Reported {
  reason: string;
  line: number | undefined;
}

async function run(
  processor: Processor,
  input: Array<string | Buffer>,
  opts: { key?: string; options?: Record<string, unknown>; partition?: Record<string, string>; out?: Sink } = {},
) {
  const out = opts.out ?? sink();
  const errors: Reported[] = [];
  const result = await processor.process({
    key: opts.key ?? "dt=2024-01-01/part-0001.json",
    partition: opts.partition ?? { dt: "2024-01-01" },
    input: Readable.from(input),
    output: out.stream,
    options: opts.options ?? {},
    reportError: (reason, where) => errors.push({ reason, line: where?.line }),
  });
  // Processors leave the output open: the caller ends it.
  expect(out.stream.writableEnded).toBe(false);
  return { result, out, errors, text: out.text() };
}

function jsonLines(text: string): unknown[] {
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as unknown);
}

/** Splits a buffer at the given byte offsets. */
function splitAt(buf: Buffer, offsets: number[]): Buffer[] {
  const parts: Buffer[] = [];
  let prev = 0;
  for (const o of [...offsets].sort((a, b) => a - b)) {
    parts.push(buf.subarray(prev, o));
    prev = o;
  }
  parts.push(buf.subarray(prev));
  return parts;
}

/** Splits a buffer into chunks of `size` bytes. */
function chunksOf(buf: Buffer, size: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return parts;
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "tranche-processors-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function transformModule(name: string, source: string): Promise<string> {
  const file = path.join(tmp, name);
  await writeFile(file, source);
  return file;
}

describe("readLines", () => {
  async function lines(input: Array<string | Buffer>) {
    const out: Array<{ line: string; lineNo: number }> = [];
    for await (const l of readLines(Readable.from(input))) out.push(l);
    return out;
  }

  it("splits on LF and CRLF, keeps blank lines, yields a last line without newline", async () => {
    expect(await lines(["a\r\nb", "\n\nc"])).toEqual([
      { line: "a", lineNo: 1 },
      { line: "b", lineNo: 2 },
      { line: "", lineNo: 3 },
      { line: "c", lineNo: 4 },
    ]);
    expect(await lines(["x\n"])).toEqual([{ line: "x", lineNo: 1 }]);
    expect(await lines([])).toEqual([]);
  });

  it("joins lines and multi-byte characters split across chunks, drops a BOM", async () => {
    const buf = Buffer.from("\uFEFFhé€😀\nzß\n", "utf8");
    for (let size = 1; size <= 4; size++) {
      expect(await lines(chunksOf(buf, size))).toEqual([
        { line: "hé€😀", lineNo: 1 },
        { line: "zß", lineNo: 2 },
      ]);
    }
  });
});

describe("writeChunk", () => {
  it("rejects when the stream errors or is already destroyed", async () => {
    const failing = new Writable({
      highWaterMark: 1,
      write(_chunk, _enc, cb) {
        cb(new Error("disk full"));
      },
    });
    failing.on("error", () => {});
    await expect(writeChunk(failing, "hello")).rejects.toThrow("disk full");
    await expect(writeChunk(failing, "again")).rejects.toThrow();
  });
});

describe("ndjson", () => {
  it("re-serializes good lines, skips blank ones, reports malformed ones with line numbers", async () => {
    const { result, text, errors } = await run(ndjson, ['{"a":1}\n\n  \n{"b": [1, 2]}\r\n{oops\n', '"str"\n{"c":', "true}\nnot json"]);
    expect(text).toBe('{"a":1}\n{"b":[1,2]}\n"str"\n{"c":true}\n');
    expect(result.records).toBe(4);
    expect(errors.map((e) => e.line)).toEqual([5, 8]);
    for (const e of errors) expect(e.reason).toMatch(/^invalid JSON: /);
  });

  it("handles empty input", async () => {
    const { result, text, errors } = await run(ndjson, []);
    expect(result.records).toBe(0);
    expect(text).toBe("");
    expect(errors).toEqual([]);
  });

  it("applies a transform: null drops, arrays emit several, throws are reported", async () => {
    const file = await transformModule(
      "t1.mjs",
      `export default async function (record, meta) {
         if (record.drop) return null;
         if (record.skip) return undefined;
         if (record.boom) throw new Error("boom " + meta.line);
         if (record.many) return record.many.map((n) => ({ n }));
         return { ...record, key: meta.key, dt: meta.partition.dt, line: meta.line };
       }`,
    );
    const { result, text, errors } = await run(
      ndjson,
      ['{"id":1}\n{"drop":true}\n{"many":[1,2,3]}\n{"boom":true}\n{"skip":true}\n{"id":2}\n'],
      { options: { transform: file }, key: "dt=2024-01-01/x.json" },
    );
    expect(jsonLines(text)).toEqual([
      { id: 1, key: "dt=2024-01-01/x.json", dt: "2024-01-01", line: 1 },
      { n: 1 },
      { n: 2 },
      { n: 3 },
      { id: 2, key: "dt=2024-01-01/x.json", dt: "2024-01-01", line: 6 },
    ]);
    expect(result.records).toBe(5);
    expect(errors).toEqual([{ reason: "transform failed: boom 4", line: 4 }]);
  });

  it("accepts a named `transform` export and a path relative to the cwd", async () => {
    const file = await transformModule("t2.mjs", `export function transform(r) { return { wrapped: r }; }`);
    const { text } = await run(ndjson, ["1\n2\n"], { options: { transform: path.relative(process.cwd(), file) } });
    expect(jsonLines(text)).toEqual([{ wrapped: 1 }, { wrapped: 2 }]);
  });

  it("fails the file when the transform cannot be loaded or exports no function", async () => {
    const missing = path.join(tmp, "does-not-exist.mjs");
    await expect(run(ndjson, ["{}\n"], { options: { transform: missing } })).rejects.toThrow(missing);
    const noFn = await transformModule("t3.mjs", "export const answer = 42;");
    await expect(run(ndjson, ["{}\n"], { options: { transform: noFn } })).rejects.toThrow(/t3\.mjs.*no function export.*expected/);
    const broken = await transformModule("t4.mjs", "export default function ( {");
    await expect(run(ndjson, ["{}\n"], { options: { transform: broken } })).rejects.toThrow(/t4\.mjs/);
    await expect(run(ndjson, ["{}\n"], { options: { transform: 42 } })).rejects.toThrow(/transform/);
  });

  it("runs the example add-partition transform", async () => {
    const { text } = await run(ndjson, ['{"id":1}\n7\n'], {
      key: "dt=2024-01-02/region=eu/a.json.gz",
      partition: { dt: "2024-01-02", region: "eu" },
      options: { transform: path.resolve("examples/transforms/add-partition.mjs") },
    });
    expect(jsonLines(text)).toEqual([
      { dt: "2024-01-02", region: "eu", id: 1, _source: "dt=2024-01-02/region=eu/a.json.gz" },
      { dt: "2024-01-02", region: "eu", _source: "dt=2024-01-02/region=eu/a.json.gz", value: 7 },
    ]);
  });

  it("outputName and contentType", () => {
    const name = ndjson.outputName!;
    // The whole input key plus .ndjson, so that a, a.json, a.json.gz, … never share an output.
    expect(name("a/b.json.gz")).toBe("a/b.json.gz.ndjson");
    expect(name("a/b.jsonl")).toBe("a/b.jsonl.ndjson");
    expect(name("a/b.ndjson")).toBe("a/b.ndjson.ndjson");
    expect(name("a/b.TXT")).toBe("a/b.TXT.ndjson");
    expect(name("a.json/b")).toBe("a.json/b.ndjson");
    expect(ndjson.contentType).toBe("application/x-ndjson");
  });
});

describe("CsvParser", () => {
  it("returns completed rows per push and the rest at end, with start lines", () => {
    const p = new CsvParser();
    expect(p.push('a,b\n1,"x')).toEqual([["a", "b"]]);
    const rows = p.push('\ny"\r');
    expect(rows).toEqual([]);
    const more = p.push("\n3,4");
    expect(more).toEqual([["1", "x\ny"]]);
    expect(more[0]!.line).toBe(2);
    const last = p.end();
    expect(last).toEqual([["3", "4"]]);
    expect(last[0]!.line).toBe(4);
  });

  it("is lenient about stray quotes and lone CRs, skips empty lines", () => {
    const p = new CsvParser({ delimiter: ";" });
    expect([...p.push('ab"c;"q"r;x\ry\n\n"";\n'), ...p.end()]).toEqual([
      ['ab"c', "qr", "x\ry"],
      ["", ""],
    ]);
  });

  it("throws CsvParseError at end inside a quoted field, and rejects bad delimiters", () => {
    const p = new CsvParser();
    p.push('a\n"open\nmore');
    expect(() => p.end()).toThrow(CsvParseError);
    expect(() => new CsvParser({ delimiter: "ab" })).toThrow();
    expect(() => new CsvParser({ delimiter: '"' })).toThrow();
  });

  it("gives up on an oversized row instead of buffering the rest of the file", () => {
    const p = new CsvParser({ maxRowChars: 100 });
    p.push('a\n"never closed');
    expect(() => p.push("x".repeat(200))).toThrow(/line 2.*unterminated/);
  });
});

describe("csv", () => {
  const sample = 'id,name,note\r\n1,"Smith, Jane","said ""hi"""\r\n2,"multi\nline\r\nnote",plain\n3,Zoë,€😀\n';

  it("converts rows to objects keyed by the header (quotes, commas, newlines, CRLF)", async () => {
    const { result, text, errors } = await run(csv, [sample], { key: "a.csv" });
    expect(errors).toEqual([]);
    expect(result.records).toBe(3);
    expect(jsonLines(text)).toEqual([
      { id: "1", name: "Smith, Jane", note: 'said "hi"' },
      { id: "2", name: "multi\nline\r\nnote", note: "plain" },
      { id: "3", name: "Zoë", note: "€😀" },
    ]);
  });

  it("gives the same result for every chunk boundary (inside quotes, CRLF, multi-byte characters)", async () => {
    const buf = Buffer.from(sample, "utf8");
    const { text: expected } = await run(csv, [buf]);
    for (let i = 1; i < buf.length; i++) {
      for (const j of [i + 1, i + 3]) {
        const { text, errors } = await run(csv, splitAt(buf, j < buf.length ? [i, j] : [i]));
        expect(errors).toEqual([]);
        expect(text, `split at ${i},${j}`).toBe(expected);
      }
    }
    const { text: bytewise } = await run(csv, chunksOf(buf, 1));
    expect(bytewise).toBe(expected);
  });

  it("reports rows whose field count differs from the header, with their start line", async () => {
    const { result, text, errors } = await run(csv, ['a,b\n1,2\n"x\ny",2,3\n4\n5,6']);
    expect(jsonLines(text)).toEqual([
      { a: "1", b: "2" },
      { a: "5", b: "6" },
    ]);
    expect(result.records).toBe(2);
    expect(errors).toEqual([
      { reason: "row has 3 fields, header has 2", line: 3 },
      { reason: "row has 1 fields, header has 2", line: 5 },
    ]);
  });

  it("reports and skips a row with an unterminated quote at EOF", async () => {
    const { result, text, errors } = await run(csv, ['a,b\n1,2\n3,"unterminated\n4,5\n']);
    expect(jsonLines(text)).toEqual([{ a: "1", b: "2" }]);
    expect(result.records).toBe(1);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.line).toBe(3);
    expect(errors[0]!.reason).toMatch(/unterminated/);
  });

  it("empty input or header only → 0 records, no error", async () => {
    for (const input of [[], [""], ["a,b\n"], ["a,b"]]) {
      const { result, text, errors } = await run(csv, input);
      expect(result.records).toBe(0);
      expect(text).toBe("");
      expect(errors).toEqual([]);
    }
  });

  it("honours the delimiter option, tabs for .tsv keys, a BOM, and a __proto__ column", async () => {
    const semi = await run(csv, ["a;b\n1;2,3\n"], { options: { delimiter: ";" } });
    expect(jsonLines(semi.text)).toEqual([{ a: "1", b: "2,3" }]);
    const tsv = await run(csv, ["a\tb\n1\t2\n"], { key: "x.tsv.gz" });
    expect(jsonLines(tsv.text)).toEqual([{ a: "1", b: "2" }]);
    const bom = await run(csv, [Buffer.from([0xef, 0xbb]), Buffer.from([0xbf, 0x61, 0x0a, 0x31, 0x0a])]);
    expect(jsonLines(bom.text)).toEqual([{ a: "1" }]);
    const proto = await run(csv, ["__proto__,b\n1,2\n"]);
    expect(proto.text).toBe('{"__proto__":"1","b":"2"}\n');
    await expect(run(csv, ["a\n"], { options: { delimiter: "::" } })).rejects.toThrow(/delimiter/);
  });

  it("outputName and contentType", () => {
    const name = csv.outputName!;
    expect(name("dt=1/a.csv.gz")).toBe("dt=1/a.csv.gz.ndjson");
    expect(name("a.TSV")).toBe("a.TSV.ndjson");
    expect(name("a.csv")).toBe("a.csv.ndjson");
    expect(name("a")).toBe("a.ndjson");
    expect(csv.contentType).toBe("application/x-ndjson");
  });
});

describe("copy", () => {
  it("copies binary bytes unchanged and counts chunks", async () => {
    const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 37) % 256));
    const parts = chunksOf(bytes, 300);
    const { result, out } = await run(copy, parts);
    expect(out.bytes().equals(bytes)).toBe(true);
    expect(result.records).toBe(4);
  });

  it("copies gzip bytes as stored (decompress: false)", async () => {
    const { gzipSync } = await import("node:zlib");
    const gz = gzipSync('{"a":1}\n');
    const { out } = await run(copy, [gz]);
    expect(out.bytes().equals(gz)).toBe(true);
    expect(copy.decompress).toBe(false);
  });

  it("outputName is the identity, and contentType", () => {
    expect(copy.outputName!("a/b.bin.gz")).toBe("a/b.bin.gz");
    expect(copy.outputName!("a/b.bin")).toBe("a/b.bin");
    expect(copy.outputName!("a/b.csv")).toBe("a/b.csv");
    expect(copy.contentType).toBe("application/octet-stream");
  });
});

describe("backpressure", () => {
  it("copy waits for drain: a slow writable with highWaterMark 16 gets every byte", async () => {
    const bytes = Buffer.from(Array.from({ length: 100 * 50 }, (_, i) => i % 251));
    const out = sink({ highWaterMark: 16, slow: true });
    const { result } = await run(copy, chunksOf(bytes, 100), { out });
    expect(out.bytes().equals(bytes)).toBe(true);
    expect(result.records).toBe(50);
    // Never more than the chunk in flight is buffered.
    expect(out.maxBuffered).toBeLessThanOrEqual(100);
  });

  it("ndjson and csv wait for drain too", async () => {
    const n = 20_000;
    const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ i, pad: "x".repeat(20) }) + "\n");
    const out = sink({ highWaterMark: 16, slow: true });
    const { result, text } = await run(ndjson, lines, { out });
    expect(result.records).toBe(n);
    expect(text).toBe(lines.join(""));
    expect(out.maxBuffered).toBeLessThan(text.length / 3);

    const rows = ["i,pad\n", ...Array.from({ length: n }, (_, i) => `${i},${"y".repeat(20)}\n`)];
    const out2 = sink({ highWaterMark: 16, slow: true });
    const res2 = await run(csv, rows, { out: out2 });
    expect(res2.result.records).toBe(n);
    expect(jsonLines(res2.text).at(-1)).toEqual({ i: String(n - 1), pad: "y".repeat(20) });
    expect(out2.maxBuffered).toBeLessThan(res2.text.length / 3);
  });

  it("example uppercase-names processor respects the contract", async () => {
    const out = sink({ highWaterMark: 16, slow: true });
    const { result, text, errors } = await run(uppercaseNames, ['{"name":"ada","x":1}\n{"x":2}\n', 'oops\n{"name":"grace"}'], { out });
    expect(jsonLines(text)).toEqual([{ name: "ADA", x: 1 }, { name: "GRACE" }]);
    expect(result.records).toBe(2);
    expect(errors.map((e) => e.line)).toEqual([2, 3]);
  });
});
