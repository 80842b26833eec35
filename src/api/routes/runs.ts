import type { FastifyInstance } from "fastify";
import type { BookmarkMode } from "../../config/schema.js";
import { ConcurrentRunsExceededError } from "../../errors.js";
import { RunRecords } from "../../run/run-record.js";
import { runDetail, runRows } from "../../run/run-rows.js";
import { startRun } from "../../run/start-run.js";
import { stopRun } from "../../run/stop-run.js";
import { ApiError } from "../errors.js";
import { errors, S } from "../schemas.js";
import { boundOverride, requireJob, type RouteDeps } from "./common.js";

interface StartBody {
  boundedFiles?: string | number;
  boundedSize?: string | number;
  bookmark?: BookmarkMode;
  from?: string;
  to?: string;
}

/** The body may be left out (the OpenAPI document says so; server.ts). */
const OPTIONAL_BODY: Record<string, unknown> = { "x-body-optional": true };

const runId = { type: "string", minLength: 1, maxLength: 128 };

/** `POST /v1/jobs/{job}/runs`, `GET /v1/jobs/{job}/runs`, `GET /v1/runs/{runId}`, `POST /v1/runs/{runId}/stop`. */
export async function runsRoutes(app: FastifyInstance, { ctx }: RouteDeps): Promise<void> {
  app.post<{ Params: { job: string }; Body: StartBody }>(
    "/jobs/:job/runs",
    {
      schema: {
        tags: ["runs"],
        summary: "Start a run",
        description:
          "Asks for one bounded run of the job, as `tranche run --detach` does, recorded with trigger `api`; workers execute it. " +
          "The body is optional. When the job is at `maxConcurrentRuns`, a job with `whenBusy: skip` answers 409 `E_CONCURRENT_RUNS` " +
          "and one with `whenBusy: queue` answers 202 with the run `WAITING` until a slot frees.",
        params: S.jobParams,
        ...OPTIONAL_BODY,
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            boundedFiles: S.boundValue("At most this many files"),
            boundedSize: S.boundValue("At most this many bytes"),
            bookmark: S.bookmarkMode("The bookmark mode of this run (default: the job's)"),
            from: { ...runId, description: "With bookmark pause: replay what arrived after this run… (both or neither)" },
            to: { ...runId, description: "…up to this run" },
          },
        },
        response: {
          202: S.ref("RunStarted", "The run was asked for (`Location: /v1/runs/{runId}`)"),
          ...errors(400, 401, 404, 409, 413, 503),
        },
      },
    },
    async (req, reply) => {
      const jc = requireJob(ctx, req.params.job);
      const b = req.body ?? {};
      const override = boundOverride(b, "body");
      if ((b.from === undefined) !== (b.to === undefined)) {
        const missing = b.from === undefined ? "from" : "to";
        throw new ApiError(
          400,
          "E_BAD_REQUEST",
          `body/${missing} is required with body/${missing === "from" ? "to" : "from"}: give both run ids or neither`,
          `body/${missing}`,
        );
      }
      if (b.from !== undefined && (b.bookmark ?? jc.bookmark.mode) !== "pause")
        throw new ApiError(400, "E_BAD_REQUEST", 'body/bookmark must be "pause" with from and to', "body/bookmark");
      const r = await startRun(ctx, { job: req.params.job, trigger: "api", mode: b.bookmark, from: b.from, to: b.to, override });
      if (!r.started) throw new ConcurrentRunsExceededError(req.params.job, jc.maxConcurrentRuns, r.running);
      return reply.code(202).header("location", `/v1/runs/${r.runId}`).send({ runId: r.runId, job: req.params.job, state: r.state });
    },
  );

  app.get<{ Params: { job: string }; Querystring: { limit?: string } }>(
    "/jobs/:job/runs",
    {
      schema: {
        tags: ["runs"],
        summary: "List a job's runs",
        description: "The job's newest runs, newest first (`tranche runs --json`); run records are kept 7 days.",
        params: S.jobParams,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { limit: { type: "string", pattern: "^[0-9]{1,4}$", description: "How many runs (1–1000, default 20)" } },
        },
        response: {
          200: { description: "The runs", ...S.obj({ runs: S.list(S.ref("RunRow"), "Newest first") }) },
          ...errors(400, 401, 404, 503),
        },
      },
    },
    async (req) => {
      requireJob(ctx, req.params.job);
      const limit = req.query.limit === undefined ? 20 : Number(req.query.limit);
      if (limit < 1 || limit > 1000)
        throw new ApiError(400, "E_BAD_REQUEST", "querystring/limit must be from 1 to 1000", "querystring/limit");
      return { runs: await runRows(new RunRecords(ctx.redis, ctx.cfg.prefix), req.params.job, limit) };
    },
  );

  app.get<{ Params: { runId: string } }>(
    "/runs/:runId",
    {
      schema: {
        tags: ["runs"],
        summary: "Show a run",
        description: "A run's state, figures so far, partitions, errors and trigger; once it ended, its summary.",
        params: S.runParams,
        response: { 200: S.ref("RunDetail", "The run"), ...errors(400, 401, 404, 503) },
      },
    },
    async (req) => {
      const d = await runDetail(ctx.redis, ctx.cfg.prefix, req.params.runId);
      if (!d) throw unknownRun(req.params.runId);
      return d;
    },
  );

  app.post<{ Params: { runId: string } }>(
    "/runs/:runId/stop",
    {
      schema: {
        tags: ["runs"],
        summary: "Stop a run",
        description:
          "As `tranche stop`: batches running now finish, queued ones are removed and their files go to the next run; the run ends STOPPED. " +
          "A run that had already ended is left as it is (`already: true`).",
        params: S.runParams,
        response: { 200: S.ref("RunStopped", "The stop was asked for"), ...errors(400, 401, 404, 503) },
      },
    },
    async (req) => {
      const id = req.params.runId;
      const job = await ctx.runs.jobOf(id);
      if (!job) throw unknownRun(id);
      if (!Object.hasOwn(ctx.cfg.jobs, job))
        throw new ApiError(404, "E_UNKNOWN_JOB", `run ${id} belongs to job "${job}", which this configuration does not have`);
      const r = await stopRun(ctx, id);
      return { runId: id, state: r.state, removed: r.removed, already: r.already === true };
    },
  );
}

function unknownRun(id: string): ApiError {
  return new ApiError(404, "E_UNKNOWN_RUN", `no run ${id} (runs are kept 7 days); see GET /v1/jobs/{job}/runs`);
}
