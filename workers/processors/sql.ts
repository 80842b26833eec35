/**
 * The `sql` processor: one file through DuckDB. The input (JSON lines or a JSON array, CSV, or
 * Parquet; gzip or zstd compressed) is spooled to the thread's scratch folder, exposed to the
 * job's SQL as the relation `input` (with the file's partition values as columns), and the query's
 * result is written as Parquet (default), NDJSON or CSV, then streamed to tranche's sink.
 *
 * One DuckDB instance per worker thread, created on its first file and kept: `threads=1` (the
 * pool's threads are the parallelism), `memory_limit` = `worker.nativeMemoryMb`, spilling to the
 * scratch folder, no extension downloads, and file access confined to the scratch folder (the SQL
 * sees its input only). Files of one thread run through DuckDB one at a time, so each has the
 * whole limit and a file too big for it fails alone (`E_OUT_OF_MEMORY`).
 *
 * Integrity: gzip inputs are gunzipped by the thread as for every processor (a truncated or corrupt
 * gzip is `E_CORRUPT`); DuckDB reads zstd itself, and because its reader returns a truncated zstd
 * file's first part without an error, the frames are checked while spooling. See docs/sql.md.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { threadId, workerData } from "node:worker_threads";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { z } from "zod";
import { DEFAULTS } from "../../src/config/defaults.js";
import { classifyFsError, FileError, JobError, isTypedFailure, messageOf, type TypedFailure } from "../../src/failures.js";
import { scratchDir } from "../../src/pool/scratch.js";
import { writeChunk } from "./lines.js";
import type { Processor, ProcessorContext, ProcessorResult } from "./types.js";
import { ZstdFrameCheck } from "./zstd-frames.js";

export type InputFormat = "json" | "csv" | "parquet";
export type OutputFormat = "parquet" | "ndjson" | "csv";

/** A DuckDB type name as the schema option takes it (`BIGINT`, `DECIMAL(18,2)`, `VARCHAR[]`, `STRUCT(a INT, b VARCHAR)`). */
const typeName = z
  .string()
  .min(1)
  .max(1000)
  .regex(/^[A-Za-z][A-Za-z0-9_ ,()[\]".]*$/, "must be a DuckDB type name, e.g. BIGINT, VARCHAR, DECIMAL(18,2), TIMESTAMP, VARCHAR[]");

const PARQUET_COMPRESSIONS = ["zstd", "snappy", "gzip", "lz4", "lz4_raw", "brotli", "uncompressed"] as const;
const TEXT_COMPRESSIONS = ["none", "gzip", "zstd"] as const;

/** The sql processor's options (unknown keys are refused). Defaults are applied here. */
export const sqlOptions = z
  .object({
    /** A query over the relation `input` (one SELECT, no trailing statements). */
    sql: z.string().min(1).default("select * from input"),
    /** Input format; default: by the key's extension (.json/.jsonl/.ndjson, .csv/.tsv, .parquet), before .gz/.zst. */
    inputFormat: z.enum(["json", "csv", "parquet"]).optional(),
    /** CSV inputs: a header row (default true) and the delimiter (default `,`, a tab for .tsv). */
    csv: z
      .object({ header: z.boolean().default(true), delimiter: z.string().length(1, "must be a single character").optional() })
      .strict()
      .optional(),
    /** What is written. Default parquet. */
    outputFormat: z.enum(["parquet", "ndjson", "csv"]).default("parquet"),
    /** Parquet: zstd (default), snappy, gzip, lz4, lz4_raw, brotli, uncompressed. NDJSON and CSV: none (default), gzip, zstd. */
    compression: z.enum([...PARQUET_COMPRESSIONS, "none"]).optional(),
    /** Parquet rows per row group (DuckDB's default 122,880). */
    rowGroupSize: z.number().int().positive().optional(),
    /** Pins the output's columns and types: each column is CAST to its type; a value that does not cast fails the file. */
    schema: z.record(z.string().min(1), typeName).optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.compression === undefined) return;
    const allowed: readonly string[] = o.outputFormat === "parquet" ? PARQUET_COMPRESSIONS : TEXT_COMPRESSIONS;
    if (!allowed.includes(o.compression)) {
      ctx.addIssue({
        code: "custom",
        path: ["compression"],
        message: `${o.compression} is not a compression for outputFormat ${o.outputFormat}; use one of ${allowed.join(", ")}`,
      });
    }
    if (o.rowGroupSize !== undefined && o.outputFormat !== "parquet") {
      ctx.addIssue({ code: "custom", path: ["rowGroupSize"], message: "rowGroupSize applies to outputFormat parquet only" });
    }
  });
export type SqlOptions = z.output<typeof sqlOptions>;

/** `{ nativeMemoryMb }` the pool hands its threads (Piscina's workerData), else the default. */
export function nativeMemoryMb(): number {
  const n = (workerData as { nativeMemoryMb?: unknown } | null | undefined)?.nativeMemoryMb;
  return typeof n === "number" && n > 0 ? n : DEFAULTS.worker.nativeMemoryMb;
}

// ---------------------------------------------------------------------------------------------
// Names and formats

const COMPRESSED = /\.(gz|gzip|zst|zstd)$/i;

/** The input format of a key by its extension (before .gz/.zst), or undefined. */
export function formatOfKey(key: string): InputFormat | undefined {
  const k = key.replace(COMPRESSED, "").toLowerCase();
  if (/\.(json|jsonl|ndjson)$/.test(k)) return "json";
  if (/\.(csv|tsv)$/.test(k)) return "csv";
  if (/\.(parquet|pq)$/.test(k)) return "parquet";
  return undefined;
}

function outputSuffix(options: Record<string, unknown>): string {
  const format = (options.outputFormat as OutputFormat | undefined) ?? "parquet";
  if (format === "parquet") return ".parquet";
  const c = options.compression as string | undefined;
  return `.${format}${c === "gzip" ? ".gz" : c === "zstd" ? ".zst" : ""}`;
}

/**
 * The whole input key plus the output's extension (`dt=1/a.json.gz` → `dt=1/a.json.gz.parquet`;
 * `.ndjson`, `.csv`, with `.gz`/`.zst` for compressed text outputs): injective, so `a.json` and
 * `a.json.gz` side by side get two outputs.
 */
export function sqlOutputName(key: string, options: Record<string, unknown> = {}): string {
  return `${key}${outputSuffix(options)}`;
}

function contentTypeOf(options: Record<string, unknown>): string {
  const format = (options.outputFormat as OutputFormat | undefined) ?? "parquet";
  if (format === "parquet") return "application/vnd.apache.parquet";
  if (options.compression === "gzip") return "application/gzip";
  if (options.compression === "zstd") return "application/zstd";
  return format === "csv" ? "text/csv" : "application/x-ndjson";
}

/** A SQL string literal. */
export function lit(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** A SQL identifier. */
export function ident(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** The query as one statement: trailing semicolons and blanks go. */
function statementOf(sql: string): string {
  return sql.replace(/[\s;]+$/, "");
}

// ---------------------------------------------------------------------------------------------
// The thread's DuckDB

interface Engine {
  db: DuckDBInstance;
  conn: DuckDBConnection;
  dir: string;
  memoryMb: number;
}

let engine: Promise<Engine> | undefined;

async function createEngine(): Promise<Engine> {
  const memoryMb = nativeMemoryMb();
  const dir = scratchDir(threadId);
  await mkdir(path.join(dir, "spill"), { recursive: true });
  const db = await DuckDBInstance.create(":memory:", {
    threads: "1",
    memory_limit: `${memoryMb}MiB`,
    temp_directory: path.join(dir, "spill"),
    preserve_insertion_order: "false",
    autoinstall_known_extensions: "false",
    autoload_known_extensions: "false",
  });
  const conn = await db.connect();
  // The job's SQL reads and writes nothing but this thread's scratch folder, and cannot change the settings.
  await conn.run(`SET allowed_directories = [${lit(dir + path.sep)}]`);
  await conn.run("SET enable_external_access = false");
  await conn.run("SET lock_configuration = true");
  return { db, conn, dir, memoryMb };
}

/**
 * The thread's DuckDB, created on first use; a failed start is not kept. A start that fails (the
 * scratch folder cannot be made, DuckDB cannot open) is the environment's: a retryable job error,
 * never a file's.
 */
function getEngine(): Promise<Engine> {
  if (!engine) {
    engine = createEngine().catch((err: unknown) => {
      engine = undefined;
      throw new JobError("E_ENGINE", `DuckDB could not start in this worker thread: ${messageOf(err)}`, { cause: err });
    });
  }
  return engine;
}

let tail: Promise<unknown> = Promise.resolve();

/** Runs `fn` when the thread's DuckDB is free: files of one thread take turns, each with the whole memory limit. */
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const run = tail.then(fn, fn);
  tail = run.catch(() => undefined);
  return run;
}

let seq = 0;

// ---------------------------------------------------------------------------------------------
// Errors

/** A DuckDB error, typed: DuckDB's errors carry their class only as the start of their message. */
export function duckdbFailure(
  err: unknown,
  key: string,
  memoryMb: number,
  o: { pinned?: boolean; parquet?: boolean; spool?: string; scratch?: string } = {},
): TypedFailure {
  if (isTypedFailure(err)) return err;
  // DuckDB names the scratch file it read; the file is the input key.
  const msg = o.spool ? messageOf(err).split(o.spool).join(key) : messageOf(err);
  const first = msg.split("\n")[0]!.trim();
  if (/No space left on device|Disk quota exceeded|failed to offload|max_temp_directory_size/i.test(msg)) {
    return new JobError("E_DISK_FULL", `${key}: DuckDB's scratch folder is full: ${first}; give TMPDIR more room`, { cause: err });
  }
  if (/^Out of Memory Error/.test(msg)) {
    return new FileError(
      "E_OUT_OF_MEMORY",
      `${key}: DuckDB ran out of memory (worker.nativeMemoryMb=${memoryMb}): ${first}; raise worker.nativeMemoryMb, or make the SQL need less`,
      { cause: err },
    );
  }
  if (/maximum_object_size/.test(msg)) {
    return new FileError(
      "E_OUT_OF_MEMORY",
      `${key}: a JSON record is larger than ${Math.floor(maxObjectBytes(memoryMb) / 2 ** 20)} MiB, a quarter of worker.nativeMemoryMb=${memoryMb}; raise worker.nativeMemoryMb`,
      { cause: err },
    );
  }
  if (/^(Parser Error|Permission Error)/.test(msg)) {
    return new JobError(
      "E_CONFIG",
      `processorOptions.sql: ${first}; the SQL is one query over the relation input, which is all it may read`,
      { cause: err, retryable: false },
    );
  }
  // The SQL names a column (or calls a function on a type) the file does not have: most often a
  // typo in the SQL, which must not set the backlog aside file by file. A job error: the run fails,
  // every file stays in the backlog, and the SQL is fixed (or made to fit every file).
  if (/^Binder Error/.test(msg)) {
    return new JobError(
      "E_SQL",
      `${key}: processorOptions.sql does not fit this file: ${first}; fix the SQL: every file must have the columns and types it uses (the files stay in the backlog, none is set aside)`,
      { cause: err, retryable: false },
    );
  }
  if (/^Conversion Error/.test(msg) && o.pinned) {
    return new FileError("E_SCHEMA", `${key}: a value does not fit processorOptions.schema: ${first}`, { cause: err });
  }
  // An I/O error on the thread's own scratch files (folder gone, too many open files, permissions)
  // is the environment's, not the input's.
  if (/^IO Error/.test(msg) && o.scratch && msg.includes(o.scratch) && !(o.spool && messageOf(err).includes(o.spool)))
    return new JobError("E_SCRATCH", `${key}: DuckDB could not use its scratch folder ${o.scratch}: ${first}`, { cause: err });
  const reading = /^(IO Error|Invalid Input Error)/.test(msg);
  if ((reading && o.parquet) || (/^IO Error/.test(msg) && /zstd|gzip|decompress|compressed|parquet|magic/i.test(msg))) {
    return new FileError("E_CORRUPT", `${key}: corrupt input: ${first}`, { cause: err });
  }
  return new FileError("E_PROCESSOR", `${key}: ${briefOf(msg)}`, { cause: err });
}

/**
 * DuckDB's message, brief: its first paragraph on one line, without the advice that follows
 * ("Possible fixes: … strict_mode=false …": options a job cannot set), at most 500 characters.
 */
export function briefOf(msg: string): string {
  const first = msg
    .split(/\n\s*\n|\n\s*Possible (?:fixes|Solution)/i)[0]!
    .replace(/\s*\n\s*/g, " ")
    .trim();
  return first.length > 500 ? `${first.slice(0, 497)}...` : first;
}

/** The largest JSON record read: a quarter of the memory limit (DuckDB's reader buffers twice that), at least DuckDB's 16 MiB. */
function maxObjectBytes(memoryMb: number): number {
  return Math.max(16 * 2 ** 20, Math.floor((memoryMb * 2 ** 20) / 4));
}

// ---------------------------------------------------------------------------------------------
// One file

interface Spooled {
  path: string;
  bytes: number;
  compression: "uncompressed" | "zstd";
  parquetMagic: boolean;
}

/** Writes the input to a scratch file; zstd inputs have their frames checked as they pass. */
async function spool(ctx: ProcessorContext, file: string): Promise<Spooled> {
  const head: number[] = [];
  let bytes = 0;
  let zstd: ZstdFrameCheck | undefined;
  let decided = false;
  // The chunks seen before the 4-byte magic was complete (a first chunk may be tiny).
  const early: Buffer[] = [];
  const observe = async function* (src: AsyncIterable<Buffer | string>) {
    for await (const c of src) {
      const chunk = typeof c === "string" ? Buffer.from(c) : c;
      if (chunk.length === 0) continue;
      bytes += chunk.length;
      for (let i = 0; head.length < 4 && i < chunk.length; i++) head.push(chunk[i]!);
      if (!decided && head.length < 4) early.push(chunk);
      else if (!decided) {
        decided = true;
        if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
          zstd = new ZstdFrameCheck();
          for (const e of early) zstd.push(e);
        }
        early.length = 0;
        zstd?.push(chunk);
      } else zstd?.push(chunk);
      yield chunk;
    }
  };
  try {
    await pipeline(ctx.input, observe, createWriteStream(file), ctx.signal ? { signal: ctx.signal } : {});
  } catch (err) {
    // A failing scratch file is the environment's; anything else is the input's, which the thread types.
    if ((err as NodeJS.ErrnoException)?.syscall) throw classifyFsError(err, { path: file, op: "write", fallback: "job" });
    throw err;
  }
  if (zstd) {
    const bad = zstd.end();
    if (bad) throw new FileError("E_CORRUPT", `${ctx.key}: ${bad}`);
  }
  const parquetMagic = head.length === 4 && String.fromCharCode(...head) === "PAR1";
  return { path: file, bytes, compression: zstd ? "zstd" : "uncompressed", parquetMagic };
}

/** The file's format and its DuckDB reader call (JSON: given the columns, the reader does not sniff them again). */
function readerOf(
  ctx: ProcessorContext,
  o: SqlOptions,
  s: Spooled,
  memoryMb: number,
): { format: InputFormat; call(columns?: string): string } {
  const format = o.inputFormat ?? (s.parquetMagic ? "parquet" : formatOfKey(ctx.key));
  const file = lit(s.path);
  const compression = lit(s.compression);
  switch (format) {
    case "json":
      return {
        format,
        call: (columns) =>
          `read_json(${file}, format='auto', compression=${compression}, maximum_object_size=${maxObjectBytes(memoryMb)}${columns ? `, columns=${columns}` : ""})`,
      };
    case "csv": {
      const tsv = /\.tsv$/i.test(ctx.key.replace(COMPRESSED, ""));
      const delimiter = o.csv?.delimiter ?? (tsv ? "\t" : ",");
      return {
        format,
        call: () => `read_csv(${file}, header=${o.csv?.header ?? true}, delim=${lit(delimiter)}, compression=${compression})`,
      };
    }
    case "parquet":
      return { format, call: () => `read_parquet(${file})` };
    default:
      throw new FileError(
        "E_PROCESSOR",
        `${ctx.key}: cannot tell its format from its name (.json, .jsonl, .ndjson, .csv, .tsv, .parquet, each maybe .gz or .zst); set processorOptions.inputFormat`,
        { retryable: false },
      );
  }
}

async function columnsOf(conn: DuckDBConnection, query: string): Promise<{ name: string; type: string }[]> {
  const r = await conn.runAndReadAll(`DESCRIBE ${query}`);
  return r.getRowObjectsJS().map((row) => ({ name: String(row.column_name), type: String(row.column_type) }));
}

/** The query whose result is written: the job's SQL, cast to the pinned schema when there is one. */
async function finalQuery(conn: DuckDBConnection, key: string, o: SqlOptions): Promise<string> {
  const user = statementOf(o.sql);
  if (!o.schema) return user;
  const have = new Map((await columnsOf(conn, `(${user})`)).map((c) => [c.name.toLowerCase(), c.name]));
  const pinned = Object.entries(o.schema);
  const pinnedNames = new Set(pinned.map(([n]) => n.toLowerCase()));
  const extra = [...have.values()].filter((n) => !pinnedNames.has(n.toLowerCase()));
  if (extra.length) {
    throw new FileError(
      "E_SCHEMA",
      `${key}: column${extra.length > 1 ? "s" : ""} ${extra.map((n) => JSON.stringify(n)).join(", ")} not in processorOptions.schema; add ${extra.length > 1 ? "them" : "it"} to the schema or leave ${extra.length > 1 ? "them" : "it"} out of processorOptions.sql`,
    );
  }
  const cols = pinned.map(([n, t]) => {
    const src = have.get(n.toLowerCase());
    return src === undefined ? `CAST(NULL AS ${t}) AS ${ident(n)}` : `CAST(q.${ident(src)} AS ${t}) AS ${ident(n)}`;
  });
  return `SELECT ${cols.join(", ")} FROM (${user}) AS q`;
}

/** After a failed cast: which pinned column holds values that do not cast, and one of them. */
async function explainCast(conn: DuckDBConnection, o: SqlOptions): Promise<string | undefined> {
  const user = statementOf(o.sql);
  const have = new Map((await columnsOf(conn, `(${user})`)).map((c) => [c.name.toLowerCase(), c.name]));
  const checks = Object.entries(o.schema ?? {}).filter(([n]) => have.has(n.toLowerCase()));
  if (!checks.length) return undefined;
  const parts = checks.map(([n, t], i) => {
    const c = `q.${ident(have.get(n.toLowerCase())!)}`;
    const bad = `${c} IS NOT NULL AND TRY_CAST(${c} AS ${t}) IS NULL`;
    return `count(*) FILTER (WHERE ${bad}) AS n${i}, any_value(CAST(${c} AS VARCHAR)) FILTER (WHERE ${bad}) AS v${i}`;
  });
  const row = (await conn.runAndReadAll(`SELECT ${parts.join(", ")} FROM (${user}) AS q`)).getRowObjectsJS()[0] ?? {};
  for (let i = 0; i < checks.length; i++) {
    const n = Number(row[`n${i}`] ?? 0);
    if (n > 0) {
      // A JSON-typed column casts to its JSON text ("ten" with its quotes): show the string itself.
      const raw = String(row[`v${i}`]);
      const v = (/^".*"$/s.test(raw) ? String(JSON.parse(raw) as unknown) : raw).slice(0, 80);
      return `column ${JSON.stringify(checks[i]![0])}: ${n} value${n > 1 ? "s" : ""} cannot be cast to ${checks[i]![1]} (e.g. ${JSON.stringify(v)})`;
    }
  }
  return undefined;
}

function copyOptions(o: SqlOptions): string {
  if (o.outputFormat === "parquet") {
    const rg = o.rowGroupSize ? `, ROW_GROUP_SIZE ${o.rowGroupSize}` : "";
    return `FORMAT parquet, COMPRESSION ${o.compression ?? "zstd"}${rg}`;
  }
  const c = o.compression && o.compression !== "none" ? `, COMPRESSION ${o.compression}` : ", COMPRESSION uncompressed";
  return o.outputFormat === "csv" ? `FORMAT csv, HEADER true${c}` : `FORMAT json${c}`;
}

/** Runs the file through DuckDB; returns the records written and, for Parquet, the output's schema. */
async function transform(
  e: Engine,
  ctx: ProcessorContext,
  o: SqlOptions,
  s: Spooled,
  out: string,
): Promise<{ records: number; schema?: Record<string, string> }> {
  const reader = readerOf(ctx, o, s, e.memoryMb);
  const partition = Object.entries(ctx.partition);
  // The file's columns: for the partition columns, and for JSON, whose reader then skips its own
  // sniffing (the same sample gives the same types), so that knowing them costs nothing.
  const own = reader.format === "json" || partition.length ? await columnsOf(e.conn, `SELECT * FROM ${reader.call()}`) : [];
  const objects = reader.format === "json" && !(own.length === 1 && own[0]!.name === "json" && own[0]!.type === "JSON");
  const read = objects ? reader.call(`{${own.map((c) => `${lit(c.name)}: ${lit(c.type)}`).join(", ")}}`) : reader.call();
  // Partition values as columns, unless the file has a column of that name (DuckDB's names are case-insensitive).
  const names = new Set(own.map((c) => c.name.toLowerCase()));
  const add = partition.filter(([k]) => !names.has(k.toLowerCase())).map(([k, v]) => `${lit(v)} AS ${ident(k)}`);
  const view = add.length ? `SELECT *, ${add.join(", ")} FROM ${read}` : `SELECT * FROM ${read}`;
  await e.conn.run(`CREATE OR REPLACE TEMP VIEW input AS ${view}`);
  const query = await finalQuery(e.conn, ctx.key, o);
  let records: number;
  try {
    const r = await e.conn.runAndReadAll(`COPY (${query}) TO ${lit(out)} (${copyOptions(o)})`);
    records = Number(r.getRows()[0]?.[0] ?? 0);
  } catch (err) {
    if (o.schema && /^Conversion Error/.test(messageOf(err))) {
      const why = await explainCast(e.conn, o).catch(() => undefined);
      if (why) throw new FileError("E_SCHEMA", `${ctx.key}: does not fit processorOptions.schema: ${why}`, { cause: err });
    }
    throw err;
  }
  if (o.outputFormat !== "parquet" || records === 0) return { records };
  // The schema Parquet readers will see, from the written file's footer.
  const cols = await columnsOf(e.conn, `SELECT * FROM read_parquet(${lit(out)})`);
  return { records, schema: Object.fromEntries(cols.map((c) => [c.name, c.type])) };
}

const parsed = new Map<string, SqlOptions>();

/** The options with defaults (the thread validated them already; a direct call gets them checked here). */
function optionsOf(raw: Record<string, unknown>): SqlOptions {
  const k = JSON.stringify(raw);
  let o = parsed.get(k);
  if (!o) {
    const r = sqlOptions.safeParse(raw);
    if (!r.success) {
      const first = r.error.issues[0]!;
      throw new JobError("E_CONFIG", `sql: processorOptions.${first.path.join(".")}: ${first.message}`, { retryable: false });
    }
    o = r.data;
    parsed.set(k, o);
  }
  return o;
}

async function processSql(ctx: ProcessorContext): Promise<ProcessorResult> {
  const o = optionsOf(ctx.options);
  const e = await getEngine();
  const n = ++seq;
  const inFile = path.join(e.dir, `in-${n}`);
  const outFile = path.join(e.dir, `out-${n}${outputSuffix(o)}`);
  try {
    const s = await spool(ctx, inFile);
    const result = await exclusive(async () => {
      ctx.signal?.throwIfAborted();
      // The file's timeout interrupts its query: stopping the thread under a running query could abort the process.
      const interrupt = () => e.conn.interrupt();
      ctx.signal?.addEventListener("abort", interrupt, { once: true });
      try {
        return await transform(e, ctx, o, s, outFile);
      } catch (err) {
        ctx.signal?.throwIfAborted();
        const parquet = (o.inputFormat ?? (s.parquetMagic ? "parquet" : formatOfKey(ctx.key))) === "parquet";
        throw duckdbFailure(err, ctx.key, e.memoryMb, { pinned: o.schema !== undefined, parquet, spool: s.path, scratch: e.dir });
      } finally {
        ctx.signal?.removeEventListener("abort", interrupt);
        await rm(inFile, { force: true });
      }
    });
    for await (const chunk of createReadStream(outFile, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      await writeChunk(ctx.output, chunk);
    }
    return result;
  } finally {
    await rm(inFile, { force: true });
    await rm(outFile, { force: true });
  }
}

/** Checks the SQL parses as one query (and the pinned types exist) before anything is leased. */
async function preflightSql(options: Record<string, unknown>): Promise<void> {
  const o = optionsOf(options);
  const e = await getEngine();
  await exclusive(async () => {
    let statements;
    try {
      statements = await e.conn.extractStatements(`COPY (${statementOf(o.sql)}) TO 'x' (FORMAT parquet)`);
    } catch (err) {
      throw new JobError(
        "E_CONFIG",
        `sql: processorOptions.sql is not one query: ${
          messageOf(err)
            .replace(/^Failed to extract statements: /, "")
            .split("\n")[0]
        }`,
        {
          retryable: false,
        },
      );
    }
    if (statements.count !== 1) {
      throw new JobError("E_CONFIG", "sql: processorOptions.sql must be one query (a SELECT over input), not several statements", {
        retryable: false,
      });
    }
    for (const [name, type] of Object.entries(o.schema ?? {})) {
      try {
        await e.conn.run(`SELECT CAST(NULL AS ${type})`);
      } catch (err) {
        throw new JobError(
          "E_CONFIG",
          `sql: processorOptions.schema.${name}: ${JSON.stringify(type)} is not a DuckDB type: ${messageOf(err).split("\n")[0]}`,
          {
            retryable: false,
          },
        );
      }
    }
  });
}

const sql: Processor = {
  process: processSql,
  optionsSchema: sqlOptions,
  preflight: preflightSql,
  outputName: sqlOutputName,
  contentType: contentTypeOf,
};

export default sql;
