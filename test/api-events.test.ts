/**
 * Events and reprocessing through the HTTP API of real `tranche scheduler` processes: S3
 * notifications posted to POST /v1/events (S3's Records[], MinIO's webhook body, EventBridge) are
 * stored before the 202, survive a scheduler killed with SIGKILL, count once when delivered twice,
 * and start a run that takes exactly their objects; POST /v1/jobs/{job}/reprocess runs exactly the
 * named files. Real s3rver, Redis, BullMQ and worker threads.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { checkStateVersion } from "../src/state-version.js";
import { BIN, waitFor, writeConfig } from "./helpers/cli.js";
import { freePort, s3Records } from "./helpers/events.js";
import { startApi } from "../src/api/server.js";
import { confirmSubscription, isSnsUrl } from "../src/events/sns.js";
import { log } from "../src/log.js";
import { stepContext } from "../src/run/step-context.js";
import { listFiles, writeInput } from "./helpers/files.js";
import { closeHarnesses, harness } from "./helpers/harness.js";
import { startS3, type S3Fixture } from "./helpers/s3rver.js";

const TOKEN = "events-test-token-9d2f61";
let s3: S3Fixture;
const BUCKET = "apievents";
beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket(BUCKET);
});
afterAll(async () => s3?.stop());
const procs: ChildProcess[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGKILL");
      await exited;
    }
  }
  await closeHarnesses();
});

/** A `tranche scheduler` process serving the API on `port`; resolves once it listens. */
async function scheduler(config: string, port: number): Promise<ChildProcess & { out: () => string }> {
  const p = spawn(process.execPath, [BIN, "scheduler", "--config", config, "--api-port", String(port)], {
    env: { ...process.env, TRANCHE_API_TOKEN: TOKEN, TRANCHE_LOG_LEVEL: "info", TRANCHE_LOG_FORMAT: "json" },
  }) as ChildProcess & { out: () => string };
  let out = "";
  p.stdout!.on("data", (d) => (out += d));
  p.stderr!.on("data", (d) => (out += d));
  p.out = () => out;
  procs.push(p);
  await waitFor(() => out.includes("HTTP API listening") || p.exitCode !== null, 20_000, "the API to listen");
  if (!out.includes("HTTP API listening")) throw new Error(`the scheduler did not start: ${out}`);
  return p;
}

