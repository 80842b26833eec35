import { compileFilter } from "../source/partition-filter.js";
import picomatch from "picomatch";
import { z } from "zod";
import { DEFAULTS } from "./defaults.js";
import type { RedisSettings } from "../redis.js";
import { S3_TIMEOUT_DEFAULTS } from "../source/types.js";

const boundValue = z.union([z.string(), z.number()]).optional();

/** Refuses a glob picomatch cannot compile exactly (unbalanced `[`, `{`, `(`). */
function checkGlob(p: string, ctx: z.RefinementCtx): void {
  try {
    picomatch.makeRe(p, { strictBrackets: true });
  } catch (err) {
    ctx.addIssue({ code: "custom", message: `not a valid glob: ${(err as Error).message}` });
  }
}

/** Checks a `redis://[user:password@]host[:port][/db]` or `rediss://…` URL; on a cluster node only database 0 exists. */
function checkRedisUrl(v: string, ctx: z.RefinementCtx, clusterNode: boolean): void {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    ctx.addIssue({ code: "custom", message: "not a URL; use redis://host:port[/db] or rediss://host:port[/db]" });
    return;
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
    ctx.addIssue({ code: "custom", message: `scheme ${u.protocol} is not supported; use redis:// or rediss://` });
  }
  if (!u.hostname) ctx.addIssue({ code: "custom", message: "no host; use redis://host:port" });
  const db = u.pathname.replace(/^\//, "");
  if (db !== "" && !/^[0-9]+$/.test(db))
    ctx.addIssue({ code: "custom", message: `database ${JSON.stringify(db)} is not a number; use redis://host:port/0` });
  else if (clusterNode && db !== "" && Number(db) !== 0)
    ctx.addIssue({ code: "custom", message: `database ${db}: a Redis Cluster has only database 0; leave the database out` });
}

/** `redis://[user:password@]host[:port][/db]` or `rediss://…`, with a numeric database. */
export const redisUrl = z.string().superRefine((v, ctx) => checkRedisUrl(v, ctx, false));

/** A Redis Cluster node: `redis://[user:password@]host:port` or `rediss://…` (database 0 only). */
export const clusterNodeUrl = z.string().superRefine((v, ctx) => checkRedisUrl(v, ctx, true));

/** What must agree between cluster node URLs: the scheme and the credentials (they apply to every node). */
function nodeAuth(v: string): { scheme: string; user: string; password: string } | undefined {
  try {
    const u = new URL(v);
    return { scheme: u.protocol, user: u.username, password: u.password };
  } catch {
    return undefined;
  }
}

/**
 * `redis.cluster`: the seed nodes of a Redis Cluster (ioredis discovers the others). The scheme
 * (`rediss://` = TLS) and the user and password of the URLs apply to every node, so the URLs must
 * agree on them (a URL without credentials takes the others').
 */
export const clusterSchema = z
  .object({
    nodes: z.array(clusterNodeUrl).min(1, "give at least one node, e.g. nodes: [redis://host:7000]"),
  })
  .strict()
  .superRefine((c, ctx) => {
    const auths = c.nodes.map(nodeAuth).filter((a) => a !== undefined);
    if (new Set(auths.map((a) => a.scheme)).size > 1)
      ctx.addIssue({ code: "custom", path: ["nodes"], message: "mixes redis:// and rediss://; TLS applies to every node: use one scheme" });
    const creds = new Set(auths.filter((a) => a.user || a.password).map((a) => `${a.user}\u0000${a.password}`));
    if (creds.size > 1)
      ctx.addIssue({
        code: "custom",
        path: ["nodes"],
        message: "the node URLs give different users or passwords; they apply to every node: give the same ones (or only once)",
      });
  });

const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";

/**
 * `redis`: `{ url }` for one Redis, or `{ cluster: { nodes } }` for a Redis Cluster (exactly one
 * of them; neither = the local Redis).
 */
