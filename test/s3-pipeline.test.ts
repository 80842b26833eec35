import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { harness } from "./helpers/harness.js";
import { listAll as listS3, startS3, type S3Fixture } from "./helpers/s3rver.js";

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket("raw-bucket");
  await s3.createBucket("clean-bucket");
});
afterAll(async () => {
  await s3?.stop();
});

const listAll = (bucket: string, prefix: string) => listS3(s3.client, bucket, prefix);

describe("S3 source and S3 sink through a local S3-protocol server", () => {
  it("drains a partitioned S3 backlog in bounded runs into an S3 output, exactly once", async () => {
    const h = await harness(
      "s3job",
      {
        source: { path: "s3://raw-bucket/events/", partitionKeys: ["dt"], exclusions: ["**.tmp"], boundedFiles: "20" },
        output: { path: "s3://clean-bucket/events/" },
      },
      { s3: s3.settings },
    );
    try {
      const keys: string[] = [];
      for (let i = 0; i < 30; i++) {
        const key = `dt=2024-01-0${(i % 3) + 1}/${i === 7 ? "with space ü" : "part"}-${i}.json${i % 2 ? ".gz" : ""}`;
        const body = `{"i":${i}}\n{"j":${i}}\n`;
        await s3.client.send(new PutObjectCommand({ Bucket: "raw-bucket", Key: `events/${key}`, Body: i % 2 ? gzipSync(body) : body }));
        keys.push(`${key}.ndjson`);
      }
      await s3.client.send(new PutObjectCommand({ Bucket: "raw-bucket", Key: "events/dt=2024-01-01/skip.tmp", Body: "x" }));
      await s3.client.send(new PutObjectCommand({ Bucket: "raw-bucket", Key: "events/dt=2024-01-02/", Body: "" }));
      h.startWorker();
      const r1 = await h.run();
      expect([r1.status, r1.files, r1.remainingFiles]).toEqual(["succeeded", 20, 10]);
      const r2 = await h.run();
      expect([r2.status, r2.files, r2.remainingFiles]).toEqual(["succeeded", 10, 0]);
      expect((await h.run()).status).toBe("empty");
      const written = await listAll("clean-bucket", "events/");
      expect(written.filter((k) => !k.startsWith("_tranche/manifests/"))).toEqual(keys.sort());
      // One manifest per partition commit: together they name every output once, with its input.
      const manifests = written.filter((k) => k.startsWith("_tranche/manifests/"));
      expect(manifests.length).toBeGreaterThanOrEqual(3);
      const named: string[] = [];
      for (const m of manifests) {
        const body = JSON.parse(
          await (await s3.client.send(new GetObjectCommand({ Bucket: "clean-bucket", Key: `events/${m}` }))).Body!.transformToString(),
        ) as { runId: string; partition: string; files: { input: string; output: string }[] };
        expect([r1.runId, r2.runId]).toContain(body.runId);
        for (const f of body.files) {
          expect(f.input.startsWith(`${body.partition}/`)).toBe(true);
          named.push(f.output);
        }
      }
      expect(named.sort()).toEqual(keys.sort());
      const obj = await s3.client.send(
        new GetObjectCommand({ Bucket: "clean-bucket", Key: "events/dt=2024-01-02/with space ü-7.json.gz.ndjson" }),
      );
      expect(await obj.Body!.transformToString()).toBe('{"i":7}\n{"j":7}\n');
      // A new object after the runs is taken by the next run, and only it.
      await new Promise((r) => setTimeout(r, 1100)); // S3 last-modified has whole seconds
      await s3.client.send(new PutObjectCommand({ Bucket: "raw-bucket", Key: "events/dt=2024-01-03/new.json", Body: '{"n":1}\n' }));
      const r4 = await h.run();
      expect([r4.status, r4.files]).toEqual(["succeeded", 1]);
    } finally {
      await h.close();
    }
  });
});
