import { PassThrough, type TransformCallback } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { formatS3Uri, parseS3Uri } from "../source/s3-client.js";
import type { Sink, SinkWriter } from "./types.js";

/** S3 rejects multipart parts (other than the last) smaller than 5 MiB. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

export interface S3SinkOptions {
  /** Multipart part size; default 8 MiB, clamped to at least 5 MiB. */
  partSizeBytes?: number;
  /** Parts uploaded concurrently per object; default 4. */
  queueSize?: number;
}

/** A PassThrough that counts the bytes written through it. */
class CountingPassThrough extends PassThrough {
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/**
 * A `Sink` writing to `s3://bucket/prefix/`. Each object is streamed through
 * `@aws-sdk/lib-storage` (multipart once it exceeds one part). S3 only makes
 * the object visible when the upload completes, so commit is atomic, and
 * writing the same key again simply overwrites it.
 */
export class S3Sink implements Sink {
  readonly uri: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(
    uri: string,
    private readonly client: S3Client,
    opts: S3SinkOptions = {},
  ) {
    const { bucket, prefix } = parseS3Uri(uri);
    this.uri = uri;
    this.bucket = bucket;
    this.prefix = prefix;
    this.partSize = Math.max(MIN_PART_SIZE, opts.partSizeBytes ?? DEFAULT_PART_SIZE);
    this.queueSize = Math.max(1, Math.floor(opts.queueSize ?? 4));
  }

  async create(key: string, contentType?: string): Promise<SinkWriter> {
    const location = formatS3Uri(this.bucket, this.prefix, key);
    const stream = new CountingPassThrough();
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: this.prefix + key,
        Body: stream,
        ...(contentType ? { ContentType: contentType } : {}),
      },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    const done = upload.done();
    // If the upload fails mid-stream, nobody reads the PassThrough any more:
    // destroy it so writers blocked on backpressure see the error instead of hanging.
    // The error still surfaces through commit() (and to pipeline()/write callbacks);
    // this listener only keeps an unobserved stream error from crashing the process.
    stream.on("error", () => undefined);
    done.catch((err: unknown) => {
      if (!stream.destroyed) stream.destroy(err instanceof Error ? err : new Error(String(err)));
    });

    let finished = false;
    return {
      stream,
      async commit() {
        if (finished) throw new Error(`S3 upload of ${location} was already committed or aborted`);
        finished = true;
        if (!stream.writableEnded) stream.end();
        await done;
        return { bytes: stream.bytes, location };
      },
      async abort() {
        if (finished) return;
        finished = true;
        await upload.abort().catch(() => undefined);
        // Ends the part feeder so lib-storage aborts any multipart upload it started.
        if (!stream.destroyed) stream.destroy();
        await done.catch(() => undefined);
      },
    };
  }
}
