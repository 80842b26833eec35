/**
 * `engines` is honest: tranche says it runs on Node >= 20.19 (package.json), so no package it installs
 * may ask for a newer Node. npm only warns (EBADENGINE) when one does; this test fails instead.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import semver from "semver";

const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { engines: { node: string } };
const lock = JSON.parse(readFileSync("package-lock.json", "utf8")) as {
  packages: Record<string, { engines?: { node?: string } | string[]; optional?: boolean }>;
};

describe("engines", () => {
  it("every package in the lockfile accepts the oldest Node that package.json accepts", () => {
    const oldest = semver.minVersion(pkg.engines.node)!.version;
    expect(oldest).toBe("20.19.0");
    const refused = Object.entries(lock.packages)
      .filter(([name, p]) => name !== "" && !Array.isArray(p.engines) && p.engines?.node && !semver.satisfies(oldest, p.engines.node))
      .map(([name, p]) => `${name.replace(/^.*node_modules\//, "")} wants node ${(p.engines as { node: string }).node}`);
    expect(refused).toEqual([]);
  });
});
