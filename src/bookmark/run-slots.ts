import type { Cluster, Redis } from "ioredis";
import type { Logger } from "../log.js";
import { keys, type Keys } from "./keys.js";
import { withScripts, type ScriptRedis } from "./scripts.js";

/** Run records and staged files live this long (seconds). */
export const RUN_TTL_S = 7 * 24 * 3600;

/** The planning lock lives this long unless renewed (renewed every third), so a dead planner blocks others ≤ 10 s. */
export const PLAN_LOCK_TTL_MS = 10_000;

/**
 * Run slots (`maxConcurrentRuns`) and the planning lock of one job. All liveness is judged by
 * Redis' clock (the scripts read TIME), never by a host's.
 */
export class RunSlots {
  readonly k: Keys;
  private readonly r: ScriptRedis;
  constructor(
    redis: Redis | Cluster,
    readonly prefix: string,
    readonly job: string,
  ) {
    this.r = withScripts(redis);
    this.k = keys(prefix, job);
  }

  /**
   * Takes a run slot until `release` (the run's finish step), at the latest for `ttlMs` (a run
   * whose every step was lost frees its slot then; see start-run.ts); returns the ids of the runs
   * holding all slots when none is free.
   */
  async acquire(runId: string, max: number, ttlMs: number): Promise<{ ok: true } | { ok: false; running: string[] }> {
    const res = await this.r.trancheAcquireRun(this.k.active, runId, ttlMs, max);
    if (Number(res[0]) === 1) return { ok: true };
    return { ok: false, running: res.slice(1).map(String) };
  }

  async release(runId: string): Promise<void> {
    await this.r.zrem(this.k.active, runId);
  }

  /** Ids of the runs that hold a live slot (by Redis' clock). */
  async live(): Promise<string[]> {
    const res = (await this.r.multi().time().zrange(this.k.active, 0, -1, "WITHSCORES").exec())!;
    const [sec, usec] = res[0]![1] as [string, string];
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const flat = res[1]![1] as string[];
    const out: string[] = [];
    for (let i = 0; i < flat.length; i += 2) if (Number(flat[i + 1]) > now) out.push(flat[i]!);
    return out;
  }

  /** The bookmark epoch: reset and rewind bump it, so that runs started before cannot commit after. */
  async epoch(): Promise<string> {
    return (await this.r.hget(this.k.jobMeta, "epoch")) ?? "0";
  }

  /**
   * Waits for the job's planning lock: concurrent runs plan and lease one after another, so each
   * sees the files the others leased and they take disjoint sets. The lock is renewed while held
   * and expires within `ttlMs` of its owner's death. Returns a release function.
   */
  async lockPlanning(runId: string, o: { log?: Logger; ttlMs?: number; waitMs?: number } = {}): Promise<() => Promise<void>> {
    const ttlMs = o.ttlMs ?? PLAN_LOCK_TTL_MS;
    const waitMs = o.waitMs ?? 600_000;
    const started = Date.now();
    let logged = started;
    while (Number(await this.r.trancheLock(this.k.planLock, "take", runId, ttlMs)) !== 1) {
      if (Date.now() - started > waitMs)
        throw new Error(`waited ${waitMs / 1000} s for another run of job "${this.job}" to finish planning`);
      if (Date.now() - logged >= 5000) {
        logged = Date.now();
        o.log?.info("waiting for another run of the job to finish planning", {
          holder: await this.r.get(this.k.planLock),
          waitedS: Math.round((logged - started) / 1000),
        });
      }
      await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
    }
    const keep = setInterval(() => void this.r.trancheLock(this.k.planLock, "keep", runId, ttlMs).catch(() => undefined), ttlMs / 3);
    keep.unref();
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      clearInterval(keep);
      await this.r.trancheLock(this.k.planLock, "release", runId, 0).catch(() => undefined);
    };
  }
}
