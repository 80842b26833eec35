import type { Redis } from "ioredis";
import { ACQUIRE_RUN } from "./scripts/acquire-run.js";
import { COMMIT_BATCH } from "./scripts/commit-batch.js";
import { LEASE_FILES } from "./scripts/lease-files.js";
import { keys, type Keys } from "./keys.js";
import { bandFloor, type PartitionView } from "./rules.js";

type ScriptRedis = Redis & {
  trancheAcquireRun(k1: string, ...args: (string | number)[]): Promise<(number | string)[]>;
  trancheLeaseFiles(k1: string, k2: string, k3: string, k4: string, ...args: (string | number)[]): Promise<string[]>;
  trancheCommitBatch(...args: (string | number)[]): Promise<[number, number, string]>;
};

/** Registers the Lua scripts on a connection (idempotent); ioredis then runs them with EVALSHA. */
export function withScripts(redis: Redis): ScriptRedis {
  const r = redis as ScriptRedis;
  if (typeof r.trancheAcquireRun !== "function") {
    redis.defineCommand("trancheAcquireRun", { numberOfKeys: 1, lua: ACQUIRE_RUN });
    redis.defineCommand("trancheLeaseFiles", { numberOfKeys: 4, lua: LEASE_FILES });
    redis.defineCommand("trancheCommitBatch", { numberOfKeys: 7, lua: COMMIT_BATCH });
  }
  return r;
}

export interface CommitFile {
  key: string;
  lastModified: number;
  size: number;
}

export interface PartitionSummary {
  partition: string;
  wm: number | null;
  hwm: number | null;
  bandFiles: number;
  leased: number;
  files: number;
  bytes: number;
  lastRunId: string | null;
  updatedAt: number | null;
}

/** The bookmark of one job in Redis. Every state change is one Lua script (atomic). */
export class BookmarkStore {
  readonly k: Keys;
  private readonly r: ScriptRedis;
  constructor(
    redis: Redis,
    readonly prefix: string,
    readonly job: string,
  ) {
    this.r = withScripts(redis);
    this.k = keys(prefix, job);
  }

  /** Takes a run slot; returns the ids of the runs holding all slots when none is free. */
  async acquireRun(runId: string, ttlMs: number, max: number): Promise<{ ok: true } | { ok: false; running: string[] }> {
    const res = await this.r.trancheAcquireRun(this.k.active, runId, Date.now(), ttlMs, max);
    if (Number(res[0]) === 1) return { ok: true };
    return { ok: false, running: res.slice(1).map(String) };
  }
  async heartbeatRun(runId: string, ttlMs: number): Promise<void> {
    await this.r.zadd(this.k.active, "XX", Date.now() + ttlMs, runId);
  }
  async releaseRun(runId: string): Promise<void> {
    await this.r.zrem(this.k.active, runId);
  }
  async liveRuns(): Promise<string[]> {
    return this.r.zrangebyscore(this.k.active, `(${Date.now()}`, "+inf");
  }

  /** Reads what the planner needs for one partition: watermark, band, and live leases. */
  async loadView(partition: string, bandMs: number): Promise<PartitionView> {
    const [wmRaw, leaseOwners, active] = await Promise.all([
      this.r.hget(this.k.meta(partition), "wm"),
      this.r.hgetall(this.k.leaseRun(partition)),
      this.r.zrangebyscore(this.k.active, `(${Date.now()}`, "+inf"),
    ]);
    const wm = wmRaw === null ? null : Number(wmRaw);
    const floor = bandFloor({ wm, bandMs });
    const flat = await this.r.zrangebyscore(this.k.done(partition), Number.isFinite(floor) ? floor : "-inf", "+inf", "WITHSCORES");
    const done = new Map<string, number>();
    for (let i = 0; i < flat.length; i += 2) done.set(flat[i]!, Number(flat[i + 1]));
    const live = new Set(active);
    const liveLeases = new Map<string, string>();
    for (const [k, owner] of Object.entries(leaseOwners)) if (live.has(owner)) liveLeases.set(k, owner);
    return { wm, bandMs, done, liveLeases };
  }

