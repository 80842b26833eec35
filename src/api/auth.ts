import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ConfigError } from "../errors.js";
import { ApiError, sendError } from "./errors.js";

/** The API token from the environment (`TRANCHE_API_TOKEN`); an empty value is no token. */
export function apiToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const t = env.TRANCHE_API_TOKEN?.trim();
  return t ? t : undefined;
}

/** Whether a bind address only accepts connections from this host (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return mapped ? mapped[1]!.startsWith("127.") : false;
}

/**
 * Refuses to serve the API without a token on an address other hosts can reach: anyone who can
 * connect could start runs and reset bookmarks. `option` names where the host came from.
 */
export function checkExposure(host: string, token: string | undefined, option = "api.host"): void {
  if (token || isLoopback(host)) return;
  throw new ConfigError(
    `the HTTP API would listen on ${host} (${option}) without authentication; set TRANCHE_API_TOKEN to a secret (every request then needs "Authorization: Bearer <token>"), or bind it to 127.0.0.1`,
  );
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Constant-time comparison of a given secret with the expected one (their SHA-256 digests have equal lengths whatever the inputs). */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = header ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
  return m?.[1];
}

/** The password of an `Authorization: Basic base64(user:password)` header, or undefined. */
export function basicPassword(header: string | undefined): string | undefined {
  const m = header ? /^Basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i.exec(header) : null;
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

/**
 * An onRequest hook that lets a request through only with `Authorization: Bearer <token>` (RFC
 * 6750); without a token configured (loopback only, see {@link checkExposure}) it lets every
 * request through. Answers 401 `E_UNAUTHORIZED` with `WWW-Authenticate: Bearer`.
 */
export function requireBearer(token: string | undefined) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    if (!token) return;
    // A route may also take the token as a Basic password (POST /v1/events: SNS HTTPS subscriptions
    // can only put a user and password in the endpoint URL).
    const basic = (req.routeOptions.config as { basicAuth?: boolean } | undefined)?.basicAuth
      ? basicPassword(req.headers.authorization)
      : undefined;
    if (basic !== undefined && sameSecret(basic, token)) return;
    const given = basic === undefined ? bearerToken(req.headers.authorization) : basic;
    if (given !== undefined && sameSecret(given, token)) return;
    if (given === undefined) {
      reply.header("www-authenticate", 'Bearer realm="tranche"');
      return sendError(reply, new ApiError(401, "E_UNAUTHORIZED", 'this route needs "Authorization: Bearer <TRANCHE_API_TOKEN>"'));
    }
    reply.header("www-authenticate", 'Bearer realm="tranche", error="invalid_token"');
    return sendError(reply, new ApiError(401, "E_UNAUTHORIZED", "the bearer token is not the API token (TRANCHE_API_TOKEN)"));
  };
}