export const redisSchema = z
  .object({ url: redisUrl.optional(), cluster: clusterSchema.optional() })
  .strict()
  .refine((r) => r.url === undefined || r.cluster === undefined, {
    message: "redis.url and redis.cluster are both set; give redis.url for one Redis or redis.cluster.nodes for a Redis Cluster, not both",
  })
  .transform((r): RedisSettings => (r.cluster ? { cluster: { nodes: r.cluster.nodes } } : { url: r.url ?? DEFAULT_REDIS_URL }));

/** A table of the AWS Glue Data Catalog (`source.catalog`, `output.catalog`; see docs/catalog.md). */
const catalogRefShape = {
  /** The catalog database. */
  database: z.string().min(1),
  /** The table. */
  table: z.string().min(1),
  /** The Glue region. Default: `s3.region`, then AWS_REGION / AWS_DEFAULT_REGION, then us-east-1. */
  region: z.string().min(1).optional(),
  /** Another Glue endpoint (a VPC endpoint, a stand-in). Default: AWS_ENDPOINT_URL_GLUE, AWS_ENDPOINT_URL, else AWS's. */
  endpoint: z.url({ protocol: /^https?$/ }).optional(),
};

/** `source.catalog`: read the files of a Glue catalog table (its location, partition keys and parameters). */
export const catalogSourceSchema = z
  .object({
    ...catalogRefShape,
    /** GetPartitions segments read in parallel (Glue's Segment.TotalSegments, 1–10). Default 4. */
    segments: z.number().int().min(1).max(10).default(4),
  })
  .strict();

/** `output.catalog`: register the output partitions a commit wrote in this Glue catalog table. */
export const catalogOutputSchema = z.object(catalogRefShape).strict();

/** Where a job's files are: a `path`, or a Glue catalog table (`catalog`), exactly one. */
export const sourceSchema = z
  .object({
    /** `s3://bucket/prefix/`, `file:///abs/path` or a path relative to the config file. */
    path: z.string().min(1).optional(),
    /** A Glue Data Catalog table instead of a path: its location, partitions and parameters (docs/catalog.md). */
    catalog: catalogSourceSchema.optional(),
    /** Hive-style partition keys, outermost first (`[dt]` for `dt=2024-01-01/`). Default: none. */
    partitionKeys: z.array(z.string().min(1)).default([]),
    /** Glob patterns (picomatch) of keys to skip, e.g. `**.tmp`. Default: none. Unbalanced brackets are refused. */
    exclusions: z.array(z.string().min(1).superRefine(checkGlob)).default([]),
    /** At most this many files per run: a decimal string or an integer. */
    boundedFiles: boundValue,
    /** At most this many bytes per run: a decimal string or an integer. */
    boundedSize: boundValue,
    /** List sub-folders (Glue's `recurse`). Default true. */
    recurse: z.boolean().default(true),
    /**
     * How runs list the source (see src/source/listing.ts and the README): `full` (default: every
     * object, every run), `partitions` (only the Hive partitions partitionFilter can match) or
     * `lexical` (from the greatest key settled below the band, for keys written in increasing order).
     */
    listing: z.enum(["full", "partitions", "lexical"]).default("full"),
    /** With `lexical`: list in full every this many runs, or after this long ("6h", "1d"). Default 20 runs. */
    fullListingEvery: z
      .union([z.number().int().positive(), z.string().regex(/^\s*[1-9]\d*\s*[smhd]$/, 'a duration such as "30m", "6h", "1d"')])
      .default(20),
    /** A predicate over partition values in Glue's GetPartitions Expression syntax, e.g. `dt >= '2024-01-01' AND region IN ('eu', 'us')`. */
    partitionFilter: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((src, ctx) => {
    if ((src.path === undefined) === (src.catalog === undefined))
      ctx.addIssue({
        code: "custom",
        message:
          src.path === undefined
            ? "give source.path (s3://bucket/prefix/ or a folder) or source.catalog ({ database, table })"
            : "source.path and source.catalog are both set; give one of them",
      });
    if (src.catalog !== undefined) {
      // The table's partition keys are the catalog's; the filter is checked against them when it is read.
      if (src.partitionKeys.length > 0)
        ctx.addIssue({
          code: "custom",
          path: ["partitionKeys"],
          message: "a catalog source takes its partition keys from the table; remove source.partitionKeys",
        });
      if (src.listing === "lexical")
        ctx.addIssue({
          code: "custom",
          path: ["listing"],
          message: "listing: lexical does not apply to a catalog source (it lists the matching partitions' locations)",
        });
      return;
    }
    if (src.partitionFilter !== undefined && src.partitionFilter.trim() !== "") {
      try {
        compileFilter(src.partitionFilter, src.partitionKeys);
      } catch (err) {
        ctx.addIssue({ code: "custom", path: ["partitionFilter"], message: (err as Error).message });
      }
    }
    if (src.listing === "partitions" && src.partitionKeys.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["listing"],
        message: "listing: partitions needs source.partitionKeys (the Hive folders it walks)",
      });
    }
  });

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

