import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { demoRedis } from "../src/demo/redis-launcher.js";
import { demoPrefix } from "../src/demo/demo.js";
import { redisClient } from "./helpers/redis.js";
import { cli } from "./helpers/cli.js";
import { listFiles } from "./helpers/files.js";
import { planRun } from "../src/planner/plan.js";
import type { Source, SourceObject } from "../src/source/types.js";

describe("demo", () => {
  it("--service: a scheduler and two worker processes drain the backlog by a drain trigger, then stop", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-demosvc-"));
    try {
      const r = await cli([
        "demo",
        "--service",
        "--dir",
        dir,
        "--files",
        "240",
        "--partitions",
        "3",
        "--bounded-files",
        "100",
        "--records",
        "20",
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/started a scheduler and 2 workers/);
      expect(r.stdout.match(/run \S+ SUCCEEDED \(trigger: drain\)/g)).toHaveLength(3);
      expect(r.stdout).toMatch(/done: 3 runs, 240 files/);
      expect(await listFiles(path.join(dir, "out"))).toHaveLength(240);
      const again = await cli(["demo", "--service", "--dir", dir]);
      expect(again.stdout).toMatch(/left nothing to drain/);
      await cli(["demo", "--dir", dir, "--clean"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("drains a generated backlog in bounded runs and says where the output is", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-demotest-"));
    try {
      const r = await cli(["demo", "--dir", dir, "--files", "240", "--partitions", "3", "--bounded-files", "100", "--records", "20"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/done: 3 runs, 240 files/);
      expect(r.stdout).toMatch(/1 bad record skipped and reported/);
      expect(r.stdout).toContain(`output: ${path.join(dir, "out")}`);
      expect(r.stderr).not.toMatch(/"msg":"planned"/); // no info lines unless asked for
      expect(await listFiles(path.join(dir, "out"))).toHaveLength(240);
      // The sentence is true: run again, nothing is left to do.
      const again = await cli(["demo", "--dir", dir]);
      expect(again.stdout).toMatch(/reusing the sample backlog/);
      expect(again.stdout).toMatch(/nothing left to do: the bookmark in Redis covers every file/);
      const clean = await cli(["demo", "--dir", dir, "--clean"]);
      expect(clean.stdout).toMatch(/removed .* and \d+ Redis keys under prefix tranche-demo-/);
      const r2 = redisClient();
      expect(await r2.keys(`${demoPrefix(dir)}:*`)).toEqual([]);
      await r2.quit();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("starts a private redis-server when none answers, and stops it afterwards", async () => {
    const r = await demoRedis({}, "redis://127.0.0.1:1");
    try {
      expect(r.started).toBe(true);
      const c = new Redis(r.url);
      expect(await c.ping()).toBe("PONG");
      c.disconnect();
    } finally {
      await r.stop();
    }
    await expect(demoRedis({ TRANCHE_REDIS_URL: "redis://127.0.0.1:1" })).rejects.toThrow(/does not answer/);
  });
});

describe("planner memory", () => {
  it("plans over a million listed files holding the selection, not the listing", async () => {
    const N = 1_000_000;
    const source: Source = {
      uri: "synthetic://",
      check: () => Promise.resolve(),
      async *list() {
        for (let p = 0; p < N / 1000; p++) {
          const page: SourceObject[] = [];
          for (let i = 0; i < 1000; i++) {
            const n = p * 1000 + i;
            page.push({
              key: `dt=2024-01-${String((n % 28) + 1).padStart(2, "0")}/file-${n}.json.gz`,
              size: 1000,
              lastModified: (n * 7919) % N,
              etag: "x",
            });
          }
          yield page;
        }
      },
      open: () => Promise.reject(new Error("not used")),
    };
    global.gc?.();
    const before = process.memoryUsage().heapUsed;
    let peak = before;
    const plan = await planRun({
      source,
      partitionKeys: ["dt"],
      exclusions: [],
      bound: { kind: "files", limit: 500 },
      newIn: async (files) => files.map(() => true),
      onPage: () => {
        peak = Math.max(peak, process.memoryUsage().heapUsed);
      },
    });
    expect(plan.files).toBe(500);
    expect(plan.remainingFiles).toBe(N - 500);
    expect(plan.listed).toBe(N);
    // A million SourceObjects would take well over 150 MB; garbage between pages is allowed.
    expect(peak - before).toBeLessThan(64 * 1024 * 1024);
  });
});
