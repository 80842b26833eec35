/**
 * The queue dashboard (src/api/ui.ts, docs/ui.md) in a real browser: Debian's headless Chromium
 * (`apt-get install chromium`) driven by playwright-core, against Bull Board mounted on fastify
 * over the queue of a job that really ran. Skipped without /usr/bin/chromium, except in CI.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import fastifyCookie from "@fastify/cookie";
import { Queue } from "bullmq";
import Fastify, { type FastifyInstance } from "fastify";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerUi, UI_COOKIE } from "../src/api/ui.js";
import { queueName } from "../src/queue/batch-job.js";
import { harness, type Harness } from "./helpers/harness.js";
import { cleanPrefix, REDIS_URL, redisClient, uniquePrefix } from "./helpers/redis.js";
import { redisOptions } from "../src/redis.js";
import { writeInput } from "./helpers/files.js";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "ui-test-token-0123456789abcdef";
const JOB = "uiboard";
const QUEUE = queueName(JOB);

describe.skipIf(!existsSync(CHROMIUM) && !process.env.CI)("queue dashboard in a browser (Bull Board at /ui)", () => {
  let h: Harness;
  let queue: Queue;
  let browser: Browser;
  let batchJobId: string;
  const apps: FastifyInstance[] = [];
  const contexts: BrowserContext[] = [];
  let readOnly: string;

  async function serve(writable: boolean): Promise<string> {
    const app = Fastify();
    apps.push(app);
    await registerUi(app, { queues: [queue], writable, token: TOKEN });
    return app.listen({ host: "127.0.0.1", port: 0 });
  }

  async function newPage(): Promise<{ ctx: BrowserContext; page: Page }> {
    const ctx = await browser.newContext();
    contexts.push(ctx);
    // Bull Board's page links a web font: nothing leaves the machine.
    await ctx.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (r) => r.abort());
    return { ctx, page: await ctx.newPage() };
  }

  /** TRANCHE_UI_SCREENSHOTS=<folder> keeps pictures of the pages, to look at them. */
  async function screenshot(page: Page, name: string) {
    const dir = process.env.TRANCHE_UI_SCREENSHOTS;
    if (dir) await page.screenshot({ path: path.join(dir, `ui-${name}.png`), fullPage: true });
  }

  async function logIn(page: Page, base: string, token: string) {
    await page.goto(`${base}/ui`);
    expect(new URL(page.url()).pathname).toBe("/ui/login");
    await page.fill("#token", token);
    const [response] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === "/ui/login" && r.request().method() === "POST"),
      page.click("button[type=submit]"),
    ]);
    await page.waitForLoadState("domcontentloaded");
    return response;
  }

  beforeAll(async () => {
    h = await harness(JOB, { batchFiles: 2 });
    for (let i = 0; i < 3; i++) await writeInput(h.inDir, `f-${i}.json`, `{"i":${i}}\n`, Date.UTC(2024, 0, 1) + i * 1000);
    await h.startWorker(1);
    expect((await h.run()).state).toBe("SUCCEEDED");
    await h.stopWorker();
    queue = new Queue(QUEUE, { connection: h.bull, prefix: h.prefix });
    // A run keeps its finished step jobs on the queue (KEEP_DONE): its batches among them.
    const batches = (await queue.getJobs(["completed"])).filter((j) => j.name === "batch");
    expect(batches.length).toBe(2);
    batchJobId = batches[0]!.id!;
    readOnly = await serve(false);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
      ],
    });
  });

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    for (const a of apps) await a.close();
    await queue?.close();
    await h?.close();
  });

  it("without the token: pages redirect to the login form, the API and static files answer 401", async () => {
    const { ctx, page } = await newPage();
    for (const p of ["/ui", "/ui/", `/ui/queue/${QUEUE}?status=completed`]) {
      const r = await page.goto(`${readOnly}${p}`);
      expect(r?.status()).toBe(200);
      expect(new URL(page.url()).pathname).toBe("/ui/login");
      await page.locator("#token").waitFor();
    }
    expect(await page.getByText(QUEUE).count()).toBe(0);
    await screenshot(page, "login");

    for (const p of ["/ui/api/queues", `/ui/api/queues/${QUEUE}/${batchJobId}`, "/ui/static/images/logo.svg", "/ui"]) {
      const r = await page.request.get(`${readOnly}${p}`, { maxRedirects: 0 });
      expect([p, r.status()]).toEqual([p, 401]);
      expect((await r.json()).error.code).toBe("E_UNAUTHORIZED");
    }
    // A forged session cookie or a wrong bearer token is no better.
    await ctx.addCookies([{ name: UI_COOKIE, value: `${Math.floor(Date.now() / 1000) + 600}.${"0".repeat(64)}`, url: `${readOnly}/ui` }]);
    expect((await page.request.get(`${readOnly}/ui/api/queues`)).status()).toBe(401);
    expect((await page.request.get(`${readOnly}/ui/api/queues`, { headers: { authorization: "Bearer nope" } })).status()).toBe(401);
    // The bearer token works without a session (scripts, curl).
    const ok = await page.request.get(`${readOnly}/ui/api/queues`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status()).toBe(200);
    expect(JSON.stringify(await ok.json())).toContain(QUEUE);
  });

  it("a wrong token is refused at the login form", async () => {
    const { ctx, page } = await newPage();
    const r = await logIn(page, readOnly, "not-the-token");
    expect(r.status()).toBe(401);
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").innerText()).toContain("not the API token");
    expect(await ctx.cookies()).toEqual([]);
    await page.goto(`${readOnly}/ui`);
    expect(new URL(page.url()).pathname).toBe("/ui/login");
  });

  it("with the token: the dashboard lists the job's queue and its finished batch, read-only, until signing out", async () => {
    const { ctx, page } = await newPage();
    const r = await logIn(page, readOnly, TOKEN);
    expect(r.status()).toBe(303);
    expect(new URL(page.url()).pathname).toBe("/ui");

    const [cookie, ...others] = await ctx.cookies();
    expect(others).toEqual([]);
    expect(cookie).toMatchObject({ name: UI_COOKIE, path: "/ui", httpOnly: true, sameSite: "Strict" });
    expect(cookie!.value).not.toContain(TOKEN);
    expect(cookie!.expires).toBeGreaterThan(Date.now() / 1000);

    // The overview lists the job's queue; open it, then its Completed tab.
    await page.getByRole("link", { name: QUEUE }).first().click();
    await page.waitForURL((u) => u.pathname === `/ui/queue/${QUEUE}`);
    await page
      .getByRole("link", { name: /completed/i })
      .first()
      .click();
    await page.waitForURL((u) => u.searchParams.get("status") === "completed");
    await page.getByText(batchJobId, { exact: true }).waitFor();
    expect(await page.getByText("batch", { exact: true }).count()).toBe(2);
    await screenshot(page, "completed");

    // Read-only: no bulk actions in the page, and Bull Board's mutating API routes answer 403.
    expect(await page.getByRole("button", { name: /retry all|clean all/i }).count()).toBe(0);
    for (const [method, p] of [
      ["PUT", `/ui/api/queues/${QUEUE}/clean/completed`],
      ["PUT", `/ui/api/queues/${QUEUE}/${batchJobId}/retry`],
      ["PUT", `/ui/api/queues/${QUEUE}/${batchJobId}/clean`],
      ["PUT", `/ui/api/queues/${QUEUE}/obliterate`],
      ["POST", `/ui/api/queues/${QUEUE}/add`],
      ["PATCH", `/ui/api/queues/${QUEUE}/${batchJobId}/update-data`],
    ] as const) {
      const res = await page.request.fetch(`${readOnly}${p}`, { method, data: {} });
      expect([method, p, res.status()]).toEqual([method, p, 403]);
      expect((await res.json()).error.code).toBe("E_READ_ONLY");
    }
    expect((await queue.getJobCounts("completed")).completed).toBe(5);

    // Sign out, from the dashboard's menu: the session ends.
    await page.locator("button[aria-haspopup=menu]").first().click();
    await page.getByText("Sign out", { exact: true }).click();
    await page.waitForURL((u) => u.pathname === "/ui/logout");
    await Promise.all([page.waitForURL((u) => u.pathname === "/ui/login"), page.click("button[type=submit]")]);
    expect(await ctx.cookies()).toEqual([]);
    expect((await page.request.get(`${readOnly}/ui/api/queues`)).status()).toBe(401);
  });

  it("with api.uiWritable the dashboard offers actions and its API removes a finished batch", async () => {
    const writable = await serve(true);
    const { page } = await newPage();
    expect((await logIn(page, writable, TOKEN)).status()).toBe(303);
    await page.goto(`${writable}/ui/queue/${QUEUE}?status=completed`);
    await page.getByText(batchJobId, { exact: true }).waitFor();
    await page.getByRole("button", { name: /clean all/i }).waitFor();

    const res = await page.request.put(`${writable}/ui/api/queues/${QUEUE}/${batchJobId}/clean`);
    expect(res.status()).toBe(204);
    expect(await queue.getJob(batchJobId)).toBeUndefined();
  });
});

