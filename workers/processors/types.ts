import type { Readable, Writable } from "node:stream";

/**
 * What a processor receives for one input file. Processors run inside a worker thread,
 * one file at a time per thread, under the thread's V8 heap limit: stream, never buffer a whole file.
 */
export interface ProcessorContext {
  /** Input key relative to the source root, e.g. `dt=2024-01-01/part-0001.json.gz`. */
  key: string;
  /** Hive-style partition values of the input, e.g. `{ dt: "2024-01-01" }`. */
  partition: Record<string, string>;
  /** The input's bytes: gunzipped when the input is gzip, unless the processor sets `decompress: false`. */
  input: Readable;
  /** Where the output goes; the processor writes and ends it (or resolves and lets the caller end it). */
  output: Writable;
  /** `processorOptions` from the job config, validated by `optionsSchema`, `${env:NAME}` references resolved. */
  options: Record<string, unknown>;
  /**
   * Aborted when the file passes `worker.fileTimeoutSeconds`, with the typed failure as its reason.
   * A processor holding work the thread cannot stop by itself (a native query) stops it then; the
   * pool stops the thread a few seconds later anyway.
   */
  signal?: AbortSignal;
  /**
   * Records one bad record (malformed line, failed transform). Processing continues; the file's
   * result reports the count and the first reasons, each with the file key. A file whose records
   * are mostly bad (more than the job's `maxBadRecordRatio`) fails as a file error.
   */
  reportError(reason: string, where?: { line?: number }): void;
}

export interface ProcessorResult {
  /** Records (or chunks, for byte copies) written. */
  records: number;
  /**
   * The output's columns and their types (column → type name), for processors that write typed
   * outputs (the `sql` processor's Parquet). A type that differs from the first one seen for that
   * column in the file's partition is reported as schema drift (a warning, a metric, the run's errors).
   */
  schema?: Record<string, string>;
}

/**
 * A validator in the Standard Schema v1 shape (https://standardschema.dev): zod 3.24+/4, valibot
 * and arktype schemas all have it. Issues name the offending option by `path`.
 */
export interface StandardSchemaV1 {
  readonly "~standard": {
    readonly version: 1;
    readonly vendor: string;
    validate(value: unknown): StandardResult | Promise<StandardResult>;
  };
}
export type StandardResult =
  | { readonly value: unknown; readonly issues?: undefined }
  | {
      readonly issues: ReadonlyArray<{
        readonly message: string;
        readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>;
      }>;
    };

/**
 * A processor module's shape: `export default { process, outputName?, … }` or `export async function process`.
 *
 * Errors: throwing from `process` fails the file as a **file error** (its content is at fault; it
 * may be dead-lettered after `bookmark.deadLetterAfterRuns` runs). Throw a `JobError` (import it
 * from `tranche/processor`) for problems of the job or its environment (a lookup service down, a
 * missing credential): the run fails, nothing is dead-lettered, the files are retried.
 */
export interface Processor {
  /** Turns one input into output. */
  process(ctx: ProcessorContext): Promise<ProcessorResult>;
  /**
   * Output key for an input key. It must be injective (two inputs never share an output; the
   * planner checks) and give keys without empty, `.` or `..` segments.
   * Default: the input key itself (`dt=1/a.json.gz` → `dt=1/a.json.gz`). Names too long for the
   * output store are shortened injectively by the sink (see `src/sink/output-name.ts`).
   * `options` are the job's validated `processorOptions`, for names that depend on them (an output format).
   */
  outputName?(key: string, options?: Record<string, unknown>): string;
  /** Content type of the output, or a function of the validated `processorOptions` giving it. */
  contentType?: string | ((options: Record<string, unknown>) => string);
  /**
   * Validates `processorOptions` before anything is leased (and unknown keys are refused, if the
   * schema is strict). Without one, options are passed as they are, with a warning at preflight.
   */
  optionsSchema?: StandardSchemaV1;
  /** Loads what the processor needs for these options (e.g. a transform module), before anything is leased. */
  preflight?(options: Record<string, unknown>): Promise<void>;
  /**
   * Whether gzip inputs are gunzipped before `process` sees them. Default true.
   * false: the input is handed over as stored, compressed or not.
   */
  decompress?: boolean;
}
