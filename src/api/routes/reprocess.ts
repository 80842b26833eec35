import type { FastifyInstance } from "fastify";
import { startReprocess, type ReprocessSpec } from "../../run/reprocess.js";
import { errors, S } from "../schemas.js";
import { requireJob, type RouteDeps } from "./common.js";

/** `POST /v1/jobs/{job}/reprocess` (src/run/reprocess.ts does the work). */
export async function reprocessRoutes(app: FastifyInstance, { ctx }: RouteDeps): Promise<void> {
  app.post<{ Params: { job: string }; Body: ReprocessSpec }>(
    "/jobs/:job/reprocess",
    {
      schema: {
        tags: ["reprocess"],
        summary: "Reprocess files",
        description:
          "Reprocesses exactly the files the body names (all given criteria must hold), through the queue, in bounded runs of mode `reprocess`, chained; " +
          "outputs are overwritten in place and the bookmark never moves.",
        params: S.jobParams,
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            partitions: {
              type: "array",
              maxItems: 10_000,
              items: { type: "string", pattern: "^[^=/]+=[^/]*$" },
              description: "Partition values as `k=v`: several values of one key are alternatives, different keys must all match",
            },
            since: {
              type: ["string", "integer"],
              minLength: 1,
              description: "Last-modified at or after this instant: ISO 8601, or epoch milliseconds (a number or a string of digits)",
            },
            until: { type: ["string", "integer"], minLength: 1, description: "Last-modified before this instant (as `since`)" },
            keys: {
              type: "array",
              maxItems: 10_000,
              minItems: 1,
              items: { type: "string", minLength: 1 },
              description: "Exactly these keys (relative to the source root); keys that do not exist are reported in `missing`",
            },
          },
        },
        response: { 202: S.ref("ReprocessResult", "The reprocess was asked for"), ...errors(400, 401, 404, 409, 413, 503) },
      },
    },
    async (req, reply) => {
      requireJob(ctx, req.params.job);
      const r = await startReprocess(ctx, req.params.job, req.body ?? {}, "api");
      if (r.runId) reply.header("location", `/v1/runs/${r.runId}`);
      return reply.code(202).send(r);
    },
  );
}
