/**
 * The HTTP API of `tranche scheduler` (src/api, docs/api.md) over real HTTP, against real Redis,
 * BullMQ and worker threads: every route's success, 400 (the field named), 401, 404 and 409; runs
 * started through the API executed by a worker; the OpenAPI document validated, and real answers
 * checked against its response schemas.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import Fastify, { type FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { startApi, buildApi } from "../src/api/server.js";
import { bookmarkEntry } from "../src/bookmark/entry.js";
import { BookmarkStore } from "../src/bookmark/store.js";
import { TrancheError } from "../src/errors.js";
import { log } from "../src/log.js";
import { previewPlan } from "../src/run/plan-preview.js";
import { RunRecords } from "../src/run/run-record.js";
import { runRows } from "../src/run/run-rows.js";
import { stepContext, type StepContext } from "../src/run/step-context.js";
import { BIN, cli, waitFor, writeConfig } from "./helpers/cli.js";
import { freePort } from "./helpers/events.js";
import { writeInput } from "./helpers/files.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { holdLiveRun, releaseLiveRun } from "./helpers/redis.js";

const TOKEN = "api-test-token-4f1c2e9a7b";
const T0 = Date.UTC(2024, 0, 1);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await closeHarnesses();
});

interface Answer {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  text: string;
}

type CallOptions = { body?: unknown; raw?: string; token?: string | null };

/** A client of an API at `base`: the bearer token by default (`token: null` sends none). */
function client(base: string) {
  return async (method: string, path: string, o: CallOptions = {}): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (o.token !== null) headers.authorization = `Bearer ${o.token ?? TOKEN}`;
    let body: string | undefined;
    if (o.raw !== undefined || o.body !== undefined) {
      body = o.raw ?? JSON.stringify(o.body);
      headers["content-type"] = "application/json";
    }
    const res = await fetch(base + path, { method, headers, body });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, json, text };
  };
}

/** A job (harness) with the API serving it on a free port of 127.0.0.1. */
async function apiHarness(name: string, job: Record<string, unknown> = {}) {
  const h = await harness(name, job);
  const ctx = stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log });
  const api = await startApi(ctx, { host: "127.0.0.1", port: 0 }, { token: TOKEN });
  cleanups.push(async () => {
    await api.close();
    await ctx.queues.close();
  });
  return { h, ctx, api, call: client(`http://127.0.0.1:${api.port}`) };
}

async function seed(h: Harness, n: number, partitions = 1): Promise<void> {
  for (let i = 0; i < n; i++)
    await writeInput(h.inDir, `dt=2024-01-0${(i % partitions) + 1}/f-${String(i).padStart(3, "0")}.json`, `{"i":${i}}\n`, T0 + i * 1000);
}

function expectError(r: Answer, status: number, code: string, field?: string): void {
  expect(r.status, r.text).toBe(status);
  expect(r.json?.error?.code, r.text).toBe(code);
  expect(typeof r.json.error.message).toBe("string");
  if (field !== undefined) {
    expect(r.json.error.field).toBe(field);
    expect(r.json.error.message).toContain(field);
  }
}

/** Waits until the run ended and returns `GET /v1/runs/{id}`. */
async function ended(call: ReturnType<typeof client>, runId: string): Promise<Answer> {
  let last: Answer | undefined;
  await waitFor(
    async () => {
      last = await call("GET", `/v1/runs/${runId}`);
      return last.status === 200 && last.json.summary !== null;
    },
    30_000,
    `run ${runId} to end`,
  );
  return last!;
}

/**
 * Checks answers against the response schemas of the OpenAPI document (refs resolved), with a
 * strict Ajv (no coercion, no defaults) through fastify's own validator.
 */
