import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BoundedSelector, compareCandidates, type Candidate } from "../src/planner/select.js";
import { splitIntoBatches, type PlannedFile } from "../src/planner/batches.js";
import { compileExclusions, parsePartition } from "../src/source/partitions.js";

const c = (key: string, lastModified: number, size = 1): Candidate => ({ key, lastModified, size });

/** The reference: sort everything, take the longest prefix within the bound. */
function reference(all: Candidate[], kind: "files" | "bytes", limit: number): string[] {
  const sorted = [...all].sort(compareCandidates);
  if (kind === "files") return sorted.slice(0, limit).map((x) => x.key);
  const out: string[] = [];
  let sum = 0;
  for (const x of sorted) {
    if (sum + x.size > limit) {
      if (out.length === 0) out.push(x.key);
      break;
    }
    out.push(x.key);
    sum += x.size;
  }
  return out;
}

describe("bounded selection", () => {
  it("orders by last-modified, then key, for ties at the same second", () => {
    const s = new BoundedSelector({ kind: "files", limit: 3 });
    for (const k of ["e", "d", "c", "b", "a"]) s.offer(c(k, 1000));
    s.offer(c("z", 999));
    expect(s.result().selected.map((x) => x.key)).toEqual(["z", "a", "b"]);
    expect(s.result().remainingFiles).toBe(3);
  });

  it("takes a lone file larger than boundedSize on its own when it is the oldest", () => {
    const s = new BoundedSelector({ kind: "bytes", limit: 100 });
    s.offer(c("small", 2000, 10));
    s.offer(c("huge", 1000, 500));
    const r = s.result();
    expect(r.selected.map((x) => x.key)).toEqual(["huge"]);
    expect(r.remainingFiles).toBe(1);
    expect(r.remainingBytes).toBe(10);
  });

  it("never goes over boundedSize otherwise", () => {
    const s = new BoundedSelector({ kind: "bytes", limit: 100 });
    for (let i = 0; i < 50; i++) s.offer(c(`f${i}`, i, 30));
    expect(s.result().bytes).toBe(90);
    expect(s.result().files).toBe(3);
  });

  it("matches sort-then-take for any input order (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ lm: fc.integer({ min: 0, max: 20 }), size: fc.integer({ min: 1, max: 50 }) }), { maxLength: 60 }),
        fc.constantFrom<"files" | "bytes">("files", "bytes"),
        fc.integer({ min: 1, max: 120 }),
        (items, kind, limit) => {
          const all = items.map((x, i) => c(`k${String(i).padStart(3, "0")}`, x.lm, x.size));
          const s = new BoundedSelector({ kind, limit });
          for (const x of all) s.offer(x);
          const r = s.result();
          expect(r.selected.map((x) => x.key)).toEqual(reference(all, kind, limit));
          expect(r.files + r.remainingFiles).toBe(all.length);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("holds only the selection while a million candidates stream by", () => {
    const s = new BoundedSelector({ kind: "files", limit: 500 });
    for (let i = 0; i < 1_000_000; i++) s.offer(c(`k${i}`, (i * 7919) % 1_000_003, 100));
    const r = s.result();
    expect(r.files).toBe(500);
    expect(r.remainingFiles).toBe(999_500);
    expect(r.selected[0]!.lastModified).toBe(0);
  });
});

describe("partitions and exclusions", () => {
  it("parses Hive-style folders in partitionKeys order", () => {
    expect(parsePartition("region=eu/dt=2024-01-01/a.json", ["dt", "region"])).toEqual({
      id: "dt=2024-01-01/region=eu",
      values: { dt: "2024-01-01", region: "eu" },
    });
    expect(parsePartition("a.json", ["dt"]).id).toBe("_");
    expect(parsePartition("dt=2024-01-01/a.json", []).id).toBe("_");
    expect(parsePartition("dt=2024%2F01/a b ü.json", ["dt"]).values).toEqual({ dt: "2024/01" });
  });

  it("applies Glue-style exclusion globs", () => {
    const ex = compileExclusions(["**.tmp", "dt=2024-01-02/**", "**/_SUCCESS"]);
    expect(ex("dt=2024-01-01/a.tmp")).toBe(true);
    expect(ex("a.tmp")).toBe(true);
    expect(ex("dt=2024-01-02/a.json")).toBe(true);
    expect(ex("dt=2024-01-01/_SUCCESS")).toBe(true);
    expect(ex("dt=2024-01-01/a.json")).toBe(false);
    expect(compileExclusions([])("x.tmp")).toBe(false);
  });

  it("splits a selection into batches per partition, oldest partition first", () => {
    const f = (key: string, lm: number, partition: string): PlannedFile => ({ key, lastModified: lm, size: 1, etag: "", partition });
    const batches = splitIntoBatches([f("a", 1, "p1"), f("b", 2, "p2"), f("c", 3, "p1"), f("d", 4, "p1")], 2);
    expect(batches.map((b) => [b.partition, b.index, b.files.map((x) => x.key)])).toEqual([
      ["p1", 0, ["a", "c"]],
      ["p1", 1, ["d"]],
      ["p2", 0, ["b"]],
    ]);
  });
});
