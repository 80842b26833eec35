/**
 * Loads processors inside a worker thread (as they run) and validates their options. A processor
 * or transform that does not load, or options its schema refuses, are job errors: no file is to
 * blame, and none may be dead-lettered for it.
 */
import { pathToFileURL } from "node:url";
import { JobError, isTypedFailure, messageOf } from "../src/failures.js";
import type { Processor, StandardSchemaV1 } from "./processors/types.js";

/** Built-in processors, by name. */
export const BUILT_IN: Record<string, string> = {
  ndjson: "./processors/ndjson.js",
  csv: "./processors/csv.js",
  copy: "./processors/copy.js",
  sql: "./processors/sql.js",
};

const loaded = new Map<string, Promise<Processor>>();

/** Loads a processor once per thread; a failed load is not cached, so a later task tries again. */
export function loadProcessor(spec: string): Promise<Processor> {
  let p = loaded.get(spec);
  if (!p) {
    p = importProcessor(spec);
    loaded.set(spec, p);
    p.catch(() => loaded.delete(spec));
  }
  return p;
}

async function importProcessor(spec: string): Promise<Processor> {
  const url = BUILT_IN[spec] ? new URL(BUILT_IN[spec], import.meta.url).href : pathToFileURL(spec).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new JobError(
      "E_PROCESSOR",
      `cannot load processor ${spec}: ${messageOf(err)}; give a built-in name (${Object.keys(BUILT_IN).join(", ")}) or a path to a JavaScript module`,
      { cause: err, retryable: false },
    );
  }
  const d = mod.default as Partial<Processor> | undefined;
  if (d && typeof d === "object" && typeof d.process === "function") return d as Processor;
  if (typeof mod.process === "function") {
    return {
      process: mod.process as Processor["process"],
      outputName: mod.outputName as Processor["outputName"],
      contentType: mod.contentType as string | undefined,
      optionsSchema: mod.optionsSchema as StandardSchemaV1 | undefined,
      preflight: mod.preflight as Processor["preflight"],
      decompress: mod.decompress as boolean | undefined,
    };
  }
  throw new JobError(
    "E_PROCESSOR",
    `processor ${spec} exports no process function; export default { process(ctx) { … } } (see examples/processors)${typeof mod.default === "function" ? "; its default export is a bare function: is it a transform? Transforms go in processorOptions.transform of the ndjson processor" : ""}`,
    { retryable: false },
  );
}

/** A refused option: the path inside processorOptions (e.g. `transfrom`) and why. */
export class OptionsError extends JobError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super("E_CONFIG", message, { retryable: false });
  }
}

const validated = new Map<string, Promise<Record<string, unknown>>>();

/**
 * Validates options with the processor's `optionsSchema` (Standard Schema v1), once per thread and
 * options value. Throws {@link OptionsError} naming the first refused option.
 */
export function validateOptions(spec: string, processor: Processor, options: Record<string, unknown>): Promise<Record<string, unknown>> {
  const schema = processor.optionsSchema;
  if (!schema) return Promise.resolve(options);
  const key = `${spec}\u0000${JSON.stringify(options)}`;
  let p = validated.get(key);
  if (!p) {
    p = (async () => {
      const r = await schema["~standard"].validate(options);
      if (!r.issues) return (r.value ?? options) as Record<string, unknown>;
      const first = r.issues[0]!;
      const field = (first.path ?? []).map((s) => String(typeof s === "object" ? s.key : s)).join(".");
      throw new OptionsError(field, `processor ${spec} refuses processorOptions${field ? `.${field}` : ""}: ${first.message}`);
    })();
    validated.set(key, p);
    p.catch(() => validated.delete(key));
  }
  return p;
}

/** Wraps an error thrown by a processor's own preflight hook: always a job error. */
export function asPreflightFailure(spec: string, err: unknown): JobError {
  if (isTypedFailure(err) && err.kind === "job") return err as JobError;
  return new JobError("E_PROCESSOR", `processor ${spec} failed its preflight: ${messageOf(err)}`, { cause: err, retryable: false });
}
