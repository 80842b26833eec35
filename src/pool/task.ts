import type { S3Settings } from "../source/types.js";

/** What the pool sends a worker thread for one file. Plain data: it crosses the thread boundary. */
export interface FileTask {
  sourceUri: string;
  outputUri: string;
  /** Built-in name (`ndjson`, `csv`, `copy`) or an absolute path to a processor module. */
  processor: string;
  processorOptions: Record<string, unknown>;
  s3: S3Settings;
  key: string;
  /** Size in bytes as listed. */
  size: number;
  partition: Record<string, string>;
}

export interface FileResult {
  key: string;
  outKey: string;
  location: string;
  bytesIn: number;
  bytesOut: number;
  records: number;
  badRecords: number;
  /** The first bad-record reasons (at most 10), each naming the file key and line. */
  errors: string[];
}
