import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { selectionRule } from "../src/run/selection.js";
import { BookmarkStore } from "../src/bookmark/store.js";
import { RunLostError } from "../src/errors.js";
import { firingKey } from "../src/run/start-run.js";
import { planRun } from "../src/planner/plan.js";
import { groupByPartition } from "../src/planner/batches.js";
import { parsePartition } from "../src/source/partitions.js";
import type { Source, SourceObject } from "../src/source/types.js";
import { cleanPrefix, redisClient, uniquePrefix } from "./helpers/redis.js";

/**
 * The bookmark's promise, checked over random histories on real Redis: files arrive (also late,
 * inside the band, many in the same second, and in bulk: up to 150 in one second), get rewritten,
 * runs (some at once, started by trigger firings that a dying scheduler may fire twice) plan,
 * lease, process, stage and commit partition by partition, or crash at any point, fail in one
 * partition, or are left half-committed by a dying worker and finished later, and the bookmark is
 * rewound to an earlier run (rebuilt from the history's deltas). The runs here use the real planner,
 * the real Lua scripts and the real store; only "processing" is a map in memory.
 */
const redis = redisClient();
const prefixes: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await cleanPrefix(redis, p);
  await redis.quit();
});

const BAND_MS = 10_000;
/**
 * How a run ends: "none" commits every partition (one atomic commit each, in a random order);
 * "before-stage", "after-stage", "partial": the run dies before committing anything;
 * "partition-fail": one partition fails (processed, never committed) and the others commit;
 * "suspend": its worker dies between partition commits, and the durable run is finished later by
 * another worker (its committed partitions committed again must change nothing).
 */
type Crash = "none" | "before-stage" | "after-stage" | "partial" | "partition-fail" | "suspend";
type Step =
  | { kind: "arrive"; n: number; late: boolean; part: number }
  | { kind: "rewind"; back: number }
  | { kind: "rewrite"; pick: number }
  | { kind: "runs"; bounds: number[]; crashes: Crash[]; dupFiring: boolean };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant("arrive" as const),
    n: fc.integer({ min: 1, max: 12 }),
    late: fc.boolean(),
    part: fc.integer({ min: 0, max: 2 }),
  }),
  // A bulk upload: many files in one second.
  fc.record({
    kind: fc.constant("arrive" as const),
    n: fc.integer({ min: 40, max: 150 }),
    late: fc.constant(false),
    part: fc.integer({ min: 0, max: 2 }),
  }),
  fc.record({ kind: fc.constant("rewind" as const), back: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant("rewrite" as const), pick: fc.nat() }),
  fc.record({
    kind: fc.constant("runs" as const),
    bounds: fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 3 }),
    crashes: fc.array(fc.constantFrom<Crash>("none", "none", "before-stage", "after-stage", "partial", "partition-fail", "suspend"), {
      minLength: 3,
      maxLength: 3,
    }),
    // A scheduler dies after firing and the next leader fires the same tick again.
    dupFiring: fc.boolean(),
  }),
);

