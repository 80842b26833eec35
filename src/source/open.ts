import { LocalSink } from "../sink/local-sink.js";
import type { OutputS3Settings, Sink } from "../sink/types.js";
import { LocalSource } from "./local-source.js";
import type { S3Settings, Source } from "./types.js";

// The AWS SDK is loaded only when an s3:// location is used: it costs ~100 ms of start-up in
// every process and worker thread that loads it.

/** Opens a source by URI: `s3://bucket/prefix/` or `file:///abs/path`. */
export async function openSource(uri: string, s3: S3Settings = {}, opts: { recurse?: boolean } = {}): Promise<Source> {
  if (uri.startsWith("s3://")) {
    const [{ S3Source }, { makeS3Client }] = await Promise.all([import("./s3-source.js"), import("./s3-client.js")]);
    return new S3Source(uri, makeS3Client(s3));
  }
  return new LocalSource(uri, opts);
}

/** Opens a sink by URI: `s3://bucket/prefix/` (stored as `put` says: config `output.s3`) or `file:///abs/path`. */
export async function openSink(uri: string, s3: S3Settings = {}, put?: OutputS3Settings): Promise<Sink> {
  if (uri.startsWith("s3://")) {
    const [{ S3Sink }, { makeS3Client }] = await Promise.all([import("../sink/s3-sink.js"), import("./s3-client.js")]);
    return new S3Sink(uri, makeS3Client(s3), { put });
  }
  return new LocalSink(uri);
}
