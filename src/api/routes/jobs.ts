import type { FastifyInstance } from "fastify";
import { describeBound, resolveBound } from "../../config/bounds.js";
import { jobStatus } from "../../run/job-status.js";
import { RunRecords } from "../../run/run-record.js";
import { runRows } from "../../run/run-rows.js";
import type { StepContext } from "../../run/step-context.js";
import { triggerInfo } from "../../triggers/info.js";
import { errors, S } from "../schemas.js";
import { requireJob, type RouteDeps } from "./common.js";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A job as the API shows it: settings in short, backlog (as the last listing left it), bookmark, live and last run, triggers. */
export async function jobInfo(ctx: StepContext, name: string) {
  const jc = ctx.cfg.jobs[name]!;
  const { bound, source } = resolveBound({ job: jc.source });
  const [status, last, triggers] = await Promise.all([
    jobStatus(ctx.cfg, ctx.redis, name, { listIfUnknown: false, lastRuns: 0 }),
    runRows(new RunRecords(ctx.redis, ctx.cfg.prefix), name, 1),
    triggerInfo(ctx.cfg, ctx.redis, name),
  ]);
  const b = status.backlog;
  // A catalog source's own bound is in its table: as the last run that listed read it (no catalog call here).
  const fromTable = jc.source.catalog && source === "default" && status.bound?.source === "catalog" ? status.bound.bound : undefined;
  return {
    job: name,
    processor: jc.processor,
    mode: jc.bookmark.mode,
    bound: fromTable ?? describeBound(bound),
    boundSource: fromTable ? ("catalog" as const) : source,
    maxConcurrentRuns: jc.maxConcurrentRuns,
    whenBusy: jc.whenBusy,
    timeoutMinutes: jc.timeout,
    backlog: b && {
      files: b.files,
      bytes: b.bytes,
      oldestUnprocessed: iso(b.oldestUnprocessed),
      listed: b.listed,
      asOf: iso(b.asOf)!,
      asOfRun: b.asOfRun,
    },
    bookmark: {
      version: status.bookmark.version,
      runs: status.bookmark.runs,
      lastRunId: status.bookmark.lastRunId,
      partitions: status.bookmark.partitions.length,
    },
    deadLetters: status.deadLetters,
    skipped: status.skipped,
    liveRuns: status.runningRuns,
    lastRun: last[0] ?? null,
    triggers,
  };
}

/** `GET /v1/jobs`, `GET /v1/jobs/{job}`. */
export async function jobsRoutes(app: FastifyInstance, { ctx }: RouteDeps): Promise<void> {
  app.get(
    "/jobs",
    {
      schema: {
        tags: ["jobs"],
        summary: "List the jobs",
        description:
          "Every configured job with its backlog (as the last run's listing left it: nothing is listed), bookmark in short, live runs, newest run and triggers.",
        response: {
          200: { description: "The jobs", ...S.obj({ jobs: S.list(S.ref("JobInfo"), "The jobs, in configuration order") }) },
          ...errors(401, 503),
        },
      },
    },
    async () => {
      const jobs = [];
      for (const name of Object.keys(ctx.cfg.jobs)) jobs.push(await jobInfo(ctx, name));
      return { jobs };
    },
  );

  app.get<{ Params: { job: string } }>(
    "/jobs/:job",
    {
      schema: {
        tags: ["jobs"],
        summary: "Show a job",
        description: "One job, as in the list.",
        params: S.jobParams,
        response: { 200: S.ref("JobInfo", "The job"), ...errors(401, 404, 503) },
      },
    },
    async (req) => {
      requireJob(ctx, req.params.job);
      return jobInfo(ctx, req.params.job);
    },
  );
}
