import type { AddressInfo } from "node:net";
import swagger from "@fastify/swagger";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { TrancheConfig } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import type { Fields, Logger } from "../log.js";
import { packageVersion } from "../package-root.js";
import type { StepContext } from "../run/step-context.js";
import { checkExposure, requireBearer } from "./auth.js";
import { ApiError, errorHandler, formatValidation, sendError, type ValidationIssue } from "./errors.js";
import { bookmarkRoutes } from "./routes/bookmark.js";
import { eventsRoutes } from "./routes/events.js";
import { healthRoutes } from "./routes/health.js";
import { jobsRoutes } from "./routes/jobs.js";
import { planRoutes } from "./routes/plan.js";
import { reprocessRoutes } from "./routes/reprocess.js";
import { runsRoutes } from "./routes/runs.js";
import { SHARED_SCHEMAS } from "./schemas.js";
import { BODY_LIMIT } from "./limits.js";

/** Largest request body: 1 MiB (413 `E_TOO_LARGE` beyond). */
export { BODY_LIMIT };

/** Where the OpenAPI document is served (public: it holds no data). */
export const OPENAPI_PATH = "/v1/openapi.json";

export interface ApiOptions {
  /**
   * The bearer token every route but /healthz, /readyz, /metrics and the OpenAPI document needs
   * (`TRANCHE_API_TOKEN`, see auth.ts `apiToken`); undefined = no authentication, which
   * {@link startApi} allows only on a loopback address.
   */
  token: string | undefined;
  /** Where request and error lines go. Default: the context's logger. */
  log?: Logger;
  /**
   * Mounts more on the app before it is ready (the queue dashboard, `registerUi` of src/api/ui.ts,
   * which guards its own routes). Routes without OpenAPI tags stay out of the OpenAPI document.
   */
  extend?: (app: FastifyInstance) => Promise<void> | void;
}

/** fastify's logger interface over src/log.ts: its own info lines at debug, errors at warn. */
function bridge(log: Logger, bindings: Fields = {}): FastifyBaseLogger {
  const at =
    (emit: (m: string, f?: Fields) => void) =>
    (a?: unknown, b?: unknown): void => {
      const [fields, msg] =
        typeof a === "string"
          ? [{}, a]
          : [a instanceof Error ? { reason: a.message } : ((a ?? {}) as Fields), typeof b === "string" ? b : ""];
      const { req: _req, res: _res, err, ...rest } = fields as Fields & { err?: unknown };
      emit(msg || "http", { ...bindings, ...rest, ...(err instanceof Error ? { reason: err.message } : {}) });
    };
  const l = {
    level: "info",
    fatal: at(log.error),
    error: at(log.warn),
    warn: at(log.warn),
    info: at(log.debug),
    debug: at(log.debug),
    trace: () => undefined,
    silent: () => undefined,
    child: (b: Fields) => bridge(log, { ...bindings, ...b }),
  };
  return l as unknown as FastifyBaseLogger;
}

/**
 * Builds the API app (not listening): `/v1` routes behind the bearer token, the OpenAPI document
 * at {@link OPENAPI_PATH}, and `/healthz`, `/readyz`, `/metrics` at the root without
 * authentication. Every request and response is validated and serialized with the JSON schemas
 * of schemas.ts; every error is `{ "error": { "code", "message" } }` (errors.ts).
 */
