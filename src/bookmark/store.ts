import type { Cluster, Redis } from "ioredis";
import { globalKeys, keys, type Keys } from "./keys.js";
import { ConfigError, RunInProgressError, RunLostError } from "../errors.js";
import { bandFloor, needsBandCheck, classify, selectionFloor, type PartitionView } from "./rules.js";
import { bandEntry, BandSet, ENTRY_BYTES, entryTime, recordsHold } from "./band.js";
import { withScripts, type ScriptRedis } from "./scripts.js";
import { RunSlots, RUN_TTL_S } from "./run-slots.js";
import { DeadLetters } from "./dead-letters.js";

export { RUN_TTL_S } from "./run-slots.js";

/** Run ends kept in the events stream (about; `after` triggers and the API read it). */
export const EVENTS_MAX = 10_000;

/** A run's errors list keeps this many, newest first. */
export const MAX_RUN_ERRORS = 100;

/** One partition's cursors (as a history entry records them before and after a commit). */
export interface PartitionCursors {
  wm: number | null;
  hwm: number | null;
  floor: number | null;
  files: number;
  /** A lexical job's 'keep' (the band is kept from there up), when set. */
  keep?: number | null;
}
/** One partition's delta in a history entry: the cursors after the commit (and before it), and how many band entries it added. */
export interface PartitionDelta extends PartitionCursors {
  bandFiles?: number;
  added?: number;
  before?: PartitionCursors;
}
/** One partition's state rebuilt for a point in history (rewind, `pause --from/--to`). */
export interface PartitionState extends PartitionCursors {
  band: BandSet;
}

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
  /** "run": a run's summary; "commit": one partition commit of a run; absent in histories from before partition commits (one entry per run). */
  kind?: "run" | "commit";
  /** The committed partition (kind "commit"). */
  partition?: string;
  version?: number;
  /** What the run changed, per partition it touched (the band entries it added are in the deltas hash). */
  state?: Record<string, PartitionDelta>;
  /** Partitions with band entries in the deltas hash. */
  delta?: string[];
  /** Every partition with state after the run. */
  parts?: string[];
  [k: string]: unknown;
}

/** Lua's cjson writes an empty list as {}. */
export function asArray<T>(v: T[] | Record<string, never> | undefined | null): T[] {
  return Array.isArray(v) ? v : [];
}

