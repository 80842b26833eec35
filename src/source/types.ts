/** One object as a source lists it. */
export interface SourceObject {
  /** Key relative to the source root, with `/` separators (e.g. `dt=2024-01-01/part-0001.json.gz`). */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Last-modified time in epoch milliseconds (S3 reports whole seconds). */
  lastModified: number;
  /** ETag (S3) or a size-mtime fingerprint (local files). */
  etag: string;
  /** S3 storage class as listed (`STANDARD`, `GLACIER`, `DEEP_ARCHIVE`, …); absent for local files. */
  storageClass?: string;
}

/**
 * A listing source: streams objects page by page and opens one for reading. Errors are typed
 * (`src/failures.ts`): a read of an object deleted since the listing rejects with a `GoneError`,
 * an archived one with an `ArchivedError`, a store or disk problem with a `JobError`.
 */
export interface Source {
  /** The source location as given in the config (`s3://bucket/prefix/` or `file:///abs/path`). */
  readonly uri: string;
  /**
   * Checks, before a run leases anything, that the source exists and can be listed. Rejects with
   * the CLI-level error naming the location: `UnreachableError` (missing folder or bucket,
   * endpoint down), `AccessDeniedError` (credentials, permissions) or `ConfigError` (not a folder).
   */
  check(): Promise<void>;
  /**
   * Streams every object under the root, one page at a time, in no particular order. tranche's own
   * `_tranche/` folder at the root (temp files of a tranche output used as a source) is skipped.
   * `under`: only keys starting with this relative prefix. `startAfter`: only keys greater than
   * this one (S3's StartAfter: the listing starts there instead of at the beginning).
   */
  list(o?: ListOptions): AsyncIterable<SourceObject[]>;
  /** The sub-folders directly under a relative prefix (`""` for the root), as relative prefixes ending in `/`. */
  folders?(under: string): Promise<string[]>;
  /**
   * One object's listing entry without listing the source (S3: a one-key ListObjectsV2 from the key; a file's stat), or null when it
   * does not exist. Event-fed runs and `reprocess --keys-from` look objects up one by one.
   */
  stat?(key: string): Promise<SourceObject | null>;
  /** Opens one object for reading (raw bytes, not decompressed). Rejects with a `GoneError` if gone. */
  open(key: string): Promise<NodeJS.ReadableStream>;
  /** Optional fast path: reads a small object whole. */
  readSmall?(key: string): Promise<Buffer>;
}

export interface ListOptions {
  under?: string;
  startAfter?: string;
}

/** Defaults of the S3 client's timeouts (also the config schema's defaults). */
export const S3_TIMEOUT_DEFAULTS = Object.freeze({ connectTimeoutMs: 5000, requestTimeoutMs: 60_000 });

/** S3 connection settings (config `s3:`); anything unset comes from the standard AWS environment variables. */
export interface S3Settings {
  /** AWS region; default `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`. */
  region?: string;
  /** Endpoint URL for S3-compatible stores (MinIO, s3rver, Ceph); default AWS. */
  endpoint?: string;
  /** Path-style addressing (`http://host/bucket/key`); needed by most S3-compatible stores. Default false. */
  forcePathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Longest wait for a TCP (and TLS) connection to the endpoint, in ms. Default 5000. */
  connectTimeoutMs?: number;
  /**
   * Longest wait for a response to one request (the request body included), and longest silence
   * while a response body streams, in ms. Default 60000.
   */
  requestTimeoutMs?: number;
}

/** Credentials given in the config (`s3.accessKeyId`/`secretAccessKey`/`sessionToken`), or undefined: the AWS chain then applies. */
export function staticCredentials(
  s: Pick<S3Settings, "accessKeyId" | "secretAccessKey" | "sessionToken">,
): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined {
  if (!s.accessKeyId || !s.secretAccessKey) return undefined;
  return { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, ...(s.sessionToken ? { sessionToken: s.sessionToken } : {}) };
}

/**
 * The SDK could not load credentials (`CredentialsProviderError`: none anywhere, an expired SSO
 * session, a broken profile): AWS refused nothing, so the message says what to set instead of
 * pointing at permissions.
 */
export function noCredentialsMessage(where: string, msg: string): string {
  return `${where}: could not load AWS credentials (${msg}); set s3.accessKeyId and s3.secretAccessKey in the config, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with a role (IRSA, an instance profile)`;
}
