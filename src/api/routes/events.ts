import type { FastifyInstance } from "fastify";
import { ingestEvents } from "../../events/ingest.js";
import { errors, S } from "../schemas.js";
import type { RouteDeps } from "./common.js";

/** `POST /v1/events` (src/events/ingest.ts does the work). */
export async function eventsRoutes(app: FastifyInstance, { ctx }: RouteDeps): Promise<void> {
  app.post(
    "/events",
    {
      schema: {
        tags: ["events"],
        summary: "Deliver S3 object events",
        description:
          'An S3 event notification (`Records[]`), an SNS notification carrying one, or EventBridge "Object Created" events, stored durably for the jobs with `triggers.events` ' +
          "whose source holds the objects, before the answer (docs/events.md). A duplicate delivery is counted once. " +
          "503 `E_EVENTS_FULL` when a job already holds the most pending events it may.",
        body: {
          type: ["object", "array"],
          description:
            "An S3 notification (`Records[]`, as S3 and MinIO's webhook send it, or in an SNS envelope), an EventBridge event, or an array of EventBridge events",
        },
        response: { 202: S.ref("IngestResult", "The events were stored"), ...errors(400, 401, 413, 503) },
      },
    },
    async (req, reply) => reply.code(202).send(await ingestEvents(ctx, req.body)),
  );
}
