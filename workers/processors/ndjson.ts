import path from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { JobError } from "../../src/failures.js";
import { LineWriter, readLineChunks } from "./lines.js";
import type { Processor, ProcessorContext, ProcessorResult } from "./types.js";

/** What a transform module's default export (or named `transform` export) must be. */
export type TransformFn = (record: unknown, meta: { key: string; partition: Record<string, string>; line: number }) => unknown;

const EXPECTED =
  'an ES module whose default export (or named export "transform") is a function ' +
  "(record, { key, partition, line }) => record | record[] | null | undefined (or a Promise of one)";

/** Loaded transforms, per resolved path, for the life of the worker thread. */
const transforms = new Map<string, Promise<TransformFn>>();

/** Loads (once per path) the transform module named by `ctx.options.transform`. */
export function loadTransform(spec: string): Promise<TransformFn> {
  const resolved = path.resolve(process.cwd(), spec);
  let loading = transforms.get(resolved);
  if (!loading) {
    loading = importTransform(spec, resolved);
    transforms.set(resolved, loading);
    // A failed load is not cached, so a retry of the file tries again.
    loading.catch(() => transforms.delete(resolved));
  }
  return loading;
}

async function importTransform(spec: string, resolved: string): Promise<TransformFn> {
  const where = spec === resolved ? `"${resolved}"` : `"${spec}" (resolved to ${resolved})`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
  } catch (err) {
    throw new JobError("E_TRANSFORM", `ndjson: cannot load transform module ${where}: ${messageOf(err)}; expected ${EXPECTED}`, {
      cause: err,
      retryable: false,
    });
  }
  const fn = pickFunction(mod);
  if (!fn) {
    throw new JobError("E_TRANSFORM", `ndjson: transform module ${where} has no function export; expected ${EXPECTED}`, {
      retryable: false,
    });
  }
  return fn;
}

function pickFunction(mod: Record<string, unknown>): TransformFn | undefined {
  const def = mod.default;
  if (typeof def === "function") return def as TransformFn;
  if (typeof mod.transform === "function") return mod.transform as TransformFn;
  // A CommonJS module imported as ESM: `module.exports = { transform }`.
  if (def && typeof def === "object" && typeof (def as { transform?: unknown }).transform === "function") {
    return (def as { transform: TransformFn }).transform;
  }
  return undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function transformOption(options: Record<string, unknown>): string | undefined {
  const t = options.transform;
  if (t === undefined || t === null || t === "") return undefined;
  if (typeof t !== "string") {
    throw new JobError("E_CONFIG", `ndjson: processorOptions.transform must be a path to a module (string), got ${typeof t}`, {
      retryable: false,
    });
  }
  return t;
}

async function processNdjson(ctx: ProcessorContext): Promise<ProcessorResult> {
  const spec = transformOption(ctx.options);
  const transform = spec === undefined ? undefined : await loadTransform(spec);
  // Transforms get a copy, so they cannot change the caller's partition object.
  const partition = Object.freeze({ ...ctx.partition });
  const writer = new LineWriter(ctx.output);
  let records = 0;

  // Buffers one record's JSON line; returns true when the writer wants a flush.
  const emit = (record: unknown, line: number): boolean => {
    let text: string | undefined;
    try {
      text = JSON.stringify(record);
    } catch (err) {
      ctx.reportError(`cannot serialize record: ${messageOf(err)}`, { line });
      return false;
    }
    // `undefined`, functions and symbols have no JSON form: nothing to write.
    if (text === undefined) return false;
    records++;
    return writer.push(text + "\n");
  };

  for await (const { lines, firstLineNo } of readLineChunks(ctx.input)) {
    let flush = false;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const lineNo = firstLineNo + i;
      if (line.trim() === "") continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch (err) {
        ctx.reportError(`invalid JSON: ${messageOf(err)}`, { line: lineNo });
        continue;
      }
      if (!transform) {
        flush = emit(record, lineNo) || flush;
        continue;
      }
      let result: unknown;
      try {
        result = await transform(record, { key: ctx.key, partition, line: lineNo });
      } catch (err) {
        ctx.reportError(`transform failed: ${messageOf(err)}`, { line: lineNo });
        continue;
      }
      if (result === null || result === undefined) continue;
      if (Array.isArray(result)) {
        for (const item of result) if (item !== undefined) flush = emit(item, lineNo) || flush;
      } else {
        flush = emit(result, lineNo) || flush;
      }
      if (flush) {
        await writer.flush();
        flush = false;
      }
    }
    if (flush) await writer.flush();
  }

  await writer.flush();
  return { records };
}

/**
 * The whole input key plus `.ndjson` (`dt=1/a.json.gz` → `dt=1/a.json.gz.ndjson`): injective, so
 * `a.json`, `a.json.gz` and `a.jsonl` side by side get three outputs.
 */
export function ndjsonOutputName(key: string): string {
  return `${key}.ndjson`;
}

/** ndjson's options: `transform`, a path to a transform module. Unknown keys are refused. */
export const ndjsonOptions = z.object({ transform: z.string().min(1).optional() }).strict();

const ndjson: Processor = {
  process: processNdjson,
  optionsSchema: ndjsonOptions,
  /** Loads the transform before anything is leased: a missing module is a job error, not 20 dead letters. */
  async preflight(options) {
    const spec = transformOption(options);
    if (spec !== undefined) await loadTransform(spec);
  },
  outputName: ndjsonOutputName,
  contentType: "application/x-ndjson",
};

export default ndjson;