async function simulate(steps: Step[], withCrashes: boolean) {
  const prefix = uniquePrefix("prop");
  prefixes.push(prefix);
  const store = new BookmarkStore(redis, prefix, "prop");
  const files = new Map<string, number>(); // key → current last-modified
  let clock = 1_000_000;
  let seq = 0;
  const processed = new Map<string, number>(); // "key@lm" → times processed
  const committed = new Map<string, number>(); // "key@lm" → times committed
  const output = new Map<string, number>(); // key → lm of the version written
  const byRun = new Map<string, string[]>(); // run id → the "key@lm" it committed
  const rewound = new Map<string, number>(); // "key@lm" → commits rewinds undid: it may be taken again that often
  const source: Source = {
    uri: "mem://",
    check: () => Promise.resolve(),
    async *list() {
      // Listing order is not selection order.
      yield [...files].reverse().map(([key, lm]): SourceObject => ({ key, size: 10, lastModified: lm, etag: "" }));
    },
    open: () => Promise.reject(new Error("unused")),
  };

  const suspended: NonNullable<Awaited<ReturnType<typeof run>>>[] = [];
  const fired = new Set<string>();
  async function run(runId: string, bound: number, crash: Crash, firing?: string) {
    // A firing is claimed once (as startRun does): a repeated firing starts nothing.
    if (firing !== undefined && (await redis.set(firingKey(store, firing), runId, "EX", 600, "NX")) !== "OK") return;
    if (firing !== undefined) fired.add(firing);
    const epoch = await store.slots.epoch();
    const slot = await store.slots.acquire(runId, 4, 60_000);
    if (!slot.ok) return;
    const unlock = await store.slots.lockPlanning(runId);
    const plan = await planRun({
      source,
      partitionKeys: ["p"],
      exclusions: [],
      bound: { kind: "files", limit: bound },
      newIn: await selectionRule(store, "enable", runId, BAND_MS, undefined, undefined, new Map()),
    });
    const mine: typeof plan.selected = [];
    for (const [p, fs] of groupByPartition(plan.selected)) {
      const got = await store.lease(p, runId, fs, BAND_MS);
      mine.push(...fs.filter((f) => got.has(f.key)));
    }
    await unlock();
    return { runId, crash, mine, epoch, done: new Set<string>() };
  }

  /** Commits the run's partitions (each atomically), counting a file once per partition commit that took effect. */
  async function commitParts(r: NonNullable<Awaited<ReturnType<typeof run>>>, parts: string[]): Promise<void> {
    for (const p of parts) {
      let c: { again: boolean };
      try {
        c = await store.commitPartition({
          runId: r.runId,
          partition: p,
          bandMs: BAND_MS,
          maxFilesInBand: 1_000_000,
          historySize: 1000,
          entry: { runId: r.runId },
          epoch: r.epoch,
        });
      } catch (err) {
        if (err instanceof RunLostError) continue; // rewound meanwhile: the partition fails, its files stay leased
        throw err;
      }
      if (c.again) {
        expect(r.done.has(p), `partition ${p} of ${r.runId} committed twice`).toBe(true);
        continue;
      }
      r.done.add(p);
      const ids = r.mine.filter((f) => f.partition === p).map((f) => `${f.key}@${f.lastModified}`);
      for (const id of ids) committed.set(id, (committed.get(id) ?? 0) + 1);
      byRun.set(r.runId, [...(byRun.get(r.runId) ?? []), ...ids]);
    }
  }

  async function resume(r: NonNullable<Awaited<ReturnType<typeof run>>>): Promise<void> {
    // Another worker finishes the run: every partition's commit step runs (again, for those done).
    await commitParts(r, [...new Set(r.mine.map((f) => f.partition))].sort());
    await store.recordRun({ runId: r.runId, committed: r.done.size > 0 }, 1000);
    await store.slots.release(r.runId);
  }

  async function finish(r: NonNullable<Awaited<ReturnType<typeof run>>>) {
    const todo = r.crash === "partial" ? r.mine.slice(0, Math.floor(r.mine.length / 2)) : r.mine;
    for (const f of r.crash === "before-stage" ? [] : todo) {
      const id = `${f.key}@${f.lastModified}`;
      processed.set(id, (processed.get(id) ?? 0) + 1);
      if (!output.has(f.key) || output.get(f.key)! <= f.lastModified) output.set(f.key, f.lastModified);
      await store.stageBatch({
        partition: f.partition,
        runId: r.runId,
        commitId: `${r.runId}:${f.key}`,
        files: [{ key: f.key, lastModified: f.lastModified, size: 10 }],
      });
    }
    // A history long enough to rewind anywhere (trimmed history is tested in bookmark-scripts).
    const parts = [...new Set(r.mine.map((f) => f.partition))].sort();
    if (parts.length > 1 && r.runId.charCodeAt(r.runId.length - 1) % 2) parts.reverse();
    if (r.crash === "none") await commitParts(r, parts);
    if (r.crash === "partition-fail") await commitParts(r, parts.slice(1));
    if (r.crash === "suspend") {
      await commitParts(r, parts.slice(0, Math.floor(parts.length / 2)));
      suspended.push(r); // its slot stays held: it is still running
      return;
    }
    if (r.crash === "none" || r.crash === "partition-fail") await store.recordRun({ runId: r.runId, committed: r.done.size > 0 }, 1000);
    await store.slots.release(r.runId); // a crashed run's slot expires; here at once
  }

  let runNo = 0;
  for (const s of steps) {
    if (s.kind === "arrive") {
      clock += 1000; // whole seconds, as S3 reports
      for (let i = 0; i < s.n; i++) {
        const lm = s.late ? clock - Math.floor(BAND_MS / 2 / 1000) * 1000 : clock;
        files.set(`p=${s.part}/f${seq++}`, lm);
      }
    } else if (s.kind === "rewind") {
      if (suspended.length) continue; // refused while a run is in progress
      const done = (await store.history()).filter((e) => e.committed);
      const target = done[s.back];
      if (!target) continue;
      await store.rewind(target.runId, BAND_MS);
      for (const e of done.slice(0, s.back)) for (const id of byRun.get(e.runId) ?? []) rewound.set(id, (rewound.get(id) ?? 0) + 1);
    } else if (s.kind === "rewrite") {
      if (files.size === 0) continue;
      const key = [...files.keys()][s.pick % files.size]!;
      clock += 1000;
      files.set(key, clock);
    } else {
      const started = [];
      for (let i = 0; i < s.bounds.length; i++) {
        const firing = `tick-${runNo + 1}`;
        const r = await run(`r${String(++runNo).padStart(4, "0")}`, s.bounds[i]!, withCrashes ? s.crashes[i]! : "none", firing);
        if (r) started.push(r);
        if (s.dupFiring) expect(await run(`x${String(runNo).padStart(4, "0")}`, s.bounds[i]!, "none", firing)).toBeUndefined();
      }
      for (const r of started.reverse()) await finish(r);
      // Runs suspended in an earlier step are finished by another worker now.
      for (const r of suspended.splice(0, suspended.length - started.filter((x) => x.crash === "suspend").length)) await resume(r);
    }
  }
  for (const r of suspended.splice(0)) await resume(r);
  // Drain without crashes.
  for (let i = 0; i < 200; i++) {
    const r = await run(`d${String(i).padStart(4, "0")}`, 50, "none");
    if (!r || r.mine.length === 0) {
      if (r) await store.slots.release(r.runId);
      break;
    }
    await finish(r);
  }
  return { files, processed, committed, output, store, rewound };
}

describe("bookmark property", () => {
  it("every file present at the end has exactly one output, committed exactly once (plus once per rewind that undid it); without crashes none is processed twice", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 14 }), fc.boolean(), async (steps, withCrashes) => {
        const { files, processed, committed, output, rewound } = await simulate(steps, withCrashes);
        const most = (id: string) => 1 + (rewound.get(id) ?? 0);
        for (const [key, lm] of files) {
          expect(output.get(key), `output of ${key}`).toBe(lm);
          expect(committed.get(`${key}@${lm}`), `commits of ${key}@${lm}`).toBeGreaterThanOrEqual(1);
        }
        for (const [id, n] of committed) expect(n, `commits of ${id}`).toBeLessThanOrEqual(most(id));
        if (!withCrashes) for (const [id, n] of processed) expect(n, `processing of ${id}`).toBeLessThanOrEqual(most(id));
        expect(parsePartition("p=1/x", ["p"]).id).toBe("p=1");
      }),
      { numRuns: 40 },
    );
  });
});
