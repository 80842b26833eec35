import { hostname } from "node:os";
import { BookmarkStore } from "../bookmark/store.js";
import { STARTER_TTL_S } from "./run-record.js";
import { RunLostError, TrancheError } from "../errors.js";
import type { StepContext } from "./step-context.js";
import { finishRun } from "./finish-step.js";
import { untilRunEndedOr } from "./run-ended.js";
import { TERMINAL, type RunState } from "./states.js";
import type { RunProgress, RunSummary } from "./summary.js";

/** The id a process writes as a run's starter. */
export const STARTER_ID = `${hostname()}:${process.pid}`;

/**
 * Marks this process as the run's starter while it waits (a `tranche run` that finds the job busy
 * attaches to a run whose starter mark expired). Returns a function that stops renewing it.
 */
export function holdStarter(ctx: StepContext, job: string, runId: string): () => void {
  const key = new BookmarkStore(ctx.redis, ctx.cfg.prefix, job).k.starter(runId);
  const renew = () => void ctx.redis.set(key, STARTER_ID, "EX", STARTER_TTL_S).catch(() => undefined);
  renew();
  const t = setInterval(renew, (STARTER_TTL_S * 1000) / 3);
  t.unref();
  return () => {
    clearInterval(t);
    void ctx.redis.del(key).catch(() => undefined);
  };
}

/** Of the given live runs, one whose starter is gone (so nobody reports its outcome), or null. */
export async function orphanedRun(ctx: StepContext, job: string, runIds: readonly string[]): Promise<string | null> {
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, job);
  for (const id of runIds) {
    const state = await ctx.runs.state(id);
    if (state && !TERMINAL.has(state) && (await ctx.redis.exists(store.k.starter(id))) === 0) return id;
  }
  return null;
}

/**
 * Waits for a run to end, showing progress, and returns its summary. A run that could not start
 * (ERROR) throws its error as it was raised (bad configuration: exit 2; unreachable source: exit 4).
 * Throws RunLostError when Redis no longer holds the run record (Redis restarted without
 * persistence). The run itself does not depend on this wait: it is what any worker executes.
 */
export async function waitForRun(
  ctx: StepContext,
  job: string,
  runId: string,
  o: { pollMs?: number; onProgress?(p: RunProgress): void } = {},
): Promise<RunSummary> {
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, job);
  const runKey = store.k.run(runId);
  const pollMs = o.pollMs ?? 200;
  let endedSeen: number | undefined;
  for (;;) {
    const [state, finished, summary, listed, planned, bytesPlanned, filesDone, bytesDone] = await ctx.redis.hmget(
      runKey,
      "state",
      "finished",
      "summary",
      "listed",
      "filesPlanned",
      "bytesPlanned",
      "progressFiles",
      "progressBytes",
    );
    if (state === null) throw new RunLostError(job, runId, "Redis no longer holds its run record (Redis restarted without persistence?)");
    // An end state without its record: the step that ended the run died before recording it;
    // after a grace period this process records it (finishRun is idempotent).
    if (TERMINAL.has(state as RunState) && finished !== "1") {
      endedSeen ??= Date.now();
      if (Date.now() - endedSeen > 5000) await finishRun(ctx, job, runId);
    }
    if (finished === "1" && summary) {
      const s = JSON.parse(summary) as RunSummary;
      if (s.state === "ERROR") {
        const [code, exit, message, name] = await ctx.redis.hmget(runKey, "errorCode", "errorExit", "error", "errorName");
        const err = new TrancheError(code || "E_RUN_ERROR", message || s.jobFailure || "the run could not start", Number(exit || 1));
        if (name) Object.defineProperty(err, "name", { value: name });
        throw err;
      }
      return s;
    }
    const files = Number(planned || 0);
    const bytes = Number(bytesPlanned || 0);
    o.onProgress?.(
      planned === null
        ? { phase: "listing", listed: Number(listed || 0), files: 0, bytes: 0, filesDone: 0, bytesDone: 0 }
        : {
            phase: "processing",
            listed: Number(listed || 0),
            files,
            bytes,
            filesDone: Math.min(files, Number(filesDone || 0)),
            bytesDone: Math.min(bytes, Number(bytesDone || 0)),
          },
    );
    await untilRunEndedOr(runId, pollMs);
  }
}
