import { randomBytes } from "node:crypto";
import { RUN_TTL_S } from "../bookmark/run-slots.js";
import { runKeys } from "../bookmark/keys.js";
import { BookmarkStore } from "../bookmark/store.js";
import { resolveBound, type Bound } from "../config/bounds.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import { mapLimit } from "../map-limit.js";
import type { PlannedFile } from "../planner/batches.js";
import { compareCandidates } from "../planner/select.js";
import { stepId } from "../queue/batch-job.js";
import { openSource } from "../source/open.js";
import { compileExclusions, parsePartition } from "../source/partitions.js";
import type { SourceObject } from "../source/types.js";
import type { PlanStep } from "./plan-step.js";
import type { RunRecord } from "./run-record.js";
import { newRunId } from "./run-id.js";
import { startRun } from "./start-run.js";
import type { StepContext } from "./step-context.js";
import type { RunState } from "./states.js";

/** Which files to reprocess: the criteria given must all hold. */
export interface ReprocessSpec {
  /** Partition values as `k=v`: several values of one key are alternatives, different keys must all match. */
  partitions?: string[];
  /** Last-modified at or after this instant (ISO 8601, or epoch ms as a number or a string of digits). */
  since?: string | number;
  /** Last-modified before this instant. */
  until?: string | number;
  /** Exactly these keys (relative to the source root). */
  keys?: string[];
}

export interface ReprocessResult {
  reprocessId: string;
  /** The first run, or null when no file matched (the others are chained: each starts when the previous ends). */
  runId: string | null;
  state: "STARTING" | "WAITING" | null;
  files: number;
  bytes: number;
  /** Runs the reprocess needs at the job's bound. */
  runs: number;
  /** Keys of `keys` that do not exist in the source. */
  missing: string[];
  /** Files a live run holds now: skipped (reprocess them once it ended). */
  leased: string[];
}

/** A reprocess request's files are kept this long (as run records). */
const REQUEST_TTL_S = RUN_TTL_S;
const LOOKUPS = 16;

/** A reprocess criterion that cannot be used: E_CONFIG (exit 2; 400 on the API, naming the body field). */
export class ReprocessSpecError extends ConfigError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** An instant given as ISO 8601 or epoch milliseconds. */
function instant(v: string | number | undefined, name: "since" | "until"): number | undefined {
  if (v === undefined || v === "") return undefined;
  const t = typeof v === "number" ? v : /^\d+$/.test(v.trim()) ? Number(v.trim()) : Date.parse(v);
  if (!Number.isFinite(t))
    throw new ReprocessSpecError(
      `body/${name}`,
      `${name} (--${name}): ${JSON.stringify(v)} is not a time; give ISO 8601 (2024-05-01T00:00:00Z) or epoch milliseconds`,
    );
  return t;
}

/** `k=v` criteria → key → accepted values, checked against the job's partition keys. */
function partitionCriteria(given: readonly string[], partitionKeys: readonly string[], job: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const p of given) {
    const eq = p.indexOf("=");
    if (eq <= 0)
      throw new ReprocessSpecError(
        "body/partitions",
        `partition ${JSON.stringify(p)} (--partition, partitions): give key=value, e.g. ${partitionKeys[0] ?? "dt"}=2024-01-01`,
      );
    const k = p.slice(0, eq);
    if (!partitionKeys.includes(k))
      throw new ReprocessSpecError(
        "body/partitions",
        `partition ${JSON.stringify(p)} (--partition, partitions): job "${job}" has ${partitionKeys.length ? `partition keys ${partitionKeys.join(", ")}` : "no partition keys (source.partitionKeys)"}, not ${JSON.stringify(k)}`,
      );
    out.set(k, (out.get(k) ?? new Set()).add(p.slice(eq + 1)));
  }
  return out;
}

/** Cuts files (oldest first) into runs within the bound; a file larger than a size bound is a run of its own. */
export function chunkByBound<T extends { size: number }>(files: readonly T[], bound: Bound): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const f of files) {
    const full = bound.kind === "files" ? cur.length >= bound.limit : cur.length > 0 && bytes + f.size > bound.limit;
    if (full) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(f);
    bytes += f.size;
  }
  if (cur.length) out.push(cur);
  return out;
}

/** Which of the files live runs hold (a lease whose owner still has its slot). */
async function liveLeased(ctx: StepContext, store: BookmarkStore, files: readonly PlannedFile[]): Promise<Set<string>> {
  const out = new Set<string>();
  const byPart = new Map<string, PlannedFile[]>();
  for (const f of files) byPart.set(f.partition, [...(byPart.get(f.partition) ?? []), f]);
  const live = new Map<string, boolean>();
  const now = Date.now();
  for (const [p, fs] of byPart) {
    for (let i = 0; i < fs.length; i += 1000) {
      const chunk = fs.slice(i, i + 1000);
      const owners = await ctx.redis.hmget(store.k.leaseRun(p), ...chunk.map((f) => f.key));
      for (let j = 0; j < chunk.length; j++) {
        const o = owners[j];
        if (!o) continue;
        if (!live.has(o)) live.set(o, Number((await ctx.redis.zscore(store.k.active, o)) ?? 0) > now);
        if (live.get(o)) out.add(`${p}\u0000${chunk[j]!.key}`);
      }
    }
  }
  return out;
}

