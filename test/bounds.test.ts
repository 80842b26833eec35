import { describe, expect, it } from "vitest";
import { parseBoundOptions, parseBoundValue, resolveBound } from "../src/config/bounds.js";
import { ConfigError } from "../src/errors.js";

describe("bound values", () => {
  const good: [unknown, number][] = [
    ["500", 500],
    [500, 500],
    ["1", 1],
    [" 42 ", 42],
    ["1000000000", 1_000_000_000],
    ["007", 7],
  ];
  it.each(good)("accepts %j as %d", (v, n) => {
    expect(parseBoundValue("boundedFiles", v)).toBe(n);
  });

  const bad: unknown[] = [
    "abc",
    "1.5",
    1.5,
    "0",
    0,
    "-3",
    -3,
    "",
    "  ",
    "1e3",
    "0x10",
    "+5",
    null,
    true,
    [],
    {},
    "9007199254740993",
    NaN,
    Infinity,
  ];
  it.each(bad.map((v) => [v]))("rejects %j, naming the option and the value", (v) => {
    expect(() => parseBoundValue("boundedSize", v)).toThrow(ConfigError);
    try {
      parseBoundValue("boundedSize", v);
    } catch (e) {
      expect((e as Error).message).toContain("boundedSize");
      expect((e as Error).message).toContain(JSON.stringify(v));
    }
  });

  it("rejects both bounds at once", () => {
    expect(() => parseBoundOptions({ boundedFiles: "5", boundedSize: "100" }, "job config")).toThrow(
      /both boundedFiles .* and boundedSize .* are set/,
    );
  });

  it("takes the override first, then the job, then the catalog, and validates every level", () => {
    expect(resolveBound({ override: { boundedFiles: "3" }, job: { boundedSize: "10" }, catalog: { boundedFiles: "7" } })).toEqual({
      bound: { kind: "files", limit: 3 },
      source: "override",
    });
    expect(resolveBound({ job: { boundedSize: "10" }, catalog: { boundedFiles: "7" } }).bound).toEqual({ kind: "bytes", limit: 10 });
    expect(resolveBound({ catalog: { boundedFiles: "7" } }).bound).toEqual({ kind: "files", limit: 7 });
    expect(resolveBound({}).source).toBe("default");
    expect(() => resolveBound({ override: { boundedFiles: "3" }, catalog: { boundedFiles: "x" } })).toThrow(/catalog table parameters/);
  });
});
