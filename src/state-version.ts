import type { Cluster, Redis } from "ioredis";
import { keys, stateKey } from "./bookmark/keys.js";
import { bandEntry, BandSet, ENTRY_BYTES } from "./bookmark/band.js";
import { TrancheError } from "./errors.js";

/**
 * The format of tranche's Redis state under a prefix. A process meeting another version refuses
 * to touch it (E_STATE_VERSION) instead of corrupting it; `tranche migrate` upgrades it.
 *   0: before versioning (dead letters in a capped list).
 *   1: dead letters and skipped files in hashes; per-partition retry lists.
 *   2: the compact band (a hash of 10-byte records, see src/bookmark/band.ts) instead of a sorted
 *      set of keys; history entries hold deltas (the band entries a run added, in a hash) instead
 *      of band snapshots; each run's leases listed per partition.
 */
export const STATE_VERSION = 2;

/** The state written by another version of tranche. Exit code 7. */
export class StateVersionError extends TrancheError {
  constructor(message: string) {
    super("E_STATE_VERSION", message, 7);
    this.name = "StateVersionError";
  }
}

/** The version recorded under the prefix: a number, 0 for unversioned state of an older tranche, null when there is no state. */
export async function readStateVersion(redis: Redis | Cluster, prefix: string, jobs: string[]): Promise<number | null> {
  const v = await redis.hget(stateKey(prefix), "version");
  if (v !== null) return Number(v);
  for (const j of jobs) {
    const k = keys(prefix, j);
    if ((await redis.exists(k.jobMeta, k.history, k.deadLetters)) > 0) return 0;
  }
  return null;
}

/**
 * Checks the state format before a command touches anything: refuses an older format (run
 * `tranche migrate`) or a newer one (upgrade tranche). On a fresh prefix, a command that writes
 * records the current version; a read-only one writes nothing and returns "empty".
 */
export async function checkStateVersion(
  redis: Redis | Cluster,
  prefix: string,
  jobs: string[],
  o: { write?: boolean } = {},
): Promise<"ok" | "empty"> {
  const v = await readStateVersion(redis, prefix, jobs);
  if (v === STATE_VERSION) return "ok";
  if (v === null) {
    if (o.write === false) return "empty";
    await redis.hsetnx(stateKey(prefix), "version", STATE_VERSION);
    return checkStateVersion(redis, prefix, jobs, o);
  }
  if (v < STATE_VERSION) {
    throw new StateVersionError(
      `the Redis state under prefix "${prefix}" has format ${v}, this tranche uses ${STATE_VERSION}; stop every tranche process of this prefix and run 'tranche migrate'`,
    );
  }
  throw new StateVersionError(
    `the Redis state under prefix "${prefix}" has format ${v}, written by a newer tranche (this one knows ${STATE_VERSION}); upgrade this tranche`,
  );
}

/** One migration step: from version `from` to `from + 1`, for the given jobs. */
type Step = (redis: Redis | Cluster, prefix: string, jobs: string[]) => Promise<string>;

