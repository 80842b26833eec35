import { S3Sink } from "../sink/s3-sink.js";
import { LocalSink } from "../sink/local-sink.js";
import type { Sink } from "../sink/types.js";
import { LocalSource } from "./local-source.js";
import { makeS3Client } from "./s3-client.js";
import { S3Source } from "./s3-source.js";
import type { S3Settings, Source } from "./types.js";

/** Opens a source by URI: `s3://bucket/prefix/` or `file:///abs/path`. */
export function openSource(uri: string, s3: S3Settings = {}, opts: { recurse?: boolean } = {}): Source {
  if (uri.startsWith("s3://")) return new S3Source(uri, makeS3Client(s3));
  return new LocalSource(uri, opts);
}

/** Opens a sink by URI: `s3://bucket/prefix/` or `file:///abs/path`. */
export function openSink(uri: string, s3: S3Settings = {}): Sink {
  if (uri.startsWith("s3://")) return new S3Sink(uri, makeS3Client(s3));
  return new LocalSink(uri);
}