const W = DEFAULTS.worker;
export const workerSchema = z
  .object({
    /** Worker threads in the Piscina pool. Default 2. */
    threads: z.number().int().positive().max(256).default(W.threads),
    /** V8 old-generation heap limit per thread, in MiB. Default 256. */
    maxOldGenerationSizeMb: z.number().int().min(16).default(W.maxOldGenerationSizeMb),
    /**
     * Native memory per thread for the `sql` processor's DuckDB (its `memory_limit`, spilling to
     * the thread's scratch folder beyond it), in MiB; outside the V8 heap, so not bounded by
     * maxOldGenerationSizeMb. A pod needs about threads × (maxOldGenerationSizeMb + nativeMemoryMb)
     * plus headroom (docs/sql.md). Default 512.
     */
    nativeMemoryMb: z.number().int().min(64).default(W.nativeMemoryMb),
    /**
     * Files one thread works on at once; they share its heap. Default 1, so that a thread that
     * runs out of memory (or hangs) fails only its own file. 2–8 speeds up small, I/O-bound files,
     * at the price that such a failure cannot be blamed on one file (it is retried, never dead-lettered).
     */
    filesPerThread: z.number().int().positive().max(64).default(W.filesPerThread),
    /** Batches one worker process runs at once. Default 1. */
    concurrency: z.number().int().positive().default(W.concurrency),
    /** A file that runs longer than this fails alone (`E_FILE_TIMEOUT`), its thread stopped. Default 3600. */
    fileTimeoutSeconds: z.number().int().positive().default(W.fileTimeoutSeconds),
    /**
     * A worker that stops renewing its batch's lock for this long (it was killed) is presumed dead
     * and the batch is taken again. Default 3000 ms (with stalledIntervalMs 1500: ~3 s median recovery).
     */
    lockDurationMs: z.number().int().min(500).default(W.lockDurationMs),
    /** How often workers look for batches of dead workers. Default 1500 ms. */
    stalledIntervalMs: z.number().int().min(100).default(W.stalledIntervalMs),
  })
  .strict();

const afterStates = ["SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED"] as const;

/**
 * `jobs.<name>.triggers` (any combination; `tranche scheduler` fires them, see docs/runs.md):
 * a cron schedule, runs of other jobs ending (Glue's Predicate), and draining the backlog.
 */
