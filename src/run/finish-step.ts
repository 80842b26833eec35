import { BookmarkStore } from "../bookmark/store.js";
import { JOB_LABEL, runsTotal, runStates } from "../metrics/registry.js";
import { stepId } from "../queue/batch-job.js";
import { settleAtFinish } from "../events/select.js";
import type { StoredPlan } from "./enqueue-step.js";
import { continueReprocess, wakeNextReprocessRun } from "./reprocess.js";
import { recordFullListing } from "./listing-step.js";
import { announceRunEnded } from "./run-ended.js";
import type { StepContext } from "./step-context.js";
import { runOutcome, TERMINAL, type RunState } from "./states.js";
import { statusOf, type RunSummary } from "./summary.js";

export { EVENTS_MAX } from "../bookmark/store.js";

/**
 * The finish step of a run (docs/runs.md): runs once every partition's commit step has ended (or
 * directly from the plan step, when the run takes nothing, could not start, or was stopped or
 * timed out before its flow existed). Decides the end state from the partitions' results
 * (SUCCEEDED when all committed, FAILED when any failed; a stop or timeout wins), records the run
 * once on the history, frees its slot, drops its timeout, and publishes the end on the events
 * stream. Idempotent: a retried finish returns the recorded summary.
 */
export async function finishRun(ctx: StepContext, job: string, runId: string): Promise<RunSummary | null> {
  const jc = ctx.cfg.jobs[job]!;
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, job);
  const runKey = store.k.run(runId);
  const rec = await ctx.runs.get(runId);
  if (!rec) return null;
  if (rec.finished === "1" && rec.summary) {
    const done = JSON.parse(rec.summary) as RunSummary;
    // Events a late step took after the run was recorded go back in line (idempotent).
    if (rec.trigger === "events") await settleAtFinish(ctx, job, runId, done.partitions);
    return done;
  }
  const rawPlan = await ctx.redis.get(store.k.runPlan(runId));
  const plan = rawPlan ? (JSON.parse(rawPlan) as StoredPlan) : null;
  const results = await ctx.runs.partitions(runId);
  const seen = new Set(results.map((r) => r.partition));
  // Partitions planned but never ended (their commit step never ran: stopped, timed out, or lost).
  const planned = new Set(plan?.stage === "leased" ? plan.selected.map((f) => f.partition) : []);
  const stoppedLike: RunState | null =
    rec.state === "TIMEOUT" ? "TIMEOUT" : rec.state === "STOPPING" || rec.state === "STOPPED" ? "STOPPED" : null;
  for (const p of planned) {
    if (seen.has(p)) continue;
    const files = plan!.selected.filter((f) => f.partition === p);
    results.push({
      partition: p,
      state: stoppedLike === "TIMEOUT" ? "TIMEOUT" : stoppedLike ? "STOPPED" : "FAILED",
      files: 0,
      bytes: 0,
      batches: Math.ceil(files.length / jc.batchFiles),
      batchesFailed: 0,
      error: stoppedLike ? undefined : "the partition never ran (its step was lost)",
    });
  }
  let state: RunState;
  if (rec.state === "ERROR") state = "ERROR";
  else if (stoppedLike) state = stoppedLike;
  else
    state = runOutcome({
      partitions: results.map((r) =>
        r.state === "COMMITTED" || r.state === "DONE" ? "committed" : r.state === "FAILED" ? "failed" : "pending",
      ),
    });
  if (!TERMINAL.has(state)) state = "FAILED";
  if (!TERMINAL.has(rec.state)) {
    const m = await ctx.runs.move(runId, state, "endedAt");
    if (!m.moved && m.from && TERMINAL.has(m.from) && m.from !== state) state = m.from;
  }
  const h = (await ctx.runs.get(runId)) ?? rec;
  const [errors, deadKeys] = await Promise.all([
    ctx.redis.lrange(store.k.runErrors(runId), 0, 9),
    ctx.redis.lrange(store.k.runDead(runId), 0, -1),
  ]);
  const mode = (rec.mode || jc.bookmark.mode) as RunSummary["mode"];
  const committed = results.filter((r) => r.state === "COMMITTED");
  // In mode enable, the files of partitions that did not commit are still backlog.
  const committedParts = new Set(committed.map((r) => r.partition));
  const left = mode === "enable" ? (plan?.selected ?? []).filter((f) => !committedParts.has(f.partition)) : [];
  const notCommittedFiles = left.length;
  const notCommittedBytes = left.reduce((b, f) => b + f.size, 0);
  const batches = Number(h.batches ?? 0);
  const started = Number(h.startedAt || h.createdAt || Date.now());
  const ended = Number(h.endedAt || Date.now());
  const previous = (await store.history()).find((e) => e.kind !== "commit" && e.runId !== runId);
  const summary: RunSummary = {
    runId,
    job,
    status: statusOf(state, batches),
    state,
    trigger: rec.trigger ?? "manual",
    partitions: results.sort((a, b) => (a.partition < b.partition ? -1 : 1)),
    attempt: 0,
    previousRunId: previous?.runId ?? null,
    mode,
    bound: plan?.bound ?? "",
    files: Number(h.filesStaged || 0) - deadKeys.length - Number(h.archived || 0),
    bytes: Number(h.bytesStaged ?? 0),
    filesCommitted: committed.reduce((n, r) => n + r.files, 0),
    committed: committed.length > 0,
    version: committed.length ? Math.max(...committed.map((r) => r.version ?? 0)) : null,
    batches,
    batchesFailed: Number(h.batchesFailed ?? 0),
    fileFailures: Number(h.fileFailures ?? 0),
    badRecords: Number(h.badRecords ?? 0),
    deadLettered: deadKeys.length,
    deadLetteredKeys: deadKeys,
    gone: Number(h.gone ?? 0),
    archived: Number(h.archived ?? 0),
    jobFailure: h.jobFailure || (state === "ERROR" ? (h.error ?? "the run could not start") : null),
    remainingFiles: (plan?.remainingFiles ?? 0) + notCommittedFiles,
    remainingBytes: (plan?.remainingBytes ?? 0) + notCommittedBytes,
    listed: plan?.listed ?? 0,
    startedAt: new Date(started).toISOString(),
    endedAt: new Date(ended).toISOString(),
    durationMs: ended - started,
    errors: state === "ERROR" && h.error ? [h.error, ...errors] : errors,
  };
  // A complete full listing of a lexical job moves 'keep' up once every partition committed.
  if (plan && state === "SUCCEEDED" && mode === "enable") {
    if (plan.keepMode === "full" && plan.keepEdges.length) await store.advanceKeep(new Map(plan.keepEdges));
    if (plan.fullListing && batches > 0) await recordFullListing(store);
  }
  // The backlog figures the plan recorded assumed every partition would commit: those that did not
  // are still backlog (`status` reads them).
  if (notCommittedFiles > 0 && (await ctx.redis.hget(store.k.backlog, "runId")) === runId) {
    const oldestLeft = Math.min(...left.map((f) => f.lastModified));
    const prev = Number((await ctx.redis.hget(store.k.backlog, "oldestUnprocessed")) || Number.POSITIVE_INFINITY);
    await ctx.redis.hset(store.k.backlog, {
      files: summary.remainingFiles,
      bytes: summary.remainingBytes,
      oldestUnprocessed: Math.min(prev, oldestLeft),
    });
  }
  await ctx.redis.hset(runKey, { summary: JSON.stringify(summary), endedAt: ended });
  // An event-fed run: the events of committed partitions are settled, the others go back in line.
  if (rec.trigger === "events") await settleAtFinish(ctx, job, runId, summary.partitions);
  // A reprocess run starts the next of its request (once: the firing is claimed) before it is recorded.
  if (rec.reprocess && rec.finished !== "1") await continueReprocess(ctx, job, rec, state);
  // The history entry and the run's end on the events stream, in one step, once.
  const first = await store.recordRun(
    summary,
    jc.bookmark.historySize,
    {
      type: "run.ended",
      job,
      runId,
      state,
      trigger: summary.trigger,
    },
    // Reprocess runs are no bookmark runs; an events run that committed nothing (its objects were
    // done, or held by other runs) would only push bookmark runs out of historySize.
    { history: !rec.reprocess && !(rec.trigger === "events" && !summary.committed) },
  );
  await store.slots.release(runId);
  // The next run of a reprocess waits (WAITING) for this slot: wake its plan step now.
  if (rec.reprocess) await wakeNextReprocessRun(ctx, job, rec);
  // What only the run's steps needed goes: the plan (its file list), outputs, queued partitions.
  const leftovers = [store.k.runPlan(runId), store.k.queuedParts(runId), ...[...planned].map((p) => store.k.outputs(runId, p))];
  await ctx.redis.del(...leftovers);
  await ctx.queues
    .queue(job)
    .remove(stepId.timeout(runId))
    .catch(() => 0);
  if (first) {
    runsTotal.inc({ [JOB_LABEL]: job, status: summary.status });
    runStates.inc({ [JOB_LABEL]: job, state });
    ctx.log.info("run finished", {
      job,
      runId,
      state,
      files: summary.files,
      partitions: results.length,
      committedPartitions: committed.length,
      remainingFiles: summary.remainingFiles,
      durationMs: summary.durationMs,
    });
  }
  announceRunEnded(runId);
  return summary;
}
