/**
 * Edges of event-fed runs and reprocessing found by an independent review, each against the real
 * components (real Redis, real s3rver, real BullMQ and worker threads). Every test here failed on
 * the code as first written (see the commit that added this file).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Job } from "bullmq";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildApi } from "../src/api/server.js";
import { runKeys } from "../src/bookmark/keys.js";
import { BookmarkStore } from "../src/bookmark/store.js";
import { EventQueue } from "../src/events/queue.js";
import { log } from "../src/log.js";
import type { StepJobData } from "../src/queue/batch-job.js";
import { startReprocess } from "../src/run/reprocess.js";
import { firingKey, startRun } from "../src/run/start-run.js";
import { stepContext } from "../src/run/step-context.js";
import { timeoutStepJob } from "../src/run/stop-run.js";
import { Scheduler } from "../src/triggers/scheduler.js";
import { listFiles, writeInput } from "./helpers/files.js";
import { finishedRuns, ingest, putObjects, runRecords, s3Records, startScheduler as startSchedulerOn } from "./helpers/events.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { holdLiveRun } from "./helpers/redis.js";
import { startS3, type S3Fixture } from "./helpers/s3rver.js";

let s3: S3Fixture;
const BUCKET = "review9";
beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket(BUCKET);
});
afterAll(async () => s3?.stop());
const schedulers: Scheduler[] = [];
const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of schedulers.splice(0)) await s.stop();
  await closeHarnesses();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(() => r(undefined)));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const put = (keys: string[]) => putObjects(s3, BUCKET, keys);
const records = (keys: string[], seq?: string, bucket = BUCKET) => s3Records(bucket, keys, seq);
const startScheduler = (h: Harness) => startSchedulerOn(h, schedulers);

/**
 * An S3 endpoint in front of s3rver whose ListObjectsV2 answers carry milliseconds, as MinIO's do
 * (minio-go#1632: ListObjects gives 20:51:06.821, StatObject/HEAD gives 20:51:06); HeadObject's
 * Last-Modified header stays whole seconds (HTTP date). Everything else is forwarded untouched.
 */
