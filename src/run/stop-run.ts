import type { Job } from "bullmq";
import { BookmarkStore } from "../bookmark/store.js";
import { ConfigError } from "../errors.js";
import type { StepJobData } from "../queue/batch-job.js";
import { stepId } from "../queue/batch-job.js";
import { finishRun } from "./finish-step.js";
import type { StepContext } from "./step-context.js";
import { TERMINAL, type RunState } from "./states.js";

/**
 * Removes a run's batches that have not started (and the partitions still waiting under
 * partitionConcurrency). Removing a child of a flow lets its parent go on once its other children
 * end, so the run's commit and finish steps still run and record what happened. Batches running
 * now finish. Returns how many were removed.
 */
export async function dropQueuedWork(ctx: StepContext, job: string, runId: string): Promise<number> {
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, job);
  await ctx.redis.del(store.k.queuedParts(runId));
  const queue = ctx.queues.queue(job);
  const finish = await queue.getJob(stepId.finish(runId));
  if (!finish) return 0;
  let removed = 0;
  const commits = (await finish.getDependencies({ unprocessed: { count: 10_000 } })).unprocessed ?? [];
  for (const c of commits) {
    const commit = await queue.getJob(c.slice(c.lastIndexOf(":") + 1));
    if (!commit) continue;
    const deps = await commit.getDependencies({ unprocessed: { count: 10_000 } });
    for (const key of deps.unprocessed ?? []) {
      const b = await queue.getJob(key.slice(key.lastIndexOf(":") + 1));
      if (!b) continue;
      const st = await b.getState();
      if (st === "waiting" || st === "delayed" || st === "prioritized") {
        try {
          await b.remove();
          removed++;
        } catch {
          // It started meanwhile: it finishes.
        }
      }
    }
  }
  return removed;
}

/**
 * `tranche stop RUN`: the run moves to STOPPING; batches not started are removed, running ones
 * finish; partitions whose batches all finished still commit; the others end STOPPED and their
 * files go to the next run. The run ends STOPPED. A run that has not started planning (WAITING) or
 * has no flow yet is finished at once.
 */
export async function stopRun(ctx: StepContext, runId: string): Promise<{ state: RunState; removed: number; already?: true }> {
  const job = await ctx.runs.jobOf(runId);
  if (!job) throw new ConfigError(`no run ${runId} (runs are kept 7 days); see 'tranche runs <job>'`);
  if (!ctx.cfg.jobs[job]) throw new ConfigError(`run ${runId} belongs to job "${job}", which this configuration does not have`);
  let m = await ctx.runs.move(runId, "STOPPING", "stopRequested");
  // A WAITING run has done nothing yet: it is STOPPED at once.
  if (!m.moved && m.from === "WAITING") m = await ctx.runs.move(runId, "STOPPED", "endedAt");
  if (!m.moved) {
    if (m.from && TERMINAL.has(m.from)) return { state: m.from, removed: 0, already: true };
    if (m.from !== "STOPPING") throw new ConfigError(`run ${runId} is ${m.from ?? "gone"}; it cannot be stopped`);
  }
  const removed = await dropQueuedWork(ctx, job, runId);
  await ctx.queues
    .queue(job)
    .remove(stepId.plan(runId))
    .catch(() => 0);
  if (!(await ctx.queues.queue(job).getJob(stepId.finish(runId))) && !(await isPlanning(ctx, job, runId))) await finishRun(ctx, job, runId);
  ctx.log.info("run stopping", { job, runId, removedBatches: removed });
  return { state: (await ctx.runs.state(runId)) ?? "STOPPED", removed };
}

async function isPlanning(ctx: StepContext, job: string, runId: string): Promise<boolean> {
  const plan = await ctx.queues.queue(job).getJob(stepId.plan(runId));
  return plan ? (await plan.getState()) === "active" : false;
}

/**
 * The timeout step (a delayed job added with the run): a run not ended by then ends TIMEOUT. Its
 * batches not started are removed, running ones finish but nothing more of it commits; its files
 * stay leased, and the next run takes them (the run no longer holds a slot).
 */
export async function timeoutStepJob(ctx: StepContext, job: Job<StepJobData>): Promise<string> {
  const { runId, job: jobName } = job.data;
  const m = await ctx.runs.move(runId, "TIMEOUT", "timedOut");
  if (!m.moved) {
    // Ended by a step whose worker died before recording the end: record it now.
    if (
      m.from &&
      TERMINAL.has(m.from) &&
      (await ctx.redis.hget(new BookmarkStore(ctx.redis, ctx.cfg.prefix, jobName).k.run(runId), "finished")) !== "1"
    )
      await finishRun(ctx, jobName, runId);
    return m.from ?? "gone";
  }
  ctx.log.warn("run timed out", { job: jobName, runId, timeoutMinutes: ctx.cfg.jobs[jobName]?.timeout });
  const removed = await dropQueuedWork(ctx, jobName, runId);
  const queue = ctx.queues.queue(jobName);
  await queue.remove(stepId.plan(runId)).catch(() => 0);
  // Without a flow (still planning, or WAITING) nothing else will finish the run.
  if (!(await queue.getJob(stepId.finish(runId)))) await finishRun(ctx, jobName, runId);
  return `TIMEOUT (${removed} batches removed)`;
}
