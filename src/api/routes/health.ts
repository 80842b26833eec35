import type { FastifyInstance } from "fastify";
import { registry } from "../../metrics/registry.js";
import { ApiError, sendError } from "../errors.js";
import { errors, S } from "../schemas.js";
import type { RouteDeps } from "./common.js";

/** How long `/readyz` waits for Redis' PONG. */
const PING_TIMEOUT_MS = 2000;

/** `GET /healthz`, `GET /readyz`, `GET /metrics`: public (Prometheus and KEDA scrape them), at the root. */
export async function healthRoutes(app: FastifyInstance, { ctx }: RouteDeps): Promise<void> {
  app.get(
    "/healthz",
    {
      schema: {
        tags: ["health"],
        summary: "Liveness",
        description: "200 while the process runs. No authentication.",
        security: [],
        response: { 200: S.ref("Health", "The process is up") },
      },
    },
    async () => ({ ok: true }),
  );

  app.get(
    "/readyz",
    {
      schema: {
        tags: ["health"],
        summary: "Readiness",
        description: "200 when Redis answers a PING within 2 s, else 503 `E_REDIS`. No authentication.",
        security: [],
        response: { 200: S.ref("Health", "Redis answers"), ...errors(503) },
      },
    },
    async (_req, reply) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          ctx.redis.ping(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
          }),
        ]);
        return { ok: true };
      } catch (err) {
        return sendError(reply, new ApiError(503, "E_REDIS", `Redis does not answer: ${err instanceof Error ? err.message : String(err)}`));
      } finally {
        clearTimeout(timer);
      }
    },
  );

  app.get(
    "/metrics",
    {
      schema: {
        tags: ["health"],
        summary: "Prometheus metrics",
        description:
          "The process's metrics in Prometheus' text format (the same registry as the `metrics.port` server). No authentication.",
        security: [],
        response: { 200: { description: "Prometheus text exposition", content: { "text/plain": { schema: { type: "string" } } } } },
      },
    },
    async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()),
  );
}