describe("registerUi options (no browser)", () => {
  let queue: Queue;
  const prefix = uniquePrefix("ui-opts");
  beforeAll(async () => {
    queue = new Queue(QUEUE, { connection: redisOptions(REDIS_URL), prefix });
    await queue.waitUntilReady();
  });
  afterAll(async () => {
    await queue.close();
    const redis = redisClient();
    await cleanPrefix(redis, prefix);
    await redis.quit();
  });

  it("without a token: no login, still read-only; another base path", async () => {
    const app = Fastify();
    await registerUi(app, { queues: [queue], writable: false, token: undefined, basePath: "/board/" });
    try {
      expect((await app.inject({ url: "/board/api/queues" })).statusCode).toBe(200);
      const html = await app.inject({ url: "/board", headers: { accept: "text/html" } });
      expect([html.statusCode, html.body]).toEqual([200, expect.stringMatching(/<base href="\/board\/"/)]);
      expect((await app.inject({ url: "/board/login" })).headers.location).toBe("/board");
      const put = await app.inject({ method: "PUT", url: `/board/api/queues/${QUEUE}/clean/completed` });
      expect([put.statusCode, put.json().error.code]).toEqual([403, "E_READ_ONLY"]);
      expect((await app.inject({ url: "/ui/api/queues" })).statusCode).toBe(404);
    } finally {
      await app.close();
    }
    await expect(registerUi(Fastify(), { queues: [queue], writable: false, token: undefined, basePath: "/" })).rejects.toThrow(/base path/);
    await expect(registerUi(Fastify(), { queues: [queue], writable: false, token: "" })).rejects.toThrow(/empty/);
  });

  it("guards the matched route, however the URL is spelled, next to the app's own cookie plugin and form parser", async () => {
    const app = Fastify({ routerOptions: { ignoreDuplicateSlashes: true, caseSensitive: false } });
    await app.register(fastifyCookie);
    app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_r, body, done) =>
      done(null, Object.fromEntries(new URLSearchParams(body as string))),
    );
    await registerUi(app, { queues: [queue], writable: false, token: TOKEN });
    try {
      for (const url of ["//ui//api/queues", "/UI/API/queues", "/ui/api//queues"]) {
        const r = await app.inject({ url });
        expect([url, r.statusCode]).toEqual([url, 401]);
      }
      for (const url of [`//ui//api/queues/${QUEUE}/clean/completed`, `/UI/Api/queues/${QUEUE}/clean/completed`]) {
        const r = await app.inject({ method: "PUT", url, headers: { authorization: `Bearer ${TOKEN}` } });
        expect([url, r.statusCode]).toEqual([url, 403]);
      }
      const login = await app.inject({
        method: "POST",
        url: "/ui/login",
        payload: `token=${encodeURIComponent(TOKEN)}`,
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      expect([login.statusCode, login.headers.location]).toEqual([303, "/ui"]);
      const cookie = login.cookies.find((c) => c.name === UI_COOKIE)!;
      expect(cookie).toMatchObject({ path: "/ui", httpOnly: true, sameSite: "Strict" });
      expect((await app.inject({ url: "/ui/api/queues", cookies: { [UI_COOKIE]: cookie.value } })).statusCode).toBe(200);
      // A session of another token (a rotated one) is not valid.
      const other = Fastify();
      await registerUi(other, { queues: [queue], writable: false, token: "another-token" });
      expect((await other.inject({ url: "/ui/api/queues", cookies: { [UI_COOKIE]: cookie.value } })).statusCode).toBe(401);
      await other.close();
    } finally {
      await app.close();
    }
  });
});
