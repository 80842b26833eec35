import type { ConnectionOptions } from "bullmq";
import type { Cluster, Redis } from "ioredis";
import type { TrancheConfig } from "../config/schema.js";
import { bullConnection, closeBullConnection, connectRedis } from "../redis.js";
import { log } from "../log.js";
import { checkStateVersion } from "../state-version.js";

export interface Connections {
  /** The command connection: one Redis, or a Redis Cluster. */
  redis: Redis | Cluster;
  /**
   * BullMQ's connection: options for one Redis (BullMQ opens and closes its own connections), a
   * Cluster instance on a cluster (BullMQ shares it and duplicates it for blocking commands;
   * `close()` closes it).
   */
  bull: ConnectionOptions;
  /** Closes both; call it after every Queue and Worker on `bull` has closed. */
  close(): Promise<void>;
}

/**
 * Opens the command connection (checked: E_REDIS when Redis does not answer) and checks the state
 * format of the prefix (E_STATE_VERSION), unless `checkVersion` is false (`tranche migrate`).
 */
export async function openConnections(cfg: TrancheConfig, o: { checkVersion?: boolean; readOnly?: boolean } = {}): Promise<Connections> {
  const redis = await connectRedis(cfg.redis);
  let bull: ConnectionOptions;
  try {
    if (o.checkVersion !== false) {
      const state = await checkStateVersion(redis, cfg.prefix, Object.keys(cfg.jobs), { write: !o.readOnly });
      if (state === "empty") log.warn(`no tranche state under prefix "${cfg.prefix}" yet (no run has started; is the prefix right?)`);
    }
    bull = await bullConnection(cfg.redis);
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  return {
    redis,
    bull,
    async close() {
      await closeBullConnection(bull);
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
