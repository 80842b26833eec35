/**
 * Event-driven runs (Glue's event trigger): S3 notifications stored durably and deduplicated, runs
 * started by batch size or window that take exactly their events' objects through the bookmark,
 * and never move the watermark past files no listing has covered. Real s3rver, real Redis,
 * real BullMQ and worker threads, a real scheduler.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BookmarkStore } from "../src/bookmark/store.js";
import { BadEventError } from "../src/events/ingest.js";
import { EventShapeError, parseEventBody } from "../src/events/parse.js";
import { EventQueue } from "../src/events/queue.js";
import { Scheduler } from "../src/triggers/scheduler.js";
import { listFiles } from "./helpers/files.js";
import { finishedRuns, ingest, putObjects, s3Records, startScheduler as startSchedulerOn } from "./helpers/events.js";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { startS3, type S3Fixture } from "./helpers/s3rver.js";

let s3: S3Fixture;
const BUCKET = "events";
beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket(BUCKET);
});
afterAll(async () => s3?.stop());
const schedulers: Scheduler[] = [];
afterEach(async () => {
  for (const s of schedulers.splice(0)) await s.stop();
  await closeHarnesses();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const put = (keys: string[]) => putObjects(s3, BUCKET, keys);
const records = (keys: string[], seq?: string, bucket = BUCKET) => s3Records(bucket, keys, seq);
const startScheduler = (h: Harness) => startSchedulerOn(h, schedulers);

async function eventJob(name: string, folder: string, events: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return harness(
    name,
    {
      source: { path: `s3://${BUCKET}/${folder}/`, partitionKeys: ["dt"] },
      triggers: { events },
      ...extra,
    },
    { s3: s3.settings },
  );
}

describe("parsing S3 notifications", () => {
  it("reads Records[], an SNS envelope, EventBridge events, and names the field of a bad one", () => {
    const r = parseEventBody(records(["dt=1/a b+c.json"]));
    expect(r.events[0]).toMatchObject({ bucket: BUCKET, key: "dt=1/a b+c.json", sequencer: "0055AED6DCD90281E5", size: 8 });
    expect(parseEventBody({ Type: "Notification", Message: JSON.stringify(records(["x"])) }).events).toHaveLength(1);
    const eb = {
      version: "0",
      id: "c9888434-815d-c6f4-9fc2-4dd7bdeccaaf",
      "detail-type": "Object Created",
      source: "aws.s3",
      time: "2023-08-09T13:09:50Z",
      detail: {
        bucket: { name: "b" },
        object: { key: "raw/x.json", size: 3, etag: "4af9", sequencer: "0064D3901D00059242" },
        reason: "PutObject",
      },
    };
    expect(parseEventBody(eb).events[0]).toMatchObject({ id: eb.id, bucket: "b", key: "raw/x.json", time: Date.parse(eb.time) });
    expect(parseEventBody([eb, { ...eb, "detail-type": "Object Deleted" }])).toMatchObject({ ignored: 1 });
    expect(parseEventBody({ Records: [{ eventName: "ObjectRemoved:Delete", s3: {} }] })).toMatchObject({ events: [], ignored: 1 });
    expect(() => parseEventBody({ Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: "b" }, object: {} } }] })).toThrow(
      expect.objectContaining({ field: "Records[0].s3.object.key" }) as Error,
    );
    expect(() => parseEventBody({ hello: 1 })).toThrow(EventShapeError);
    expect(() => parseEventBody({ Records: {} })).toThrow(/Records: must be an array/);
  });
});

describe("event-driven runs", () => {
  it("by batch size: duplicates count once, the run takes exactly its events' objects and records them", async () => {
    const h = await eventJob("ev-size", "size", { batchSize: 3, batchWindow: 900 });
    const keys = ["size/dt=2024-01-01/a.json", "size/dt=2024-01-01/b.json", "size/dt=2024-01-02/c.json"];
    await put([...keys, "size/dt=2024-01-02/not-announced.json"]);
    const first = await ingest(h, records(keys.slice(0, 2)));
    expect(first).toMatchObject({ accepted: 2, duplicates: 0, unmatched: 0, jobs: { "ev-size": 2 } });
    // The same deliveries again, an object of another bucket, and the third event.
    const again = await ingest(h, {
      Records: [...records(keys.slice(0, 2)).Records, ...records(["x.json"], "1", "elsewhere").Records, ...records([keys[2]!]).Records],
    });
    expect(again).toMatchObject({ accepted: 1, duplicates: 2, unmatched: 1 });
    await h.startWorker();
    startScheduler(h);
    const [run] = await finishedRuns(h, 1);
    expect(run).toMatchObject({ state: "SUCCEEDED", trigger: "events", eventCondition: "BatchSize", eventCount: "3", filesPlanned: "3" });
    expect(JSON.parse(run!.eventIds!)).toHaveLength(3);
    expect(await listFiles(h.outDir)).toEqual([
      "dt=2024-01-01/a.json.ndjson",
      "dt=2024-01-01/b.json.ndjson",
      "dt=2024-01-02/c.json.ndjson",
    ]);
    expect((await new EventQueue(h.redis, h.prefix, h.name).pending()).count).toBe(0);
    // A delivery repeated after the run: a duplicate, nothing pending, no second run.
    expect(await ingest(h, records([keys[0]!]))).toMatchObject({ accepted: 0, duplicates: 1 });
    await sleep(500);
    expect(await h.redis.zcard(`${h.prefix}:runs:${h.name}:index`)).toBe(1);
  });

  it("by window: one event starts a run batchWindow seconds after it arrived; events survive a scheduler restart", async () => {
    const h = await eventJob("ev-window", "window", { batchSize: 100, batchWindow: 1 });
    await put(["window/dt=2024-01-01/a.json"]);
    // Posted while no scheduler runs: stored in Redis, taken by the scheduler that starts later.
    const s1 = startScheduler(h);
    await s1.stop();
    expect(await ingest(h, records(["window/dt=2024-01-01/a.json"]))).toMatchObject({ accepted: 1 });
    await h.startWorker();
    const at = Date.now();
    startScheduler(h);
    const [run] = await finishedRuns(h, 1);
    expect(run).toMatchObject({ state: "SUCCEEDED", eventCondition: "BatchWindow", filesPlanned: "1" });
    expect(Number(run!.createdAt) - at).toBeGreaterThanOrEqual(0);
    expect(await listFiles(h.outDir)).toEqual(["dt=2024-01-01/a.json.ndjson"]);
  });

  it("a backlog of old files plus new events: every file processed once; the event run moves no watermark, a listing then absorbs its files", async () => {
    // maxBand 0: the band edge is the watermark itself, so a watermark moved past the old files would settle them unprocessed.
    const h = await eventJob("ev-backlog", "backlog", { batchSize: 3, batchWindow: 900 }, { bookmark: { maxBand: 0 } });
    const old = Array.from({ length: 5 }, (_, i) => `backlog/dt=2024-01-01/old-${i}.json`);
    await put(old);
    await sleep(1100); // S3 times are whole seconds
    const fresh = Array.from({ length: 3 }, (_, i) => `backlog/dt=2024-01-01/new-${i}.json`);
    await put(fresh);
    await ingest(h, records(fresh));
    await h.startWorker();
    const sched = startScheduler(h);
    const [evRun] = await finishedRuns(h, 1);
    expect(evRun).toMatchObject({ state: "SUCCEEDED", trigger: "events", filesPlanned: "3" });
    await sched.stop();
    const store = new BookmarkStore(h.redis, h.prefix, h.name);
    const meta = await h.redis.hgetall(store.k.meta("dt=2024-01-01"));
    // The listing run takes exactly the old backlog: the event run's files are done.
    const s = await h.run();
    expect(s).toMatchObject({ state: "SUCCEEDED", files: 5 });
    expect(meta.wm).toBeUndefined(); // the event run moved no cursor
    const outs = await listFiles(h.outDir);
    expect(outs).toHaveLength(8);
    const hwmAfterListing = Number((await h.redis.hgetall(store.k.meta("dt=2024-01-01"))).hwm);
    // A listing run that finds everything done moves the watermark over the event run's files.
    const s2 = await h.run();
    expect(s2.files).toBe(0);
    const m2 = await h.redis.hgetall(store.k.meta("dt=2024-01-01"));
    expect(Number(m2.hwm)).toBeGreaterThan(hwmAfterListing);
    expect(Number(m2.wm)).toBe(Number(m2.hwm));
    expect((await h.run()).files).toBe(0);
    expect(await listFiles(h.outDir)).toEqual(outs);
  });

  it("a bad body is 400 naming the field; a full job refuses (503) before storing anything", async () => {
    const h = await eventJob("ev-bad", "bad", { batchSize: 10 });
    await expect(ingest(h, { Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: {}, object: { key: "k" } } }] })).rejects.toThrow(
      BadEventError,
    );
    await expect(
      ingest(h, { Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: {}, object: { key: "k" } } }] }),
    ).rejects.toMatchObject({
      field: "Records[0].s3.bucket.name",
    });
    const q = new EventQueue(h.redis, h.prefix, h.name);
    const ev = (k: string) => ({
      id: k,
      bucket: BUCKET,
      key: `bad/${k}`,
      rel: k,
      sequencer: k,
      time: 0,
      size: 1,
      etag: "",
      at: Date.now(),
    });
    expect(await q.store([ev("a"), ev("b")], 2)).toEqual({ accepted: 2, duplicates: 0 });
    expect(await q.store([ev("c")], 2)).toEqual({ accepted: 0, duplicates: 0, full: 2 });
    expect((await q.pending()).count).toBe(2);
    // A duplicate of a stored delivery does not count against the cap.
    expect(await q.store([ev("a")], 2)).toEqual({ accepted: 0, duplicates: 1 });
  });
});
