import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import fastifyCookie from "@fastify/cookie";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { FastifyAdapter } from "@bull-board/fastify";
import type { Queue } from "bullmq";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/** Name of the session cookie of the dashboard (see docs/ui.md). */
export const UI_COOKIE = "tranche_ui";
/** How long a dashboard login lasts. */
export const UI_SESSION_SECONDS = 12 * 3600;

export interface UiOptions {
  /** The BullMQ queues to show (one per job, `queueName(job)`). */
  queues: Queue[];
  /** `api.uiWritable`: Bull Board may retry, promote, clean and remove jobs. */
  writable: boolean;
  /** `TRANCHE_API_TOKEN`; undefined = no authentication (the server allows that only on loopback). */
  token: string | undefined;
  /** Where the dashboard is mounted. Default "/ui". */
  basePath?: string;
}

const sha256 = (s: string | Buffer) => createHash("sha256").update(s).digest();

/** Constant-time comparison of two secrets of any lengths (their digests have equal lengths). */
function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

/**
 * The session cookie: `<expiry s>.<HMAC-SHA256 keyed by the token over the expiry>` (hex). It
 * holds no token, ends by itself, is valid on every scheduler replica with the same token, and
 * stops being valid when the token changes.
 */
function sessionValue(token: string, expires: number): string {
  return `${expires}.${createHmac("sha256", token).update(`tranche-ui-session:${expires}`).digest("hex")}`;
}

function validSession(token: string, value: string | undefined, now = Date.now()): boolean {
  if (!value) return false;
  const m = /^(\d{1,12})\.([0-9a-f]{64})$/.exec(value);
  if (!m) return false;
  const expires = Number(m[1]);
  if (expires * 1000 <= now || expires * 1000 > now + UI_SESSION_SECONDS * 1000 + 60_000) return false;
  const expected = Buffer.from(sessionValue(token, expires).split(".")[1]!, "hex");
  return timingSafeEqual(Buffer.from(m[2]!, "hex"), expected);
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  const m = h ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h) : null;
  return m?.[1];
}

function apiError(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).header("cache-control", "no-store").send({ error: { code, message } });
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 1px 4px #0002;min-width:20rem}
h1{font-size:1.25rem;margin:0 0 1rem}label{display:block;margin-bottom:.4rem}
input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;margin-bottom:1rem}
button{padding:.5rem 1.2rem;font-size:1rem;cursor:pointer}.error{color:#b00020;margin:0 0 1rem}
</style></head><body><main>${body}</main></body></html>`;
}

function loginPage(basePath: string, error?: string): string {
  return page(
    "tranche: sign in",
    `<h1>tranche queue dashboard</h1>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ""}<form method="post" action="${escapeHtml(basePath)}/login">
<label for="token">API token (TRANCHE_API_TOKEN)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>`,
  );
}

function logoutPage(basePath: string): string {
  return page(
    "tranche: sign out",
    `<h1>Sign out of the queue dashboard?</h1>