async function minioLikeEndpoint(upstream: string): Promise<string> {
  const up = new URL(upstream);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const fwd = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        const isList = req.method === "GET" && /[?&]list-type=2/.test(req.url ?? "");
        if (!isList) {
          res.writeHead(r.statusCode ?? 500, r.headers);
          r.pipe(res);
          return;
        }
        const body: Buffer[] = [];
        r.on("data", (c: Buffer) => body.push(c));
        r.on("end", () => {
          const xml = Buffer.concat(body)
            .toString("utf8")
            .replace(/(<LastModified>[^<]*?)\.000Z</g, "$1.500Z<");
          const headers = { ...r.headers, "content-length": String(Buffer.byteLength(xml)) };
          res.writeHead(r.statusCode ?? 500, headers);
          res.end(xml);
        });
      });
      fwd.on("error", () => res.destroy());
      fwd.end(Buffer.concat(chunks));
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("event-fed runs and reprocessing: edges", () => {
  it("lexical job: an event-fed run's commit keeps the band from 'keep' up, so the next full listing does not take a committed file again", async () => {
    const folder = "lex";
    const h = await harness(
      "r9-lexical",
      {
        source: { path: `s3://${BUCKET}/${folder}/`, partitionKeys: ["dt"], listing: "lexical", fullListingEvery: 2 },
        triggers: { events: { batchSize: 1, batchWindow: 900 } },
        bookmark: { maxBand: 0 },
      },
      { s3: s3.settings },
    );
    const k = (n: string) => `${folder}/dt=2024-01-01/${n}.json`;
    await h.startWorker();
    await put([k("a")]);
    expect((await h.run()).files).toBe(1); // first run: full listing (no cursor yet)
    await sleep(1100); // s3rver times are whole seconds
    await put([k("b")]);
    expect((await h.run()).files).toBe(1); // full again (a is not settled yet with maxBand 0); 'keep' = a's time
    await sleep(1100);
    await put([k("e")]);
    await ingest(h, records([k("e")]));
    const sched = startScheduler(h);
    const [ev] = await finishedRuns(h, 3);
    await sched.stop();
    expect(ev).toBeDefined();
    expect((await runRecords(h)).filter((r) => r.trigger === "events").map((r) => r.state)).toEqual(["SUCCEEDED"]);
    await sleep(1100);
    await put([k("c")]);
    const lexical = await h.run(); // lexical: after cursor a; takes c
    expect(lexical.files).toBe(1);
    // The periodic full listing: classifies files down to 'keep' (a's time) against the band. a was
    // committed by a listing run and is still inside the kept band, unless something pruned it.
    const full = await h.run();
    expect(full.files, "a file a listing run committed is processed again").toBe(0);
    expect(await listFiles(h.outDir)).toHaveLength(4);
  });

  it("an event-fed run knows an object by the time listings show (MinIO: milliseconds in LIST, whole seconds in HEAD): the next listing run does not process it again", async () => {
    const endpoint = await minioLikeEndpoint(s3.endpoint);
    const folder = "minio";
    const h = await harness(
      "r9-headtime",
      {
        source: { path: `s3://${BUCKET}/${folder}/`, partitionKeys: ["dt"] },
        triggers: { events: { batchSize: 1, batchWindow: 900 } },
      },
      { s3: { ...s3.settings, endpoint } },
    );
    const key = `${folder}/dt=2024-01-01/x.json`;
    await put([key]);
    expect(await ingest(h, records([key]))).toMatchObject({ accepted: 1 });
    await h.startWorker();
    const sched = startScheduler(h);
    const [ev] = await finishedRuns(h, 1);
    await sched.stop();
    expect(ev).toMatchObject({ state: "SUCCEEDED", trigger: "events", filesPlanned: "1" });
    // A listing run (e.g. the recommended hourly schedule): the file is committed already.
    const s = await h.run();
    expect(s.files, "the event-fed run's file is taken again by the listing run").toBe(0);
  });

  it("a timeout while an event-fed run waits for the planning lock: its plan step takes no events after the run ended, so none is stranded", async () => {
    const folder = "tmo";
    const h = await harness(
      "r9-timeout",
      {
        source: { path: `s3://${BUCKET}/${folder}/`, partitionKeys: ["dt"] },
        triggers: { events: { batchSize: 1, batchWindow: 900 } },
      },
      { s3: s3.settings },
    );
    const key = `${folder}/dt=2024-01-01/x.json`;
    await put([key]);
    await ingest(h, records([key]));
    const q = new EventQueue(h.redis, h.prefix, h.name);
    expect((await q.pending()).count).toBe(1);
    const ctx = stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log });
    try {
      // What the scheduler's events trigger does.
      const r = await startRun(ctx, { job: h.name, trigger: "events", eventCondition: "BatchSize" });
      expect(r.started).toBe(true);
      const runId = (r as { runId: string }).runId;
      // Another run of the job is planning (a long listing): this run's plan step waits for the lock.
      const store = new BookmarkStore(h.redis, h.prefix, h.name);
      const unlock = await store.slots.lockPlanning("another-run-planning");
      const planning = h.planNow(runId);
      await sleep(300);
      // The run's timeout step fires meanwhile (timeout minutes passed): TIMEOUT, finished at once.
      await timeoutStepJob(ctx, { data: { step: "timeout", job: h.name, runId } } as unknown as Job<StepJobData>);
      expect(await h.redis.hget(`${h.prefix}:run:${runId}`, "state")).toBe("TIMEOUT");
      await unlock();
      await planning;
      expect(await h.redis.hget(`${h.prefix}:run:${runId}`, "finished")).toBe("1");
      const held = await q.held(runId);
      // The event must be back in line for the next events run (or at least not stranded on a finished run).
      expect({ pending: (await q.pending()).count, heldByFinishedRun: held.size }).toEqual({ pending: 1, heldByFinishedRun: 0 });
    } finally {
      await ctx.queues.close();
    }
  });

  it("reprocess: a finish step killed after claiming the next run's firing starts that same run when retried within 30 s", async () => {
    const h = await harness("r9-chain", { source: { partitionKeys: ["dt"], boundedFiles: 1 } });
    const T0 = Date.UTC(2024, 0, 1);
    await writeInput(h.inDir, "dt=2024-01-01/a.json", '{"i":1}\n', T0);
    await writeInput(h.inDir, "dt=2024-01-01/b.json", '{"i":2}\n', T0 + 1000);
    const ctx = stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log });
    try {
      const r = await startReprocess(ctx, h.name, { partitions: ["dt=2024-01-01"] });
      expect(r).toMatchObject({ files: 2, runs: 2 });
      // What a first attempt of run 1's finish step leaves when its worker is SIGKILLed right after
      // claimFiring's SET NX (before the run record): the reserved id of run 2 and its claim, no run.
      // BullMQ retries the finish step after lockDurationMs + stalledIntervalMs (3 s + 1.5 s by
      // default): within the 30 s grace of an orphaned claim.
      const store = new BookmarkStore(h.redis, h.prefix, h.name);
      const key = runKeys(h.prefix).reprocess(r.reprocessId);
      await h.redis.hset(key, "run:1", "20261127T000000000Z-dead00");
      await h.redis.set(firingKey(store, `reprocess:${r.reprocessId}:1`), `20261127T000000000Z-dead00|${Date.now()}`, "EX", 3600);
      await h.startWorker();
      for (let i = 0; i < 160 && (await h.redis.hget(key, "state")) !== "DONE"; i++) await sleep(50);
      const req = await h.redis.hgetall(key);
      expect({ state: req.state, secondRun: req["run:1"] }).toEqual({ state: "DONE", secondRun: "20261127T000000000Z-dead00" });
      expect(await h.redis.hget(`${h.prefix}:run:20261127T000000000Z-dead00`, "state")).toBe("SUCCEEDED");
    } finally {
      await ctx.queues.close();
    }
  });

  it("maxConcurrentRuns 2: while a live run holds an event's object, the events trigger does not start run after run, nor flood the bookmark history", async () => {
    const folder = "storm";
    const h = await harness(
      "r9-storm",
      {
        source: { path: `s3://${BUCKET}/${folder}/`, partitionKeys: ["dt"] },
        triggers: { events: { batchSize: 1, batchWindow: 900 } },
        maxConcurrentRuns: 2,
      },
      { s3: s3.settings },
    );
    const rel = "dt=2024-01-01/x.json";
    await put([`${folder}/${rel}`]);
    // A live run (a listing run still processing) holds the object's lease.
    const store = new BookmarkStore(h.redis, h.prefix, h.name);
    await holdLiveRun(h.redis, h.prefix, h.name, "live-run");
    await h.redis
      .multi()
      .zadd(store.k.lease("dt=2024-01-01"), Date.now(), rel)
      .hset(store.k.leaseRun("dt=2024-01-01"), rel, "live-run")
      .exec();
    await ingest(h, records([`${folder}/${rel}`]));
    await h.startWorker();
    startScheduler(h);
    await sleep(4000);
    const events = (await runRecords(h)).filter((r) => r.trigger === "events");
    const history = await h.redis.lrange(store.k.history, 0, -1);
    // One run that puts the event back and then waits for the holder would do; each extra empty run is a history entry.
    expect(events.length, `${events.length} event-fed runs in 4 s, ${history.length} history entries`).toBeLessThanOrEqual(2);
  });

  it("events + drain: an event-fed run ending during the drain pause does not stop the drain with backlog left", async () => {
    const folder = "drain";
    const h = await harness(
      "r9-drain",
      {
        source: { path: `s3://${BUCKET}/${folder}/`, partitionKeys: ["dt"], boundedFiles: 1 },
        triggers: { events: { batchSize: 1, batchWindow: 900 }, drain: true, drainPauseSeconds: 1 },
      },
      { s3: s3.settings },
    );
    const old = [0, 1, 2].map((i) => `${folder}/dt=2024-01-01/old-${i}.json`);
    await put(old);
    await sleep(1100);
    const fresh = `${folder}/dt=2024-01-01/new.json`;
    await put([fresh]);
    await ingest(h, records([fresh]));
    await h.startWorker();
    startScheduler(h);
    for (let i = 0; i < 100 && (await listFiles(h.outDir)).length < 4; i++) await sleep(100);
    const runs = (await runRecords(h)).map((r) => `${r.trigger}:${r.state}`);
    expect(await listFiles(h.outDir), `runs: ${runs.join(", ")}`).toHaveLength(4);
  });

  it("POST /v1/events takes an array of EventBridge events", async () => {
    const folder = "ebarray";
    const h = await harness(
      "r9-ebarray",
      { source: { path: `s3://${BUCKET}/${folder}/`, partitionKeys: ["dt"] }, triggers: { events: { batchSize: 10 } } },
      { s3: s3.settings },
    );
    const ctx = stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log });
    const app = await buildApi(ctx, { token: "t0k3n-review9" });
    try {
      const eb = (key: string, id: string) => ({
        version: "0",
        id,
        "detail-type": "Object Created",
        source: "aws.s3",
        time: new Date().toISOString(),
        detail: { bucket: { name: BUCKET }, object: { key, size: 8, etag: "e", sequencer: id } },
      });
      const res = await app.inject({
        method: "POST",
        url: "/v1/events",
        headers: { authorization: "Bearer t0k3n-review9", "content-type": "application/json" },
        payload: JSON.stringify([eb(`${folder}/dt=1/a.json`, "01"), eb(`${folder}/dt=1/b.json`, "02")]),
      });
      expect({ status: res.statusCode, body: res.body }).toMatchObject({ status: 202 });
    } finally {
      await app.close();
      await ctx.queues.close();
    }
  });
});
