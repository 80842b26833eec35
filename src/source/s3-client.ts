import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { S3_TIMEOUT_DEFAULTS, staticCredentials, type S3Settings } from "./types.js";

/**
 * Builds an S3 client from config settings, falling back to the standard AWS
 * environment variables (and the SDK default credential chain) for anything unset.
 *
 * Every request has timeouts (the SDK's own defaults have none, so a silent endpoint would hang a
 * run): `connectTimeoutMs` for the connection, `requestTimeoutMs` for the response (a `TimeoutError`,
 * classified `E_TIMEOUT`) and for silence while a body streams. They are options of the SDK's
 * Node.js request handler, given as a plain object, which the client builds its handler from.
 */
export function makeS3Client(settings: S3Settings = {}): S3Client {
  const env = process.env;
  const region = settings.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1";
  const endpoint = settings.endpoint || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;

  const config: S3ClientConfig = {
    region,
    forcePathStyle: settings.forcePathStyle ?? false,
    maxAttempts: 3,
    requestHandler: {
      connectionTimeout: settings.connectTimeoutMs ?? S3_TIMEOUT_DEFAULTS.connectTimeoutMs,
      requestTimeout: settings.requestTimeoutMs ?? S3_TIMEOUT_DEFAULTS.requestTimeoutMs,
      // Without this the SDK only logs a warning when requestTimeout passes.
      throwOnRequestTimeout: true,
      socketTimeout: settings.requestTimeoutMs ?? S3_TIMEOUT_DEFAULTS.requestTimeoutMs,
    },
  };
  if (endpoint) config.endpoint = endpoint;
  const credentials = staticCredentials(settings);
  if (credentials) config.credentials = credentials;
  return new S3Client(config);
}

/**
 * Parses `s3://bucket/some/prefix/` into bucket and prefix. The prefix is
 * normalised to end with `/` unless it is empty (whole bucket).
 */
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(uri);
  if (!m) {
    throw new Error(`Invalid S3 URI "${uri}": expected s3://bucket/prefix/`);
  }
  const bucket = m[1]!;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(bucket)) {
    throw new Error(`Invalid S3 URI "${uri}": bad bucket name "${bucket}"`);
  }
  let prefix = (m[2] ?? "").replace(/^\/+/, "");
  if (prefix !== "" && !prefix.endsWith("/")) prefix += "/";
  return { bucket, prefix };
}

/** Joins a bucket, prefix and relative key back into an `s3://` URI. */
export function formatS3Uri(bucket: string, prefix: string, key: string): string {
  return `s3://${bucket}/${prefix}${key}`;
}

/** The endpoint a client was given (`http://127.0.0.1:9000`), or undefined for AWS's own. */
export async function endpointOf(client: S3Client): Promise<string | undefined> {
  const provider = client.config.endpoint;
  if (typeof provider !== "function") return undefined;
  try {
    const e = await provider();
    const p = e.path && e.path !== "/" ? e.path : "";
    return `${e.protocol}//${e.hostname}${e.port ? `:${e.port}` : ""}${p}`;
  } catch {
    return undefined;
  }
}