async function call(port: number, method: string, path: string, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** The body MinIO's webhook target posts (its Records[] plus EventName and Key). */
function minioBody(key: string, seq: string) {
  return {
    EventName: "s3:ObjectCreated:Put",
    Key: `${BUCKET}/${key}`,
    Records: [
      {
        eventVersion: "2.0",
        eventSource: "minio:s3",
        awsRegion: "",
        eventTime: new Date().toISOString(),
        eventName: "s3:ObjectCreated:Put",
        userIdentity: { principalId: "minioadmin" },
        s3: {
          s3SchemaVersion: "1.0",
          configurationId: "Config",
          bucket: { name: BUCKET, ownerIdentity: { principalId: "minioadmin" }, arn: `arn:aws:s3:::${BUCKET}` },
          object: { key: encodeURIComponent(key), size: 8, eTag: "e", contentType: "application/json", sequencer: seq },
        },
      },
    ],
  };
}

describe("POST /v1/events on a real scheduler", () => {
  it("stores events before answering: they survive a SIGKILLed scheduler, count once when delivered again, and start a run of exactly their objects", async () => {
    const h = await harness(
      "apiev",
      { source: { path: `s3://${BUCKET}/in/` }, triggers: { events: { batchSize: 2, batchWindow: 900 } } },
      { s3: s3.settings },
    );
    const config = await writeConfig(h.dir, { ...h.cfg, metrics: { port: 0 } });
    await checkStateVersion(h.redis, h.prefix, [h.name], { write: true });
    for (const k of ["in/a.json", "in/b.json", "in/other.json"])
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: k, Body: '{"a":1}\n' }));
    const port = await freePort();
    const a = await scheduler(config, port);
    const first = await call(port, "POST", "/v1/events", minioBody("in/a.json", "0001"));
    expect(first.status, first.text).toBe(202);
    expect(first.json).toMatchObject({ accepted: 1, duplicates: 0, unmatched: 0, jobs: { apiev: 1 } });
    a.kill("SIGKILL");
    await new Promise((r) => a.once("exit", r));
    const port2 = await freePort();
    await scheduler(config, port2);
    // MinIO retries a delivery it did not see answered: counted once.
    expect((await call(port2, "POST", "/v1/events", minioBody("in/a.json", "0001"))).json).toMatchObject({ accepted: 0, duplicates: 1 });
    expect((await call(port2, "GET", "/v1/jobs/apiev/runs")).json.runs).toEqual([]);
    // The second object (as EventBridge sends it) makes the batch: one run, of exactly the two objects.
    const eb = {
      version: "0",
      id: "7bf73129-1428-4cd3-a780-95db273d1602",
      "detail-type": "Object Created",
      source: "aws.s3",
      time: new Date().toISOString(),
      detail: { bucket: { name: BUCKET }, object: { key: "in/b.json", size: 8, etag: "e", sequencer: "0002" } },
    };
    expect((await call(port2, "POST", "/v1/events", eb)).json).toMatchObject({ accepted: 1 });
    await h.startWorker();
    let run: Record<string, unknown> = {};
    await waitFor(
      async () => {
        const runs = (await call(port2, "GET", "/v1/jobs/apiev/runs")).json.runs as { runId: string; state: string }[];
        if (runs.length !== 1 || runs[0]!.state !== "SUCCEEDED") return false;
        run = (await call(port2, "GET", `/v1/runs/${runs[0]!.runId}`)).json;
        return true;
      },
      30_000,
      "the events run",
    );
    expect(run).toMatchObject({ trigger: "events", eventCondition: "BatchSize", eventCount: 2, filesPlanned: 2 });
    expect(run.eventIds).toContain(eb.id);
    expect(await listFiles(h.outDir)).toEqual(["a.json.ndjson", "b.json.ndjson"]);
    // Objects of other buckets are answered and counted, not errors; a bad body names its field.
    expect((await call(port2, "POST", "/v1/events", { ...eb, detail: { ...eb.detail, bucket: { name: "nope" } } })).json).toMatchObject({
      accepted: 0,
      unmatched: 1,
    });
    const bad = await call(port2, "POST", "/v1/events", {
      Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: BUCKET }, object: {} } }],
    });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain("Records[0].s3.object.key");
    const metrics = await (await fetch(`http://127.0.0.1:${port2}/metrics`)).text();
    expect(metrics).toMatch(/tranche_events_received_total\{tranche_job="apiev",outcome="duplicate"\} 1/);
  });

  it("SNS HTTPS subscriptions: a text/plain body, the token as a Basic password, and the subscription confirmation", async () => {
    const h = await harness(
      "apisns",
      { source: { path: `s3://${BUCKET}/sns/` }, triggers: { events: { batchSize: 10 } } },
      { s3: s3.settings },
    );
    const ctx = stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log });
    const api = await startApi(ctx, { host: "127.0.0.1", port: 0 }, { token: TOKEN });
    try {
      const url = `http://127.0.0.1:${api.port}/v1/events`;
      const sns = (body: unknown, auth: string) =>
        fetch(url, {
          method: "POST",
          headers: { authorization: auth, "content-type": "text/plain; charset=UTF-8" },
          body: JSON.stringify(body),
        });
      const basic = (pw: string) => `Basic ${Buffer.from(`sns:${pw}`).toString("base64")}`;
      const note = {
        Type: "Notification",
        MessageId: "m1",
        TopicArn: "arn:aws:sns:us-east-1:1:t",
        Message: JSON.stringify(s3Records(BUCKET, ["sns/a.json"])),
      };
      const ok = await sns(note, basic(TOKEN));
      expect(ok.status).toBe(202);
      expect(await ok.json()).toMatchObject({ accepted: 1 });
      expect((await sns(note, basic("wrong"))).status).toBe(401);
      // Basic is taken on this route only.
      expect((await fetch(`http://127.0.0.1:${api.port}/v1/jobs`, { headers: { authorization: basic(TOKEN) } })).status).toBe(401);
      // A confirmation whose SubscribeURL is not an SNS endpoint is not visited (logged for a person to confirm).
      const confirm = { Type: "SubscriptionConfirmation", TopicArn: "arn:aws:sns:us-east-1:1:t", SubscribeURL: "http://127.0.0.1:1/steal" };
      const c = await sns(confirm, basic(TOKEN));
      expect(c.status).toBe(200);
      expect(await c.json()).toEqual({ sns: "unconfirmed" });
    } finally {
      await api.close();
      await ctx.queues.close();
    }
    // An SNS endpoint is visited (here through a stand-in fetch: no internet).
    const visited: string[] = [];
    const fakeFetch = (async (u: string | URL | Request) => {
      visited.push(String(u));
      return new Response("<ConfirmSubscriptionResponse/>", { status: 200 });
    }) as typeof fetch;
    const good = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:eu-west-1:1:t&Token=abc";
    expect(isSnsUrl(good)).toBe(true);
    expect(isSnsUrl("https://sns.eu-west-1.amazonaws.com.evil.example/?Action=ConfirmSubscription")).toBe(false);
    expect(await confirmSubscription({ type: "SubscriptionConfirmation", topicArn: "t", subscribeUrl: good }, log, fakeFetch)).toBe(
      "confirmed",
    );
    expect(visited).toEqual([good]);
  });

  it("POST /v1/jobs/{job}/reprocess runs exactly the named files; the bookmark does not move", async () => {
    const h = await harness("apirp", { source: { partitionKeys: ["dt"] } });
    for (let i = 0; i < 3; i++) await writeInput(h.inDir, `dt=2024-01-0${i + 1}/f.json`, `{"i":${i}}\n`, Date.UTC(2024, 0, 1) + i);
    await checkStateVersion(h.redis, h.prefix, [h.name], { write: true }); // as `tranche run` leaves it
    await h.startWorker();
    await h.run();
    const config = await writeConfig(h.dir, { ...h.cfg, metrics: { port: 0 } });
    const port = await freePort();
    await scheduler(config, port);
    const before = (await call(port, "GET", "/v1/jobs/apirp/bookmark")).json;
    const r = await call(port, "POST", "/v1/jobs/apirp/reprocess", {
      partitions: ["dt=2024-01-02"],
      keys: ["dt=2024-01-02/f.json", "dt=2024-01-02/gone.json"],
    });
    expect(r.status, r.text).toBe(202);
    expect(r.json).toMatchObject({ files: 1, runs: 1, missing: ["dt=2024-01-02/gone.json"], leased: [] });
    await waitFor(
      async () => (await call(port, "GET", `/v1/runs/${String(r.json.runId)}`)).json.state === "SUCCEEDED",
      30_000,
      "the reprocess run",
    );
    const detail = (await call(port, "GET", `/v1/runs/${String(r.json.runId)}`)).json;
    expect(detail).toMatchObject({ mode: "reprocess", reprocess: r.json.reprocessId, filesPlanned: 1 });
    expect((await call(port, "GET", "/v1/jobs/apirp/bookmark")).json).toEqual(before);
    const bad = await call(port, "POST", "/v1/jobs/apirp/reprocess", { partitions: ["region=eu"] });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain("region");
  });
});
