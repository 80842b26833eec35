import type { Failure } from "../failures.js";
import type { OutputS3Settings } from "../sink/types.js";
import type { S3Settings } from "../source/types.js";

/**
 * What the pool sends a worker thread for one file. Plain data: it crosses the thread boundary
 * (inside this process only: it is never written to Redis).
 */
export interface FileTask {
  sourceUri: string;
  outputUri: string;
  /** Built-in name (`ndjson`, `csv`, `copy`) or an absolute path to a processor module. */
  processor: string;
  /** The job's processorOptions, with `${env:NAME}` references resolved on this worker. */
  processorOptions: Record<string, unknown>;
  s3: S3Settings;
  /** How outputs are stored on S3 (config `output.s3`). */
  outputS3?: OutputS3Settings;
  key: string;
  /** The object to read under `sourceUri` when it is not `key` (a catalog partition's file at its own location). */
  sourceKey?: string;
  /** Size in bytes as listed. */
  size: number;
  partition: Record<string, string>;
  /**
   * The file's timeout (worker.fileTimeoutSeconds): the thread aborts the processor's `signal` then;
   * the pool stops the thread a little later if the processor has not ended.
   */
  timeoutMs?: number;
  /** A file with more than this share of bad records fails as a file error (`E_BAD_RECORDS`). */
  maxBadRecordRatio: number;
}

export interface FileResult {
  key: string;
  /** The output key actually written (relative to the output root). */
  outKey: string;
  location: string;
  bytesIn: number;
  bytesOut: number;
  records: number;
  badRecords: number;
  /** The first bad-record reasons (at most 10), each naming the file key and line. */
  errors: string[];
  /** The output's columns and types (column → type), from processors that report them (sql, Parquet output). */
  schema?: Record<string, string>;
}

/** A thread's answer for one file: never a thrown error, so the failure's type survives the boundary. */
export type FileOutcome = { ok: true; result: FileResult } | { ok: false; failure: Failure };

/** Preflight: load the processor (and its transform) and validate the options, as a run will. */
export interface PreflightTask {
  processor: string;
  processorOptions: Record<string, unknown>;
}
export type PreflightOutcome =
  | { ok: true; warnings: string[]; customOutputName: boolean }
  | { ok: false; failure: Failure; /** The refused option's path inside processorOptions, if any. */ field?: string };

/** Output names of some input keys, for the planner's collision check of a processor's own `outputName`. */
export interface NamesTask {
  processor: string;
  processorOptions: Record<string, unknown>;
  keys: string[];
}
export type NamesOutcome = { ok: true; names: (string | null)[] } | { ok: false; failure: Failure };
