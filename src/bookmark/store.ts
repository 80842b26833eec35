import type { Cluster, Redis } from "ioredis";
import { keys, type Keys } from "./keys.js";
import { ConfigError, RunInProgressError, RunLostError } from "../errors.js";
import { bandFloor, type PartitionView } from "./rules.js";
import { withScripts, type ScriptRedis } from "./scripts.js";
import { RunSlots, RUN_TTL_S } from "./run-slots.js";
import { DeadLetters } from "./dead-letters.js";

export { RUN_TTL_S } from "./run-slots.js";

/** A run's errors list keeps this many, newest first. */
export const MAX_RUN_ERRORS = 100;

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
  /** The state after the run of the partitions it touched. */
  state?: BookmarkState;
  /** Every partition with state after the run. */
  parts?: string[];
  [k: string]: unknown;
}

/** Lua's cjson writes an empty list as {}. */
export function asArray<T>(v: T[] | Record<string, never> | undefined | null): T[] {
  return Array.isArray(v) ? v : [];
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

/** What one batch attempt did (see {@link BookmarkStore.finishBatch}). */
export interface FinishBatch {
  partition: string;
  runId: string;
  /** Unique per attempt: a replay of the same id changes nothing. */
  commitId: string;
  /** The BullMQ batch id (for recording a job failure against it). */
  batchId?: string;
  /** The batch id when this attempt finished the whole batch (no failures left). */
  finalBatchId?: string;
  ok?: readonly CommitFile[];
  archived?: readonly (CommitFile & { reason: string })[];
  gone?: readonly { key: string; reason: string }[];
  failed?: readonly { key: string; lastModified: number; reason: string }[];
  /** This is the batch's last attempt (its failures are the run's); default true. */
  lastAttempt?: boolean;
  /** Count `failed` toward dead letters (the batch's last attempt, state updates on, no job error). */
  countFailures?: boolean;
  deadLetterAfterRuns?: number;
  errors?: string[];
  badRecords?: number;
  /** A job error's reason: marks the run as failed by its job or environment. */
  jobFailure?: string;
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
  /** Run slots and the planning lock. */
  readonly slots: RunSlots;
  /** Dead letters and skipped files. */
  readonly deadLetters: DeadLetters;
  constructor(
    redis: Redis | Cluster,
    readonly prefix: string,
    readonly job: string,
  ) {
    this.r = withScripts(redis);
    this.k = keys(prefix, job);
    this.slots = new RunSlots(redis, prefix, job);
    this.deadLetters = new DeadLetters(redis, prefix, job);
  }

  /**
   * Reads what the planner needs for one partition, in one MULTI (a consistent snapshot, so a
   * concurrent commit cannot make committed files look new): watermark, floor, band, leases (live
   * or stale by Redis' clock) and retried dead letters.
   */
  async loadView(partition: string, bandMs: number): Promise<PartitionView> {
    const res = (await this.r
      .multi()
      .hmget(this.k.meta(partition), "wm", "floor")
      .hgetall(this.k.leaseRun(partition))
      .zrange(this.k.active, 0, -1, "WITHSCORES")
      .zrange(this.k.done(partition), 0, -1, "WITHSCORES")
      .hkeys(this.k.retry(partition))
      .time()
      .exec())!;
    const [wmRaw, floorRaw] = res[0]![1] as (string | null)[];
    const leaseOwners = res[1]![1] as Record<string, string>;
    const activeFlat = res[2]![1] as string[];
    const flat = res[3]![1] as string[];
    const retry = new Set(res[4]![1] as string[]);
    const [sec, usec] = res[5]![1] as [string, string];
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const wm = wmRaw === null || wmRaw === undefined ? null : Number(wmRaw);
    const floorAt = floorRaw === null || floorRaw === undefined ? null : Number(floorRaw);
    const edge = bandFloor({ wm, bandMs, floor: floorAt });
    const done = new Map<string, number>();
    for (let i = 0; i < flat.length; i += 2) if (Number(flat[i + 1]) >= edge) done.set(flat[i]!, Number(flat[i + 1]));
    const live = new Set<string>();
    for (let i = 0; i < activeFlat.length; i += 2) if (Number(activeFlat[i + 1]) > now) live.add(activeFlat[i]!);
    const liveLeases = new Map<string, string>();
    const staleLeases = new Map<string, string>();
    for (const [k, owner] of Object.entries(leaseOwners)) (live.has(owner) ? liveLeases : staleLeases).set(k, owner);
    return { wm, bandMs, floor: floorAt, done, liveLeases, staleLeases, retry };
  }

  /** Leases files of one partition to a run; returns the keys it got. */
  async lease(partition: string, runId: string, files: readonly CommitFile[], bandMs: number): Promise<Set<string>> {
    const got = new Set<string>();
    for (let i = 0; i < files.length; i += 500) {
      const args: (string | number)[] = [runId, bandMs, partition, RUN_TTL_S];
      for (const f of files.slice(i, i + 500)) args.push(f.key, f.lastModified);
      const taken = await this.r.trancheLeaseFiles(
        this.k.lease(partition),
        this.k.leaseRun(partition),
        this.k.active,
        this.k.done(partition),
        this.k.meta(partition),
        this.k.leasedParts(runId),
        this.k.retry(partition),
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
      pipe.hexists(this.k.retry(partition), f.key);
    }
    pipe.zrange(this.k.active, 0, -1, "WITHSCORES");
    pipe.time();
    const res = (await pipe.exec())!;
    const [sec, usec] = res[res.length - 1]![1] as [string, string];
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const activeFlat = res[res.length - 2]![1] as string[];
    const live = new Set<string>();
    for (let i = 0; i < activeFlat.length; i += 2) if (Number(activeFlat[i + 1]) > now) live.add(activeFlat[i]!);
    return files.filter((f, i) => {
      const doneAt = res[4 * i]![1] as string | null;
      const retried = Number(res[4 * i + 3]![1]) === 1;
      if (skipCommitted && !retried && doneAt !== null && Number(doneAt) >= f.lastModified) return false;
      const owner = res[4 * i + 1]![1] as string | null;
      if (owner && owner !== runId && live.has(owner)) return false;
      const stagedAt = res[4 * i + 2]![1] as string | null;
      return !(stagedAt !== null && Number(stagedAt) >= f.lastModified);
    });
  }

  /**
   * Records what one batch attempt did, atomically (see lua/finish-batch-8.lua): stages written and
   * archived files for the run's commit, counts file failures once per run and dead-letters those
   * at `deadLetterAfterRuns`, records gone files, errors, bad records and a job failure. Returns
   * how many files were newly staged, how many failures are left (not dead-lettered) and the keys
   * dead-lettered now. A replayed `commitId` changes nothing.
   */
  async finishBatch(a: FinishBatch): Promise<{ staged: number; failuresLeft: number; deadLettered: string[] }> {
    const payload = {
      partition: a.partition,
      commitId: a.commitId,
      batchId: a.batchId ?? a.commitId,
      final: a.finalBatchId ?? "",
      runId: a.runId,
      ttl: RUN_TTL_S,
      maxErrors: MAX_RUN_ERRORS,
      deadLetterAfterRuns: a.deadLetterAfterRuns ?? 0,
      countFailures: a.countFailures ?? false,
      last: a.lastAttempt ?? true,
      at: new Date().toISOString(),
      ok: (a.ok ?? []).map((f) => [f.key, f.lastModified, f.size]),
      archived: (a.archived ?? []).map((f) => [f.key, f.lastModified, f.size, f.reason]),
      gone: (a.gone ?? []).map((f) => [f.key, f.reason]),
      failed: (a.failed ?? []).map((f) => [f.key, f.lastModified, f.reason]),
      errors: a.errors ?? [],
      badRecords: a.badRecords ?? 0,
      jobFailure: a.jobFailure ?? "",
    };
    const res = await this.r.trancheFinishBatch(
      this.k.staged(a.runId, a.partition),
      this.k.stagedParts(a.runId),
      this.k.run(a.runId),
      this.k.runErrors(a.runId),
      this.k.failures,
      this.k.deadLetters,
      this.k.runDead(a.runId),
      this.k.skipped,
      JSON.stringify(payload),
    );
    return { staged: Number(res[0]), failuresLeft: Math.max(0, Number(res[1])), deadLettered: res.slice(2).map(String) };
  }

  /** Stages files a batch wrote (a {@link finishBatch} with only successes). Returns how many were new. */
  async stageBatch(args: {
    partition: string;
    runId: string;
    commitId: string;
    finalBatchId?: string;
    files: readonly CommitFile[];
  }): Promise<number> {
    return (await this.finishBatch({ ...args, ok: args.files })).staged;
  }

  /** Records a batch as finally failed on its run, once (atomic). `kind` job stops a drain. */
  async markBatchFailed(runId: string, batchId: string, reason: string, kind: "job" | "file"): Promise<boolean> {
    return (
      Number(
        await this.r.trancheMarkBatchFailed(this.k.run(runId), this.k.runErrors(runId), batchId, reason, kind, RUN_TTL_S, MAX_RUN_ERRORS),
      ) === 1
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
    /** The bookmark epoch read when the run started (default: now). */
    epoch?: string;
  }): Promise<{ version: number; runs: number }> {
    const epoch = args.epoch ?? (await this.slots.epoch());
    for (let attempt = 0; attempt < 5; attempt++) {
      const touched = (await this.r.sunion(this.k.stagedParts(args.runId), this.k.leasedParts(args.runId))).sort();
      const keys = [
        this.k.jobMeta,
        this.k.parts,
        this.k.history,
        this.k.active,
        this.k.stagedParts(args.runId),
        this.k.leasedParts(args.runId),
      ];
      for (const p of touched)
        keys.push(this.k.meta(p), this.k.done(p), this.k.lease(p), this.k.leaseRun(p), this.k.staged(args.runId, p), this.k.retry(p));
      const argv = [args.runId, args.bandMs, args.maxFilesInBand, args.historySize, JSON.stringify(args.summary), epoch, ...touched];
      const [ok, a, b] = await this.r.trancheCommitRun(keys.length, ...keys, ...argv);
      if (Number(ok) === 1) return { version: Number(a), runs: Number(b) };
      if (a === "parts") continue; // a late duplicate batch staged into another partition: retry with it
      throw new RunLostError(
        this.job,
        args.runId,
        a === "slot"
          ? "it lost its run slot (it stopped renewing it for 15 s, or Redis lost its data), so other runs may have taken its files"
          : "the bookmark was reset or rewound while it ran",
      );
    }
    throw new RunLostError(this.job, args.runId, "its batches kept staging into new partitions while it committed");
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

  /** A committed run's place in the history; a clear error when it is not there. */
  private findCommitted(hist: HistoryEntry[], runId: string): number {
    const i = hist.findIndex((e) => e.runId === runId);
    if (i < 0) {
      throw new ConfigError(
        `run ${runId} of job "${this.job}" is not in the bookmark history (it keeps the last bookmark.historySize runs); see 'tranche bookmark show ${this.job}'`,
      );
    }
    const h = hist[i]!;
    if (!h.committed) {
      throw new ConfigError(
        `run ${runId} of job "${this.job}" committed nothing (status ${h.status}, mode ${h.mode}); pick a run that committed`,
      );
    }
    return i;
  }

  /**
   * The state of some partitions after a committed run, rebuilt from the history: each committed
   * run keeps the state of the partitions it touched, so a partition's state after run R is its
   * newest snapshot at or before R. `undefined` for a partition that did not exist then.
   */
  private stateAt(hist: HistoryEntry[], i: number, pids: Iterable<string>): BookmarkState & Record<string, PartitionState | undefined> {
    const existed = new Set(asArray(hist[i]!.parts));
    const out: Record<string, PartitionState | undefined> = {};
    for (const p of pids) {
      if (!existed.has(p)) {
        out[p] = undefined;
        continue;
      }
      const snap = hist.slice(i).find((e) => e.committed && e.state && e.state[p] !== undefined);
      if (!snap) {
        throw new ConfigError(
          `the history no longer holds partition ${p}'s state after run ${hist[i]!.runId} of job "${this.job}"; raise bookmark.historySize to keep more runs`,
        );
      }
      out[p] = normalizeState({ [p]: snap.state![p] })[p];
    }
    return out as BookmarkState & Record<string, PartitionState | undefined>;
  }

  /** Partitions that committed runs after history index `i` (newer ones) touched, up to index `j`. */
  private touchedBetween(hist: HistoryEntry[], j: number, i: number): Set<string> {
    const out = new Set<string>();
    for (const e of hist.slice(j, i)) if (e.committed && e.state) for (const p of Object.keys(e.state)) out.add(p);
    return out;
  }

  /**
   * For `pause --from A --to B`: the states after A and after B of every partition that changed in
   * between (others hold nothing to replay).
   */
  async rangeStates(
    from: string,
    to: string,
  ): Promise<{ partitions: string[]; a: Record<string, PartitionState | undefined>; b: Record<string, PartitionState | undefined> }> {
    const hist = await this.history();
    const ia = this.findCommitted(hist, from);
    const ib = this.findCommitted(hist, to);
    if (ib > ia) throw new ConfigError(`--from ${from} is newer than --to ${to}; give the older run first`);
    const changed = [...this.touchedBetween(hist, ib, ia)].sort();
    return { partitions: changed, a: this.stateAt(hist, ia, changed), b: this.stateAt(hist, ib, changed) };
  }

  /** Restores the state after an earlier run (atomic; refused while a run is in progress). Output is not touched. */
  async rewind(runId: string): Promise<number> {
    const hist = await this.history();
    const i = this.findCommitted(hist, runId);
    // Only partitions that later runs changed need restoring (or deleting, if they are newer).
    const changed = this.touchedBetween(hist, 0, i);
    const target = this.stateAt(hist, i, changed);
    return this.restore(target, runId, [...changed]);
  }

  /** Deletes every piece of the job's bookmark state, history and dead letters, in one atomic step (refused while a run is in progress). */
  async reset(): Promise<void> {
    await this.restore(null, "", await this.partitions());
  }

  /** Sets the given partitions to `target` (deleting those it lacks), atomically. `null`: a reset. */
  private async restore(
    target: Record<string, PartitionState | undefined> | null,
    lastRunId: string,
    partitions: string[],
  ): Promise<number> {
    const pids = [...partitions].sort();
    const keys = [this.k.jobMeta, this.k.parts, this.k.active, this.k.history, this.k.failures, this.k.deadLetters, this.k.skipped];
    for (const p of pids) keys.push(this.k.meta(p), this.k.done(p), this.k.lease(p), this.k.leaseRun(p), this.k.retry(p));
    const res = await this.r.trancheRestoreState(
      keys.length,
      ...keys,
      lastRunId,
      target ? JSON.stringify(Object.fromEntries(Object.entries(target).filter(([, v]) => v !== undefined))) : "",
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
    return [
      this.k.parts,
      this.k.jobMeta,
      ...parts.flatMap((p) => [this.k.meta(p), this.k.done(p), this.k.lease(p), this.k.leaseRun(p), this.k.retry(p)]),
    ];
  }
}
