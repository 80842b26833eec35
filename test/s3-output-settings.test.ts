/**
 * `output.s3`: server-side encryption (SSE-S3, SSE-KMS with a key id), storage class, ACL and the
 * outputs' content type, sent on every output object (single-part and multipart), on the commit's
 * manifests (their own content type kept) and on the write probe, so that a bucket policy that
 * requires them is met. Real s3rver, with a proxy that records the requests' headers.
 */
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { validateConfig } from "../src/config/load.js";
import { S3Sink } from "../src/sink/s3-sink.js";
import { makeS3Client } from "../src/source/s3-client.js";
import { closeHarnesses, harness } from "./helpers/harness.js";
import { startS3Proxy, type S3Proxy } from "./helpers/s3-proxy.js";
import { startS3, type S3Fixture } from "./helpers/s3rver.js";

let s3: S3Fixture;
let proxy: S3Proxy;
beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket("sse-in");
  await s3.createBucket("sse-out");
  proxy = await startS3Proxy(s3.endpoint);
});
afterAll(async () => {
  await proxy?.close();
  await s3?.stop();
});
afterEach(closeHarnesses);

const writes = () => proxy.requests().filter((r) => r.op === "PutObject" || r.op === "CreateMultipartUpload");

describe("output.s3", () => {
  it("SSE-KMS with a key, storage class, ACL and content type on every output, the manifests and the probe", async () => {
    const h = await harness(
      "sseout",
      {
        source: { path: "s3://sse-in/in/" },
        output: {
          path: "s3://sse-out/out/",
          s3: {
            serverSideEncryption: "aws:kms",
            kmsKeyId: "arn:aws:kms:us-east-1:111122223333:key/1234abcd",
            bucketKeyEnabled: true,
            storageClass: "STANDARD_IA",
            acl: "bucket-owner-full-control",
            contentType: "application/x-ndjson",
          },
        },
      },
      { s3: { ...s3.settings, endpoint: proxy.endpoint } },
    );
    for (let i = 0; i < 3; i++)
      await s3.client.send(new PutObjectCommand({ Bucket: "sse-in", Key: `in/f${i}.json`, Body: `{"i":${i}}\n` }));
    proxy.reset();
    await h.startWorker();
    expect(await h.run()).toMatchObject({ status: "succeeded", files: 3 });
    const w = writes();
    const outputs = w.filter((r) => !r.path.includes("/_tranche/"));
    const manifests = w.filter((r) => r.path.includes("/_tranche/manifests/"));
    expect(outputs.map((r) => r.path).sort()).toEqual([
      "/sse-out/out/f0.json.ndjson",
      "/sse-out/out/f1.json.ndjson",
      "/sse-out/out/f2.json.ndjson",
    ]);
    expect(manifests).toHaveLength(1);
    for (const r of [...outputs, ...manifests]) {
      expect(r.headers["x-amz-server-side-encryption"]).toBe("aws:kms");
      expect(r.headers["x-amz-server-side-encryption-aws-kms-key-id"]).toBe("arn:aws:kms:us-east-1:111122223333:key/1234abcd");
      expect(r.headers["x-amz-server-side-encryption-bucket-key-enabled"]).toBe("true");
      expect(r.headers["x-amz-storage-class"]).toBe("STANDARD_IA");
      expect(r.headers["x-amz-acl"]).toBe("bucket-owner-full-control");
    }
    for (const r of outputs) expect(r.headers["content-type"]).toBe("application/x-ndjson");
    expect(manifests[0]!.headers["content-type"]).toBe("application/json");
    // The write probe (preflight) carries them too.
    proxy.reset();
    const sink = new S3Sink("s3://sse-out/out/", makeS3Client({ ...s3.settings, endpoint: proxy.endpoint }), {
      put: { serverSideEncryption: "AES256" },
    });
    await sink.probe();
    const probe = proxy.requests().find((r) => r.op === "PutObject")!;
    expect(probe.path).toContain("/_tranche/probe-");
    expect(probe.headers["x-amz-server-side-encryption"]).toBe("AES256");
  });

  it("a multipart upload carries them on CreateMultipartUpload", async () => {
    proxy.reset();
    const sink = new S3Sink("s3://sse-out/big/", makeS3Client({ ...s3.settings, endpoint: proxy.endpoint }), {
      put: { serverSideEncryption: "AES256", storageClass: "REDUCED_REDUNDANCY" },
    });
    const w = await sink.create("big.bin", "application/octet-stream");
    const chunk = Buffer.alloc(1024 * 1024, 7);
    for (let i = 0; i < 11; i++) if (!w.stream.write(chunk)) await new Promise((r) => w.stream.once("drain", r));
    await w.commit();
    const create = proxy.requests().find((r) => r.op === "CreateMultipartUpload")!;
    expect(create.headers["x-amz-server-side-encryption"]).toBe("AES256");
    expect(create.headers["x-amz-storage-class"]).toBe("REDUCED_REDUNDANCY");
    expect(create.headers["content-type"]).toBe("application/octet-stream");
  });

  it("bad settings are E_CONFIG naming the field", () => {
    const cfg =
      (s3: unknown, path = "s3://b/out/") =>
      () =>
        validateConfig({ jobs: { j: { source: { path: "/tmp/in" }, processor: "ndjson", output: { path, s3 } } } }, { env: {} });
    expect(cfg({ kmsKeyId: "k" })).toThrow(/jobs\.j\.output\.s3\.kmsKeyId.*aws:kms/);
    expect(cfg({ serverSideEncryption: "rot13" })).toThrow(/jobs\.j\.output\.s3\.serverSideEncryption/);
    expect(cfg({ storageClass: "CHEAP" })).toThrow(/storageClass/);
    expect(cfg({ acl: "everyone" })).toThrow(/acl/);
    expect(cfg({ serverSideEncryption: "AES256" }, "/tmp/out")).toThrow(/output\.s3.*s3:\/\/ outputs/);
    expect(cfg({ serverSideEncryption: "aws:kms:dsse", bucketKeyEnabled: true })).toThrow(/bucketKeyEnabled.*DSSE/);
    expect(() => cfg({ serverSideEncryption: "aws:kms", kmsKeyId: "alias/x" })()).not.toThrow();
  });
});