/** Cursors come out of Lua with strings for numbers (and without the fields that were not set). */
export function normalizeCursors(p: Record<string, unknown> | undefined): PartitionCursors {
  const num = (v: unknown) => (v === undefined || v === null || v === "" ? null : Number(v));
  return { wm: num(p?.wm), hwm: num(p?.hwm), floor: num(p?.floor), files: Number(p?.files ?? 0), keep: num(p?.keep) };
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

/**
 * The commit script's arguments for one partition's staged files (flat: key, lm, ...): count,
 * highest time, greatest key and its time, then the band fields (sorted, 5 bytes each), the
 * records per field (u16 each), the records grouped by field, and the 15-byte entries.
 */
export function packStaged(flat: readonly string[]): (string | number | Buffer)[] {
  const n = flat.length / 2;
  let hwm = -1;
  let maxKey = "";
  const groups = new Map<string, Buffer[]>();
  const entries = Buffer.alloc(n * ENTRY_BYTES);
  for (let i = 0; i < n; i++) {
    const key = flat[2 * i]!;
    const lm = Number(flat[2 * i + 1]);
    if (lm > hwm) hwm = lm;
    if (key > maxKey) maxKey = key;
    const e = bandEntry(key, lm);
    e.field.copy(entries, i * ENTRY_BYTES);
    e.record.copy(entries, i * ENTRY_BYTES + 5);
    const f = e.field.toString("latin1");
    const g = groups.get(f);
    if (g) g.push(e.record);
    else groups.set(f, [e.record]);
  }
  const fields = [...groups.keys()].sort();
  const counts = Buffer.alloc(fields.length * 4);
  fields.forEach((f, i) => counts.writeUInt32BE(groups.get(f)!.length, i * 4));
  return [
    n,
    hwm,
    maxKey,
    hwm,
    Buffer.from(fields.join(""), "latin1"),
    counts,
    Buffer.concat(fields.flatMap((f) => groups.get(f)!)),
    entries,
  ];
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
   * Reads what the planner needs for one partition, in one MULTI: watermark, floor, leases (live
   * or stale by Redis' clock) and retried dead letters. The band is not read: {@link newFiles}
   * asks it about one listing page at a time, so planning memory does not grow with the band.
   * The view and the band are read at different moments, so a concurrent commit can make a file
   * look new that it just committed: the lease script, which checks band and leases atomically,
   * refuses such a file, so no run takes it.
   */
  async loadView(partition: string, bandMs: number, o: { keep?: boolean } = {}): Promise<PartitionView> {
    const res = (await this.r
      .multi()
      .hmget(this.k.meta(partition), "wm", "floor", "keep")
      .hgetall(this.k.leaseRun(partition))
      .zrange(this.k.active, 0, -1, "WITHSCORES")
      .hkeys(this.k.retry(partition))
      .time()
      .exec())!;
    const [wmRaw, floorRaw, keepRaw] = res[0]![1] as (string | null)[];
    const leaseOwners = res[1]![1] as Record<string, string>;
    const activeFlat = res[2]![1] as string[];
    const retry = new Set(res[3]![1] as string[]);
    const [sec, usec] = res[4]![1] as [string, string];
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const wm = wmRaw === null || wmRaw === undefined ? null : Number(wmRaw);
    const floorAt = floorRaw === null || floorRaw === undefined ? null : Number(floorRaw);
    const live = new Set<string>();
    for (let i = 0; i < activeFlat.length; i += 2) if (Number(activeFlat[i + 1]) > now) live.add(activeFlat[i]!);
    const liveLeases = new Map<string, string>();
    const staleLeases = new Map<string, string>();
    for (const [k, owner] of Object.entries(leaseOwners)) (live.has(owner) ? liveLeases : staleLeases).set(k, owner);
    const keep = o.keep ? { keep: keepRaw === null || keepRaw === undefined ? null : Number(keepRaw) } : {};
    return { wm, bandMs, floor: floorAt, liveLeases, staleLeases, retry, ...keep };
  }

  /**
   * Whether the band of a partition holds each file at its last-modified time or later: one
   * HMGET of the files' band fields (a listing page's worth at a time).
   */
  async bandHolds(partition: string, files: readonly { key: string; lastModified: number }[]): Promise<boolean[]> {
    if (files.length === 0) return [];
    const entries = files.map((f) => bandEntry(f.key, f.lastModified));
    const values = await this.r.hmgetBuffer(this.k.band(partition), ...entries.map((e) => e.field));
    return entries.map((e, i) => recordsHold(values[i], e.hash, e.ms));
  }

  /** Which of a page's files of one partition are new for run `runId` (see rules.classify). */
  async newFiles(
    partition: string,
    view: PartitionView,
    files: readonly { key: string; lastModified: number }[],
    runId: string,
  ): Promise<boolean[]> {
    const ask = files.filter((f) => needsBandCheck(view, f));
    const held = await this.bandHolds(partition, ask);
    const inBand = new Set<{ key: string; lastModified: number }>();
    ask.forEach((f, i) => held[i] && inBand.add(f));
    return files.map((f) => classify(view, f, runId, inBand.has(f)) === "new");
  }

  /** Leases files of one partition to a run; returns the keys it got. */
  async lease(
    partition: string,
    runId: string,
    files: readonly CommitFile[],
    bandMs: number,
    o: { keep?: boolean } = {},
  ): Promise<Set<string>> {
    const got = new Set<string>();
    for (let i = 0; i < files.length; i += 500) {
      const args: (string | number)[] = [runId, bandMs, partition, RUN_TTL_S, o.keep ? "1" : ""];
      for (const f of files.slice(i, i + 500)) args.push(f.key, f.lastModified);
      const taken = await this.r.trancheLeaseFiles(
        this.k.lease(partition),
        this.k.leaseRun(partition),
        this.k.active,
        this.k.band(partition),
        this.k.meta(partition),
        this.k.leasedParts(runId),
        this.k.retry(partition),
        this.k.runLeased(runId, partition),
        this.k.robbed(partition),
        this.k.everLeased,
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
    const entries = files.map((f) => bandEntry(f.key, f.lastModified));
    for (const [i, f] of files.entries()) {
      pipe.hgetBuffer(this.k.band(partition), entries[i]!.field);
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
      const inBand = recordsHold(res[4 * i]![1] as Buffer | null, entries[i]!.hash, entries[i]!.ms);
      const retried = Number(res[4 * i + 3]![1]) === 1;
      if (skipCommitted && !retried && inBand) return false;
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
   * Commits what the run staged in one partition, in one atomic step, and pushes the commit (with
   * the partition's state after it) on the job's history (see commit-partition.lua). Idempotent:
   * committing a partition again returns its version with `again`. Throws RunLostError when the
   * run no longer holds its slot or the bookmark was reset or rewound since it started.
   */
  async commitPartition(args: {
    runId: string;
    partition: string;
    bandMs: number;
    maxFilesInBand: number;
    historySize: number;
    /** The history entry of this commit (the script adds version, state, delta, parts). */
    entry: object;
    /** The bookmark epoch read when the run started. */
    epoch: string;
    /** A lexical job's band keeping (see commit-partition.lua): "lexical" for a lexical run, "full" for its full listing. */
    keepMode?: "" | "lexical" | "full" | "events";
    /** With keepMode "full": the band edge the run planned with in this partition ('keep' never goes above it). */
    plannedEdge?: number;
    /** A job with output.catalog: the registration of the output partitions written, queued in the same atomic step (docs/catalog.md). */
    registration?: object;
  }): Promise<{ version: number; runs: number; again: boolean }> {
    const p = args.partition;
    for (let attempt = 0; attempt < 5; attempt++) {
      const keys = [
        this.k.jobMeta,
        this.k.parts,
        this.k.history,
        this.k.active,
        this.k.stagedParts(args.runId),
        this.k.leasedParts(args.runId),
        this.k.deltas,
        this.k.lexical,
        this.k.run(args.runId),
        ...this.partitionKeys(p),
        this.k.staged(args.runId, p),
        this.k.retry(p),
        this.k.runLeased(args.runId, p),
        this.k.robbed(p),
        ...(args.registration ? [this.k.catalogReg, this.k.catalogDue] : []),
      ];
      // What the script needs of the staged files, computed here from one read of the run's
      // staged set, so the script neither hashes nor walks the files (it checks the count: a
      // batch staging in between makes it answer 'parts', and we retry).
      const flat = await this.r.zrange(this.k.staged(args.runId, p), 0, -1, "WITHSCORES");
      const planned = args.plannedEdge;
      const argv = [
        args.runId,
        args.bandMs,
        args.maxFilesInBand,
        args.historySize,
        JSON.stringify(args.entry),
        args.epoch,
        args.keepMode ?? "",
        p,
        ...packStaged(flat),
        planned !== undefined && Number.isFinite(planned) ? Math.floor(planned) : "",
        ...(args.registration ? [JSON.stringify(args.registration)] : []),
      ];
      const [ok, a, b, again] = await this.r.trancheCommitPartition(keys.length, ...keys, ...argv);
      if (Number(ok) === 1) return { version: Number(a), runs: Number(b), again: again === "again" };
      if (a === "parts") continue; // a late duplicate batch staged meanwhile: retry with it
      throw new RunLostError(
        this.job,
        args.runId,
        a === "slot"
          ? "it no longer holds its run slot (it ended, or Redis lost its data), so other runs may have taken its files"
          : "the bookmark was reset or rewound while it ran",
      );
    }
    throw new RunLostError(this.job, args.runId, `its batches kept staging into partition ${JSON.stringify(p)} while it committed`);
  }

  /**
   * Commits every partition the run staged or leased in, one after another (each atomically), then
   * pushes the run's summary: what a run's commit steps and its finish step do, in one call (for
   * tools and tests; runs commit through src/run/commit-step.ts).
   */
  async commitRun(args: {
    runId: string;
    bandMs: number;
    maxFilesInBand: number;
    historySize: number;
    summary: object;
    epoch?: string;
    keepMode?: "" | "lexical" | "full" | "events";
    plannedEdges?: ReadonlyMap<string, number>;
  }): Promise<{ version: number; runs: number }> {
    const epoch = args.epoch ?? (await this.slots.epoch());
    const touched = (await this.r.sunion(this.k.stagedParts(args.runId), this.k.leasedParts(args.runId))).sort();
    let last = { version: Number((await this.r.hget(this.k.jobMeta, "version")) ?? 0), runs: 0 };
    for (const p of touched) {
      last = await this.commitPartition({
        runId: args.runId,
        partition: p,
        bandMs: args.bandMs,
        maxFilesInBand: args.maxFilesInBand,
        historySize: args.historySize,
        entry: { runId: args.runId, job: this.job },
        epoch,
        keepMode: args.keepMode,
        plannedEdge: args.plannedEdges?.get(p),
      });
    }
    await this.recordRun({ ...args.summary, committed: touched.length > 0, version: last.version }, args.historySize);
    return { version: last.version, runs: Number((await this.r.hget(this.k.jobMeta, "runs")) ?? 0) };
  }

  /**
   * Pushes a run's summary on the history (after its partition commits, if any: `committed` says
   * whether it made any), once per run id, and with it `event` on the events stream. With
   * `history: false` (a reprocess run) only the event is published.
   */
  async recordRun(summary: object, historySize: number, event?: Record<string, string>, o: { history?: boolean } = {}): Promise<boolean> {
    const n = await this.r.trancheRecordRun(
      this.k.history,
      this.k.deltas,
      this.k.jobMeta,
      this.k.run((summary as { runId?: string }).runId ?? "none"),
      globalKeys(this.prefix).events,
      JSON.stringify({ ...summary, kind: "run", committed: (summary as { committed?: unknown }).committed === true }),
      historySize,
      event ? JSON.stringify(event) : "",
      EVENTS_MAX,
      o.history === false ? "1" : "",
    );
    return Number(n) === 1;
  }

  /** The job's runs (their summaries), newest first (as many as `bookmark.historySize` keeps). */
  async history(): Promise<HistoryEntry[]> {
    return (await this.historyEntries()).filter((e) => e.kind !== "commit");
  }

  /** Every history entry, newest first: run summaries and the partition commits before them. */
  async historyEntries(): Promise<HistoryEntry[]> {
    return (await this.r.lrange(this.k.history, 0, -1)).map((h) => JSON.parse(h) as HistoryEntry);
  }

  /**
   * A committed run's place in the history: its newest partition commit (the state after it holds
   * every partition the run committed). A clear error when it is not there or committed nothing.
   */
  private findCommitted(hist: HistoryEntry[], runId: string): number {
    const i = hist.findIndex((e) => e.runId === runId && e.committed && e.kind !== "run");
    if (i >= 0) return i;
    const h = hist.find((e) => e.runId === runId);
    if (!h) {
      throw new ConfigError(
        `run ${runId} of job "${this.job}" is not in the bookmark history (it keeps the last bookmark.historySize runs); see 'tranche bookmark show ${this.job}'`,
      );
    }
    throw new ConfigError(
      `run ${runId} of job "${this.job}" committed nothing (status ${String(h.state ?? h.status)}, mode ${h.mode}); pick a run that committed`,
    );
  }

  /**
   * What a run committed, by its history: its run summary's state and the partitions it committed
   * (a run that ended FAILED, STOPPED or TIMEOUT may have committed some of its partitions only).
   */
  async committedPartitions(runId: string): Promise<{ state: string | null; partitions: string[]; planned: string[] }> {
    const hist = await this.historyEntries();
    const run = hist.find((e) => e.runId === runId && e.kind === "run");
    const partitions = hist.filter((e) => e.runId === runId && e.committed && e.kind === "commit").map((e) => String(e.partition));
    const planned = Array.isArray(run?.partitions) ? (run.partitions as { partition: string }[]).map((p) => p.partition) : partitions;
    return { state: run ? String(run.state ?? run.status) : null, partitions, planned };
  }

  /** The band entries (concatenated, 15 bytes each) committed runs added, per `<runId>|<partition>` asked. */
  private async deltaBlobs(fields: string[]): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (let i = 0; i < fields.length; i += 1000) {
      const chunk = fields.slice(i, i + 1000);
      const vals = await this.r.hmgetBuffer(this.k.deltas, ...chunk);
      chunk.forEach((f, j) => vals[j] && out.set(f, vals[j]!));
    }
    return out;
  }

  /**
   * How to turn each partition's current state into its state after history entry `i`: its
   * cursors then (from the newest committed delta at or before `i` that touched it; `null` when
   * the partition did not exist then), the band entries later runs added (to remove) and the
   * entries earlier runs added at or above the band edge then (to add back where pruning dropped
   * them). Partitions only later runs touched need nothing. Throws when the history no longer
   * holds a partition's cursors; `incomplete` names partitions whose band edge moved since while
   * committed runs were trimmed off the history (files of those runs may be taken again).
   */
  private async rebuildPlan(
    hist: HistoryEntry[],
    i: number,
    pids: Iterable<string>,
    bandMs: number,
  ): Promise<{
    target: Map<string, { cursors: PartitionCursors | null; edge: number | null; remove: Buffer; add: Buffer }>;
    incomplete: string[];
  }> {
    const existed = new Set(asArray(hist[i]!.parts));
    const trimmed = (await this.r.hget(this.k.jobMeta, "historyTrimmed")) !== null;
    const current = new Map<string, PartitionCursors>();
    const target = new Map<string, { cursors: PartitionCursors | null; edge: number | null; remove: Buffer; add: Buffer }>();
    const incomplete: string[] = [];
    const want: string[] = [];
    const plan: { p: string; cursors: PartitionCursors | null; newer: HistoryEntry[]; older: HistoryEntry[] }[] = [];
    for (const p of pids) {
      const touches = (e: HistoryEntry) => e.committed && e.state !== undefined && e.state[p] !== undefined;
      const newer = hist.slice(0, i).filter(touches);
      const older = hist.slice(i).filter(touches);
      let cursors: PartitionCursors | null = null;
      if (existed.has(p)) {
        if (older.length === 0) {
          throw new ConfigError(
            `the history no longer holds partition ${p}'s state after run ${hist[i]!.runId} of job "${this.job}"; raise bookmark.historySize to keep more runs`,
          );
        }
        cursors = normalizeCursors(older[0]!.state![p] as unknown as Record<string, unknown>);
      }
      plan.push({ p, cursors, newer, older });
      for (const e of [...newer, ...(cursors ? older : [])]) if (asArray(e.delta).includes(p)) want.push(`${e.runId}|${p}`);
    }
    const blobs = await this.deltaBlobs(want);
    if (plan.length) {
      const pipe = this.r.pipeline();
      for (const { p } of plan) pipe.hmget(this.k.meta(p), "wm", "floor");
      const res = (await pipe.exec())!;
      plan.forEach(({ p }, j) => {
        const [wm, floor] = res[j]![1] as (string | null)[];
        current.set(p, normalizeCursors({ wm, floor }));
      });
    }
    for (const { p, cursors, newer, older } of plan) {
      const remove = Buffer.concat(newer.map((e) => blobs.get(`${e.runId}|${p}`) ?? Buffer.alloc(0)));
      if (!cursors) {
        target.set(p, { cursors: null, edge: null, remove, add: Buffer.alloc(0) });
        continue;
      }
      // A lexical job kept its band from 'keep' up: rebuild (and prune) from there.
      const edge = selectionFloor({ wm: cursors.wm, bandMs, floor: cursors.floor, keep: cursors.keep ?? null });
      const add: Buffer[] = [];
      for (const e of older) {
        const b = blobs.get(`${e.runId}|${p}`);
        if (!b) continue;
        for (let o = 0; o + ENTRY_BYTES <= b.length; o += ENTRY_BYTES)
          if (entryTime(b, o) >= edge) add.push(b.subarray(o, o + ENTRY_BYTES));
      }
      const now = current.get(p)!;
      if (trimmed && bandFloor({ wm: now.wm, bandMs, floor: now.floor }) > edge) incomplete.push(p);
      target.set(p, { cursors, edge: Number.isFinite(edge) ? edge : null, remove, add: Buffer.concat(add) });
    }
    return { target, incomplete };
  }

  /** Partitions that committed runs after history index `i` (newer ones) touched, up to index `j`. */
  private touchedBetween(hist: HistoryEntry[], j: number, i: number): Set<string> {
    const out = new Set<string>();
    for (const e of hist.slice(j, i)) if (e.committed && e.state) for (const p of Object.keys(e.state)) out.add(p);
    return out;
  }

  /**
   * For `pause --from A --to B`: the states after A and after B of every partition that changed in
   * between (others hold nothing to replay), rebuilt in memory from the current band and the
   * history deltas. (This holds those partitions' bands in memory, unlike a normal run.)
   */
  async rangeStates(
    from: string,
    to: string,
    bandMs: number,
  ): Promise<{
    partitions: string[];
    a: Record<string, PartitionState | undefined>;
    b: Record<string, PartitionState | undefined>;
    incomplete: string[];
  }> {
    const hist = await this.historyEntries();
    const ia = this.findCommitted(hist, from);
    const ib = this.findCommitted(hist, to);
    if (ib > ia) throw new ConfigError(`--from ${from} is newer than --to ${to}; give the older run first`);
    const changed = [...this.touchedBetween(hist, ib, ia)].sort();
    const pa = await this.rebuildPlan(hist, ia, changed, bandMs);
    const pb = await this.rebuildPlan(hist, ib, changed, bandMs);
    const a: Record<string, PartitionState | undefined> = {};
    const b: Record<string, PartitionState | undefined> = {};
    for (const p of changed) {
      const band = new BandSet();
      band.addHash((await this.r.callBuffer("HGETALL", this.k.band(p))) as Buffer[]);
      for (const [plan, out] of [
        [pa, a],
        [pb, b],
      ] as const) {
        const t = plan.target.get(p)!;
        if (!t.cursors) {
          out[p] = undefined;
          continue;
        }
        const copy = new BandSet();
        copy.merge(band, t.edge ?? Number.NEGATIVE_INFINITY);
        copy.removeEntries(t.remove);
        copy.addEntries(t.add);
        out[p] = { ...t.cursors, band: copy };
      }
    }
    return { partitions: changed, a, b, incomplete: [...new Set([...pa.incomplete, ...pb.incomplete])] };
  }

  /**
   * Restores the state after an earlier run (atomic; refused while a run is in progress), rebuilt
   * from the current state and the history deltas. Output is not touched. `incomplete`: partitions
   * where runs trimmed off the history may have committed files that will be taken again.
   */
  async rewind(runId: string, bandMs: number): Promise<{ version: number; incomplete: string[] }> {
    const hist = await this.historyEntries();
    const i = this.findCommitted(hist, runId);
    // Only partitions that later runs changed need restoring (or deleting, if they are newer).
    const changed = [...this.touchedBetween(hist, 0, i)].sort();
    const { target, incomplete } = await this.rebuildPlan(hist, i, changed, bandMs);
    return { version: await this.restore(target, runId), incomplete };
  }

  /** Deletes every piece of the job's bookmark state, history and dead letters, in one atomic step (refused while a run is in progress). */
  async reset(): Promise<void> {
    const target = new Map((await this.partitions()).map((p) => [p, null] as const));
    await this.restore(target, "");
  }

  /** Sets the given partitions to their targets (deleting those without cursors), atomically. A `null` target everywhere with lastRunId "": a reset. */
  private async restore(
    target: Map<string, { cursors: PartitionCursors | null; edge: number | null; remove: Buffer; add: Buffer } | null>,
    lastRunId: string,
  ): Promise<number> {
    const pids = [...target.keys()].sort();
    const keys = [
      this.k.jobMeta,
      this.k.parts,
      this.k.active,
      this.k.history,
      this.k.failures,
      this.k.deadLetters,
      this.k.skipped,
      this.k.deltas,
      this.k.lexical,
      this.k.everLeased,
    ];
    const argv: (string | Buffer)[] = [lastRunId, lastRunId === "" ? "reset" : "rewind"];
    for (const p of pids) {
      keys.push(...this.partitionKeys(p), this.k.retry(p), this.k.robbed(p));
      const t = target.get(p);
      argv.push(p, t?.cursors ? JSON.stringify({ ...t.cursors, edge: t.edge }) : "", t?.remove ?? "", t?.add ?? "");
    }
    const res = await this.r.trancheRestoreState(keys.length, ...keys, ...argv);
    if (Number(res[0]) !== 1) throw new RunInProgressError(this.job, res.slice(1).map(String));
    // The backlog figures the last listing left described the bookmark before: `status` lists anew.
    await this.r.del(this.k.backlog);
    return Number(res[1]);
  }

  /**
   * The lexical listing's cursor: the greatest committed key whose run's files all lie below the
   * band edge of every partition and below every lease (settled), or null; and whether any leased
   * file lies at or before it. Folds the settled candidates into that one.
   */
  async lexicalCursor(bandMs: number): Promise<{ cursor: string | null; leasedUpToCursor: boolean }> {
    // Every partition with state or leases: a partition never committed but holding leases (a
    // run in flight, or one that failed) has no edge yet, so nothing is settled.
    const parts = (await this.r.sunion(this.k.parts, this.k.everLeased)).sort();
    if (parts.length === 0) return { cursor: null, leasedUpToCursor: false };
    const pipe = this.r.pipeline();
    for (const p of parts) pipe.hmget(this.k.meta(p), "wm", "floor").zrange(this.k.lease(p), 0, 0, "WITHSCORES").hkeys(this.k.leaseRun(p));
    const res = (await pipe.exec())!;
    let edge = Number.POSITIVE_INFINITY;
    const leasedKeys: string[] = [];
    parts.forEach((_, i) => {
      const v = res[3 * i]![1] as (string | null)[];
      const minLease = res[3 * i + 1]![1] as string[];
      leasedKeys.push(...(res[3 * i + 2]![1] as string[]));
      const c = normalizeCursors({ wm: v[0], floor: v[1] });
      if (c.wm === null && minLease.length === 0) return; // nothing committed, nothing leased
      edge = Math.min(edge, bandFloor({ wm: c.wm, bandMs, floor: c.floor }));
      if (minLease.length) edge = Math.min(edge, Number(minLease[1]));
    });
    if (!Number.isFinite(edge)) return { cursor: null, leasedUpToCursor: false };
    const settled = await this.r.zrangebyscore(this.k.lexical, "-inf", `(${edge}`, "WITHSCORES");
    let best: string | null = null;
    let bestAt = 0;
    for (let i = 0; i < settled.length; i += 2) {
      if (best === null || settled[i]! > best) {
        best = settled[i]!;
        bestAt = Number(settled[i + 1]);
      }
    }
    if (best !== null && settled.length > 2) {
      await this.r.multi().zremrangebyscore(this.k.lexical, "-inf", `(${edge}`).zadd(this.k.lexical, bestAt, best).exec();
    }
    // Leased files at or before the cursor (of a run that failed) need a full listing to be taken again.
    return { cursor: best, leasedUpToCursor: best !== null && leasedKeys.some((k) => k <= best) };
  }

  /** Moves each partition's 'keep' up to the given band edge (never down; see docs/bookmark.md). */
  async advanceKeep(edges: ReadonlyMap<string, number>): Promise<void> {
    for (const [p, edge] of edges) if (Number.isFinite(edge)) await this.r.trancheAdvanceKeep(this.k.meta(p), Math.floor(edge));
  }

  /**
   * After a complete listing: moves each partition's watermark over the files it found all done up
   * to a time (advance-watermark-6.lua), absorbing what event-fed runs added to the band. Returns
   * the partitions that moved.
   */
  async advanceWatermarks(coveredUpTo: ReadonlyMap<string, number>, epoch: string, bandMs: number): Promise<string[]> {
    const moved: string[] = [];
    for (const [p, t] of coveredUpTo) {
      if (!Number.isFinite(t)) continue;
      const [meta, band, bidx, lease] = this.partitionKeys(p);
      const n = await this.r.trancheAdvanceWatermark(
        this.k.jobMeta,
        meta!,
        band!,
        bidx!,
        lease!,
        this.k.parts,
        epoch,
        Math.floor(t),
        bandMs,
        p,
      );
      if (Number(n) === 1) moved.push(p);
    }
    return moved;
  }

  /** Whether dead letters were put back for retry in any partition (a lexical listing must then list in full). */
  async retryPending(): Promise<boolean> {
    const parts = await this.partitions();
    for (let i = 0; i < parts.length; i += 500) {
      if ((await this.r.exists(...parts.slice(i, i + 500).map((p) => this.k.retry(p)))) > 0) return true;
    }
    return false;
  }

  /** A partition's cursors, band and leases: the keys the commit, restore and size scripts all pass first. */
  private partitionKeys(p: string): string[] {
    return [this.k.meta(p), this.k.band(p), this.k.bandIndex(p), this.k.lease(p), this.k.leaseRun(p)];
  }

  /** The connection (for the few reads outside the bookmark proper: listing records). */
  redisOf(): Redis | Cluster {
    return this.r;
  }

  async partitions(): Promise<string[]> {
    return (await this.r.smembers(this.k.parts)).sort();
  }

  async summary(): Promise<{ version: number; runs: number; lastRunId: string | null; partitions: PartitionSummary[] }> {
    const [jm, parts] = await Promise.all([this.r.hgetall(this.k.jobMeta), this.partitions()]);
    const pipe = this.r.pipeline();
    for (const p of parts) {
      pipe.hgetall(this.k.meta(p));
      pipe.zcard(this.k.lease(p));
    }
    const res = parts.length ? (await pipe.exec())! : [];
    const num = (v: string | undefined) => (v === undefined ? null : Number(v));
    return {
      version: Number(jm.version ?? 0),
      runs: Number(jm.runs ?? 0),
      lastRunId: jm.lastRunId ?? null,
      partitions: parts.map((p, i) => {
        const m = res[2 * i]![1] as Record<string, string>;
        return {
          partition: p,
          wm: num(m.wm),
          hwm: num(m.hwm),
          floor: num(m.floor),
          bandFiles: Number(m.bandn ?? 0),
          leased: Number(res[2 * i + 1]![1]),
          files: Number(m.files ?? 0),
          lastRunId: m.lastRunId ?? null,
          updatedAt: num(m.updatedAt),
        };
      }),
    };
  }

  /** Every key of this job's bookmark state (for MEMORY USAGE); the history and its deltas are {@link historyKeys}. */
  async stateKeys(): Promise<string[]> {
    const parts = await this.partitions();
    return [this.k.parts, this.k.jobMeta, ...parts.flatMap((p) => [...this.partitionKeys(p), this.k.retry(p)])];
  }

  /** The history's keys: run summaries and the band entries each committed run added. */
  historyKeys(): string[] {
    return [this.k.history, this.k.deltas];
  }
}
