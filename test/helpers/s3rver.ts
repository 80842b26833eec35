import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { makeS3Client } from "../../src/source/s3-client.js";
import type { S3Settings } from "../../src/source/types.js";

export interface S3Fixture {
  endpoint: string;
  settings: S3Settings;
  client: S3Client;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

const CHILD_SCRIPT = fileURLToPath(new URL("./s3rver-child.mjs", import.meta.url));
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

/**
 * Starts a real s3rver in a child process (or, if `S3_ENDPOINT` is set, uses that
 * endpoint instead) and returns a client configured for it.
 */
export async function startS3(): Promise<S3Fixture> {
  const external = process.env.S3_ENDPOINT;
  let child: ChildProcess | undefined;
  let endpoint: string;
  if (external) {
    endpoint = external;
  } else {
    const started = await spawnS3rver();
    child = started.child;
    endpoint = `http://127.0.0.1:${started.port}`;
  }

  const settings: S3Settings = {
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
  };
  const client = makeS3Client(settings);

  return {
    endpoint,
    settings,
    client,
    async createBucket(name: string) {
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } catch (err) {
        const n = (err as { name?: string }).name;
        if (n !== "BucketAlreadyOwnedByYou" && n !== "BucketAlreadyExists") throw err;
      }
    },
    async stop() {
      client.destroy();
      if (child) await killChild(child);
    },
  };
}

function spawnS3rver(): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--openssl-legacy-provider", CHILD_SCRIPT], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let settled = false;

    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      reject(new Error(`s3rver child ${why}${stderr ? `; stderr:\n${stderr}` : ""}`));
    };
    const timer = setTimeout(() => fail(`not ready after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);

    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      if (settled) return;
      stdout += d;
      const nl = stdout.indexOf("\n");
      if (nl < 0) return;
      try {
        const { port } = JSON.parse(stdout.slice(0, nl)) as { port: unknown };
        if (typeof port !== "number") throw new Error("no port");
        settled = true;
        clearTimeout(timer);
        resolve({ child, port });
      } catch {
        fail(`printed an unexpected line: ${stdout.slice(0, nl)}`);
      }
    });
    child.on("error", (err) => fail(`failed to spawn: ${err.message}`));
    // "close" (not "exit") so stderr has been fully read by the time we reject.
    child.on("close", (code, signal) => fail(`exited before ready (code ${code}, signal ${signal})`));
  });
}

function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Every key under a prefix (relative to it), sorted, through paginated ListObjectsV2. */
export async function listAll(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) out.push(o.Key!.slice(prefix.length));
    token = r.NextContinuationToken;
  } while (token);
  return out.sort();
}
