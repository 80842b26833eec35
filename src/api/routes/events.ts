import type { FastifyInstance } from "fastify";
import { ingestEvents } from "../../events/ingest.js";
import { confirmSubscription, snsControl } from "../../events/sns.js";
import { BODY_LIMIT } from "../limits.js";
import { errors, S } from "../schemas.js";
import type { RouteDeps } from "./common.js";

/**
 * `POST /v1/events` (src/events/ingest.ts does the work). SNS HTTPS subscriptions post with
 * `Content-Type: text/plain` and can authenticate only with a user and password in the endpoint URL:
 * this route alone also reads text/plain bodies as JSON and takes the token as a Basic password
 * (see requireBearer), and it confirms SNS subscriptions (src/events/sns.ts).
 */
export async function eventsRoutes(app: FastifyInstance, { ctx }: RouteDeps): Promise<void> {
  const json = app.getDefaultJsonParser("error", "error");
  app.addContentTypeParser("text/plain", { parseAs: "string", bodyLimit: BODY_LIMIT }, (req, body, done) =>
    json(req, body as string, done),
  );
  app.post(
    "/events",
    {
      config: { basicAuth: true },
      schema: {
        tags: ["events"],
        summary: "Deliver S3 object events",
        description:
          'An S3 event notification (`Records[]`), an SNS notification carrying one, or EventBridge "Object Created" events, stored durably for the jobs with `triggers.events` ' +
          "whose source holds the objects, before the answer (docs/events.md). A duplicate delivery is counted once. " +
          "503 `E_EVENTS_FULL` when a job already holds the most pending events it may. " +
          "For SNS HTTPS subscriptions the body may come as `text/plain` and the token as the password of Basic authentication " +
          "(`https://sns:TOKEN@host/v1/events`); an SNS `SubscriptionConfirmation` is answered 200 after visiting its SubscribeURL (an SNS endpoint only).",
        body: {
          type: ["object", "array"],
          description:
            "An S3 notification (`Records[]`, as S3 and MinIO's webhook send it, or in an SNS envelope), an EventBridge event, or an array of EventBridge events",
        },
        response: {
          200: {
            description: "An SNS control message (subscription confirmation) was handled",
            ...S.obj({
              sns: {
                type: "string",
                enum: ["confirmed", "unconfirmed", "ignored"],
                description: "What became of it (see the scheduler's log)",
              },
            }),
          },
          202: S.ref("IngestResult", "The events were stored"),
          ...errors(400, 401, 413, 503),
        },
      },
    },
    async (req, reply) => {
      const control = snsControl(req.body);
      if (control) return reply.code(200).send({ sns: await confirmSubscription(control, ctx.log) });
      return reply.code(202).send(await ingestEvents(ctx, req.body));
    },
  );
}
