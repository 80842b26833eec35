import type { Cluster, Redis } from "ioredis";
import { keys, stateKey } from "./bookmark/keys.js";
import { TrancheError } from "./errors.js";

/**
 * The format of tranche's Redis state under a prefix. A process meeting another version refuses
 * to touch it (E_STATE_VERSION) instead of corrupting it; `tranche migrate` upgrades it.
 *   0: before versioning (dead letters in a capped list).
 *   1: dead letters and skipped files in hashes; per-partition retry lists.
 */
export const STATE_VERSION = 1;

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
