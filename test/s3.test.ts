import { createHash } from "node:crypto";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { describe, it, expect, beforeAll, afterAll, vi } from "vitest";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { makeS3Client, parseS3Uri } from "../src/source/s3-client.js";
import { S3Source } from "../src/source/s3-source.js";
import { S3Sink } from "../src/sink/s3-sink.js";
import type { SourceObject } from "../src/source/types.js";
import { startS3, type S3Fixture } from "./helpers/s3rver.js";

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer | string>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

async function collect(src: S3Source): Promise<SourceObject[][]> {
  const pages: SourceObject[][] = [];
  for await (const page of src.list()) pages.push(page);
  return pages;
}

async function put(client: S3Client, bucket: string, key: string, body: string | Buffer) {
  const buf = Buffer.from(body);
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: buf, ContentLength: buf.length }));
}

/** A client for the fixture that records the name of every command it sends. */
function spyClient(s3: S3Fixture): { client: S3Client; commands: string[] } {
  const commands: string[] = [];
  const client = makeS3Client(s3.settings);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      commands.push(context.commandName ?? "?");
      return next(args);
    },
    { step: "initialize", name: "commandSpy" },
  );
  return { client, commands };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function mapLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>) {
  let i = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

describe("parseS3Uri / makeS3Client", () => {
  it("parses and normalises URIs", () => {
    expect(parseS3Uri("s3://b/some/prefix/")).toEqual({ bucket: "b", prefix: "some/prefix/" });
    expect(parseS3Uri("s3://b/some/prefix")).toEqual({ bucket: "b", prefix: "some/prefix/" });
    expect(parseS3Uri("s3://b")).toEqual({ bucket: "b", prefix: "" });
    expect(parseS3Uri("s3://b/")).toEqual({ bucket: "b", prefix: "" });
    expect(() => parseS3Uri("http://b/x")).toThrow(/http:\/\/b\/x/);
    expect(() => parseS3Uri("s3:///x")).toThrow(/s3:\/\/\/x/);
  });

  it("takes region from settings, then env, then us-east-1", async () => {
    const saved = { ...process.env };
    try {
      delete process.env.AWS_REGION;
      delete process.env.AWS_DEFAULT_REGION;
      expect(await makeS3Client({}).config.region()).toBe("us-east-1");
      process.env.AWS_DEFAULT_REGION = "eu-west-3";
      expect(await makeS3Client({}).config.region()).toBe("eu-west-3");
      process.env.AWS_REGION = "eu-central-1";
      expect(await makeS3Client({}).config.region()).toBe("eu-central-1");
      expect(await makeS3Client({ region: "ap-south-1" }).config.region()).toBe("ap-south-1");
      expect(await makeS3Client({}).config.maxAttempts()).toBe(3);
    } finally {
      process.env = saved;
    }
  });
});

describe("S3 source and sink against s3rver", () => {
  let s3: S3Fixture;
  let client: S3Client;

  beforeAll(async () => {
    s3 = await startS3();
    client = s3.client;
    await Promise.all(["src", "empty", "out"].map((b) => s3.createBucket(b)));
  }, 20_000);

  afterAll(async () => {
    await s3?.stop();
  });

  it("lists 2,500 objects in 3 pages of up to 1000 with correct sizes", async () => {
    const keys = Array.from({ length: 2500 }, (_, i) => `part-${String(i).padStart(5, "0")}.json`);
    const sizeOf = new Map(keys.map((k, i) => [k, i % 50]));
    await mapLimit(keys, 64, (k) => put(client, "src", `big/${k}`, "x".repeat(sizeOf.get(k)!)));
    const src = new S3Source("s3://src/big/", client, { pageSize: 1000 });
    const pages = await collect(src);
    expect(pages.map((p) => p.length)).toEqual([1000, 1000, 500]);
    const all = pages.flat();
    expect(new Set(all.map((o) => o.key))).toEqual(new Set(keys));
    for (const o of all) {
      expect(o.size).toBe(sizeOf.get(o.key));
      expect(o.etag).toMatch(/^[0-9a-f]{32}$/);
      expect(o.lastModified).toBeGreaterThan(Date.UTC(2020, 0, 1));
    }
  }, 20_000);

  it("handles Hive-style keys with spaces and non-ASCII, skipping directory markers", async () => {
    const body = JSON.stringify({ hello: "wörld" });
    await put(client, "src", "hive/", "");
    await put(client, "src", "hive/dt=2024-01-01/", "");
    await put(client, "src", "hive/dt=2024-01-01/a b ü.json", body);
    await put(client, "src", "hive/dt=2024-01-02/日本 語+%.json", "second");
    const src = new S3Source("s3://src/hive", client);
    expect(src.prefix).toBe("hive/");
    const objs = (await collect(src)).flat().sort((a, b) => a.key.localeCompare(b.key));
    expect(objs.map((o) => o.key)).toEqual(["dt=2024-01-01/a b ü.json", "dt=2024-01-02/日本 語+%.json"]);
    expect(objs[0]!.size).toBe(Buffer.byteLength(body));
    expect(objs[0]!.etag).toBe(createHash("md5").update(body).digest("hex"));
    expect((await readAll(await src.open("dt=2024-01-01/a b ü.json"))).toString()).toBe(body);
    expect((await readAll(await src.open("dt=2024-01-02/日本 語+%.json"))).toString()).toBe("second");
  });

  it("yields nothing for an empty bucket or an empty prefix", async () => {
    expect(await collect(new S3Source("s3://empty/", client))).toEqual([]);
    expect(await collect(new S3Source("s3://empty", client))).toEqual([]);
    expect(await collect(new S3Source("s3://src/no-such-prefix/", client))).toEqual([]);
  });

  it("open() of a missing key rejects with a GoneError naming the URI", async () => {
    const src = new S3Source("s3://src/hive/", client);
    await expect(src.open("dt=2024-01-01/missing ü.json")).rejects.toMatchObject({
      name: "GoneError",
      code: "E_GONE",
      message: expect.stringContaining("s3://src/hive/dt=2024-01-01/missing ü.json"),
    });
  });

  it("S3Sink writes a small object", async () => {
    const sink = new S3Sink("s3://out/results/", client);
    const w = await sink.create("dt=2024-01-01/small ü.txt", "text/plain");
    w.stream.write("hello ");
    w.stream.write(Buffer.from("wörld"));
    const res = await w.commit();
    expect(res).toEqual({
      bytes: Buffer.byteLength("hello wörld"),
      location: "s3://out/results/dt=2024-01-01/small ü.txt",
      key: "dt=2024-01-01/small ü.txt",
    });
    const got = await client.send(new GetObjectCommand({ Bucket: "out", Key: "results/dt=2024-01-01/small ü.txt" }));
    expect(got.ContentType).toBe("text/plain");
    expect(await got.Body!.transformToString()).toBe("hello wörld");
  });

  it("S3Sink writes a ~12 MiB object as a multipart upload with 5 MiB parts", async () => {
    const size = 12 * 1024 * 1024 + 12344;
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    const spy = spyClient(s3);
    const sink = new S3Sink("s3://out/results/", spy.client, { partSizeBytes: 5 * 1024 * 1024, queueSize: 2 });
    const w = await sink.create("big.bin", "application/octet-stream");
    // Write in 64 KiB chunks through a pipeline, as a processor would.
    const chunks = function* () {
      for (let i = 0; i < size; i += 65536) yield data.subarray(i, i + 65536);
    };
    await pipeline(Readable.from(chunks()), w.stream);
    const res = await w.commit();
    expect(res).toEqual({ bytes: size, location: "s3://out/results/big.bin", key: "big.bin" });
    const head = await client.send(new HeadObjectCommand({ Bucket: "out", Key: "results/big.bin" }));
    expect(head.ContentLength).toBe(size);
    // s3rver's multipart ETag has no "-N" suffix, so check the commands instead.
    expect(spy.commands.filter((c) => c === "UploadPartCommand")).toHaveLength(3);
    expect(spy.commands).toContain("CreateMultipartUploadCommand");
    expect(spy.commands).toContain("CompleteMultipartUploadCommand");
    expect(spy.commands).not.toContain("PutObjectCommand");
    spy.client.destroy();
    const back = await readAll(await new S3Source("s3://out/results/", client).open("big.bin"));
    expect(back.equals(data)).toBe(true);
  }, 20_000);

  it("writing the same key twice leaves one object with the new content", async () => {
    const sink = new S3Sink("s3://out/retry/", client);
    for (const content of ["first attempt, longer content", "second"]) {
      const w = await sink.create("same.txt");
      w.stream.end(content);
      await w.commit();
    }
    const listed = await client.send(new ListObjectsV2Command({ Bucket: "out", Prefix: "retry/" }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(["retry/same.txt"]);
    const back = await readAll(await new S3Source("s3://out/retry/", client).open("same.txt"));
    expect(back.toString()).toBe("second");
  });

  it("abort() leaves no object behind", async () => {
    const sink = new S3Sink("s3://out/aborted/", client);
    const w = await sink.create("never.txt");
    w.stream.write("partial");
    await w.abort(new Error("processor failed"));
    const listed = await client.send(new ListObjectsV2Command({ Bucket: "out", Prefix: "aborted/" }));
    expect(listed.Contents ?? []).toEqual([]);
  });

  it("abort() mid-multipart aborts the multipart upload and leaves no object", async () => {
    const spy = spyClient(s3);
    const sink = new S3Sink("s3://out/aborted/", spy.client, { partSizeBytes: 5 * 1024 * 1024 });
    const w = await sink.create("half.bin");
    w.stream.write(Buffer.alloc(6 * 1024 * 1024, 1)); // one full part gets uploaded
    await vi.waitFor(() => expect(spy.commands).toContain("UploadPartCommand"), { timeout: 5000 });
    await w.abort(new Error("processor failed"));
    await vi.waitFor(() => expect(spy.commands).toContain("AbortMultipartUploadCommand"), { timeout: 5000 });
    const listed = await client.send(new ListObjectsV2Command({ Bucket: "out", Prefix: "aborted/" }));
    expect(listed.Contents ?? []).toEqual([]);
    spy.client.destroy();
  });
});
