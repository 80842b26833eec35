import { createHash } from "node:crypto";
import type { BoundOptions } from "../config/bounds.js";
import type { BookmarkMode } from "../config/schema.js";
import { BookmarkStore } from "../bookmark/store.js";
import { jobFingerprint } from "../config/fingerprint.js";
import { JOB_LABEL, triggerSkips } from "../metrics/registry.js";
import { stepId } from "../queue/batch-job.js";
import { TERMINAL } from "./states.js";
import { newRunId } from "./run-id.js";
import type { StepContext } from "./step-context.js";
import { KEEP_DONE } from "./step-context.js";

/** What asks for a run: who (`trigger`), how (mode, range, bound), and what to do when the job is busy. */
export interface StartOptions {
  job: string;
  /** What started the run: "manual" (CLI), "api", "schedule", "after", "drain", … Recorded on the run. */
  trigger: string;
  mode?: BookmarkMode;
  from?: string;
  to?: string;
  override?: BoundOptions;
  /** Default: the job's whenBusy. */
  whenBusy?: "skip" | "queue";
  /** A trigger firing's own name (a tick, a run end): a firing already claimed starts nothing again. */
  firing?: string;
  /** The process that will wait for the run (its starter mark is written with the record, see wait-run.ts). */
  starter?: string;
  /** One run of a reprocess request (mode `reprocess`: its files are stored with the request, see reprocess.ts). */
  reprocess?: { id: string; chunk: number };
  /** An event-fed run: which batching condition fired (Glue's StartingEventBatchCondition). */
  eventCondition?: "BatchSize" | "BatchWindow";
  /**
   * A run id reserved beforehand (a reprocess chain's next run): starting it again (a retried
   * step) starts nothing new, and enqueues its steps if they never were.
   */
  runId?: string;
}

export type StartResult =
  { started: true; runId: string; state: "STARTING" | "WAITING" } | { started: false; running: string[]; duplicate?: boolean };

/** The claim of one trigger firing. */
export function firingKey(store: BookmarkStore, firing: string): string {
  return `${store.k.triggers}:fired:${createHash("sha1").update(firing).digest("hex").slice(0, 16)}`;
}

/** Claims a firing for `runId`; false when another run has it (or its starter is still starting it). */
async function claimFiring(ctx: StepContext, store: BookmarkStore, firing: string, runId: string): Promise<boolean> {
  const key = firingKey(store, firing);
  const value = `${runId}|${Date.now()}`;
  if ((await ctx.redis.set(key, value, "EX", 7 * 24 * 3600, "NX")) === "OK") return true;
  const held = await ctx.redis.get(key);
  const [other, at] = (held ?? "").split("|");
  // A reserved run id claiming its own firing again: a retried start (see StartOptions.runId).
  if (other === runId) return true;
  if (!other || Date.now() - Number(at) < ORPHAN_GRACE_MS || (await ctx.redis.exists(store.k.run(other))) === 1) return false;
  // Compare-and-set: only one process takes an orphaned claim over.
  const taken = await ctx.redis.eval(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end return 0",
    1,
    key,
    held!,
    value,
  );
  return Number(taken) === 1;
}

/** Minutes → the slot's lifetime: a run holds its slot until it ends, at the latest until shortly after its timeout. */
export function slotTtlMs(timeoutMinutes: number): number {
  return Math.ceil(timeoutMinutes * 60_000) + 10 * 60_000;
}

/**
 * Asks for a run: takes a run slot (or, when all are held, skips or queues the run as WAITING),
 * writes the run record, and enqueues its plan step and its timeout in one step. Returns at once:
 * any worker of the job executes the run (docs/runs.md).
 */