export const triggersSchema = z
  .object({
    /** 5- or 6-field cron (seconds first), in an IANA time zone (default UTC). */
    schedule: z
      .object({ cron: z.string().min(1), timezone: z.string().min(1).default("UTC") })
      .strict()
      .optional(),
    /** Ticks missed while no scheduler led (down, or a leader handover): fire once for them (`runOnce`) or not (`skip`). Default skip. */
    misfire: z.enum(["runOnce", "skip"]).default("skip"),
    /**
     * Fires when runs of other jobs end: with AND once every condition has a matching run end since
     * the trigger last fired, with ANY on the first one.
     */
    after: z
      .object({
        logical: z.enum(["AND", "ANY"]).default("AND"),
        conditions: z.array(z.object({ job: z.string().min(1), state: z.enum(afterStates).default("SUCCEEDED") }).strict()).min(1),
      })
      .strict()
      .optional(),
    /** After a run that committed, start the next while backlog remains (the stopping rule of `run --drain`). */
    drain: z.boolean().default(false),
    /** Seconds between the runs of a drain. Default 0. */
    drainPauseSeconds: z.number().min(0).default(0),
    /**
     * Runs fed by S3 event notifications posted to `POST /v1/events` (Glue's event trigger with its
     * EventBatchingCondition): a run starts once `batchSize` events are pending or `batchWindow`
     * seconds after the first pending one arrived, and takes exactly those events' objects
     * through the bookmark (see docs/events.md).
     */
    events: z
      .object({
        /** Events that start a run (1–100). */
        batchSize: z.number().int().min(1).max(100),
        /** Seconds after the first pending event at the latest (1–900). Default 900. */
        batchWindow: z.number().int().min(1).max(900).default(900),
      })
      .strict()
      .optional(),
  })
  .strict();

/**
 * `output.s3`: how outputs are stored on S3 (put on every output object, the manifests and the
 * write probe included, so that a bucket policy requiring them is met).
 */
export const outputS3Schema = z
  .object({
    /** Server-side encryption: `AES256` (SSE-S3), `aws:kms` (SSE-KMS) or `aws:kms:dsse`. Default: the bucket's. */
    serverSideEncryption: z.enum(["AES256", "aws:kms", "aws:kms:dsse"]).optional(),
    /** With aws:kms: the KMS key (id, alias or ARN). Default: the account's aws/s3 key. */
    kmsKeyId: z.string().min(1).optional(),
    /** With aws:kms: use an S3 Bucket Key (fewer KMS requests). */
    bucketKeyEnabled: z.boolean().optional(),
    /** Storage class of the outputs. Default STANDARD. */
    storageClass: z
      .enum([
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
        "EXPRESS_ONEZONE",
      ])
      .optional(),
    /** A canned ACL, e.g. `bucket-owner-full-control` for cross-account buckets. Default none (the bucket's ownership rules). */
    acl: z
      .enum([
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "aws-exec-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
      ])
      .optional(),
    /** Content-Type of every output, instead of the processor's (e.g. `application/x-ndjson`). */
    contentType: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.kmsKeyId !== undefined && !o.serverSideEncryption?.startsWith("aws:kms"))
      ctx.addIssue({ code: "custom", path: ["kmsKeyId"], message: "a KMS key needs serverSideEncryption: aws:kms (or aws:kms:dsse)" });
    if (o.bucketKeyEnabled !== undefined && !o.serverSideEncryption?.startsWith("aws:kms"))
      ctx.addIssue({ code: "custom", path: ["bucketKeyEnabled"], message: "a Bucket Key needs serverSideEncryption: aws:kms" });
    else if (o.bucketKeyEnabled === true && o.serverSideEncryption === "aws:kms:dsse")
      ctx.addIssue({
        code: "custom",
        path: ["bucketKeyEnabled"],
        message: "S3 has no Bucket Keys for DSSE-KMS (aws:kms:dsse): use serverSideEncryption aws:kms, or leave bucketKeyEnabled out",
      });
  });

