import type { Cluster, Redis } from "ioredis";
import { globalKeys } from "../bookmark/keys.js";
import { withScripts, type ScriptRedis } from "../bookmark/scripts.js";

/** The leader lease lives this long unless renewed (a dead leader is replaced within it plus one poll). */
export const LEADER_TTL_MS = 6000;

/**
 * One leader among any number of `tranche scheduler` replicas: a Redis key holding the leader's
 * id, taken with SET NX and renewed by its owner only (lock-1.lua), so a dead leader's lease
 * expires within LEADER_TTL_MS and the next replica to poll takes it.
 */
export class LeaderLease {
  private readonly r: ScriptRedis;
  readonly key: string;
  constructor(
    redis: Redis | Cluster,
    prefix: string,
    readonly id: string,
    readonly ttlMs = LEADER_TTL_MS,
  ) {
    this.r = withScripts(redis);
    this.key = globalKeys(prefix).leader;
  }

  /** Renews the lease when held, takes it when free; true while this replica leads. */
  async hold(): Promise<boolean> {
    if (Number(await this.r.trancheLock(this.key, "keep", this.id, this.ttlMs)) === 1) return true;
    return Number(await this.r.trancheLock(this.key, "take", this.id, this.ttlMs)) === 1;
  }

  async release(): Promise<void> {
    await this.r.trancheLock(this.key, "release", this.id, 0);
  }

  async holder(): Promise<string | null> {
    return this.r.get(this.key);
  }
}
