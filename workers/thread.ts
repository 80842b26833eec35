/**
 * Piscina worker-thread entry. The default export processes one input file: opens the input
 * (gunzipping it when it is gzip), opens the output under a name derived from the input (so a
 * retry overwrites), runs the processor, checks the share of bad records, and commits the output.
 *
 * It never throws for a failure it can type: it answers `{ ok: false, failure }` with a file or
 * job error (see src/failures.ts), because an Error crossing the thread boundary keeps only its
 * message. `preflight` and `outputNames` are the other two tasks (`pool.run(task, { name })`).
 */
import type { Readable } from "node:stream";
import type { FileOutcome, FileTask, NamesOutcome, NamesTask, PreflightOutcome, PreflightTask } from "../src/pool/task.js";
import type { Source } from "../src/source/types.js";
import type { Sink } from "../src/sink/types.js";
import { openSource, openSink } from "../src/source/open.js";
import { FileError, JobError, isTypedFailure, messageOf, type TypedFailure } from "../src/failures.js";
import { decodeBuffer, decodeStream, type DecodedInput } from "./decode.js";
import { asPreflightFailure, BUILT_IN, loadProcessor, OptionsError, validateOptions } from "./load-processor.js";
import type { Processor } from "./processors/types.js";

const sources = new Map<string, Promise<Source>>();
const sinks = new Map<string, Promise<Sink>>();

function cached<T>(m: Map<string, Promise<T>>, k: string, make: () => Promise<T>): Promise<T> {
  let v = m.get(k);
  if (v === undefined) {
    v = make();
    m.set(k, v);
    v.catch(() => m.delete(k));
  }
  return v;
}

/** Files up to this size are read whole when the source can (local folders). */
const SMALL_FILE = 1 << 20;

const identity = (key: string) => key;

/** A processor's `schema` result as it may cross the thread boundary: column → type name. */
function isSchema(v: unknown): v is Record<string, string> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((t) => typeof t === "string");
}

/** The output key of an input key; a processor's `outputName` that throws is the file's failure. */
function outputKeyOf(processor: Processor, key: string, options: Record<string, unknown>): string {
  try {
    return (processor.outputName ?? identity)(key, options);
  } catch (err) {
    throw new FileError("E_OUTPUT_NAME", `${key}: the processor's outputName refused it: ${messageOf(err)}`, { cause: err });
  }
}

/**
 * The failure of a file, typed by where it came from: a typed error keeps its type; an untyped one
 * thrown while the output stream had failed is the sink's; while the input had failed, the
 * input's; otherwise the processor threw on this file's content: a file error.
 */
function classify(err: unknown, key: string, input: DecodedInput | undefined, outputError: unknown): TypedFailure {
  if (isTypedFailure(err)) return err;
  // A processor importing JobError from another copy of tranche still says what it means.
  const e = err as { name?: string; kind?: string; code?: string; message?: string };
  if (e?.name === "JobError" && e.kind === "job") return new JobError(e.code ?? "E_PROCESSOR", `${key}: ${e.message}`, { cause: err });
  if (outputError !== undefined) {
    return isTypedFailure(outputError)
      ? outputError
      : new JobError("E_SINK", `writing the output of ${key} failed: ${messageOf(outputError)}`, { cause: outputError });
  }
  const inputFailure = input?.failure();
  if (inputFailure) return inputFailure;
  return new FileError("E_PROCESSOR", `${key}: ${messageOf(err)}`, { cause: err });
}

async function openInput(source: Source, task: FileTask, decompress: boolean): Promise<DecodedInput> {
  const at = task.sourceKey ?? task.key;
  if (source.readSmall && task.size <= SMALL_FILE) return decodeBuffer(await source.readSmall(at), task.key, decompress);
  return decodeStream((await source.open(at)) as Readable, task.key, decompress);
}

