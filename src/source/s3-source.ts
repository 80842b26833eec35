import { Readable } from "node:stream";
import { GetObjectCommand, ListObjectsV2Command, type ListObjectsV2CommandOutput, type S3Client } from "@aws-sdk/client-s3";
import { formatS3Uri, parseS3Uri } from "./s3-client.js";
import type { Source, SourceObject } from "./types.js";

export interface S3SourceOptions {
  /** Keys per ListObjectsV2 call (S3 caps this at 1000). Default 1000. */
  pageSize?: number;
}

/** A `Source` over `s3://bucket/prefix/`; keys are reported relative to the prefix. */
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

  async *list(): AsyncGenerator<SourceObject[]> {
    let token: string | undefined;
    do {
      const out: ListObjectsV2CommandOutput = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix || undefined,
          MaxKeys: this.pageSize,
          ContinuationToken: token,
        }),
      );
      const page: SourceObject[] = [];
      for (const o of out.Contents ?? []) {
        const full = o.Key;
        if (full === undefined || !full.startsWith(this.prefix)) continue;
        const key = full.slice(this.prefix.length);
        // Directory markers ("folder/" placeholders) and the prefix object itself.
        if (key === "" || key.endsWith("/")) continue;
        page.push({
          key,
          size: o.Size ?? 0,
          lastModified: o.LastModified ? o.LastModified.getTime() : 0,
          etag: (o.ETag ?? "").replace(/"/g, ""),
        });
      }
      if (page.length > 0) yield page;
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  async open(key: string): Promise<NodeJS.ReadableStream> {
    const fullKey = this.prefix + key;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      const body = out.Body;
      if (!body) return Readable.from([]);
      if (body instanceof Readable) return body;
      // Other runtimes return web streams / blobs; normalise to a Node Readable.
      const b = body as { transformToWebStream?: () => ReadableStream };
      if (typeof b.transformToWebStream === "function") {
        return Readable.fromWeb(b.transformToWebStream() as import("node:stream/web").ReadableStream);
      }
      return body as unknown as NodeJS.ReadableStream;
    } catch (err) {
      if (isNotFound(err)) {
        const e = new Error(`S3 object not found: ${formatS3Uri(this.bucket, this.prefix, key)}`, {
          cause: err,
        }) as Error & { code: string };
        e.code = "ENOENT";
        throw e;
      }
      throw err;
    }
  }
}

function isNotFound(err: unknown): boolean {
  if (!err || typeof err !== "object") return false;
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  // A missing bucket is a configuration error, not a vanished object.
  if (e.name === "NoSuchBucket" || e.Code === "NoSuchBucket") return false;
  return e.name === "NoSuchKey" || e.name === "NotFound" || e.Code === "NoSuchKey" || e.$metadata?.httpStatusCode === 404;
}