/**
 * Reprocesses exactly the files a spec names, through the queue (docs/reprocess.md): lists them
 * (or looks the given keys up), skips files live runs hold, cuts them into runs within the job's
 * bound, and starts the first run (mode `reprocess`; each run starts the next when it ends).
 * Outputs are overwritten in place; the bookmark never moves. Runs queue (WAITING) behind the
 * job's other runs under maxConcurrentRuns.
 */
export async function startReprocess(ctx: StepContext, job: string, spec: ReprocessSpec, trigger = "manual"): Promise<ReprocessResult> {
  const jc = ctx.cfg.jobs[job]!;
  if (jc.source.path === undefined)
    throw new ConfigError(`job "${job}" reads a catalog table (source.catalog): reprocessing is not supported for catalog sources yet`);
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, job);
  const parts = partitionCriteria(spec.partitions ?? [], jc.source.partitionKeys, job);
  const since = instant(spec.since, "since");
  const until = instant(spec.until, "until");
  if (since !== undefined && until !== undefined && since >= until)
    throw new ReprocessSpecError("body/until", "since (--since) must be before until (--until)");
  if (spec.keys && spec.keys.length === 0)
    throw new ReprocessSpecError("body/keys", "keys (--keys-from) is empty: give at least one key, or leave keys out");
  if (!parts.size && since === undefined && until === undefined && !spec.keys)
    throw new ReprocessSpecError(
      "body",
      "say what to reprocess: partitions (--partition k=v), since/until (--since/--until) or keys (--keys-from FILE); given together they narrow",
    );
  const source = await openSource(jc.source.path, ctx.cfg.s3, { recurse: jc.source.recurse });
  await source.check();
  const matches = (o: SourceObject): PlannedFile | null => {
    if (since !== undefined && o.lastModified < since) return null;
    if (until !== undefined && o.lastModified >= until) return null;
    const p = parsePartition(o.key, jc.source.partitionKeys);
    for (const [k, vs] of parts) if (!vs.has(p.values[k] ?? "\u0000")) return null;
    return { key: o.key, size: o.size, lastModified: o.lastModified, etag: o.etag, partition: p.id };
  };
  const files: PlannedFile[] = [];
  const missing: string[] = [];
  if (spec.keys) {
    const keys = [...new Set(spec.keys.map((k) => k.trim().replace(/^\/+/, "")).filter((k) => k !== ""))];
    if (!source.stat) throw new ConfigError(`job "${job}": its source cannot look objects up one by one`);
    const found = await mapLimit(keys, LOOKUPS, (k) => source.stat!(k));
    found.forEach((o, i) => {
      if (o === null) missing.push(keys[i]!);
      else {
        const f = matches(o);
        if (f) files.push(f);
      }
    });
  } else {
    const excluded = compileExclusions(jc.source.exclusions);
    // Only the folders of the first partition key's values are listed when it is given.
    const first = jc.source.partitionKeys[0];
    const unders =
      first && parts.has(first) && jc.source.partitionKeys.length ? [...parts.get(first)!].map((v) => `${first}=${v}/`) : [undefined];
    let listed = 0;
    for (const under of unders)
      for await (const page of source.list({ under })) {
        listed += page.length;
        for (const o of page) {
          if (excluded(o.key)) continue;
          const f = matches(o);
          if (f) files.push(f);
        }
      }
    ctx.log.debug("reprocess listed", { job, listed, matched: files.length });
  }
  files.sort(compareCandidates);
  const held = await liveLeased(ctx, store, files);
  const leased = files.filter((f) => held.has(`${f.partition}\u0000${f.key}`));
  const take = files.filter((f) => !held.has(`${f.partition}\u0000${f.key}`));
  const chunks = chunkByBound(take, resolveBound({ job: jc.source }).bound);
  const id = `rp-${new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14)}-${randomBytes(3).toString("hex")}`;
  const bytes = take.reduce((s, f) => s + f.size, 0);
  const base = { reprocessId: id, files: take.length, bytes, runs: chunks.length, missing, leased: leased.map((f) => f.key) };
  if (!chunks.length) {
    ctx.log.info("reprocess: nothing to do", { job, reprocessId: id, missing: missing.length, leased: leased.length });
    return { ...base, runId: null, state: null };
  }
  const m = ctx.redis.multi();
  chunks.forEach((c, n) => m.set(store.k.reprocessChunk(id, n), JSON.stringify(c), "EX", REQUEST_TTL_S));
  m.hset(store.k.reprocess(id), {
    job,
    files: take.length,
    bytes,
    chunks: chunks.length,
    spec: JSON.stringify(spec.keys ? { ...spec, keys: spec.keys.length } : spec),
    trigger,
    createdAt: Date.now(),
    state: "RUNNING",
  });
  m.expire(store.k.reprocess(id), REQUEST_TTL_S);
  await m.exec();
  const first = await startChunk(ctx, job, id, 0, trigger);
  ctx.log.info("reprocess started", {
    job,
    reprocessId: id,
    files: take.length,
    runs: chunks.length,
    missing: missing.length,
    leased: leased.length,
  });
  return { ...base, runId: first?.runId ?? null, state: first?.state ?? null };
}