  /** Leases files of one partition to a run; returns the keys it got. */
  async lease(partition: string, runId: string, files: readonly CommitFile[]): Promise<Set<string>> {
    const got = new Set<string>();
    for (let i = 0; i < files.length; i += 500) {
      const args: (string | number)[] = [runId, Date.now()];
      for (const f of files.slice(i, i + 500)) args.push(f.key, f.lastModified);
      const taken = await this.r.trancheLeaseFiles(
        this.k.lease(partition),
        this.k.leaseRun(partition),
        this.k.active,
        this.k.done(partition),
        ...args,
      );
      for (const t of taken) got.add(t);
    }
    return got;
  }

  /**
   * Of a batch's files, those still to do for `runId`: not committed at that time or later, and not
   * leased by another live run. A worker calls this before it starts, so a replayed or duplicated
   * batch does no work twice.
   */
  async pending<T extends CommitFile>(partition: string, runId: string, files: readonly T[]): Promise<T[]> {
    if (files.length === 0) return [];
    const pipe = this.r.pipeline();
    for (const f of files) {
      pipe.zscore(this.k.done(partition), f.key);
      pipe.hget(this.k.leaseRun(partition), f.key);
    }
    pipe.zrangebyscore(this.k.active, `(${Date.now()}`, "+inf");
    const res = (await pipe.exec())!;
    const live = new Set((res[res.length - 1]![1] as string[]) ?? []);
    return files.filter((f, i) => {
      const doneAt = res[2 * i]![1] as string | null;
      if (doneAt !== null && Number(doneAt) >= f.lastModified) return false;
      const owner = res[2 * i + 1]![1] as string | null;
      return !(owner && owner !== runId && live.has(owner));
    });
  }

  /** Commits one batch atomically. With `updateState` false (modes disable/pause) only the run is credited. */
  async commitBatch(args: {
    partition: string;
    runId: string;
    /** Unique per commit attempt (a replay with the same id is a no-op). */
    commitId: string;
    /** Set when this commit finishes the batch: the run counts it as an ok batch, once. */
    finalBatchId?: string;
    bandMs: number;
    updateState: boolean;
    files: readonly CommitFile[];
  }): Promise<{ committed: number; already: number; wm: number | null }> {
    const argv: (string | number)[] = [
      args.runId,
      args.bandMs,
      Date.now(),
      args.partition,
      args.commitId,
      args.updateState ? "1" : "0",
      args.finalBatchId ?? "",
    ];
    for (const f of args.files) argv.push(f.key, f.lastModified, f.size);
    const [n, already, wm] = await this.r.trancheCommitBatch(
      this.k.meta(args.partition),
      this.k.done(args.partition),
      this.k.lease(args.partition),
      this.k.leaseRun(args.partition),
      this.k.run(args.runId),
      this.k.parts,
      this.k.jobMeta,
      ...argv,
    );
    return { committed: Number(n), already: Number(already), wm: wm === "" ? null : Number(wm) };
  }

  async partitions(): Promise<string[]> {
    return (await this.r.smembers(this.k.parts)).sort();
  }

  async summary(): Promise<{ version: number; lastRunId: string | null; partitions: PartitionSummary[] }> {
    const [jm, parts] = await Promise.all([this.r.hgetall(this.k.jobMeta), this.partitions()]);
    const pipe = this.r.pipeline();
    for (const p of parts) {
      pipe.hgetall(this.k.meta(p));
      pipe.zcard(this.k.done(p));
      pipe.zcard(this.k.lease(p));
    }
    const res = parts.length ? (await pipe.exec())! : [];
    const num = (v: string | undefined) => (v === undefined ? null : Number(v));
    return {
      version: Number(jm.version ?? 0),
      lastRunId: jm.lastRunId ?? null,
      partitions: parts.map((p, i) => {
        const m = res[3 * i]![1] as Record<string, string>;
        return {
          partition: p,
          wm: num(m.wm),
          hwm: num(m.hwm),
          bandFiles: Number(res[3 * i + 1]![1]),
          leased: Number(res[3 * i + 2]![1]),
          files: Number(m.files ?? 0),
          bytes: Number(m.bytes ?? 0),
          lastRunId: m.lastRunId ?? null,
          updatedAt: num(m.updatedAt),
        };
      }),
    };
  }

  /** Every key of this job's bookmark state (for MEMORY USAGE and reset). */
  async stateKeys(): Promise<string[]> {
    const parts = await this.partitions();
    return [this.k.parts, this.k.jobMeta, ...parts.flatMap((p) => [this.k.meta(p), this.k.done(p), this.k.lease(p), this.k.leaseRun(p)])];
  }
}
