import type { ConnectionOptions } from "bullmq";
import type { Cluster, Redis } from "ioredis";
import type { TrancheConfig } from "../config/schema.js";
import { bullConnection, connectRedis } from "../redis.js";
import { checkStateVersion } from "../state-version.js";

export interface Connections {
  redis: Redis | Cluster;
  /** BullMQ's connection (it opens its own). */
  bull: ConnectionOptions;
  close(): Promise<void>;
}

/**
 * Opens the command connection (checked: E_REDIS when Redis does not answer) and checks the state
 * format of the prefix (E_STATE_VERSION), unless `checkVersion` is false (`tranche migrate`).
 */
export async function openConnections(cfg: TrancheConfig, o: { checkVersion?: boolean } = {}): Promise<Connections> {
  const redis = await connectRedis(cfg.redis);
  try {
    if (o.checkVersion !== false) await checkStateVersion(redis, cfg.prefix, Object.keys(cfg.jobs));
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  return {
    redis,
    bull: bullConnection(cfg.redis),
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
