/**
 * Piscina worker-thread entry: processes one input file per task. Opens the input (gunzipping
 * when it starts with the gzip magic bytes), opens the output in the sink under a name derived
 * from the input (so a retry overwrites), runs the processor, and commits the output.
 */
import { createGunzip } from "node:zlib";
import { Readable } from "node:stream";
import { pathToFileURL } from "node:url";
import type { FileResult, FileTask } from "../src/pool/task.js";
import type { Source } from "../src/source/types.js";
import type { Sink } from "../src/sink/types.js";
import { openSource, openSink } from "../src/source/open.js";
import type { Processor } from "./processors/types.js";

const BUILT_IN: Record<string, string> = {
  ndjson: "./processors/ndjson.js",
  csv: "./processors/csv.js",
  copy: "./processors/copy.js",
};

const sources = new Map<string, Promise<Source>>();
const sinks = new Map<string, Promise<Sink>>();
const processors = new Map<string, Promise<Processor>>();

function defaultOutputName(key: string): string {
  return key.replace(/\.gz$/i, "");
}

async function loadProcessor(spec: string): Promise<Processor> {
  const url = BUILT_IN[spec] ? new URL(BUILT_IN[spec], import.meta.url).href : pathToFileURL(spec).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new Error(
      `cannot load processor ${spec}: ${(err as Error).message}; give a built-in name (ndjson, csv, copy) or a path to a JavaScript module`,
      { cause: err },
    );
  }
  const d = mod.default as Partial<Processor> | ((...a: unknown[]) => unknown) | undefined;
  if (d && typeof d === "object" && typeof d.process === "function") return d as Processor;
  if (typeof d === "function") return { process: d as Processor["process"] };
  if (typeof mod.process === "function") {
    return {
      process: mod.process as Processor["process"],
      outputName: mod.outputName as Processor["outputName"],
      contentType: mod.contentType as string | undefined,
    };
  }
  throw new Error(`processor ${spec} exports no process function; export default { process(ctx) { … } } (see examples/processors)`);
}

function cached<T>(m: Map<string, T>, k: string, make: () => T): T {
  let v = m.get(k);
  if (v === undefined) m.set(k, (v = make()));
  return v;
}

/**
 * Returns the input, gunzipped when its first bytes are the gzip magic number.
 */
async function decode(raw: Readable): Promise<Readable> {
  const head = await new Promise<Buffer | null>((resolve, reject) => {
    const onReadable = () => {
      const chunk = raw.read() as Buffer | null;
      if (chunk === null && !raw.readableEnded) return; // not yet
      cleanup();
      resolve(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      raw.off("readable", onReadable);
      raw.off("end", onEnd);
      raw.off("error", onError);
    };
    raw.on("readable", onReadable);
    raw.once("end", onEnd);
    raw.once("error", onError);
  });
  if (head === null) return Readable.from([]);
  // Hand the peeked chunk on first, then the rest. (`unshift` loses data when the first chunk
  // was also the last one, as with small S3 bodies.)
  const whole = Readable.from(
    (async function* () {
      yield head;
      for await (const chunk of raw) yield chunk as Buffer;
    })(),
    { objectMode: false },
  );
  return isGzip(head) ? gunzipped(whole) : whole;
}

/** Files up to this size are read whole when the source can (local folders). */
const SMALL_FILE = 1 << 20;

function isGzip(b: Buffer): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

function gunzipped(raw: Readable): Readable {
  const gunzip = createGunzip();
  // Readers see errors through their own listeners; this one keeps a corrupt stream from
  // becoming an uncaught exception that would take the whole thread down.
  gunzip.on("error", () => undefined);
  raw.on("error", (e) => gunzip.destroy(e));
  return raw.pipe(gunzip);
}

function fromBuffer(buf: Buffer): Readable {
  const raw = Readable.from(buf.length ? [buf] : [], { objectMode: false });
  return isGzip(buf) ? gunzipped(raw) : raw;
}

export default async function processFile(task: FileTask): Promise<FileResult> {
  const source = await cached(sources, task.sourceUri, () => openSource(task.sourceUri, task.s3));
  const sink = await cached(sinks, task.outputUri, () => openSink(task.outputUri, task.s3));
  const processor = await cached(processors, task.processor, () => loadProcessor(task.processor));
  const outKey = (processor.outputName ?? defaultOutputName)(task.key);
  const errors: string[] = [];
  let badRecords = 0;
  const input =
    source.readSmall && task.size <= SMALL_FILE
      ? fromBuffer(await source.readSmall(task.key))
      : await decode((await source.open(task.key)) as Readable);
  const writer = await sink.create(outKey, processor.contentType);
  // An output stream error (disk full, S3 refused) must fail the file, not hang it.
  const outputFailed = new Promise<never>((_, reject) => writer.stream.once("error", reject));
  outputFailed.catch(() => undefined);
  try {
    const { records } = await Promise.race([
      processor.process({
        key: task.key,
        partition: task.partition,
        input,
        output: writer.stream,
        options: task.processorOptions,
        reportError(reason, where) {
          badRecords++;
          if (errors.length < 10) errors.push(`${task.key}${where?.line ? `:${where.line}` : ""}: ${reason}`);
        },
      }),
      outputFailed,
    ]);
    // Drain anything the processor left unread so that truncated gzip is still detected.
    if (!input.readableEnded) for await (const chunk of input) void chunk;
    const { bytes, location } = await writer.commit();
    return { key: task.key, outKey, location, bytesIn: task.size, bytesOut: bytes, records, badRecords, errors };
  } catch (err) {
    await writer.abort(err as Error).catch(() => undefined);
    input.destroy();
    const msg = err instanceof Error ? err.message : String(err);
    throw Object.assign(new Error(`${task.key}: ${msg}`, { cause: err }), { code: (err as { code?: string }).code });
  }
}
