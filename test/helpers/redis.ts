import { randomBytes } from "node:crypto";
import { Cluster, Redis } from "ioredis";

/** The Redis the tests use: REDIS_URL or TRANCHE_REDIS_URL, else the local one. */
export const REDIS_URL = process.env.REDIS_URL ?? process.env.TRANCHE_REDIS_URL ?? "redis://127.0.0.1:6379";

export function uniquePrefix(name: string): string {
  return `t-${name}-${randomBytes(4).toString("hex")}`;
}

export function redisClient(opts: { bull?: boolean } = {}): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: opts.bull ? null : 20 });
}

/** Deletes every key under a prefix (each test uses its own); on a cluster, on every master. */
export async function cleanPrefix(redis: Redis | Cluster, prefix: string): Promise<void> {
  for (const node of redis instanceof Cluster ? redis.nodes("master") : [redis]) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length === 0) continue;
      // On a cluster, keys of different slots may not share a command: one DEL per key.
      if (redis instanceof Cluster) await Promise.all(keys.map((k) => node.del(k)));
      else await node.del(...keys);
    } while (cursor !== "0");
  }
}

/**
 * Makes `runId` a live run of `job` holding a slot, as another process's `tranche run` would: a
 * slot, a RUNNING run record and a live starter mark (so no `tranche run` attaches to it).
 */
export async function holdLiveRun(redis: Redis | Cluster, prefix: string, job: string, runId: string, ttlMs = 600_000): Promise<void> {
  await redis
    .multi()
    .zadd(`${prefix}:runs:${job}:active`, Date.now() + ttlMs, runId)
    .hset(`${prefix}:run:${runId}`, { job, state: "RUNNING", planned: 1, createdAt: Date.now() })
    .set(`${prefix}:run:${runId}:starter`, "another-process", "PX", ttlMs)
    .exec();
}

/** Undoes {@link holdLiveRun}. */
export async function releaseLiveRun(redis: Redis | Cluster, prefix: string, job: string, runId: string): Promise<void> {
  await redis.multi().zrem(`${prefix}:runs:${job}:active`, runId).del(`${prefix}:run:${runId}`, `${prefix}:run:${runId}:starter`).exec();
}
