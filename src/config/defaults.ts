/**
 * Defaults that more than one place needs (the config schema, the pool, the batch worker), in one
 * table. Each is documented where the option is declared (src/config/schema.ts).
 */
export const DEFAULTS = {
  worker: {
    threads: 2,
    maxOldGenerationSizeMb: 256,
    /** Native (off-heap) memory per thread for the sql processor's DuckDB (`memory_limit`), in MiB. */
    nativeMemoryMb: 512,
    filesPerThread: 1,
    concurrency: 1,
    /** A file running longer than this fails alone (its thread is stopped). */
    fileTimeoutSeconds: 3600,
    /**
     * BullMQ lock: a worker renews it every lockDurationMs / 2; one silent for lockDurationMs is
     * presumed dead and its batch is taken again at the next stalled check. Files run in threads,
     * so CPU-bound processors do not delay renewals on the main thread.
     */
    lockDurationMs: 3000,
    /** How often stalled batches (of dead workers) are looked for. Recovery takes lockDurationMs + up to this. */
    stalledIntervalMs: 1500,
  },
  /** A file with more than this share of malformed records fails as a file error. */
  maxBadRecordRatio: 0.5,
} as const;
