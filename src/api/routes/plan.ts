import type { FastifyInstance } from "fastify";
import type { BookmarkMode } from "../../config/schema.js";
import { previewPlan } from "../../run/plan-preview.js";
import { errors, S } from "../schemas.js";
import { boundOverride, requireJob, type RouteDeps } from "./common.js";

/** `GET /v1/jobs/{job}/plan`: what the next run would take. */
export async function planRoutes(app: FastifyInstance, { ctx }: RouteDeps): Promise<void> {
  app.get<{ Params: { job: string }; Querystring: { boundedFiles?: string; boundedSize?: string; bookmark?: BookmarkMode } }>(
    "/jobs/:job/plan",
    {
      schema: {
        tags: ["plan"],
        summary: "Preview the next run",
        description:
          "Plans the next run as a run would (same listing, same selection through the bookmark) but leases and records nothing: " +
          "the same data as `tranche plan --json`. It lists the source, so it costs what a run's listing costs.",
        params: S.jobParams,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            boundedFiles: { type: "string", pattern: "^[0-9]+$", description: "Plan with this bound: at most N files" },
            boundedSize: { type: "string", pattern: "^[0-9]+$", description: "Plan with this bound: at most N bytes" },
            bookmark: S.bookmarkMode("Plan with this bookmark mode (default: the job's)"),
          },
        },
        response: { 200: S.ref("PlanPreview", "What the next run would take"), ...errors(400, 401, 404, 503) },
      },
    },
    async (req) => {
      requireJob(ctx, req.params.job);
      const override = boundOverride(req.query, "querystring");
      return previewPlan(ctx.cfg, req.params.job, ctx.redis, ctx.log, { override, mode: req.query.bookmark });
    },
  );
}