export default async function processFile(task: FileTask): Promise<FileOutcome> {
  let input: DecodedInput | undefined;
  let outputError: unknown;
  let writer: Awaited<ReturnType<Sink["create"]>> | undefined;
  // The file's timeout, told to the processor first (it may stop native work, e.g. a DuckDB query);
  // the pool stops the thread only if the processor does not end soon after.
  const cancel = new AbortController();
  const timer = task.timeoutMs
    ? setTimeout(
        () =>
          cancel.abort(
            new FileError(
              "E_FILE_TIMEOUT",
              `${task.key}: timed out after ${Math.round(task.timeoutMs! / 1000)} s (worker.fileTimeoutSeconds)`,
            ),
          ),
        task.timeoutMs,
      )
    : undefined;
  try {
    const processor = await loadProcessor(task.processor);
    const options = await validateOptions(task.processor, processor, task.processorOptions);
    const source = await cached(sources, `${task.sourceUri}\u0000${JSON.stringify(task.s3)}`, () => openSource(task.sourceUri, task.s3));
    const sink = await cached(sinks, `${task.outputUri}\u0000${JSON.stringify(task.s3)}\u0000${JSON.stringify(task.outputS3 ?? {})}`, () =>
      openSink(task.outputUri, task.s3, task.outputS3),
    );
    const outKey = outputKeyOf(processor, task.key, options);
    input = await openInput(source, task, processor.decompress !== false);
    const contentType = typeof processor.contentType === "function" ? processor.contentType(options) : processor.contentType;
    writer = await sink.create(outKey, contentType);
    // An output stream error (disk full, S3 refused) must fail the file, not hang it.
    const outputFailed = new Promise<never>((_, reject) =>
      writer!.stream.once("error", (e) => {
        outputError ??= e;
        reject(e);
      }),
    );
    outputFailed.catch(() => undefined);
    const errors: string[] = [];
    let badRecords = 0;
    const result = await Promise.race([
      processor.process({
        key: task.key,
        partition: task.partition,
        input: input.input,
        output: writer.stream,
        options,
        signal: cancel.signal,
        reportError(reason, where) {
          badRecords++;
          if (errors.length < 10) errors.push(`${task.key}${where?.line ? `:${where.line}` : ""}: ${reason}`);
        },
      }),
      outputFailed,
    ]);
    // A processor must say how many records it wrote; anything else means the module is not a
    // processor (e.g. a transform given as `processor`): the job is wrong, not the file.
    const records = (result as { records?: unknown } | undefined)?.records;
    if (typeof records !== "number" || !Number.isFinite(records)) {
      throw new JobError(
        "E_PROCESSOR",
        `processor ${task.processor} returned ${JSON.stringify(result)?.slice(0, 80) ?? String(result)} for ${task.key}, not { records: number }; is it a transform module given as the processor? (transforms go in processorOptions.transform)`,
        { retryable: false },
      );
    }
    // Drain anything the processor left unread so that truncated gzip is still detected.
    if (!input.input.readableEnded) for await (const chunk of input.input) void chunk;
    const inputFailure = input.failure();
    if (inputFailure) throw inputFailure;
    if (badRecords > 0 && badRecords / (badRecords + records) > task.maxBadRecordRatio) {
      throw new FileError(
        "E_BAD_RECORDS",
        `${task.key}: ${badRecords} of ${badRecords + records} records are malformed (more than maxBadRecordRatio ${task.maxBadRecordRatio}); first: ${errors[0] ?? "-"}`,
      );
    }
    const committed = await writer.commit().catch((e: unknown) => {
      outputError ??= e;
      throw e;
    });
    return {
      ok: true,
      result: {
        key: task.key,
        outKey: (committed as { key?: string }).key ?? outKey,
        location: committed.location,
        bytesIn: task.size,
        bytesOut: committed.bytes,
        records,
        badRecords,
        ...(isSchema(result.schema) ? { schema: result.schema } : {}),
        errors,
      },
    };
  } catch (err) {
    const timedOut = cancel.signal.aborted && isTypedFailure(cancel.signal.reason) ? cancel.signal.reason : undefined;
    const failure = timedOut ?? classify(err, task.key, input, outputError);
    await writer?.abort(failure).catch(() => undefined);
    input?.input.destroy();
    return { ok: false, failure: failure.toFailure() };
  } finally {
    clearTimeout(timer);
  }
}

/** Loads the processor and its transform and validates the options, as a run will (nothing is read). */
export async function preflight(task: PreflightTask): Promise<PreflightOutcome> {
  try {
    const processor = await loadProcessor(task.processor);
    const warnings: string[] = [];
    if (!processor.optionsSchema && Object.keys(task.processorOptions).length > 0) {
      warnings.push(`processor ${task.processor} declares no optionsSchema: its processorOptions are not checked`);
    }
    const options = await validateOptions(task.processor, processor, task.processorOptions);
    try {
      await processor.preflight?.(options);
    } catch (err) {
      throw asPreflightFailure(task.processor, err);
    }
    // Built-in processors name outputs injectively by construction; only a module's own outputName is checked per run.
    return { ok: true, warnings, customOutputName: typeof processor.outputName === "function" && !(task.processor in BUILT_IN) };
  } catch (err) {
    const f = isTypedFailure(err) ? err : new JobError("E_PROCESSOR", messageOf(err), { retryable: false });
    return { ok: false, failure: f.toFailure(), field: err instanceof OptionsError ? err.field : undefined };
  }
}

/** The output names a processor gives some input keys (null where its outputName throws). */
export async function outputNames(task: NamesTask): Promise<NamesOutcome> {
  try {
    const processor = await loadProcessor(task.processor);
    // Names may depend on the options (an output format); options that do not validate fail the run elsewhere.
    const options = await validateOptions(task.processor, processor, task.processorOptions).catch(() => task.processorOptions);
    return {
      ok: true,
      names: task.keys.map((k) => {
        try {
          return outputKeyOf(processor, k, options);
        } catch {
          return null;
        }
      }),
    };
  } catch (err) {
    const f = isTypedFailure(err) ? err : new JobError("E_PROCESSOR", messageOf(err), { retryable: false });
    return { ok: false, failure: f.toFailure() };
  }
}