export async function startRun(ctx: StepContext, o: StartOptions): Promise<StartResult> {
  const job = ctx.cfg.jobs[o.job]!;
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, o.job);
  const runId = o.runId ?? newRunId();
  const whenBusy = o.whenBusy ?? job.whenBusy;
  // A firing is claimed once, for a week (longer than any misfire window). A claim whose run never
  // got a record (its starter died in between) is taken over after a grace period.
  if (o.firing !== undefined && !(await claimFiring(ctx, store, o.firing, runId))) return { started: false, running: [], duplicate: true };
  if (o.runId !== undefined) {
    const existing = await ctx.runs.get(runId);
    if (existing) {
      // Started before by a step that died: its steps have fixed ids, adding them again is a no-op.
      if (!TERMINAL.has(existing.state) && existing.planned !== "1")
        await addStartSteps(ctx, o.job, runId, Math.max(0, Number(existing.timeoutAt || 0) - Date.now()));
      return { started: true, runId, state: existing.state === "WAITING" ? "WAITING" : "STARTING" };
    }
  }
  let slot = await store.slots.acquire(runId, job.maxConcurrentRuns, slotTtlMs(job.timeout));
  if (!slot.ok && (await reapOrphans(ctx, o.job, slot.running)) > 0)
    slot = await store.slots.acquire(runId, job.maxConcurrentRuns, slotTtlMs(job.timeout));
  if (!slot.ok && whenBusy === "skip") {
    triggerSkips.inc({ [JOB_LABEL]: o.job, trigger: o.trigger });
    return { started: false, running: slot.running };
  }
  const state = slot.ok ? "STARTING" : "WAITING";
  const now = Date.now();
  const timeoutMs = Math.ceil(job.timeout * 60_000);
  try {
    await ctx.runs.create(
      runId,
      o.job,
      {
        state,
        trigger: o.trigger,
        firing: o.firing ?? "",
        whenBusy,
        mode: o.reprocess ? "reprocess" : (o.mode ?? ""),
        ...(o.reprocess ? { reprocess: o.reprocess.id, chunk: o.reprocess.chunk } : {}),
        ...(o.eventCondition ? { eventCondition: o.eventCondition } : {}),
        from: o.from ?? "",
        to: o.to ?? "",
        bound: o.override ? JSON.stringify(o.override) : "",
        createdAt: now,
        timeoutAt: now + timeoutMs,
        epoch: await store.slots.epoch(),
        fingerprint: jobFingerprint(ctx.cfg, job),
      },
      now,
      o.starter,
    );
    await addStartSteps(ctx, o.job, runId, timeoutMs);
  } catch (err) {
    if (o.firing !== undefined) await ctx.redis.del(firingKey(store, o.firing)).catch(() => undefined);
    await store.slots.release(runId).catch(() => undefined);
    await ctx.runs.move(runId, "ERROR", "endedAt").catch(() => undefined);
    throw err;
  }
  ctx.log.info(state === "WAITING" ? "run queued: the job is at maxConcurrentRuns" : "run started", {
    job: o.job,
    runId,
    trigger: o.trigger,
    state,
  });
  return { started: true, runId, state };
}

/** Enqueues a run's plan step and its timeout, in one MULTI: both jobs or neither (fixed ids: adding them again is a no-op). */
async function addStartSteps(ctx: StepContext, job: string, runId: string, timeoutMs: number): Promise<void> {
  await ctx.queues.queue(job).addBulk([
    {
      name: "plan",
      data: { step: "plan", job, runId },
      opts: { jobId: stepId.plan(runId), attempts: 5, backoff: { type: "exponential", delay: 1000 }, ...KEEP_DONE },
    },
    {
      name: "timeout",
      data: { step: "timeout", job, runId },
      opts: { jobId: stepId.timeout(runId), delay: timeoutMs, attempts: 5, backoff: { type: "exponential", delay: 1000 }, ...KEEP_DONE },
    },
  ]);
}

/** A slot holder younger than this may still be writing its record. */
const ORPHAN_GRACE_MS = 30_000;

/**
 * Frees the slots of runs that can never end: a starter that died between taking the slot and
 * enqueuing the plan step (no record, or a record not yet planned whose plan job is gone). Such a
 * run would otherwise hold its slot until its timeout. Returns how many were freed.
 */
export async function reapOrphans(ctx: StepContext, job: string, runIds: readonly string[]): Promise<number> {
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, job);
  const jc = ctx.cfg.jobs[job]!;
  let freed = 0;
  for (const id of runIds) {
    const rec = await ctx.runs.get(id);
    if (rec && rec.planned === "1") continue;
    if (rec && !TERMINAL.has(rec.state) && (await ctx.queues.queue(job).getJob(stepId.plan(id)))) continue;
    const score = await ctx.redis.zscore(store.k.active, id);
    const takenAt = score === null ? 0 : Number(score) - slotTtlMs(jc.timeout);
    if (Date.now() - takenAt < ORPHAN_GRACE_MS) continue;
    if (rec && !TERMINAL.has(rec.state)) {
      await ctx.redis.hset(store.k.run(id), "error", "its starter died before the run was enqueued");
      await ctx.runs.move(id, "ERROR", "endedAt");
    }
    await store.slots.release(id);
    ctx.log.warn("freed the slot of a run whose starter died before enqueuing it", { job, runId: id });
    freed++;
  }
  return freed;
}
