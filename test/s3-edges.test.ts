import net from "node:net";
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateConfig } from "../src/config/load.js";
import { AccessDeniedError, UnreachableError } from "../src/errors.js";
import { ArchivedError, GoneError, JobError } from "../src/failures.js";
import { S3Sink } from "../src/sink/s3-sink.js";
import { makeS3Client } from "../src/source/s3-client.js";
import { classifyS3Error } from "../src/source/s3-errors.js";
import { S3Source } from "../src/source/s3-source.js";
import { startS3, type S3Fixture } from "./helpers/s3rver.js";

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket("edges");
}, 20_000);
afterAll(async () => {
  await s3?.stop();
});

/** A client for the fixture that records every command it sends, and can fail chosen ones. */
function spyClient(o: { fail?: Record<string, { name: string; status: number }>; settings?: object } = {}) {
  const commands: string[] = [];
  const client = makeS3Client({ ...s3.settings, ...o.settings });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? "?";
      commands.push(name);
      const f = o.fail?.[name];
      if (f) throw Object.assign(new Error(`${f.name} (injected)`), { name: f.name, $metadata: { httpStatusCode: f.status } });
      return next(args);
    },
    { step: "initialize", name: "commandSpy" },
  );
  return { client, commands };
}

async function keysUnder(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

/** A TCP port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

describe("S3Sink output keys", () => {
  it("refuses a//b and ../x with a FileError before sending any request", async () => {
    const spy = spyClient();
    const sink = new S3Sink("s3://edges/out/", spy.client);
    for (const bad of ["a//b", "../x", "a/./b", "/abs", "a/"]) {
      await expect(sink.create(bad)).rejects.toMatchObject({
        name: "FileError",
        code: "E_OUTPUT_NAME",
        message: expect.stringContaining(bad),
      });
    }
    expect(spy.commands).toEqual([]);
    spy.client.destroy();
  });

  it("fits a key longer than 1024 bytes (prefix included) and reports the key written", async () => {
    const sink = new S3Sink("s3://edges/long/", s3.client);
    // Many folders (s3rver stores keys as files, so no segment may pass 255 bytes here).
    const key = "dt=1/" + "folder-with-a-long-name-".repeat(8).concat("/").repeat(6) + "file.json.ndjson";
    expect(Buffer.byteLength(key)).toBeGreaterThan(1024);
    const w = await sink.create(key);
    w.stream.end("z\n");
    const res = await w.commit();
    expect(res.key).toMatch(/^dt=1\/folder-with-a-long-name-.*~[0-9a-f]{16}\.ndjson$/);
    expect(key.startsWith(res.key.slice(0, -"~0123456789abcdef.ndjson".length))).toBe(true);
    expect(Buffer.byteLength("long/" + res.key)).toBeLessThanOrEqual(1024);
    expect(res.location).toBe(`s3://edges/long/${res.key}`);
    expect(await keysUnder(s3.client, "edges", "long/")).toEqual([`long/${res.key}`]);
  });

  it("a failed upload rejects commit with a typed JobError naming the location", async () => {
    const w = await new S3Sink("s3://no-such-bucket-edges/out/", s3.client).create("a.ndjson");
    w.stream.end("x\n");
    const err = await w.commit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobError);
    expect(err).toMatchObject({ code: "E_UNREACHABLE", message: expect.stringContaining("no-such-bucket-edges") });
  });
});

describe("S3Sink.probe", () => {
  it("puts and deletes a probe under <prefix>_tranche/, leaving nothing", async () => {
    const spy = spyClient();
    expect(await new S3Sink("s3://edges/probed/", spy.client).probe()).toEqual({});
    expect(spy.commands).toEqual(["PutObjectCommand", "DeleteObjectCommand"]);
    expect(await keysUnder(s3.client, "edges", "probed/")).toEqual([]);
    spy.client.destroy();
  });

  it("a missing bucket is an UnreachableError naming the bucket and prefix", async () => {
    const err = await new S3Sink("s3://missing-bucket-edges/out/", s3.client).probe().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toContain("s3://missing-bucket-edges/out/");
    expect((err as Error).message).toMatch(/bucket missing-bucket-edges does not exist/);
  });

  it("refused credentials are an AccessDeniedError", async () => {
    const spy = spyClient({ fail: { PutObjectCommand: { name: "AccessDenied", status: 403 } } });
    const err = await new S3Sink("s3://edges/out/", spy.client).probe().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect((err as Error).message).toContain("s3://edges/out/");
    spy.client.destroy();
  });

  it("a refused delete is only a warning: the probe needs no delete permission", async () => {
    const spy = spyClient({ fail: { DeleteObjectCommand: { name: "AccessDenied", status: 403 } } });
    const res = await new S3Sink("s3://edges/nodelete/", spy.client).probe();
    expect(res.warning).toMatch(/could not delete the probe object s3:\/\/edges\/nodelete\/_tranche\/probe-[0-9a-f]+ \(AccessDenied\)/);
    const left = await keysUnder(s3.client, "edges", "nodelete/");
    expect(left).toHaveLength(1);
    await s3.client.send(new DeleteObjectCommand({ Bucket: "edges", Key: left[0] }));
    spy.client.destroy();
  });

  it("an endpoint that does not answer is an UnreachableError naming it", async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const client = makeS3Client({ ...s3.settings, endpoint });
    const err = await new S3Sink("s3://edges/out/", client).probe().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toContain(endpoint);
    client.destroy();
  });
});

describe("S3Source.check", () => {
  it("passes for a bucket and prefix that can be listed, with one ListObjectsV2 of one key", async () => {
    const spy = spyClient();
    await new S3Source("s3://edges/anything/", spy.client).check();
    expect(spy.commands).toEqual(["ListObjectsV2Command"]);
    spy.client.destroy();
  });

  it("a missing bucket is an UnreachableError naming bucket, prefix and endpoint", async () => {
    const err = await new S3Source("s3://missing-src-edges/in/", s3.client).check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect(err).toMatchObject({ code: "E_UNREACHABLE", exitCode: 4 });
    expect((err as Error).message).toContain("s3://missing-src-edges/in/");
    expect((err as Error).message).toContain(s3.endpoint);
  });

  it("an unreachable endpoint (a closed port) is an UnreachableError naming it", async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const client = makeS3Client({ ...s3.settings, endpoint });
    const err = await new S3Source("s3://edges/in/", client).check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toContain(endpoint);
    expect((err as Error).message).toContain("s3://edges/in/");
    client.destroy();
  });

  it("refused credentials are an AccessDeniedError", async () => {
    const spy = spyClient({ fail: { ListObjectsV2Command: { name: "InvalidAccessKeyId", status: 403 } } });
    const err = await new S3Source("s3://edges/in/", spy.client).check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect((err as Error).message).toContain("s3://edges/in/");
    spy.client.destroy();
  });
});

describe("S3Source reads and listing", () => {
  it("GetObject of a deleted key is a GoneError naming it", async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: "edges", Key: "src/dt=1/gone.json", Body: "{}\n" }));
    const src = new S3Source("s3://edges/src/", s3.client);
    const listed: string[] = [];
    for await (const page of src.list()) listed.push(...page.map((o) => o.key));
    expect(listed).toEqual(["dt=1/gone.json"]);
    await s3.client.send(new DeleteObjectCommand({ Bucket: "edges", Key: "src/dt=1/gone.json" }));
    const err = await src.open("dt=1/gone.json").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GoneError);
    expect((err as Error).message).toContain("s3://edges/src/dt=1/gone.json");
  });

  it("reports the storage class and skips _tranche/ at the root", async () => {
    for (const k of ["cls/a.json", "cls/_tranche/probe-1", "cls/x/_tranche/b.json"]) {
      await s3.client.send(new PutObjectCommand({ Bucket: "edges", Key: k, Body: "{}\n" }));
    }
    const objs = [];
    for await (const page of new S3Source("s3://edges/cls/", s3.client).list()) objs.push(...page);
    expect(objs.map((o) => o.key).sort()).toEqual(["a.json", "x/_tranche/b.json"]);
    expect(objs[0]!.storageClass).toBe("STANDARD");
  });

  it("a listing of a missing bucket rejects with a typed JobError", async () => {
    const it = new S3Source("s3://missing-list-edges/", s3.client).list()[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toMatchObject({ name: "JobError", code: "E_UNREACHABLE" });
  });

  it("SlowDown and InvalidObjectState on GetObject are E_THROTTLED and ArchivedError", async () => {
    for (const [name, status, check] of [
      ["SlowDown", 503, (e: unknown) => expect(e).toMatchObject({ name: "JobError", code: "E_THROTTLED" })],
      ["InvalidObjectState", 403, (e: unknown) => expect(e).toBeInstanceOf(ArchivedError)],
    ] as const) {
      const spy = spyClient({ fail: { GetObjectCommand: { name, status } }, settings: { maxAttempts: 1 } });
      check(await new S3Source("s3://edges/src/", spy.client).open("x.json").catch((e: unknown) => e));
      spy.client.destroy();
    }
  });
});

describe("S3 client timeouts", () => {
  it("config: connectTimeoutMs 5000 and requestTimeoutMs 60000 by default; positive integers only", () => {
    const base = { jobs: { j: { processor: "ndjson", source: { path: "s3://b/in/" }, output: { path: "s3://b/out/" } } } };
    const cfg = validateConfig(base, { env: {} });
    expect(cfg.s3).toMatchObject({ connectTimeoutMs: 5000, requestTimeoutMs: 60000 });
    expect(validateConfig({ ...base, s3: { region: "eu-west-1", requestTimeoutMs: 1500 } }, { env: {} }).s3).toMatchObject({
      connectTimeoutMs: 5000,
      requestTimeoutMs: 1500,
    });
    expect(() => validateConfig({ ...base, s3: { connectTimeoutMs: 0 } }, { env: {} })).toThrow(/connectTimeoutMs/);
  });

  it("a request the endpoint never answers fails after requestTimeoutMs, classified E_TIMEOUT", async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => sockets.add(s)); // accepts, never answers
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const endpoint = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const client = makeS3Client({ ...s3.settings, endpoint, requestTimeoutMs: 300 });
    try {
      const t0 = Date.now();
      const err = await new S3Source("s3://edges/in/", client).check().catch((e: unknown) => e);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(err).toBeInstanceOf(UnreachableError);
      expect((err as Error).message).toMatch(/timed out/);
      // The same failure inside a run is a JobError E_TIMEOUT.
      const raw = await client.send(new ListObjectsV2Command({ Bucket: "edges" })).catch((e: unknown) => e);
      expect(classifyS3Error(raw, { bucket: "edges", op: "list" })).toMatchObject({ name: "JobError", code: "E_TIMEOUT" });
    } finally {
      client.destroy();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  }, 20_000);
});

describe("S3 errors without credentials", () => {
  it("a CredentialsProviderError (the SDK could not load any) says so and what to set, not that S3 refused access", () => {
    const raw = Object.assign(new Error("Could not load credentials from any providers"), { name: "CredentialsProviderError" });
    const e = classifyS3Error(raw, { bucket: "edges", op: "list" });
    expect(e).toMatchObject({ name: "JobError", code: "E_ACCESS", retryable: false });
    expect(e.message).toMatch(
      /^S3 at s3:\/\/edges\/: could not load AWS credentials \(CredentialsProviderError: .*\); set s3\.accessKeyId/,
    );
  });
});