/** Where a job writes: a folder or `s3://bucket/prefix/`, with S3 storage settings. */
export const outputSchema = z
  .object({
    path: z.string().min(1),
    s3: outputS3Schema.optional(),
    /** Register the output partitions each commit wrote in this Glue catalog table (docs/catalog.md). */
    catalog: catalogOutputSchema.optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.s3 && !o.path.startsWith("s3://"))
      ctx.addIssue({
        code: "custom",
        path: ["s3"],
        message: `S3 settings apply to s3:// outputs; output.path is ${JSON.stringify(o.path)}`,
      });
  });

export const jobSchema = z
  .object({
    source: sourceSchema,
    /** Built-in name (`ndjson`, `csv`, `copy`, `sql`) or a path to a processor module. */
    processor: z.string().min(1),
    /**
     * Options passed to the processor (e.g. `transform` for ndjson, `delimiter` for csv), checked
     * against the processor's own schema before anything is leased. A string value may reference
     * an environment variable as `${env:NAME}`: it is resolved on each worker, never sent via Redis.
     */
    processorOptions: z.record(z.string(), z.unknown()).default({}),
    /**
     * A file whose share of malformed records is above this fails as a file error (`E_BAD_RECORDS`)
     * instead of succeeding with an empty output. An empty file is processed, not bad. Default 0.5.
     */
    maxBadRecordRatio: z.number().min(0).max(1).default(DEFAULTS.maxBadRecordRatio),
    output: outputSchema,
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
    /**
     * A run asked for while the job is at maxConcurrentRuns: `skip` it (a trigger logs and counts
     * it; `tranche run` exits 3 or attaches to a run whose starter is gone), or `queue` it (WAITING
     * until a slot frees). Default skip.
     */
    whenBusy: z.enum(["skip", "queue"]).default("skip"),
    /** Minutes a run may last; past it the run ends TIMEOUT and its files go to the next run. Default 2880 (Glue's). */
    timeout: z.number().positive().default(2880),
    /** Partitions of one run processed at once (each commits on its own). Default: all. */
    partitionConcurrency: z.number().int().positive().optional(),
    triggers: triggersSchema.optional(),
  })
  .strict();

export const configSchema = z
  .object({
    /** One Redis (`url`) or a Redis Cluster (`cluster.nodes`). Default `{ url: "redis://127.0.0.1:6379" }`. */
    redis: redisSchema.default({ url: DEFAULT_REDIS_URL }),
    /**
     * Key prefix for BullMQ and bookmarks. On a Redis Cluster it must contain a hash tag
     * (`{tranche}`), checked after the environment overrides (see `checkClusterPrefix`). Default `tranche`.
     */
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_{}.-]+$/, "letters, digits, _ . - and {} only")
      .refine((p) => !p.includes("{}"), "an empty hash tag {} puts keys in different Redis Cluster slots; use {name}")
      .default("tranche"),
    s3: z
      .object({
        region: z.string().optional(),
        endpoint: z.url({ protocol: /^https?$/ }).optional(),
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
    /**
     * The HTTP API (`/v1`, OpenAPI at `/v1/openapi.json`) and the queue dashboard (`/ui`) served by
     * `tranche scheduler`. Off unless `port` is set. Every route but /healthz, /readyz and /metrics
     * needs `Authorization: Bearer $TRANCHE_API_TOKEN`; without a token the API binds only to a
     * loopback host.
     */
    api: z
      .object({
        /** Port (0 = no API). Default 0. */
        port: z.number().int().min(0).max(65535).default(0),
        /** Address to bind. Default 127.0.0.1. */
        host: z.string().min(1).default("127.0.0.1"),
        /** Bull Board at /ui may retry, promote and remove jobs. Default false (read-only). */
        uiWritable: z.boolean().default(false),
      })
      .strict()
      .default({ port: 0, host: "127.0.0.1", uiWritable: false }),
    jobs: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, "job names use letters, digits, _ . - only"), jobSchema),
  })
  .strict();

export type TrancheConfig = z.infer<typeof configSchema>;
export type JobConfig = z.infer<typeof jobSchema>;
export type BookmarkMode = JobConfig["bookmark"]["mode"];
