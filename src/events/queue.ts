import { createHash } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { keys } from "../bookmark/keys.js";
import { RUN_TTL_S } from "../bookmark/run-slots.js";
import { withScripts, type ScriptRedis } from "../bookmark/scripts.js";
import { MAX_RECORDS, type ObjectEvent } from "./parse.js";

/** At most this many pending objects per job; a request that would pass it is refused (503). */
export const MAX_PENDING = 100_000;
/** Events of objects another run holds, or of partitions that failed, wait this long before a run takes them again. */
export const RETRY_LATER_MS = 30_000;
/** A delivery (bucket, key, sequencer) is remembered this long: a duplicate within it counts once. */
export const DEDUP_TTL_S = 24 * 3600;
/** Object keys per put-back script call. */
const CHUNK = 1000;

/** An event as it waits for a run: the notification plus the object's key relative to the job's source and its arrival. */
export interface PendingEvent extends ObjectEvent {
  /** The key relative to the job's source root (the bookmark's key). */
  rel: string;
  /** Arrival time (ms). */
  at: number;
}

/** The events waiting for runs of one job, in Redis (docs/events.md). */
export class EventQueue {
  private readonly r: ScriptRedis;
  readonly k: ReturnType<typeof keys>;
  constructor(
    redis: Redis | Cluster,
    prefix: string,
    readonly job: string,
  ) {
    this.r = withScripts(redis);
    this.k = keys(prefix, job);
  }

  /** Stores events (a delivery seen before counts as a duplicate); `full` when the job would hold more than MAX_PENDING. */
  async store(events: readonly PendingEvent[], max = MAX_PENDING): Promise<{ accepted: number; duplicates: number; full?: number }> {
    let accepted = 0;
    let duplicates = 0;
    // One script call for all of a request's events of this job (at most MAX_RECORDS): refused whole or stored whole.
    for (let i = 0; i < events.length; i += MAX_RECORDS) {
      const chunk = events.slice(i, i + MAX_RECORDS);
      const seen = chunk.map((e) => this.k.eventSeen(deliveryHash(e)));
      const argv = chunk.flatMap((e) => [e.rel, JSON.stringify(e)]);
      const [a, d] = (
        await this.r.trancheIngestEvents(
          2 + seen.length,
          this.k.eventsPending,
          this.k.eventsOrder,
          ...seen,
          max,
          Date.now(),
          DEDUP_TTL_S,
          ...argv,
        )
      ).map(Number);
      if (a === -1) return { accepted, duplicates, full: d! };
      accepted += a!;
      duplicates += d!;
    }
    return { accepted, duplicates };
  }

  /** Pending objects and the arrival of the oldest (ms), or null. */
  /**
   * Pending objects ready for a run now (`count`, and the arrival of the oldest of them, or null),
   * and all of them (`total`: those put back "not before" a later time included).
   */
  async pending(now = Date.now()): Promise<{ count: number; oldestAt: number | null; total: number }> {
    const [count, oldest, total] = await Promise.all([
      this.r.zcount(this.k.eventsOrder, "-inf", now),
      this.r.zrangebyscore(this.k.eventsOrder, "-inf", now, "WITHSCORES", "LIMIT", 0, 1),
      this.r.zcard(this.k.eventsOrder),
    ]);
    return { count, oldestAt: oldest.length === 2 ? Number(oldest[1]) : null, total };
  }

  /** Run `runId` takes the oldest `n` pending events (once; a retry gets the same ones). */
  async take(runId: string, n: number): Promise<Map<string, PendingEvent>> {
    const flat = await this.r.trancheTakeEvents(
      this.k.eventsPending,
      this.k.eventsOrder,
      this.k.runEvents(runId),
      this.k.eventsStarting,
      this.k.run(runId),
      n,
      runId,
      RUN_TTL_S,
      Date.now(),
    );
    const out = new Map<string, PendingEvent>();
    for (let i = 0; i < flat.length; i += 2) out.set(flat[i]!, JSON.parse(flat[i + 1]!) as PendingEvent);
    return out;
  }

  /** The events run `runId` holds (not yet settled or put back). */
  async held(runId: string): Promise<Map<string, PendingEvent>> {
    const all = await this.r.hgetall(this.k.runEvents(runId));
    const out = new Map<string, PendingEvent>();
    for (const [k, v] of Object.entries(all)) if (k !== "\u0000taken") out.set(k, JSON.parse(v) as PendingEvent);
    return out;
  }

  /** Puts events of a run back in line (their objects were not settled by it). */
  async putBack(runId: string, objectKeys: readonly string[], notBefore = 0): Promise<number> {
    let n = 0;
    for (let i = 0; i < objectKeys.length; i += CHUNK)
      n += Number(
        await this.r.trancheReturnEvents(
          this.k.eventsPending,
          this.k.eventsOrder,
          this.k.runEvents(runId),
          notBefore,
          ...objectKeys.slice(i, i + CHUNK),
        ),
      );
    return n;
  }

  /** Drops events of a run whose objects are settled (processed, found done, or gone). */
  async settle(runId: string, objectKeys: readonly string[]): Promise<void> {
    for (let i = 0; i < objectKeys.length; i += CHUNK) await this.r.hdel(this.k.runEvents(runId), ...objectKeys.slice(i, i + CHUNK));
  }

  /** Marks the run the scheduler started for these events (until its plan step takes them). */
  async markStarting(runId: string): Promise<void> {
    await this.r.set(this.k.eventsStarting, runId, "EX", 3600);
  }

  async starting(): Promise<string | null> {
    return this.r.get(this.k.eventsStarting);
  }

  async clearStarting(runId: string): Promise<void> {
    if ((await this.r.get(this.k.eventsStarting)) === runId) await this.r.del(this.k.eventsStarting);
  }
}

/** One delivery: bucket, key and sequencer (else the etag, else the event time). */
function deliveryHash(e: ObjectEvent): string {
  return createHash("sha1")
    .update(`${e.bucket}\u0000${e.key}\u0000${e.sequencer || e.etag || e.time}`)
    .digest("hex")
    .slice(0, 24);
}
