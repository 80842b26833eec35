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
  /** `processorOptions` from the job config (free-form). */
  options: Record<string, unknown>;
  /**
   * Records one bad record (malformed line, failed transform). Processing continues; the file's
   * result reports the count and the first reasons, each with the file key.
   */
  reportError(reason: string, where?: { line?: number }): void;
}

export interface ProcessorResult {
  /** Records (or chunks, for byte copies) written. */
  records: number;
}

/**
 * A processor module's shape: `export default { process, outputName?, contentType?, decompress? }`
 * or `export async function process`.
 */
export interface Processor {
  /** Turns one input into output. Throwing fails the file (and the batch retries it). */
  process(ctx: ProcessorContext): Promise<ProcessorResult>;
  /**
   * Output key for an input key. It must be injective (two inputs never share an output; the
   * planner checks) and give keys without empty, `.` or `..` segments.
   * Default: the input key itself (`dt=1/a.json.gz` → `dt=1/a.json.gz`). Names too long for the
   * output store are shortened injectively by the sink (see `src/sink/output-name.ts`).
   */
  outputName?(key: string): string;
  /** Content type of the output. */
  contentType?: string;
  /**
   * Whether gzip inputs are gunzipped before `process` sees them. Default true.
   * false: the input is handed over as stored, compressed or not.
   */
  decompress?: boolean;
}