async function documentChecker(doc: Record<string, unknown>) {
  const validator = new Validator();
  const res = await validator.validate(doc);
  expect(res.errors ?? [], JSON.stringify(res.errors)).toEqual([]);
  expect(res.valid).toBe(true);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const resolved = validator.resolveRefs() as any;
  const app: FastifyInstance = Fastify({
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allowUnionTypes: true, strict: false } },
  });
  const ids = new Map<string, number>();
  for (const [path, ops] of Object.entries(resolved.paths as Record<string, Record<string, { responses: Record<string, unknown> }>>)) {
    for (const [method, op] of Object.entries(ops)) {
      for (const [status, r] of Object.entries(op.responses)) {
        const schema = (r as { content?: Record<string, { schema: unknown }> }).content?.["application/json"]?.schema;
        if (!schema) continue;
        const n = ids.size;
        ids.set(`${method.toUpperCase()} ${path} ${status}`, n);
        app.post(`/check/${n}`, { schema: { body: schema as object } }, async () => ({ ok: true }));
      }
    }
  }
  await app.ready();
  cleanups.push(() => app.close());
  return {
    /** The answer `a` of `METHOD /path/{template}` matches the document's schema for its status. */
    async check(route: string, a: Answer): Promise<void> {
      const n = ids.get(`${route} ${a.status}`);
      expect(n, `the document has no ${a.status} answer for ${route}`).toBeDefined();
      const r = await app.inject({ method: "POST", url: `/check/${n}`, payload: a.text, headers: { "content-type": "application/json" } });
      expect(r.statusCode, `${route} ${a.status}: ${r.body}\n${a.text}`).toBe(200);
    },
  };
}

describe("OpenAPI document", () => {
  it("is served without authentication at /v1/openapi.json, is a valid OpenAPI 3.1 document, and every /v1 route needs the token", async () => {
    const { call } = await apiHarness("apidoc");
    const r = await call("GET", "/v1/openapi.json", { token: null });
    expect(r.status).toBe(200);
    expect(r.json.openapi).toBe("3.1.0");
    await documentChecker(r.json);
    const paths = Object.keys(r.json.paths).sort();
    expect(paths).toEqual(
      [
        "/healthz",
        "/metrics",
        "/readyz",
        "/v1/events",
        "/v1/jobs",
        "/v1/jobs/{job}",
        "/v1/jobs/{job}/bookmark",
        "/v1/jobs/{job}/bookmark/reset",
        "/v1/jobs/{job}/bookmark/rewind",
        "/v1/jobs/{job}/plan",
        "/v1/jobs/{job}/reprocess",
        "/v1/jobs/{job}/runs",
        "/v1/openapi.json",
        "/v1/runs/{runId}",
        "/v1/runs/{runId}/stop",
      ].sort(),
    );
    expect(r.json.components.securitySchemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
    // 401 without a token and with a wrong one, on every route the document says needs it.
    for (const [path, ops] of Object.entries(r.json.paths as Record<string, Record<string, { security?: unknown[] }>>)) {
      for (const [method, op] of Object.entries(ops)) {
        const url = path.replace("{job}", "apidoc").replace("{runId}", "20240101T000000000Z-abcdef");
        const isPublic = Array.isArray(op.security) && op.security.length === 0;
        expect(isPublic, path).toBe(["/healthz", "/readyz", "/metrics", "/v1/openapi.json"].includes(path));
        const none = await call(method.toUpperCase(), url, { token: null });
        const wrong = await call(method.toUpperCase(), url, { token: "not-the-token" });
        if (isPublic) {
          expect(none.status, path).toBe(200);
          continue;
        }
        expectError(none, 401, "E_UNAUTHORIZED");
        expect(none.headers.get("www-authenticate")).toBe('Bearer realm="tranche"');
        expectError(wrong, 401, "E_UNAUTHORIZED");
        expect(wrong.headers.get("www-authenticate")).toBe('Bearer realm="tranche", error="invalid_token"');
      }
    }
  });
});

describe("auth and binding", () => {
  it("refuses to start without a token on 0.0.0.0, starts without one on 127.0.0.1 (no auth there)", async () => {
    const h = await harness("apibind");
    const ctx = stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log });
    cleanups.push(() => ctx.queues.close());
    const refused = await startApi(ctx, { host: "0.0.0.0", port: 0 }, { token: undefined }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TrancheError);
    expect((refused as TrancheError).code).toBe("E_CONFIG");
    expect((refused as TrancheError).message).toMatch(/TRANCHE_API_TOKEN/);
    const open = await startApi(ctx, { host: "127.0.0.1", port: 0 }, { token: undefined });
    cleanups.push(() => open.close());
    const call = client(`http://127.0.0.1:${open.port}`);
    const r = await call("GET", "/v1/jobs", { token: null });
    expect(r.status).toBe(200);
    expect(r.json.jobs.map((j: { job: string }) => j.job)).toEqual(["apibind"]);
    // With a token, 0.0.0.0 is fine, and the right token passes (the wrong one does not).
    const guarded = await startApi(ctx, { host: "0.0.0.0", port: 0 }, { token: TOKEN });
    cleanups.push(() => guarded.close());
    const g = client(`http://127.0.0.1:${guarded.port}`);
    expect((await g("GET", "/v1/jobs")).status).toBe(200);
    expectError(await g("GET", "/v1/jobs", { token: TOKEN + "x" }), 401, "E_UNAUTHORIZED");
    expectError(await g("GET", "/v1/jobs", { token: TOKEN.slice(0, -1) }), 401, "E_UNAUTHORIZED");
  });

  it("answers 404 E_NOT_FOUND for unknown routes, 413 E_TOO_LARGE over 1 MiB, 400 for bad JSON, 415 for another media type", async () => {
    const { call, api } = await apiHarness("apimisc");
    expectError(await call("GET", "/v2/jobs"), 404, "E_NOT_FOUND");
    expectError(await call("DELETE", "/v1/jobs/apimisc"), 404, "E_NOT_FOUND");
    expectError(
      await call("POST", "/v1/jobs/apimisc/runs", { raw: JSON.stringify({ pad: "x".repeat(1024 * 1024 + 10) }) }),
      413,
      "E_TOO_LARGE",
    );
    expectError(await call("POST", "/v1/jobs/apimisc/runs", { raw: "{not json" }), 400, "E_BAD_REQUEST");
    const text = await fetch(`http://127.0.0.1:${api.port}/v1/jobs/apimisc/runs`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" },
      body: "boundedFiles=5",
    });
    expect(text.status).toBe(415);
    expect(((await text.json()) as { error: { code: string } }).error.code).toBe("E_UNSUPPORTED_MEDIA_TYPE");
    // A POST with an empty JSON body is a POST without one.
    const empty = await call("POST", "/v1/jobs/apimisc/runs", { raw: "" });
    expect(empty.status, empty.text).toBe(202);
  });
});