/** Starts run `n` of a reprocess request (once: the firing is claimed). */
async function startChunk(ctx: StepContext, job: string, id: string, n: number, trigger: string) {
  // The run's id is reserved first: a step that dies while starting it is retried and starts the
  // same run (startRun with a reserved id is idempotent), never none and never two.
  const key = runKeys(ctx.cfg.prefix).reprocess(id);
  await ctx.redis.hsetnx(key, `run:${n}`, newRunId());
  const runId = (await ctx.redis.hget(key, `run:${n}`))!;
  const r = await startRun(ctx, { job, trigger, whenBusy: "queue", firing: `reprocess:${id}:${n}`, reprocess: { id, chunk: n }, runId });
  if (!r.started) return null;
  await ctx.redis.hset(key, "next", n);
  return r;
}

/**
 * When a reprocess run ends: starts the next run of its request, unless the run was stopped, timed
 * out or could not start (the request then ends there; `tranche reprocess` again for the rest).
 */
export async function continueReprocess(ctx: StepContext, job: string, rec: RunRecord, state: RunState): Promise<void> {
  const id = rec.reprocess!;
  const n = Number(rec.chunk ?? 0) + 1;
  const key = runKeys(ctx.cfg.prefix).reprocess(id);
  const chunks = Number((await ctx.redis.hget(key, "chunks")) ?? 0);
  if (state === "STOPPED" || state === "TIMEOUT" || state === "ERROR") {
    await ctx.redis.hset(key, { state, endedAt: Date.now() });
    if (n < chunks) ctx.log.warn("reprocess ended early: its run did not finish", { job, reprocessId: id, state, runsLeft: chunks - n });
    return;
  }
  if (n >= chunks) {
    await ctx.redis.hset(key, { state: "DONE", endedAt: Date.now() });
    return;
  }
  await startChunk(ctx, job, id, n, rec.trigger || "manual");
}

/** Promotes the plan step of the next run of a reprocess (WAITING for the slot the previous one just freed). */
export async function wakeNextReprocessRun(ctx: StepContext, job: string, rec: RunRecord): Promise<void> {
  const next = await ctx.redis.hget(runKeys(ctx.cfg.prefix).reprocess(rec.reprocess!), `run:${Number(rec.chunk ?? 0) + 1}`);
  if (!next) return;
  const step = await ctx.queues.queue(job).getJob(stepId.plan(next));
  if (step && (await step.isDelayed())) await step.promote().catch(() => undefined);
}

/** The plan step of a reprocess run: its stored files, less those a live run holds now (reported on the run). */
export async function reprocessSelection(
  ctx: StepContext,
  store: BookmarkStore,
  rec: RunRecord,
  runId: string,
  log: Logger,
): Promise<PlanStep> {
  const raw = await ctx.redis.get(store.k.reprocessChunk(rec.reprocess!, Number(rec.chunk ?? 0)));
  if (raw === null)
    throw new ConfigError(
      `reprocess ${rec.reprocess}: the files of run ${Number(rec.chunk ?? 0) + 1} are gone (expired after 7 days?); start the reprocess again`,
    );
  const files = JSON.parse(raw) as PlannedFile[];
  const held = await liveLeased(ctx, store, files);
  const selected = files.filter((f) => !held.has(`${f.partition}\u0000${f.key}`));
  if (held.size) {
    const keys = files.filter((f) => held.has(`${f.partition}\u0000${f.key}`)).map((f) => f.key);
    await ctx.redis.hset(store.k.run(runId), { skippedLeased: keys.length, skippedLeasedKeys: JSON.stringify(keys.slice(0, 100)) });
    log.warn("reprocess: files held by a live run are skipped", { runId, skipped: keys.length, keys: keys.slice(0, 10) });
  }
  const partitionValues = new Map<string, Record<string, string>>();
  for (const f of selected)
    if (!partitionValues.has(f.partition))
      partitionValues.set(f.partition, parsePartition(f.key, ctx.cfg.jobs[rec.job]!.source.partitionKeys).values);
  return {
    selected,
    files: selected.length,
    bytes: selected.reduce((s, f) => s + f.size, 0),
    remainingFiles: 0,
    remainingBytes: 0,
    oldestUnprocessed: null,
    listed: files.length,
    excluded: 0,
    partitionValues,
    unseenStale: new Map(),
    keepMode: "",
    leaseKeep: false,
    keepEdges: new Map(),
    fullListing: false,
  };
}