<form method="post" action="${escapeHtml(basePath)}/logout"><button type="submit">Sign out</button></form>`,
  );
}

function sendPage(reply: FastifyReply, status: number, html: string) {
  return reply
    .code(status)
    .header("cache-control", "no-store")
    .header(
      "content-security-policy",
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    .type("text/html; charset=utf-8")
    .send(html);
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Mounts Bull Board (read-only unless `writable`) at `basePath`, behind the API token: either
 * `Authorization: Bearer <token>` or the session cookie set by the login form at
 * `<basePath>/login` (docs/ui.md). Everything is registered in one encapsulated plugin whose
 * onRequest hook guards every route of it, Bull Board's own plugin (its pages, static files and
 * `/api` routes) included.
 */
export async function registerUi(app: FastifyInstance, o: UiOptions): Promise<void> {
  const basePath = (o.basePath ?? "/ui").replace(/\/+$/, "");
  if (!/^\/[^/]/.test(basePath)) throw new Error(`the dashboard's base path must be a path below "/", such as "/ui": ${o.basePath}`);
  // Fail closed: an empty token is a mistake, not "no authentication".
  if (o.token === "")
    throw new Error("the API token (TRANCHE_API_TOKEN) is empty: set a token, or leave it unset to serve only on loopback");
  const token = o.token;
  const loginPath = `${basePath}/login`;
  const logoutPath = `${basePath}/logout`;
  const apiPrefix = `${basePath}/api/`;

  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(basePath);
  createBullBoard({
    queues: o.queues.map((q) => new BullMQAdapter(q, { readOnlyMode: !o.writable, allowRetries: o.writable })),
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: "tranche",
        hideDocsLink: true,
        miscLinks: token ? [{ text: "Sign out", url: logoutPath }] : [],
      },
    },
  });

  await app.register(
    async (ui) => {
      // The scheduler's app may have these already (then this scope inherits them).
      if (!ui.hasRequestDecorator("cookies")) await ui.register(fastifyCookie);
      // The login form posts application/x-www-form-urlencoded (parsed in this scope only).
      if (!ui.hasContentTypeParser("application/x-www-form-urlencoded")) {
        ui.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: 4096 }, (_req, body, done) => {
          done(null, Object.fromEntries(new URLSearchParams(body as string)));
        });
      }

      // Runs before every route of this scope and of its child plugins: the login routes below
      // and all of Bull Board's. It looks at the matched route (not the raw URL), so duplicate
      // slashes or case-insensitive routing cannot slip a request past it.
      ui.addHook("onRequest", async (req, reply) => {
        reply.header("x-frame-options", "DENY");
        reply.header("x-content-type-options", "nosniff");
        const route = req.routeOptions.url ?? req.url.split("?")[0]!;
        if (route === loginPath || route === logoutPath) return;
        if (token && !authorized(req)) {
          const navigation = req.method === "GET" && !route.startsWith(apiPrefix) && /text\/html/i.test(req.headers.accept ?? "");
          if (navigation) return reply.header("cache-control", "no-store").redirect(loginPath, 303);
          return apiError(
            reply,
            401,
            "E_UNAUTHORIZED",
            `the dashboard needs the API token: "Authorization: Bearer <TRANCHE_API_TOKEN>" or a session from ${loginPath}`,
          );
        }
        // Beyond Bull Board's readOnlyMode, which hides the buttons but leaves most of its API
        // open: no route here but the login form's changes anything when read-only.
        if (!o.writable && !SAFE.has(req.method)) {
          return apiError(
            reply,
            403,
            "E_READ_ONLY",
            "the dashboard is read-only; set api.uiWritable: true to retry, promote, clean or remove jobs",
          );
        }
      });

      const authorized = (req: FastifyRequest): boolean => {
        if (!token) return true;
        const b = bearer(req);
        if (b !== undefined) return sameSecret(b, token);
        return validSession(token, req.cookies[UI_COOKIE]);
      };

      const cookieOptions = (req: FastifyRequest) => ({
        path: basePath,
        httpOnly: true,
        sameSite: "strict" as const,
        secure: req.protocol === "https",
      });

      ui.get("/login", async (req, reply) => {
        if (!token || authorized(req)) return reply.redirect(basePath, 303);
        return sendPage(reply, 200, loginPage(basePath));
      });

      ui.post("/login", async (req, reply) => {
        if (!token) return reply.redirect(basePath, 303);
        const body = req.body as Record<string, unknown> | undefined;
        const given = typeof body?.token === "string" ? body.token : "";
        if (!sameSecret(given, token)) {
          req.log.warn({ ip: req.ip }, "dashboard login refused: wrong token");
          return sendPage(reply, 401, loginPage(basePath, "That is not the API token."));
        }
        const expires = Math.floor(Date.now() / 1000) + UI_SESSION_SECONDS;
        return reply
          .setCookie(UI_COOKIE, sessionValue(token, expires), { ...cookieOptions(req), maxAge: UI_SESSION_SECONDS })
          .header("cache-control", "no-store")
          .redirect(basePath, 303);
      });

      ui.get("/logout", async (_req, reply) => {
        if (!token) return reply.redirect(basePath, 303);
        return sendPage(reply, 200, logoutPage(basePath));
      });

      ui.post("/logout", async (req, reply) => {
        return reply
          .clearCookie(UI_COOKIE, cookieOptions(req))
          .header("cache-control", "no-store")
          .redirect(token ? loginPath : basePath, 303);
      });

      // Bull Board's plugin (its pages, /static and /api routes) as a child of this scope, so
      // the hook above runs before every one of its routes.
      await ui.register(serverAdapter.registerPlugin());
    },
    { prefix: basePath },
  );
}
