import { z } from "zod";
import { S3_TIMEOUT_DEFAULTS } from "../source/types.js";

const boundValue = z.union([z.string(), z.number()]).optional();

/** Where a job's files are. */
export const sourceSchema = z
  .object({
    /** `s3://bucket/prefix/`, `file:///abs/path` or a path relative to the config file. */
    path: z.string().min(1),
    /** Hive-style partition keys, outermost first (`[dt]` for `dt=2024-01-01/`). Default: none. */
    partitionKeys: z.array(z.string().min(1)).default([]),
    /** Glob patterns (picomatch) of keys to skip, e.g. `**.tmp`. Default: none. */
    exclusions: z.array(z.string().min(1)).default([]),
    /** At most this many files per run: a decimal string or an integer. */
    boundedFiles: boundValue,
    /** At most this many bytes per run: a decimal string or an integer. */
    boundedSize: boundValue,
    /** List sub-folders (Glue's `recurse`). Default true. */
    recurse: z.boolean().default(true),
  })
  .strict();

export const bookmarkSchema = z
  .object({
    /** `enable` (default), `disable` (process everything, never update state) or `pause`. */
    mode: z.enum(["enable", "disable", "pause"]).default("enable"),
    /** Seconds below the high-water mark treated as uncertain (Glue's maxBand). Default 900. */
    maxBand: z.number().int().min(0).default(900),
    /** Cap on files remembered inside the band (Glue's maxFilesInBand). Default 100000. */
    maxFilesInBand: z.number().int().positive().default(100_000),
    /**
     * A file that fails (all attempts of its batch) in this many runs is dead-lettered: recorded
     * with its reason in the job's dead-letter list and committed as done, so that one bad file
     * cannot stop the backlog. 0 = never (every run fails until the file is fixed). Default 3.
     */
    deadLetterAfterRuns: z.number().int().min(0).default(3),
    /** Runs kept in history. Default 100. */
    historySize: z.number().int().positive().default(100),
    /** With mode `pause`: replay what arrived after run `from` up to run `to` (both or neither). */
    from: z.string().min(1).optional(),
    to: z.string().min(1).optional(),
  })
  .strict()
  .refine((b) => (b.from === undefined) === (b.to === undefined), { message: "from and to go together: give both run ids or neither" })
  .refine((b) => b.from === undefined || b.mode === "pause", { message: "from/to need mode: pause" });

export const workerSchema = z
  .object({
    /** Worker threads in the Piscina pool. Default 2. */
    threads: z.number().int().positive().max(256).default(2),
    /** V8 old-generation heap limit per thread, in MiB. Default 256. */
    maxOldGenerationSizeMb: z.number().int().min(16).default(256),
    /**
     * Files one thread works on at once; they share its heap. Default 1, so that a thread that
     * runs out of memory fails only its own file. 2–8 speeds up small, I/O-bound files.
     */
    filesPerThread: z.number().int().positive().max(64).default(1),
    /** Batches one worker process runs at once. Default 1. */
    concurrency: z.number().int().positive().default(1),
  })
  .strict();

export const jobSchema = z
  .object({
    source: sourceSchema,
    /** Built-in name (`ndjson`, `csv`, `copy`) or a path to a processor module. */
    processor: z.string().min(1),
    /** Free-form options passed to the processor (e.g. `transform` for ndjson, `delimiter` for csv). */
    processorOptions: z.record(z.string(), z.unknown()).default({}),
    output: z.object({ path: z.string().min(1) }).strict(),
    bookmark: bookmarkSchema.default(() => bookmarkSchema.parse({})),
    worker: workerSchema.default(() => workerSchema.parse({})),
    /** Files per batch; a run's selection is split per partition and then into batches of this size. Default 100. */
    batchFiles: z.number().int().positive().default(100),
    /** Attempts per batch before it is failed (BullMQ `attempts`), with exponential backoff. Default 3. */
    attempts: z.number().int().positive().default(3),
    /** First retry delay in ms (doubles each attempt). Default 1000. */
    backoffMs: z.number().int().min(0).default(1000),
    /** Runs of this job allowed at once. Default 1 (as Glue). */
    maxConcurrentRuns: z.number().int().positive().default(1),
  })
  .strict();

export const configSchema = z
  .object({
    redis: z
      .object({ url: z.string().min(1).default("redis://127.0.0.1:6379") })
      .strict()
      .default({ url: "redis://127.0.0.1:6379" }),
    /** Key prefix for BullMQ and bookmarks. Use `{name}` (a hash tag) on Redis Cluster. Default `tranche`. */
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_{}.-]+$/, "letters, digits, _ . - and {} only")
      .refine((p) => !p.includes("{}"), "an empty hash tag {} puts keys in different Redis Cluster slots; use {name}")
      .default("tranche"),
    s3: z
      .object({
        region: z.string().optional(),
        endpoint: z.string().url().optional(),
        forcePathStyle: z.boolean().optional(),
        accessKeyId: z.string().optional(),
        secretAccessKey: z.string().optional(),
        sessionToken: z.string().optional(),
        /** Longest wait for a connection to the S3 endpoint, in ms. Default 5000. */
        connectTimeoutMs: z.number().int().positive().default(S3_TIMEOUT_DEFAULTS.connectTimeoutMs),
        /**
         * Longest wait for the response to one S3 request, and longest silence while a response
         * body streams, in ms. Default 60000.
         */
        requestTimeoutMs: z.number().int().positive().default(S3_TIMEOUT_DEFAULTS.requestTimeoutMs),
      })
      .strict()
      .default({ ...S3_TIMEOUT_DEFAULTS }),
    /** Port of the `/metrics` and `/healthz` HTTP server of `tranche worker` (0 = off). Default 9464. */
    metrics: z
      .object({ port: z.number().int().min(0).max(65535).default(9464) })
      .strict()
      .default({ port: 9464 }),
    jobs: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, "job names use letters, digits, _ . - only"), jobSchema),
  })
  .strict();

export type TrancheConfig = z.infer<typeof configSchema>;
export type JobConfig = z.infer<typeof jobSchema>;
export type BookmarkMode = JobConfig["bookmark"]["mode"];
