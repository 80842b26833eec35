/** The Redis state carries a format version; another version is refused, and `tranche migrate` upgrades. */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { stateKey } from "../src/bookmark/keys.js";
import { migrateState, STATE_VERSION } from "../src/state-version.js";
import { BookmarkStore } from "../src/bookmark/store.js";
import { cli, writeConfig } from "./helpers/cli.js";
import { writeInput } from "./helpers/files.js";
import { cleanPrefix, REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";

const redis = redisClient();
const prefix = uniquePrefix("stver");
let dir: string;
afterAll(async () => {
  await cleanPrefix(redis, prefix);
  await redis.quit();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("state format version", () => {
  it("refuses state of an older format (E_STATE_VERSION, exit 7) until `tranche migrate`, and a newer one always", async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "tranche-stver-"));
    await writeInput(path.join(dir, "in"), "a.json", "{}\n", Date.UTC(2024, 0, 1));
    const config = await writeConfig(dir, {
      redis: { url: REDIS_URL },
      prefix,
      jobs: {
        events: {
          source: { path: "in" },
          processor: "ndjson",
          output: { path: pathToFileURL(path.join(dir, "out")).href },
          worker: { threads: 1 },
        },
      },
    });
    // State as the previous tranche left it: a bookmark, and dead letters in a capped list.
    await redis.hset(`${prefix}:bm:events:meta`, "version", "3");
    await redis.lpush(
      `${prefix}:bm:events:deadletters`,
      JSON.stringify({ key: "old.json", lastModified: 1, partition: "_", runId: "r0", reason: "x" }),
    );
    const refused = await cli(["status", "events", "-c", config]);
    expect([refused.code, refused.stderr]).toEqual([
      7,
      expect.stringMatching(/^error \[E_STATE_VERSION\]: .*format 0, this tranche uses \d+; .*'tranche migrate'/),
    ]);
    const m = await cli(["migrate", "-c", config]);
    expect(m.code).toBe(0);
    expect(m.stdout).toMatch(/format 0 → 1: dead letters moved to hashes \(1 records\)/);
    expect(await redis.hget(stateKey(prefix), "version")).toBe(String(STATE_VERSION));
    expect(await redis.type(`${prefix}:bm:events:deadletters`)).toBe("hash");
    const list = await cli(["dead-letters", "list", "events", "-c", config, "--json"]);
    expect(JSON.parse(list.stdout).key).toBe("old.json");
    expect((await cli(["migrate", "-c", config])).stdout).toMatch(/already format/);

    await redis.hset(stateKey(prefix), "version", String(STATE_VERSION + 1));
    const newer = await cli(["run", "events", "-c", config]);
    expect([newer.code, newer.stderr]).toEqual([7, expect.stringMatching(/written by a newer tranche.*upgrade/)]);
    await redis.hset(stateKey(prefix), "version", String(STATE_VERSION));
  });

  it("format 1 → 2: the band's sorted set becomes the compact band and history snapshots become deltas; rewind works after", async () => {
    const p1 = uniquePrefix("stver1");
    try {
      const bm = `${p1}:bm:j`;
      // Format 1: two committed runs; r2 added b and c to the band of partition _.
      await redis.hset(stateKey(p1), "version", "1");
      await redis.sadd(`${bm}:parts`, "_");
      await redis.hset(`${bm}:meta`, "version", "2", "runs", "2", "lastRunId", "r2");
      await redis.hset(`${bm}:p:_:meta`, "wm", "3000", "hwm", "3000", "files", "3");
      await redis.zadd(`${bm}:p:_:done`, 1000, "a", 2000, "b", 3000, "c");
      const snap = (band: [string, number][], wm: number, files: number) => ({ _: { wm: String(wm), hwm: String(wm), files, band } });
      const entry = (runId: string, version: number, state: object) =>
        JSON.stringify({ runId, job: "j", status: "succeeded", mode: "enable", committed: true, version, state, parts: ["_"] });
      await redis.lpush(`${p1}:runs:j:history`, entry("r1", 1, snap([["a", 1000]], 1000, 1)));
      await redis.lpush(
        `${p1}:runs:j:history`,
        entry(
          "r2",
          2,
          snap(
            [
              ["a", 1000],
              ["b", 2000],
              ["c", 3000],
            ],
            3000,
            3,
          ),
        ),
      );
      expect(await migrateState(redis, p1, ["j"])).toEqual([expect.stringMatching(/format 1 → 2: .*3 files.*3 entries/)]);
      expect(await redis.exists(`${bm}:p:_:done`)).toBe(0);
      const store = new BookmarkStore(redis, p1, "j");
      const files = [
        { key: "a", lastModified: 1000 },
        { key: "b", lastModified: 2000 },
        { key: "c", lastModified: 3000 },
      ];
      expect(await store.bandHolds("_", files)).toEqual([true, true, true]);
      expect((await store.history())[0]!.delta).toEqual(["_"]);
      await store.rewind("r1", 900_000);
      expect(await store.bandHolds("_", files)).toEqual([true, false, false]);
      expect((await store.summary()).partitions[0]).toMatchObject({ wm: 1000, files: 1, bandFiles: 1 });
    } finally {
      await cleanPrefix(redis, p1);
    }
  });
});
