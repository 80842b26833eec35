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
}

/** A listing source: streams objects page by page and opens one for reading. */
export interface Source {
  /** The source location as given in the config (`s3://bucket/prefix/` or `file:///abs/path`). */
  readonly uri: string;
  /** Streams every object under the root, one page at a time, in no particular order. */
  list(): AsyncIterable<SourceObject[]>;
  /** Opens one object for reading (raw bytes, not decompressed). Rejects with a NotFound error if gone. */
  open(key: string): Promise<NodeJS.ReadableStream>;
  /** Optional fast path: reads a small object whole. */
  readSmall?(key: string): Promise<Buffer>;
}

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
}