describe("health, readiness, metrics", () => {
  it("/healthz is 200; /readyz is 200 while Redis answers and 503 E_REDIS when it does not; /metrics serves the registry", async () => {
    const { call, h } = await apiHarness("apihealth");
    expect((await call("GET", "/healthz", { token: null })).json).toEqual({ ok: true });
    expect((await call("GET", "/readyz", { token: null })).json).toEqual({ ok: true });
    const m = await call("GET", "/metrics", { token: null });
    expect(m.status).toBe(200);
    expect(m.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(m.text).toMatch(/tranche_process_/);
    // Redis gone: an API whose connection cannot reach it.
    const dead = new Redis("redis://127.0.0.1:1", { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    dead.on("error", () => undefined);
    const ctx: StepContext = { ...stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log }), redis: dead };
    const app = await buildApi(ctx, { token: TOKEN });
    cleanups.push(async () => {
      await app.close();
      dead.disconnect();
    });
    const down = await app.inject({ method: "GET", url: "/readyz" });
    expect(down.statusCode).toBe(503);
    expect(down.json().error.code).toBe("E_REDIS");
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    const jobs = await app.inject({ method: "GET", url: "/v1/jobs", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(jobs.statusCode, jobs.body).toBe(503);
    expect(jobs.json().error.code).toBe("E_REDIS");
  });
});

describe("jobs, runs, plan and bookmark", () => {
  it("a run started through the API is executed by a worker; jobs, runs, run, plan and bookmark show it, matching the document", async () => {
    const { h, call } = await apiHarness("apirun", { source: { partitionKeys: ["dt"], boundedFiles: "5" }, batchFiles: 2 });
    await seed(h, 12, 2);
    const doc = await documentChecker((await call("GET", "/v1/openapi.json")).json);
    await h.startWorker(2);

    // Before any run: no backlog figures yet (nothing is listed), no runs.
    const before = await call("GET", "/v1/jobs");
    await doc.check("GET /v1/jobs", before);
    expect(before.json.jobs).toHaveLength(1);
    expect(before.json.jobs[0]).toMatchObject({
      job: "apirun",
      processor: "ndjson",
      mode: "enable",
      bound: "boundedFiles=5",
      boundSource: "job",
      maxConcurrentRuns: 1,
      whenBusy: "skip",
      backlog: null,
      lastRun: null,
      liveRuns: [],
      bookmark: { version: 0, runs: 0, lastRunId: null, partitions: 0 },
      triggers: { job: "apirun", whenBusy: "skip" },
    });

    // The plan preview, then the run it previews (with a run-time bound).
    const plan = await call("GET", "/v1/jobs/apirun/plan?boundedFiles=4");
    await doc.check("GET /v1/jobs/{job}/plan", plan);
    expect(plan.json).toMatchObject({
      bound: "boundedFiles=4",
      boundSource: "override",
      next: { files: 4 },
      backlog: { files: 12 },
      runsNeeded: 3,
    });
    expect(plan.json.next.partitions.map((p: { partition: string }) => p.partition)).toEqual(["dt=2024-01-01", "dt=2024-01-02"]);
    const started = await call("POST", "/v1/jobs/apirun/runs", { body: { boundedFiles: 4 } });
    await doc.check("POST /v1/jobs/{job}/runs", started);
    expect(started.status).toBe(202);
    expect(started.json).toMatchObject({ job: "apirun", state: "STARTING" });
    const runId = started.json.runId as string;
    expect(started.headers.get("location")).toBe(`/v1/runs/${runId}`);
    const run = await ended(call, runId);
    await doc.check("GET /v1/runs/{runId}", run);
    expect(run.json).toMatchObject({
      runId,
      job: "apirun",
      state: "SUCCEEDED",
      trigger: "api",
      bound: "boundedFiles=4",
      files: plan.json.next.files,
      bytes: plan.json.next.bytes,
      filesPlanned: 4,
      error: null,
      errors: [],
      summary: { state: "SUCCEEDED", status: "succeeded", trigger: "api", committed: true, files: 4, remainingFiles: 8 },
    });
    // The plan preview is what the run then took: files, bytes, per partition, and the rest.
    expect(run.json.summary.bytes).toBe(plan.json.next.bytes);
    expect(
      run.json.partitions.map((p: { partition: string; files: number; bytes: number; state: string }) => [p.partition, p.files, p.state]),
    ).toEqual(plan.json.next.partitions.map((p: { partition: string; files: number }) => [p.partition, p.files, "COMMITTED"]));
    expect(run.json.summary.remainingFiles).toBe(plan.json.backlog.files - plan.json.next.files);
    // Responses carry every field of the data they come from (the schemas drop nothing).
    const rec = await new RunRecords(h.redis, h.prefix).get(runId);
    expect(run.json.summary).toEqual(JSON.parse(rec!.summary!));

    // A second run with the job's bound (body optional), so the history has two.
    const second = await call("POST", "/v1/jobs/apirun/runs");
    expect(second.status, second.text).toBe(202);
    const run2 = await ended(call, second.json.runId);
    expect(run2.json).toMatchObject({ state: "SUCCEEDED", files: 5, bound: null });

    const list = await call("GET", "/v1/jobs/apirun/runs");
    await doc.check("GET /v1/jobs/{job}/runs", list);
    expect(list.json.runs.map((r: { runId: string }) => r.runId)).toEqual([second.json.runId, runId]);
    expect(list.json.runs).toEqual(JSON.parse(JSON.stringify(await runRows(new RunRecords(h.redis, h.prefix), "apirun"))));
    expect((await call("GET", "/v1/jobs/apirun/runs?limit=1")).json.runs).toHaveLength(1);

    const job = await call("GET", "/v1/jobs/apirun");
    await doc.check("GET /v1/jobs/{job}", job);
    expect(job.json).toMatchObject({
      backlog: { files: 3, asOfRun: second.json.runId },
      bookmark: { runs: 2, lastRunId: second.json.runId, partitions: 2 },
      lastRun: { runId: second.json.runId, state: "SUCCEEDED", trigger: "api" },
    });

    // The next plan matches, with the bound of the job.
    const plan3 = await call("GET", "/v1/jobs/apirun/plan");
    expect(plan3.json).toEqual(JSON.parse(JSON.stringify(await previewPlan(h.cfg, "apirun", h.redis, log))));
    expect(plan3.json).toMatchObject({ boundSource: "job", next: { files: 3 } });

    const bm = await call("GET", "/v1/jobs/apirun/bookmark");
    await doc.check("GET /v1/jobs/{job}/bookmark", bm);
    expect(bm.json).toEqual(JSON.parse(JSON.stringify(await bookmarkEntry(new BookmarkStore(h.redis, h.prefix, "apirun")))));
    expect(bm.json).toMatchObject({ JobName: "apirun", Run: 2, RunId: second.json.runId });
    expect(bm.json.Partitions).toHaveLength(2);

    // Rewind to the first run, then reset.
    const rw = await call("POST", "/v1/jobs/apirun/bookmark/rewind", { body: { toRun: runId } });
    await doc.check("POST /v1/jobs/{job}/bookmark/rewind", rw);
    expect(rw.json).toMatchObject({ job: "apirun", action: "rewind", toRun: runId, partial: null });
    expect((await call("GET", "/v1/jobs/apirun/plan")).json).toMatchObject({ next: { files: 5 }, backlog: { files: 8 } });
    const reset = await call("POST", "/v1/jobs/apirun/bookmark/reset");
    await doc.check("POST /v1/jobs/{job}/bookmark/reset", reset);
    expect(reset.json).toMatchObject({ job: "apirun", action: "reset", toRun: null, version: 0 });
    expect((await call("GET", "/v1/jobs/apirun/bookmark")).json).toMatchObject({
      Version: 0,
      Run: 0,
      RunId: null,
      Partitions: [],
      History: [],
    });

    // A stop of a run that ended changes nothing and says so.
    const stop = await call("POST", `/v1/runs/${runId}/stop`);
    await doc.check("POST /v1/runs/{runId}/stop", stop);
    expect(stop.json).toEqual({ runId, state: "SUCCEEDED", removed: 0, already: true });

    // Errors, also checked against the document.
    const unknownRun = await call("GET", "/v1/runs/20240101T000000000Z-000000");
    await doc.check("GET /v1/runs/{runId}", unknownRun);
    expectError(unknownRun, 404, "E_UNKNOWN_RUN");
    const badBound = await call("POST", "/v1/jobs/apirun/runs", { body: { boundedFiles: "abc" } });
    await doc.check("POST /v1/jobs/{job}/runs", badBound);
    expectError(badBound, 400, "E_BAD_REQUEST", "body/boundedFiles");
  });

  it("400 names the field; 404 for unknown jobs and runs", async () => {
    const { call } = await apiHarness("apibad");
    const post = (body: unknown) => call("POST", "/v1/jobs/apibad/runs", { body });
    expectError(await post({ boundedFiles: "abc" }), 400, "E_BAD_REQUEST", "body/boundedFiles");
    expectError(await post({ boundedFiles: 0 }), 400, "E_BAD_REQUEST", "body/boundedFiles");
    expectError(await post({ boundedFiles: "0" }), 400, "E_BAD_REQUEST", "body/boundedFiles");
    expectError(await post({ boundedFiles: 1.5 }), 400, "E_BAD_REQUEST", "body/boundedFiles");
    expectError(await post({ boundedFiles: true }), 400, "E_BAD_REQUEST", "body/boundedFiles");
    expectError(await post({ boundedSize: "-3" }), 400, "E_BAD_REQUEST", "body/boundedSize");
    expectError(await post({ boundedFiles: 5, boundedSize: 5 }), 400, "E_BAD_REQUEST", "body/boundedSize");
    expectError(await post({ bookmark: "sometimes" }), 400, "E_BAD_REQUEST", "body/bookmark");
    expectError(await post({ from: "20240101T000000000Z-aaaaaa" }), 400, "E_BAD_REQUEST", "body/to");
    expectError(await post({ from: "a", to: "b" }), 400, "E_BAD_REQUEST", "body/bookmark");
    expectError(await post({ boundedFile: 5 }), 400, "E_BAD_REQUEST", "body/boundedFile");
    expectError(await post([1]), 400, "E_BAD_REQUEST", "body");
    expectError(await call("GET", "/v1/jobs/apibad/runs?limit=abc"), 400, "E_BAD_REQUEST", "querystring/limit");
    expectError(await call("GET", "/v1/jobs/apibad/runs?limit=0"), 400, "E_BAD_REQUEST", "querystring/limit");
    expectError(await call("GET", "/v1/jobs/apibad/runs?limt=5"), 400, "E_BAD_REQUEST", "querystring/limt");
    expectError(await call("GET", "/v1/runs/not%20a%20run"), 400, "E_BAD_REQUEST", "params/runId");
    expectError(await call("POST", "/v1/runs/not%20a%20run/stop"), 400, "E_BAD_REQUEST", "params/runId");
    expectError(await call("GET", "/v1/jobs/apibad/plan?boundedFiles=abc"), 400, "E_BAD_REQUEST", "querystring/boundedFiles");
    expectError(await call("GET", "/v1/jobs/apibad/plan?boundedFiles=0"), 400, "E_BAD_REQUEST", "querystring/boundedFiles");
    expectError(await call("GET", "/v1/jobs/apibad/plan?boundedFiles=1&boundedSize=1"), 400, "E_BAD_REQUEST", "querystring/boundedSize");
    expectError(await call("GET", "/v1/jobs/apibad/plan?bookmark=maybe"), 400, "E_BAD_REQUEST", "querystring/bookmark");
    expectError(await call("POST", "/v1/jobs/apibad/bookmark/rewind", { body: {} }), 400, "E_BAD_REQUEST", "body/toRun");
    expectError(await call("POST", "/v1/jobs/apibad/bookmark/rewind"), 400, "E_BAD_REQUEST", "body/toRun");
    expectError(await call("POST", "/v1/jobs/apibad/bookmark/rewind", { body: { toRun: 5 } }), 400, "E_BAD_REQUEST", "body/toRun");
    // A run the history does not have: the field is at fault.
    expectError(
      await call("POST", "/v1/jobs/apibad/bookmark/rewind", { body: { toRun: "20240101T000000000Z-000000" } }),
      400,
      "E_BAD_REQUEST",
      "body/toRun",
    );

    for (const [method, path] of [
      ["GET", "/v1/jobs/nope"],
      ["POST", "/v1/jobs/nope/runs"],
      ["GET", "/v1/jobs/nope/runs"],
      ["GET", "/v1/jobs/nope/bookmark"],
      ["POST", "/v1/jobs/nope/bookmark/reset"],
      ["GET", "/v1/jobs/nope/plan"],
    ] as const)
      expectError(await call(method, path), 404, "E_UNKNOWN_JOB");
    expectError(await call("POST", "/v1/jobs/nope/bookmark/rewind", { body: { toRun: "x" } }), 404, "E_UNKNOWN_JOB");
    expectError(await call("GET", "/v1/runs/20240101T000000000Z-000000"), 404, "E_UNKNOWN_RUN");
    expectError(await call("POST", "/v1/runs/20240101T000000000Z-000000/stop"), 404, "E_UNKNOWN_RUN");
  });
});

describe("conflicts with live runs", () => {
  it("whenBusy skip: 409 E_CONCURRENT_RUNS; whenBusy queue: 202 WAITING, which a stop ends STOPPED; bookmark reset and rewind: 409 E_RUN_IN_PROGRESS", async () => {
    const { h, call } = await apiHarness("apibusy");
    await seed(h, 2);
    await h.startWorker(1);
    const committed = await h.run();
    expect(committed.committed).toBe(true);
    await h.stopWorker();
    await holdLiveRun(h.redis, h.prefix, "apibusy", "20240101T000000000Z-11aa22");
    const skipped = await call("POST", "/v1/jobs/apibusy/runs");
    expectError(skipped, 409, "E_CONCURRENT_RUNS");
    expect(skipped.json.error.message).toContain("20240101T000000000Z-11aa22");
    expectError(await call("POST", "/v1/jobs/apibusy/bookmark/reset"), 409, "E_RUN_IN_PROGRESS");
    expectError(await call("POST", "/v1/jobs/apibusy/bookmark/rewind", { body: { toRun: committed.runId } }), 409, "E_RUN_IN_PROGRESS");
    expect((await call("GET", "/v1/jobs/apibusy/bookmark")).json.Run).toBe(1);

    h.cfg.jobs.apibusy!.whenBusy = "queue";
    const queued = await call("POST", "/v1/jobs/apibusy/runs", { body: { bookmark: "enable" } });
    expect(queued.status, queued.text).toBe(202);
    expect(queued.json.state).toBe("WAITING");
    const shown = await call("GET", `/v1/runs/${queued.json.runId}`);
    expect(shown.json).toMatchObject({ state: "WAITING", trigger: "api", whenBusy: "queue", mode: "enable", summary: null });
    expect((await call("GET", "/v1/jobs/apibusy")).json.liveRuns).toEqual([{ runId: "20240101T000000000Z-11aa22", state: "RUNNING" }]);
    const stop = await call("POST", `/v1/runs/${queued.json.runId}/stop`);
    expect(stop.status, stop.text).toBe(200);
    expect(stop.json).toMatchObject({ runId: queued.json.runId, state: "STOPPED", already: false });
    expect((await call("GET", `/v1/runs/${queued.json.runId}`)).json).toMatchObject({ state: "STOPPED" });

    await releaseLiveRun(h.redis, h.prefix, "apibusy", "20240101T000000000Z-11aa22");
    const reset = await call("POST", "/v1/jobs/apibusy/bookmark/reset");
    expect(reset.status, reset.text).toBe(200);
  });

  it("a live run stopped through the API ends STOPPED", async () => {
    const { h, call } = await apiHarness("apistop", { batchFiles: 1, processor: path.resolve("test/chaos/ledger-processor.mjs") });
    h.cfg.jobs.apistop!.processorOptions = { sleepMs: 300 };
    await seed(h, 6);
    await h.startWorker(1);
    const started = await call("POST", "/v1/jobs/apistop/runs");
    expect(started.status, started.text).toBe(202);
    const id = started.json.runId as string;
    await waitFor(async () => (await call("GET", `/v1/runs/${id}`)).json.state === "RUNNING", 20_000, "the run to be RUNNING");
    const stop = await call("POST", `/v1/runs/${id}/stop`);
    expect(stop.status, stop.text).toBe(200);
    expect(["STOPPING", "STOPPED"]).toContain(stop.json.state);
    expect(stop.json.already).toBe(false);
    const end = await ended(call, id);
    expect(end.json).toMatchObject({ state: "STOPPED", stopRequested: true, summary: { status: "stopped" } });
  });
});

describe("reprocess and events (routes only; their behaviour is tested with their modules)", () => {
  it("400 with the field named, 401, 404", async () => {
    const { call } = await apiHarness("apirep");
    const rep = (body: unknown, o: CallOptions = {}) => call("POST", "/v1/jobs/apirep/reprocess", { body, ...o });
    expectError(await rep({ partitions: ["no-equals-sign"] }), 400, "E_BAD_REQUEST", "body/partitions/0");
    expectError(await rep({ keys: "a.json" }), 400, "E_BAD_REQUEST", "body/keys");
    expectError(await rep({ since: true }), 400, "E_BAD_REQUEST", "body/since");
    // Checked by the reprocess itself, named the same way.
    expectError(await rep({ since: "nope" }), 400, "E_BAD_REQUEST", "body/since");
    expectError(await rep({ since: 2000, until: 1000 }), 400, "E_BAD_REQUEST", "body/until");
    expectError(await rep({ partitions: ["region=eu"] }), 400, "E_BAD_REQUEST", "body/partitions");
    expectError(await rep({ keys: [] }), 400, "E_BAD_REQUEST", "body/keys");
    expectError(await rep({}), 400, "E_BAD_REQUEST", "body");
    expectError(await rep({ partition: ["dt=1"] }), 400, "E_BAD_REQUEST", "body/partition");
    expectError(await rep({ keys: ["a.json"] }, { token: null }), 401, "E_UNAUTHORIZED");
    expectError(await rep({ keys: ["a.json"] }, { token: "wrong" }), 401, "E_UNAUTHORIZED");
    expectError(await call("POST", "/v1/jobs/nope/reprocess", { body: { keys: ["a.json"] } }), 404, "E_UNKNOWN_JOB");

    const ev = (body: unknown, o: CallOptions = {}) => call("POST", "/v1/events", { body, ...o });
    // An array must hold EventBridge events: the first other item is named.
    expectError(await ev(["not", "an", "object"]), 400, "E_BAD_REQUEST", "[0]");
    expectError(await ev("Records"), 400, "E_BAD_REQUEST", "body");
    expectError(await ev({ Records: [] }, { token: null }), 401, "E_UNAUTHORIZED");
    expectError(await ev({ Records: [] }, { token: "wrong" }), 401, "E_UNAUTHORIZED");
    expectError(await call("POST", "/v1/event", { body: { Records: [] } }), 404, "E_NOT_FOUND");
  });
});

describe("tranche scheduler", () => {
  it("serves the API on --api-port with TRANCHE_API_TOKEN and closes it on SIGTERM; without a token it refuses 0.0.0.0 (exit 2)", async () => {
    const h = await harness("apisched");
    const port = await freePort();
    const config = await writeConfig(h.dir, { ...h.cfg, metrics: { port: 0 } });
    const p = spawn(process.execPath, [BIN, "scheduler", "--config", config, "--api-port", String(port)], {
      env: { ...process.env, TRANCHE_API_TOKEN: TOKEN, TRANCHE_LOG_LEVEL: "info", TRANCHE_LOG_FORMAT: "json" },
    });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => p.on("exit", (code) => r(code)));
    cleanups.push(async () => {
      if (p.exitCode === null) p.kill("SIGKILL");
      await exited;
    });
    await waitFor(() => out.includes("HTTP API listening"), 20_000, "the API to listen");
    const call = client(`http://127.0.0.1:${port}`);
    const jobs = await call("GET", "/v1/jobs");
    expect(jobs.status, jobs.text).toBe(200);
    expect(jobs.json.jobs[0].job).toBe("apisched");
    expectError(await call("GET", "/v1/jobs", { token: null }), 401, "E_UNAUTHORIZED");
    expect((await call("GET", "/readyz", { token: null })).status).toBe(200);
    expect(out).not.toContain(TOKEN);
    p.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(out).toContain("scheduler stopped");
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();

    const exposed = await writeConfig(h.dir, { ...h.cfg, metrics: { port: 0 }, api: { port, host: "0.0.0.0" } });
    const refused = await cli(["scheduler", "--config", exposed], { TRANCHE_API_TOKEN: "" });
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/error \[E_CONFIG\]: .*TRANCHE_API_TOKEN/);
  });
});
