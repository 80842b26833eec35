import type { Redis } from "ioredis";
import { ACQUIRE_RUN } from "./scripts/acquire-run.js";
import { COMMIT_RUN } from "./scripts/commit-run.js";
import { RESTORE_STATE } from "./scripts/restore-state.js";
import { STAGE_BATCH } from "./scripts/stage-batch.js";
import { LEASE_FILES } from "./scripts/lease-files.js";
import { keys, type Keys } from "./keys.js";
import { ConfigError, RunInProgressError } from "../errors.js";
import { bandFloor, type PartitionView } from "./rules.js";

/** Run records and staged files live this long (seconds). */
export const RUN_TTL_S = 7 * 24 * 3600;

/** One partition's state as kept in history snapshots. */
export interface PartitionState {
  wm: number | null;
  hwm: number | null;
  floor: number | null;
  files: number;
  /** Files inside the band: [key, lastModified]. */
  band: [string, number][];
}
export type BookmarkState = Record<string, PartitionState>;

/** A run as the history keeps it (the run summary plus the commit's outcome). */
export interface HistoryEntry {
  runId: string;
  job: string;
  status: string;
  mode: string;
  attempt: number;
  previousRunId: string | null;
  startedAt: string;
  endedAt: string;
  files: number;
  bytes: number;
  committed: boolean;
  version?: number;
  state?: BookmarkState;
  [k: string]: unknown;
}

/** Snapshots come out of Lua with strings for numbers and {} for empty lists. */
export function normalizeState(raw: object): BookmarkState {
  const num = (v: unknown) => (v === undefined || v === null || v === "" ? null : Number(v));
  const out: BookmarkState = {};
  for (const [pid, p] of Object.entries((raw ?? {}) as Record<string, Record<string, unknown>>)) {
    const band = Array.isArray(p.band) ? (p.band as [string, number | string][]) : [];
    out[pid] = {
      wm: num(p.wm),
      hwm: num(p.hwm),
      floor: num(p.floor),
      files: Number(p.files ?? 0),
      band: band.map(([k, lm]) => [k, Number(lm)]),
    };
  }
  return out;
}

type ScriptRedis = Redis & {
  trancheAcquireRun(k1: string, ...args: (string | number)[]): Promise<(number | string)[]>;
  trancheLeaseFiles(k1: string, k2: string, k3: string, k4: string, ...args: (string | number)[]): Promise<string[]>;
  trancheDropLease(k1: string, k2: string, key: string, owner: string): Promise<number>;
  trancheUnlock(k1: string, owner: string): Promise<number>;
  trancheKeepLock(k1: string, owner: string, ttlMs: number): Promise<number>;
  trancheStageBatch(k1: string, k2: string, k3: string, ...args: (string | number)[]): Promise<number>;
  trancheCommitRun(nKeys: number, ...args: (string | number)[]): Promise<[number, number]>;
  trancheRestoreState(nKeys: number, ...args: (string | number)[]): Promise<(number | string)[]>;
};

