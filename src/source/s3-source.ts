import { PassThrough, Readable } from "node:stream";
import { GetObjectCommand, ListObjectsV2Command, type ListObjectsV2CommandOutput, type S3Client } from "@aws-sdk/client-s3";
import { JobError, messageOf, type TypedFailure } from "../failures.js";
import { TRANCHE_DIR } from "../sink/output-name.js";
import { s3CheckError } from "./check-errors.js";
import { endpointOf, parseS3Uri } from "./s3-client.js";
import { classifyS3Error, s3ErrorCode } from "./s3-errors.js";
import type { ListOptions, Source, SourceObject } from "./types.js";

export interface S3SourceOptions {
  /** Keys per ListObjectsV2 call (S3 caps this at 1000). Default 1000. */
  pageSize?: number;
}

/**
 * A `Source` over `s3://bucket/prefix/`; keys are reported relative to the prefix. Errors are
 * typed by `classifyS3Error` (never by message text).
 */
export class S3Source implements Source {
  readonly uri: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly pageSize: number;

  constructor(
    uri: string,
    private readonly client: S3Client,
    opts: S3SourceOptions = {},
  ) {
    const { bucket, prefix } = parseS3Uri(uri);
    this.uri = uri;
    this.bucket = bucket;
    this.prefix = prefix;
    const pageSize = opts.pageSize ?? 1000;
    if (!Number.isInteger(pageSize) || pageSize < 1) {
      throw new Error(`S3Source pageSize must be a positive integer, got ${pageSize}`);
    }
    this.pageSize = Math.min(pageSize, 1000);
  }

  /** One `ListObjectsV2` of at most one key: the bucket exists, the prefix can be listed. */
  async check(): Promise<void> {
    try {
      await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix || undefined, MaxKeys: 1 }));
    } catch (err) {
      const endpoint = await endpointOf(this.client);
      throw s3CheckError(err, { bucket: this.bucket, prefix: this.prefix, op: "list", what: "cannot list source", endpoint });
    }
  }

  async *list(o: ListOptions = {}): AsyncGenerator<SourceObject[]> {
    let token: string | undefined;
    const prefix = this.prefix + (o.under ?? "");
    do {
      let out: ListObjectsV2CommandOutput;
      try {
        out = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix || undefined,
            MaxKeys: this.pageSize,
            ContinuationToken: token,
            StartAfter: token === undefined && o.startAfter !== undefined ? this.prefix + o.startAfter : undefined,
          }),
        );
      } catch (err) {
        throw classifyS3Error(err, { bucket: this.bucket, key: this.prefix, op: "list" });
      }
      const page: SourceObject[] = [];
      for (const o of out.Contents ?? []) {
        const full = o.Key;
        if (full === undefined || !full.startsWith(this.prefix)) continue;
        const key = full.slice(this.prefix.length);
        // Directory markers ("folder/" placeholders) and the prefix object itself.
        if (key === "" || key.endsWith("/")) continue;
        // tranche's own folder of an output (probes) is never input.
        if (key.startsWith(`${TRANCHE_DIR}/`)) continue;
        page.push({
          key,
          size: o.Size ?? 0,
          lastModified: o.LastModified ? o.LastModified.getTime() : 0,
          etag: (o.ETag ?? "").replace(/"/g, ""),
          ...(o.StorageClass ? { storageClass: o.StorageClass } : {}),
        });
      }
      if (page.length > 0) yield page;
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  /** ListObjectsV2 with Delimiter "/": the common prefixes directly under `under`. */
  async folders(under: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      let res: ListObjectsV2CommandOutput;
      try {
        res = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + under || undefined,
            Delimiter: "/",
            ContinuationToken: token,
          }),
        );
      } catch (err) {
        throw classifyS3Error(err, { bucket: this.bucket, key: this.prefix + under, op: "list" });
      }
      for (const c of res.CommonPrefixes ?? []) {
        const rel = (c.Prefix ?? "").slice(this.prefix.length);
        if (rel && rel !== `${TRANCHE_DIR}/`) out.push(rel);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /**
   * One object as a listing shows it, or null when the key does not exist: a ListObjectsV2 of at
   * most one key from the key itself (the key sorts first among the keys it prefixes). Not
   * HeadObject: stores report LastModified differently there (MinIO gives whole seconds on HEAD,
   * milliseconds in listings), and the bookmark knows a file by the time its listings show.
   */
  async stat(key: string): Promise<SourceObject | null> {
    const fullKey = this.prefix + key;
    let out: ListObjectsV2CommandOutput;
    try {
      out = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: fullKey, MaxKeys: 1 }));
    } catch (err) {
      throw classifyS3Error(err, { bucket: this.bucket, key: fullKey, op: "list" });
    }
    const o = out.Contents?.[0];
    if (!o || o.Key !== fullKey) return null;
    return {
      key,
      size: o.Size ?? 0,
      lastModified: o.LastModified ? o.LastModified.getTime() : 0,
      etag: (o.ETag ?? "").replace(/"/g, ""),
      ...(o.StorageClass ? { storageClass: o.StorageClass } : {}),
    };
  }

  /**
   * Opens one object. A failed GetObject rejects classified (`classifyS3Error`, op `read`):
   * `GoneError` for a deleted key, `ArchivedError` for an archived one, `JobError` for the store;
   * an error while the body streams is classified by {@link bodyFailure}.
   */
  async open(key: string): Promise<NodeJS.ReadableStream> {
    const fullKey = this.prefix + key;
    let body: unknown;
    try {
      body = (await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }))).Body;
    } catch (err) {
      throw classifyS3Error(err, { bucket: this.bucket, key: fullKey, op: "read" });
    }
    if (!body) return Readable.from([]);
    let stream: Readable;
    if (body instanceof Readable) {
      stream = body;
    } else {
      // Other runtimes return web streams / blobs; normalise to a Node Readable.
      const b = body as { transformToWebStream?: () => ReadableStream };
      if (typeof b.transformToWebStream !== "function") return body as NodeJS.ReadableStream;
      stream = Readable.fromWeb(b.transformToWebStream() as import("node:stream/web").ReadableStream);
    }
    const out = new PassThrough();
    stream.once("error", (err) => out.destroy(bodyFailure(err, this.bucket, fullKey)));
    out.once("close", () => {
      if (!stream.destroyed) stream.destroy();
    });
    return stream.pipe(out);
  }
}

/**
 * An error while an object's body streams: classified like a failed request, except that a
 * network error (a connection reset or closed mid-body) is a retryable `E_SOURCE_READ` (the read
 * broke off), not `E_UNREACHABLE`: the endpoint answered. A timeout stays `E_TIMEOUT`.
 */
function bodyFailure(err: unknown, bucket: string, key: string): TypedFailure {
  const failure = classifyS3Error(err, { bucket, key, op: "read" });
  if (failure.kind !== "job" || failure.code !== "E_UNREACHABLE") return failure;
  const why = `${s3ErrorCode(err) ?? "error"}: ${messageOf(err)}`;
  return new JobError("E_SOURCE_READ", `reading s3://${bucket}/${key} broke off (${why}); it is retried`, { cause: err });
}