export async function buildApi(ctx: StepContext, opts: ApiOptions): Promise<FastifyInstance> {
  const log = opts.log ?? ctx.log;
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    loggerInstance: bridge(log, { component: "api" }),
    // One line per request comes from the onResponse hook below (debug), not from fastify.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: "idle",
    ajv: {
      // Strict JSON: no coercion ("5" is not 5, true is not 1), unknown fields are errors, not dropped.
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allowUnionTypes: true, allErrors: false },
    },
    schemaErrorFormatter: (errors, dataVar) => formatValidation(errors as unknown as ValidationIssue[], dataVar),
  });

  // An empty JSON body (`curl -X POST -H 'content-type: application/json'`) is no body, not an error.
  const json = app.getDefaultJsonParser("error", "error");
  app.addContentTypeParser("application/json", { parseAs: "string", bodyLimit: BODY_LIMIT }, (req, body, done) => {
    if (typeof body === "string" && body.trim() === "") return done(null, undefined);
    json(req, body as string, done);
  });

  app.setErrorHandler(errorHandler(log));
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, new ApiError(404, "E_NOT_FOUND", `no route ${req.method} ${req.url.split("?")[0]}; see ${OPENAPI_PATH}`)),
  );
  app.addHook("onResponse", async (req, reply) => {
    log.debug("API request", {
      method: req.method,
      path: req.url.split("?")[0],
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    });
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "tranche HTTP API",
        version: packageVersion(),
        description:
          "Jobs, runs, bookmarks, plans, reprocessing and events of a tranche deployment, served by `tranche scheduler` (docs/api.md).",
      },
      components: {
        securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", description: "The token of TRANCHE_API_TOKEN" } },
      },
      security: [{ bearerAuth: [] }],
      tags: [
        { name: "jobs", description: "Configured jobs" },
        { name: "runs", description: "Bounded runs: start, list, show, stop" },
        { name: "bookmark", description: "A job's bookmark: show, reset, rewind" },
        { name: "plan", description: "What the next run would take" },
        { name: "reprocess", description: "Reprocess chosen files" },
        { name: "events", description: "S3 event notifications" },
        { name: "health", description: "Liveness, readiness and metrics (no authentication)" },
        { name: "meta", description: "This document" },
      ],
    },
    // Shared schemas keep their names: #/components/schemas/<Name>.
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`) },
    // Only tagged routes are documented (a mounted dashboard's are not).
    hideUntagged: true,
    // A route whose body may be left out says so with "x-body-optional" (fastify-swagger marks every body required).
    transformObject: (d) => {
      if (!("openapiObject" in d)) return d.swaggerObject;
      const openapiObject = d.openapiObject;
      const doc = openapiObject as { paths?: Record<string, Record<string, Record<string, unknown>>> };
      for (const op of Object.values(doc.paths ?? {}).flatMap((p) => Object.values(p))) {
        if (!op["x-body-optional"]) continue;
        delete op["x-body-optional"];
        (op.requestBody as { required: boolean }).required = false;
      }
      return openapiObject;
    },
  });
  for (const [name, schema] of Object.entries(SHARED_SCHEMAS)) app.addSchema({ $id: name, ...schema });

  const deps = { ctx };
  await app.register(
    async (v1) => {
      v1.addHook("onRequest", requireBearer(opts.token));
      // JSON only: a text/plain body is 415, not a string that fails validation.
      v1.removeContentTypeParser("text/plain");
      // A POST without a body is an empty object: its fields are then checked (and named) as missing.
      v1.addHook("preValidation", async (req) => {
        if (req.method === "POST" && req.body === undefined) req.body = {};
      });
      v1.addHook("onSend", async (_req, reply, payload) => {
        reply.header("cache-control", "no-store");
        return payload;
      });
      await v1.register(jobsRoutes, deps);
      await v1.register(runsRoutes, deps);
      await v1.register(bookmarkRoutes, deps);
      await v1.register(planRoutes, deps);
      await v1.register(reprocessRoutes, deps);
      await v1.register(eventsRoutes, deps);
    },
    { prefix: "/v1" },
  );

  app.get(
    OPENAPI_PATH,
    {
      schema: {
        tags: ["meta"],
        summary: "The OpenAPI 3.1 document",
        description: "This API's OpenAPI document (docs/api.md is generated from it). No authentication: it holds no data.",
        security: [],
        response: { 200: { description: "OpenAPI 3.1", type: "object", additionalProperties: true } },
      },
    },
    async () => app.swagger(),
  );
  await app.register(healthRoutes, deps);
  await opts.extend?.(app);
  await app.ready();
  return app;
}

/**
 * Starts the API on `api.host:api.port` (port 0: any free port). Refuses (E_CONFIG) to listen
 * without a token on an address other than loopback. `option` names where the port came from.
 */
export async function startApi(
  ctx: StepContext,
  cfg: Pick<TrancheConfig["api"], "host" | "port">,
  opts: ApiOptions & { option?: string },
): Promise<{ port: number; app: FastifyInstance; close(): Promise<void> }> {
  const log = opts.log ?? ctx.log;
  checkExposure(cfg.host, opts.token);
  if (!opts.token)
    log.warn("the HTTP API has no authentication (TRANCHE_API_TOKEN is not set); it listens on a loopback address only", {
      host: cfg.host,
    });
  const app = await buildApi(ctx, opts);
  try {
    await app.listen({ host: cfg.host, port: cfg.port });
  } catch (err) {
    await app.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL")
      throw new ConfigError(
        `API port ${cfg.port} on ${cfg.host} ${code === "EADDRINUSE" ? "is in use" : code === "EACCES" ? "needs privileges" : "is not an address of this host"}; choose another with ${opts.option ?? "api.port"} (or api.host), or 0 to turn the API off`,
      );
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  log.info("HTTP API listening", { host: cfg.host, port, auth: opts.token ? "bearer" : "none (loopback only)", openapi: OPENAPI_PATH });
  return { port, app, close: () => app.close() };
}