const STEPS: Record<number, Step> = {
  // 0 → 1: the dead-letter list (LPUSH of JSON records, capped at 10,000) becomes a hash keyed by file key.
  0: async (redis, prefix, jobs) => {
    let moved = 0;
    for (const j of jobs) {
      const k = keys(prefix, j);
      if ((await redis.type(k.deadLetters)) !== "list") continue;
      const items = await redis.lrange(k.deadLetters, 0, -1);
      const tmp = `${k.deadLetters}:migrating`;
      const m = redis.multi().del(tmp);
      // Oldest first, so that the newest record of a key wins.
      for (const it of items.reverse()) {
        const rec = JSON.parse(it) as { key: string };
        m.hset(tmp, rec.key, it);
        moved++;
      }
      m.del(k.deadLetters);
      if (items.length) m.rename(tmp, k.deadLetters);
      await m.exec();
    }
    return `dead letters moved to hashes (${moved} records)`;
  },
  // 1 → 2: each partition's band (a sorted set of keys, "done") becomes the compact band; band
  // snapshots in the history become deltas (what each run added over the snapshot before it).
  1: async (redis, prefix, jobs) => {
    let files = 0;
    let entries = 0;
    for (const j of jobs) {
      const k = keys(prefix, j);
      for (const p of await redis.smembers(k.parts)) {
        const done = `${prefix}:bm:${j}:p:${p}:done`;
        // Idempotent: a partition converted by an earlier, interrupted migration has no sorted set left.
        if ((await redis.type(done)) !== "zset") continue;
        const flat = await redis.zrange(done, 0, -1, "WITHSCORES");
        const groups = new Map<string, Buffer[]>();
        const seconds = new Map<number, number>();
        for (let i = 0; i < flat.length; i += 2) {
          const e = bandEntry(flat[i]!, Number(flat[i + 1]));
          const f = e.field.toString("latin1");
          groups.set(f, [...(groups.get(f) ?? []), e.record]);
          const sec = e.field.readUInt32BE(0);
          seconds.set(sec, (seconds.get(sec) ?? 0) + 1);
        }
        const m = redis.multi().del(k.band(p), k.bandIndex(p));
        for (const [f, recs] of groups) m.hset(k.band(p), Buffer.from(f, "latin1"), Buffer.concat(recs));
        for (const [sec, n] of seconds) {
          const s4 = Buffer.alloc(4);
          s4.writeUInt32BE(sec, 0);
          m.hset(k.band(p), s4, n).zadd(k.bandIndex(p), sec, String(sec));
        }
        m.hset(k.meta(p), "bandn", flat.length / 2).del(done);
        await m.exec();
        files += flat.length / 2;
      }
      // History: oldest first, each committed snapshot of a partition minus the one before it.
      const hist = (await redis.lrange(k.history, 0, -1)).map((h) => JSON.parse(h) as Record<string, unknown>);
      // Idempotent: entries converted by an earlier, interrupted migration carry `delta` already.
      if (hist.every((e) => Array.isArray(e.delta) || e.state === undefined)) continue;
      const prev = new Map<string, BandSet>();
      const m = redis.multi().del(k.history);
      for (const e of [...hist].reverse()) {
        const state = (e.state ?? {}) as Record<string, { band?: [string, number][] } & Record<string, unknown>>;
        const delta: string[] = [];
        for (const [p, st] of Object.entries(state)) {
          const before = prev.get(p) ?? new BandSet();
          const after = new BandSet();
          const added: Buffer[] = [];
          for (const [key, lm] of Array.isArray(st.band) ? st.band : []) {
            const en = bandEntry(key, Number(lm));
            const blob = Buffer.concat([en.field, en.record]);
            after.addEntries(blob);
            if (!before.holds(key, Number(lm))) added.push(blob);
          }
          prev.set(p, after);
          delete st.band;
          if (added.length && e.committed === true) {
            m.hset(k.deltas, `${String(e.runId)}|${p}`, Buffer.concat(added));
            delta.push(p);
            entries += added.length;
          }
        }
        e.delta = delta;
        m.lpush(k.history, JSON.stringify(e));
      }
      await m.exec();
    }
    return `bands converted to the compact form (${files} files), history snapshots to deltas (${entries} entries of ${ENTRY_BYTES} bytes)`;
  },
};

/** Upgrades the state under a prefix to {@link STATE_VERSION}, step by step. Returns what each step did. */
export async function migrateState(redis: Redis | Cluster, prefix: string, jobs: string[]): Promise<string[]> {
  let v = (await readStateVersion(redis, prefix, jobs)) ?? STATE_VERSION;
  if (v > STATE_VERSION) await checkStateVersion(redis, prefix, jobs, { write: false }); // throws: newer than us
  const done: string[] = [];
  while (v < STATE_VERSION) {
    const step = STEPS[v];
    if (!step) throw new StateVersionError(`no migration from state format ${v}; this tranche cannot read it`);
    done.push(`format ${v} → ${v + 1}: ${await step(redis, prefix, jobs)}`);
    v++;
    await redis.hset(stateKey(prefix), "version", v);
  }
  return done;
}