/** Registers the Lua scripts on a connection (idempotent); ioredis then runs them with EVALSHA. */
export function withScripts(redis: Redis): ScriptRedis {
  const r = redis as ScriptRedis;
  if (typeof r.trancheAcquireRun !== "function") {
    redis.defineCommand("trancheAcquireRun", { numberOfKeys: 1, lua: ACQUIRE_RUN });
    redis.defineCommand("trancheLeaseFiles", { numberOfKeys: 4, lua: LEASE_FILES });
    redis.defineCommand("trancheDropLease", {
      numberOfKeys: 2,
      lua: "if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[2], ARGV[1]); return redis.call('ZREM', KEYS[1], ARGV[1]) end return 0",
    });
    redis.defineCommand("trancheUnlock", {
      numberOfKeys: 1,
      lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    });
    redis.defineCommand("trancheKeepLock", {
      numberOfKeys: 1,
      lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
    });
    redis.defineCommand("trancheStageBatch", { numberOfKeys: 3, lua: STAGE_BATCH });
    // Variable key counts: the caller passes the number of keys first.
    redis.defineCommand("trancheCommitRun", { lua: COMMIT_RUN });
    redis.defineCommand("trancheRestoreState", { lua: RESTORE_STATE });
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
  floor: number | null;
  bandFiles: number;
  leased: number;
  files: number;
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
  /**
   * Waits for the job's planning lock: concurrent runs plan and lease one after another, so each
   * sees the files the others leased and they take disjoint sets. Returns a release function.
   */
  async lockPlanning(runId: string, ttlMs = 120_000, waitMs = 600_000): Promise<() => Promise<void>> {
    const until = Date.now() + waitMs;
    while ((await this.r.set(this.k.planLock, runId, "PX", ttlMs, "NX")) !== "OK") {
      if (Date.now() > until) throw new Error(`waited ${waitMs / 1000}s for another run of job "${this.job}" to finish planning`);
      await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
    }
    // Planning a huge listing can outlast the TTL: keep the lock while this process is alive.
    const keep = setInterval(() => void this.r.trancheKeepLock(this.k.planLock, runId, ttlMs).catch(() => undefined), ttlMs / 3);
    return async () => {
      clearInterval(keep);
      await this.r.trancheUnlock(this.k.planLock, runId).catch(() => undefined);
    };
  }

  async releaseRun(runId: string): Promise<void> {
    await this.r.zrem(this.k.active, runId);
  }
  async liveRuns(): Promise<string[]> {
    return this.r.zrangebyscore(this.k.active, `(${Date.now()}`, "+inf");
  }

  /** Reads what the planner needs for one partition: watermark, band, and live leases. */
  async loadView(partition: string, bandMs: number): Promise<PartitionView> {
    const [[wmRaw, floorRaw], leaseOwners, active] = await Promise.all([
      this.r.hmget(this.k.meta(partition), "wm", "floor"),
      this.r.hgetall(this.k.leaseRun(partition)),
      this.r.zrangebyscore(this.k.active, `(${Date.now()}`, "+inf"),
    ]);
    const wm = wmRaw === null ? null : Number(wmRaw);
    const floorAt = floorRaw === null || floorRaw === undefined ? null : Number(floorRaw);
    const floor = bandFloor({ wm, bandMs, floor: floorAt });
    const flat = await this.r.zrangebyscore(this.k.done(partition), Number.isFinite(floor) ? floor : "-inf", "+inf", "WITHSCORES");
    const done = new Map<string, number>();
    for (let i = 0; i < flat.length; i += 2) done.set(flat[i]!, Number(flat[i + 1]));
    const live = new Set(active);
    const liveLeases = new Map<string, string>();
    const staleLeases = new Map<string, string>();
    for (const [k, owner] of Object.entries(leaseOwners)) (live.has(owner) ? liveLeases : staleLeases).set(k, owner);
    return { wm, bandMs, floor: floorAt, done, liveLeases, staleLeases };
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
   * Drops leases of ended runs on files that no longer exist (deleted after a failed run), so they
   * stop holding the watermark. A lease taken over by another run in the meantime is kept.
   */
  async dropStaleLeases(partition: string, stale: ReadonlyMap<string, string>): Promise<number> {
    let n = 0;
    for (const [k, owner] of stale)
      n += Number(await this.r.trancheDropLease(this.k.lease(partition), this.k.leaseRun(partition), k, owner));
    return n;
  }

  /**
   * Of a batch's files, those still to do for `runId`: not already staged by this run, not
   * committed at that time or later (when `skipCommitted`), and not leased by another live run.
   * A worker calls this before it starts, so a replayed or duplicated batch does no work twice.
   */
  async pending<T extends CommitFile>(partition: string, runId: string, files: readonly T[], skipCommitted = true): Promise<T[]> {
    if (files.length === 0) return [];
    const pipe = this.r.pipeline();
    const staged = this.k.staged(runId, partition);
    for (const f of files) {
      pipe.zscore(this.k.done(partition), f.key);
      pipe.hget(this.k.leaseRun(partition), f.key);
      pipe.zscore(staged, f.key);
    }
    pipe.zrangebyscore(this.k.active, `(${Date.now()}`, "+inf");
    const res = (await pipe.exec())!;
    const live = new Set((res[res.length - 1]![1] as string[]) ?? []);
    return files.filter((f, i) => {
      const doneAt = res[3 * i]![1] as string | null;
      if (skipCommitted && doneAt !== null && Number(doneAt) >= f.lastModified) return false;
      const owner = res[3 * i + 1]![1] as string | null;
      if (owner && owner !== runId && live.has(owner)) return false;
      const stagedAt = res[3 * i + 2]![1] as string | null;
      return !(stagedAt !== null && Number(stagedAt) >= f.lastModified);
    });
  }

  /** Records what one batch attempt wrote; the run commits it all at its end. */
  async stageBatch(args: {
    partition: string;
    runId: string;
    commitId: string;
    finalBatchId?: string;
    files: readonly CommitFile[];
  }): Promise<number> {
    const argv: (string | number)[] = [args.partition, args.commitId, args.finalBatchId ?? "", RUN_TTL_S];
    for (const f of args.files) argv.push(f.key, f.lastModified, f.size);
    return this.r.trancheStageBatch(
      this.k.staged(args.runId, args.partition),
      this.k.stagedParts(args.runId),
      this.k.run(args.runId),
      ...argv,
    );
  }

  /**
   * Commits everything the run staged, in every partition, in one atomic step, and pushes the run
   * (with the state after it) on the job's history. Returns the new bookmark version.
   */
  async commitRun(args: {
    runId: string;
    bandMs: number;
    maxFilesInBand: number;
    historySize: number;
    summary: object;
  }): Promise<{ version: number; runs: number }> {
    const touched = (await this.r.smembers(this.k.stagedParts(args.runId))).sort();
    const touchedSet = new Set(touched);
    const others = (await this.partitions()).filter((p) => !touchedSet.has(p));
    const keys = [this.k.jobMeta, this.k.parts, this.k.history];
    for (const p of touched) keys.push(this.k.meta(p), this.k.done(p), this.k.lease(p), this.k.leaseRun(p), this.k.staged(args.runId, p));
    for (const p of others) keys.push(this.k.meta(p), this.k.done(p));
    const argv = [
      args.runId,
      args.bandMs,
      args.maxFilesInBand,
      Date.now(),
      args.historySize,
      JSON.stringify(args.summary),
      touched.length,
      ...touched,
      ...others,
    ];
    const [version, runs] = await this.r.trancheCommitRun(keys.length, ...keys, ...argv);
    await this.r.del(this.k.stagedParts(args.runId));
    return { version: Number(version), runs: Number(runs) };
  }

  /** Pushes a run that committed nothing (failed, empty, disable or pause) on the history. */
  async recordRun(summary: object, historySize: number): Promise<void> {
    await this.r
      .multi()
      .lpush(this.k.history, JSON.stringify({ ...summary, committed: false }))
      .ltrim(this.k.history, 0, historySize - 1)
      .exec();
  }

  /** The job's runs, newest first (as many as `bookmark.historySize` keeps). */
  async history(): Promise<HistoryEntry[]> {
    return (await this.r.lrange(this.k.history, 0, -1)).map((h) => JSON.parse(h) as HistoryEntry);
  }

  /** The state after a committed run, from the history; a clear error when it is not there. */
  async stateAfter(runId: string): Promise<HistoryEntry & { state: BookmarkState }> {
    const h = (await this.history()).find((e) => e.runId === runId);
    if (!h)
      throw new ConfigError(
        `run ${runId} of job "${this.job}" is not in the bookmark history (it keeps the last bookmark.historySize runs); see 'tranche bookmark show ${this.job}'`,
      );
    if (!h.committed || !h.state)
      throw new ConfigError(
        `run ${runId} of job "${this.job}" committed nothing (status ${h.status}, mode ${h.mode}); pick a run that committed`,
      );
    return h as HistoryEntry & { state: BookmarkState };
  }

  /** Restores the state after an earlier run (atomic; refused while a run is in progress). Output is not touched. */
  async rewind(runId: string): Promise<number> {
    const target = await this.stateAfter(runId);
    return this.restore(normalizeState(target.state), runId);
  }

  /** Deletes every piece of the job's bookmark state and history (atomic; refused while a run is in progress). */
  async reset(): Promise<void> {
    await this.restore(null, "");
  }

  private async restore(target: BookmarkState | null, lastRunId: string): Promise<number> {
    const pids = [...new Set([...(await this.partitions()), ...Object.keys(target ?? {})])].sort();
    const keys = [this.k.jobMeta, this.k.parts, this.k.active];
    for (const p of pids) keys.push(this.k.meta(p), this.k.done(p), this.k.lease(p), this.k.leaseRun(p));
    if (!target) keys.push(this.k.history);
    const res = await this.r.trancheRestoreState(
      keys.length,
      ...keys,
      Date.now(),
      lastRunId,
      target ? JSON.stringify(target) : "",
      ...pids,
    );
    if (Number(res[0]) !== 1) throw new RunInProgressError(this.job, res.slice(1).map(String));
    return Number(res[1]);
  }

  async partitions(): Promise<string[]> {
    return (await this.r.smembers(this.k.parts)).sort();
  }

  async summary(): Promise<{ version: number; runs: number; lastRunId: string | null; partitions: PartitionSummary[] }> {
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
      runs: Number(jm.runs ?? 0),
      lastRunId: jm.lastRunId ?? null,
      partitions: parts.map((p, i) => {
        const m = res[3 * i]![1] as Record<string, string>;
        return {
          partition: p,
          wm: num(m.wm),
          hwm: num(m.hwm),
          floor: num(m.floor),
          bandFiles: Number(res[3 * i + 1]![1]),
          leased: Number(res[3 * i + 2]![1]),
          files: Number(m.files ?? 0),
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
