import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { realpathSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { locationsOverlap } from "../src/config/overlap.js";

describe("locationsOverlap: local folders", () => {
  it.each([
    ["file:///data/in", "file:///data/in", true],
    ["file:///data/in/", "file:///data/in", true],
    ["file:///data/in", "file:///data/in/out", true],
    ["file:///data/in/sub/deeper", "file:///data/in", true],
    ["file:///data/in", "file:///data/input", false],
    ["file:///data/input", "file:///data/in", false],
    ["file:///data/in", "file:///data/out", false],
    ["file:///data/in/../out", "file:///data/out/x", true],
    ["file:///data/./in", "/data/in/", true],
    ["file:///", "file:///anything", true],
    ["file:///data/a%20b", "/data/a b/c", true],
  ])("%s and %s → %s", (a, b, want) => {
    expect(locationsOverlap(a, b)).toBe(want);
    expect(locationsOverlap(b, a)).toBe(want);
  });
});

describe("locationsOverlap: S3", () => {
  it.each([
    ["s3://b/in/", "s3://b/in/", true],
    ["s3://b/in", "s3://b/in/", true],
    ["s3://b/in/", "s3://b/in/out/", true],
    ["s3://b/in/", "s3://b/input/", false],
    ["s3://b/in/", "s3://b/out/", false],
    ["s3://b", "s3://b/out/", true],
    ["s3://b/", "s3://b/x/y/", true],
    ["s3://b/in/", "s3://c/in/", false],
    ["s3://b", "s3://bb", false],
  ])("%s and %s → %s", (a, b, want) => {
    expect(locationsOverlap(a, b)).toBe(want);
    expect(locationsOverlap(b, a)).toBe(want);
  });

  it("a local folder and an S3 location never overlap", () => {
    expect(locationsOverlap("file:///b/in", "s3://b/in/")).toBe(false);
    expect(locationsOverlap("s3://data/", "file:///data")).toBe(false);
  });
});

describe("locationsOverlap: symbolic links", () => {
  it("follows links with a realpath function, including to paths that do not exist yet", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-overlap-"));
    try {
      await mkdir(path.join(dir, "real/in"), { recursive: true });
      await symlink(path.join(dir, "real"), path.join(dir, "link"));
      const source = pathToFileURL(path.join(dir, "real/in")).href;
      const output = pathToFileURL(path.join(dir, "link/in/out-not-yet")).href;
      expect(locationsOverlap(source, output)).toBe(false); // as written
      expect(locationsOverlap(source, output, { realpath: realpathSync.native })).toBe(true);
      expect(locationsOverlap(source, pathToFileURL(path.join(dir, "link/other")).href, { realpath: realpathSync.native })).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
