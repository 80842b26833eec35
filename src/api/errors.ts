import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { TrancheError } from "../errors.js";
import type { Logger } from "../log.js";

/** The body of every error answer: `{ "error": { "code": "E_…", "message": "…", "field": "body/x" } }`. */
export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** An error the API answers as such: a status, a stable code, a message and (for 400s) the field at fault. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** HTTP status of a tranche error code (docs/api.md, "Errors"). Codes not listed are 500. */
export function statusOfCode(code: string): number {
  switch (code) {
    case "E_BAD_REQUEST":
    case "E_CONFIG":
      return 400;
    case "E_UNAUTHORIZED":
      return 401;
    case "E_NOT_FOUND":
    case "E_UNKNOWN_JOB":
    case "E_UNKNOWN_RUN":
      return 404;
    case "E_CONCURRENT_RUNS":
    case "E_RUN_IN_PROGRESS":
      return 409;
    case "E_TOO_LARGE":
      return 413;
    case "E_UNSUPPORTED_MEDIA_TYPE":
      return 415;
    case "E_ACCESS":
      return 502;
    case "E_REDIS":
    case "E_UNAVAILABLE":
    case "E_UNREACHABLE":
    case "E_EVENTS_FULL":
    case "E_STATE_VERSION":
    case "E_TIMEOUT":
    case "E_THROTTLED":
      return 503;
    default:
      return 500;
  }
}

/** Errors of the Redis client itself (not TrancheErrors): Redis is down or the connection closed. */
function isRedisDown(err: Error): boolean {
  return (
    err.name === "MaxRetriesPerRequestError" ||
    /^(Connection is closed|Stream isn't writeable|connect ECONNREFUSED|Reached the max retries per request limit)/.test(err.message)
  );
}

/** Fastify's own request errors (body parser, limits) by their codes. */
const FASTIFY_CODES: Record<string, { status: number; code: string; message?: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: "E_TOO_LARGE", message: "the request body is larger than 1 MiB" },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: "E_UNSUPPORTED_MEDIA_TYPE", message: "send JSON: Content-Type: application/json" },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: "E_BAD_REQUEST", message: "the Content-Length does not match the body" },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: "E_BAD_REQUEST" },
};

/** What to answer for any error thrown by a route, a hook, validation or the body parser. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof TrancheError) {
    const field = (err as TrancheError & { field?: unknown }).field;
    const status = statusOfCode(err.code);
    // A 400 is the client's mistake: E_CONFIG (a bound, a run id) is E_BAD_REQUEST on the API.
    const code = status === 400 ? "E_BAD_REQUEST" : err.code;
    const f = typeof field === "string" ? field : undefined;
    // The field is named in the message too (a module's message names the CLI option as well).
    return new ApiError(status, code, f && !err.message.includes(f) ? `${f}: ${err.message}` : err.message, f);
  }
  const e = err as FastifyError & { validationContext?: string };
  if (e && Array.isArray(e.validation)) {
    const v = e.validation[0];
    return new ApiError(400, "E_BAD_REQUEST", e.message, v ? fieldOf(e.validationContext ?? "body", v) : undefined);
  }
  if (e && typeof e.code === "string" && FASTIFY_CODES[e.code]) {
    const m = FASTIFY_CODES[e.code]!;
    return new ApiError(m.status, m.code, m.message ?? `the request body is not valid JSON: ${e.message}`);
  }
  if (e instanceof SyntaxError && (e as { statusCode?: number }).statusCode === 400)
    return new ApiError(400, "E_BAD_REQUEST", `the request body is not valid JSON: ${e.message}`);
  if (e instanceof Error && isRedisDown(e))
    return new ApiError(503, "E_REDIS", `Redis does not answer (${e.message}); retry once it is back`);
  const status = typeof e?.statusCode === "number" ? e.statusCode : 500;
  if (status >= 400 && status < 500) return new ApiError(status, "E_BAD_REQUEST", e.message);
  return new ApiError(500, "E_INTERNAL", "internal error; see the scheduler's log");
}

/** Ajv's error, as fastify hands it to the formatter. */
export interface ValidationIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/** The field a validation error is about, as `body/boundedFiles` (`querystring/limit`, `params/runId`). */
export function fieldOf(context: string, v: ValidationIssue): string {
  let path = v.instancePath;
  if (v.keyword === "required") path += `/${String(v.params.missingProperty)}`;
  else if (v.keyword === "additionalProperties") path += `/${String(v.params.additionalProperty)}`;
  return `${context}${path}`;
}

/**
 * fastify's `schemaErrorFormatter`: a message naming the field, e.g. "body/boundedFiles must be
 * integer", "body/toRun is required", "body/boundedFile is not a known field".
 */
export function formatValidation(errors: ValidationIssue[], context: string): Error {
  const v = errors[0];
  if (!v) return new Error(`${context} is not valid`);
  const field = fieldOf(context, v);
  let text: string;
  if (v.keyword === "required") text = `${field} is required`;
  else if (v.keyword === "additionalProperties") text = `${field} is not a known field`;
  else if (v.keyword === "enum")
    text = `${field} must be one of ${(v.params.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(", ")}`;
  else text = `${field} ${v.message ?? "is not valid"}`;
  return new Error(text);
}

export function errorBody(e: ApiError): ErrorBody {
  return { error: { code: e.code, message: e.message, ...(e.field ? { field: e.field } : {}) } };
}

/** Sends an error answer (a 401 carries `WWW-Authenticate: Bearer`). */
export function sendError(reply: FastifyReply, e: ApiError): FastifyReply {
  if (e.status === 401 && !reply.hasHeader("www-authenticate")) reply.header("www-authenticate", 'Bearer realm="tranche"');
  return reply.code(e.status).send(errorBody(e));
}

/** The app's error handler: every error becomes the `{ error: { code, message } }` answer; 5xx are logged at warn. */
export function errorHandler(log: Logger) {
  return (err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const e = toApiError(err);
    if (e.status >= 500)
      log.warn("API request failed", {
        method: req.method,
        url: req.url.split("?")[0],
        status: e.status,
        code: e.code,
        reason: err instanceof Error ? err.message : String(err),
      });
    return sendError(reply, e);
  };
}
