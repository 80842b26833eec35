import { createServer, type AddressInfo } from "node:net";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { ingestEvents } from "../../src/events/ingest.js";
import { log } from "../../src/log.js";
import { stepContext } from "../../src/run/step-context.js";
import { Scheduler } from "../../src/triggers/scheduler.js";
import type { Harness } from "./harness.js";
import type { S3Fixture } from "./s3rver.js";

/** A port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Uploads small JSON-lines objects. */
export async function putObjects(s3: S3Fixture, bucket: string, keys: string[]): Promise<void> {
  for (const Key of keys) await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: '{"a":1}\n' }));
}

/** An S3 notification body (as S3 sends to SQS/SNS/Lambda and MinIO's webhook posts), keys URL-encoded. */
export function s3Records(bucket: string, keys: string[], seq = "0055AED6DCD90281E5") {
  return {
    Records: keys.map((k) => ({
      eventVersion: "2.1",
      eventSource: "aws:s3",
      eventTime: new Date().toISOString(),
      eventName: "ObjectCreated:Put",
      s3: {
        s3SchemaVersion: "1.0",
        bucket: { name: bucket },
        object: { key: encodeURIComponent(k).replace(/%2F/g, "/"), size: 8, eTag: "e", sequencer: seq },
      },
    })),
  };
}

/** POST /v1/events without HTTP: ingestEvents on the harness's connections. */
export async function ingest(h: Harness, body: unknown) {
  const ctx = stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log });
  try {
    return await ingestEvents(ctx, body);
  } finally {
    await ctx.queues.close();
  }
}

/** A scheduler (100 ms ticks) on the harness's connections, added to `running` for the test's cleanup. */
export function startScheduler(h: Harness, running: Scheduler[]): Scheduler {
  const s = new Scheduler(stepContext({ redis: h.redis, bull: h.bull, cfg: h.cfg, log }), { tickMs: 100 });
  s.start();
  running.push(s);
  return s;
}

/** Every run record of the harness's job. */
export async function runRecords(h: Harness): Promise<Record<string, string>[]> {
  const ids = await h.redis.zrange(`${h.prefix}:runs:${h.name}:index`, 0, -1);
  return Promise.all(
    ids.map(async (id): Promise<Record<string, string>> => ({ runId: id, ...(await h.redis.hgetall(`${h.prefix}:run:${id}`)) })),
  );
}

/** Waits for `n` finished runs of the job. */
export async function finishedRuns(h: Harness, n: number, timeoutMs = 30_000): Promise<Record<string, string>[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const recs = await runRecords(h);
    const done = recs.filter((r) => r.finished === "1");
    if (done.length >= n) return done;
    if (Date.now() > deadline) throw new Error(`only ${done.length} of ${n} runs finished: ${JSON.stringify(recs.map((r) => r.state))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
