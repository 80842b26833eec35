import { PassThrough, type TransformCallback } from "node:stream";
import { randomBytes } from "node:crypto";
import { DeleteObjectCommand, PutObjectCommand, type PutObjectCommandInput, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { messageOf, type TypedFailure } from "../failures.js";
import { s3CheckError } from "../source/check-errors.js";
import { endpointOf, formatS3Uri, parseS3Uri } from "../source/s3-client.js";
import { classifyS3Error, s3ErrorCode } from "../source/s3-errors.js";
import { checkOutputKey, fitOutputKey, S3_OUTPUT_LIMITS, TRANCHE_DIR, type OutputKeyLimits } from "./output-name.js";
import type { OutputS3Settings, Sink, SinkWriter } from "./types.js";

/** S3 rejects multipart parts (other than the last) smaller than 5 MiB. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

export interface S3SinkOptions {
  /** Multipart part size; default 8 MiB, clamped to at least 5 MiB. */
  partSizeBytes?: number;
  /** Parts uploaded concurrently per object; default 4. */
  queueSize?: number;
  /** Encryption, storage class, ACL and content type of the objects (config `output.s3`). */
  put?: OutputS3Settings;
}

/** The PutObject / CreateMultipartUpload parameters of `output.s3` (the content type aside). */
export function putParams(o: OutputS3Settings = {}): Partial<PutObjectCommandInput> {
  return {
    ...(o.serverSideEncryption ? { ServerSideEncryption: o.serverSideEncryption } : {}),
    ...(o.kmsKeyId ? { SSEKMSKeyId: o.kmsKeyId } : {}),
    ...(o.bucketKeyEnabled !== undefined ? { BucketKeyEnabled: o.bucketKeyEnabled } : {}),
    ...(o.storageClass ? { StorageClass: o.storageClass as PutObjectCommandInput["StorageClass"] } : {}),
    ...(o.acl ? { ACL: o.acl as PutObjectCommandInput["ACL"] } : {}),
  };
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
 * writing the same key again simply overwrites it. Keys are checked and fitted
 * (`output-name.ts`) before anything is sent; upload errors are classified by
 * `classifyS3Error`, so `commit()` rejects with a typed failure.
 */
export class S3Sink implements Sink {
  readonly uri: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly put: OutputS3Settings;
  /** S3's 1024-byte key limit counts the prefix too. */
  private readonly limits: OutputKeyLimits;

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
    this.put = opts.put ?? {};
    this.limits = { ...S3_OUTPUT_LIMITS, maxKeyBytes: S3_OUTPUT_LIMITS.maxKeyBytes - Buffer.byteLength(prefix) };
  }

  async create(key: string, contentType?: string, o: { internal?: boolean } = {}): Promise<SinkWriter> {
    checkOutputKey(key, o);
    const fitted = fitOutputKey(key, this.limits);
    const fullKey = this.prefix + fitted;
    const location = formatS3Uri(this.bucket, this.prefix, fitted);
    const stream = new CountingPassThrough();
    // output.s3.contentType names the outputs' type; tranche's own files (manifests) keep theirs.
    const type = o.internal ? contentType : (this.put.contentType ?? contentType);
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: fullKey,
        Body: stream,
        ...putParams(this.put),
        ...(type ? { ContentType: type } : {}),
      },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    // If the upload fails mid-stream, nobody reads the PassThrough any more:
    // destroy it (with the classified failure) so writers blocked on backpressure see the error
    // instead of hanging. The failure still surfaces through commit() (and to pipeline()/write
    // callbacks); this listener only keeps an unobserved stream error from crashing the process.
    stream.on("error", () => undefined);
    let failure: TypedFailure | undefined;
    const done = upload.done().then(
      () => undefined,
      (err: unknown) => {
        failure = classifyS3Error(err, { bucket: this.bucket, key: fullKey, op: "write" });
        if (!stream.destroyed) stream.destroy(failure);
      },
    );

    let finished = false;
    return {
      stream,
      async commit() {
        if (finished) throw new Error(`S3 upload of ${location} was already committed or aborted`);
        finished = true;
        if (!stream.writableEnded) stream.end();
        await done;
        if (failure) throw failure;
        return { bytes: stream.bytes, location, key: fitted };
      },
      async abort() {
        if (finished) return;
        finished = true;
        await upload.abort().catch(() => undefined);
        // Ends the part feeder so lib-storage aborts any multipart upload it started.
        if (!stream.destroyed) stream.destroy();
        await done;
      },
    };
  }

  /**
   * Puts `<prefix>_tranche/probe-<random>` (a few bytes) and deletes it. A failed put rejects with
   * `AccessDeniedError` (credentials, permissions) or `UnreachableError` (a missing bucket, the
   * endpoint down), naming the bucket and prefix; a failed delete is only a warning, so the probe
   * needs no delete permission.
   */
  async probe(): Promise<{ warning?: string }> {
    const key = `${this.prefix}${TRANCHE_DIR}/probe-${randomBytes(6).toString("hex")}`;
    try {
      // With the outputs' encryption, ACL and storage class: a bucket policy requiring them refuses a bare put.
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: "tranche probe\n", ...putParams(this.put) }));
    } catch (err) {
      const endpoint = await endpointOf(this.client);
      throw s3CheckError(err, { bucket: this.bucket, prefix: this.prefix, key, op: "write", what: "cannot write to output", endpoint });
    }
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      return {
        warning: `wrote but could not delete the probe object s3://${this.bucket}/${key} (${s3ErrorCode(err) ?? messageOf(err)}); delete it by hand or with a lifecycle rule on ${TRANCHE_DIR}/`,
      };
    }
    return {};
  }
}
