import type { FastifyInstance } from "fastify";
import { bookmarkEntry } from "../../bookmark/entry.js";
import { BookmarkStore } from "../../bookmark/store.js";
import { ConfigError } from "../../errors.js";
import { ApiError } from "../errors.js";
import { errors, S } from "../schemas.js";
import { requireJob, type RouteDeps } from "./common.js";

/** `GET /v1/jobs/{job}/bookmark`, `POST …/bookmark/reset`, `POST …/bookmark/rewind`. */
export async function bookmarkRoutes(app: FastifyInstance, { ctx }: RouteDeps): Promise<void> {
  const store = (job: string) => new BookmarkStore(ctx.redis, ctx.cfg.prefix, job);

  app.get<{ Params: { job: string } }>(
    "/jobs/:job/bookmark",
    {
      schema: {
        tags: ["bookmark"],
        summary: "Show a job's bookmark",
        description: "Glue's JobBookmarkEntry plus the partitions, dead letters and history (`tranche bookmark show --json`).",
        params: S.jobParams,
        response: { 200: S.ref("JobBookmarkEntry", "The bookmark"), ...errors(401, 404, 503) },
      },
    },
    async (req) => {
      requireJob(ctx, req.params.job);
      return bookmarkEntry(store(req.params.job));
    },
  );

  app.post<{ Params: { job: string } }>(
    "/jobs/:job/bookmark/reset",
    {
      schema: {
        tags: ["bookmark"],
        summary: "Reset a job's bookmark",
        description:
          "Everything of the job starts over, history and dead letters included (`tranche bookmark reset`), in one atomic step. Output is not touched. " +
          "Refused with 409 `E_RUN_IN_PROGRESS` while a run of the job is in progress.",
        params: S.jobParams,
        response: { 200: S.ref("BookmarkChange", "The bookmark was reset"), ...errors(401, 404, 409, 503) },
      },
    },
    async (req) => {
      requireJob(ctx, req.params.job);
      const s = store(req.params.job);
      await s.reset();
      ctx.log.info("bookmark reset through the API", { job: req.params.job });
      return { job: req.params.job, action: "reset", toRun: null, version: (await s.summary()).version, incomplete: [], partial: null };
    },
  );

  app.post<{ Params: { job: string }; Body: { toRun: string } }>(
    "/jobs/:job/bookmark/rewind",
    {
      schema: {
        tags: ["bookmark"],
        summary: "Rewind a job's bookmark",
        description:
          "Restores the state after an earlier run that committed (`tranche bookmark rewind --to-run`), atomically, rebuilt from the current state and the history's deltas. " +
          "Output is not touched. Refused with 409 `E_RUN_IN_PROGRESS` while a run of the job is in progress.",
        params: S.jobParams,
        body: S.obj({ toRun: { type: "string", minLength: 1, maxLength: 128, description: "A run of the history that committed" } }),
        response: { 200: S.ref("BookmarkChange", "The bookmark was rewound"), ...errors(400, 401, 404, 409, 413, 503) },
      },
    },
    async (req) => {
      const jc = requireJob(ctx, req.params.job);
      const s = store(req.params.job);
      const toRun = req.body.toRun;
      let r: { version: number; incomplete: string[] };
      try {
        r = await s.rewind(toRun, jc.bookmark.maxBand * 1000);
      } catch (err) {
        // The run is not in the history, or committed nothing: the field is at fault.
        if (err instanceof ConfigError) throw new ApiError(400, "E_BAD_REQUEST", `body/toRun: ${err.message}`, "body/toRun");
        throw err;
      }
      ctx.log.info("bookmark rewound through the API", { job: req.params.job, toRun, version: r.version });
      const c = await s.committedPartitions(toRun);
      const notCommitted = c.planned.filter((p) => !c.partitions.includes(p));
      return {
        job: req.params.job,
        action: "rewind",
        toRun,
        version: r.version,
        incomplete: r.incomplete,
        partial: notCommitted.length ? { state: c.state, committed: c.partitions, notCommitted } : null,
      };
    },
  );
}
