/**
 * Example user processor: reads JSON lines and uppercases each record's `name` field.
 *
 * ── The processor contract (see workers/processors/types.ts) ─────────────────────────────────────
 *
 * Point a job at a processor module by path (relative to the config file), with the compiled `.js`
 * for a TypeScript source like this one (`npm run build` writes dist/examples/processors/uppercase-names.js):
 *
 *     processor: ./dist/examples/processors/uppercase-names.js
 *     processorOptions: { field: name }      # free-form, handed to the processor as ctx.options
 *
 * The module exports `default { process, outputName?, contentType?, decompress? }` (or a named `process`).
 * For each input file a worker thread calls `process(ctx)` with:
 *
 *   ctx.key          input key relative to the source root, e.g. `dt=2024-01-01/part-0001.json.gz`
 *   ctx.partition    its Hive-style partition values, e.g. `{ dt: "2024-01-01" }`
 *   ctx.input        a Readable of the input bytes, already gunzipped (unless `decompress: false`)
 *   ctx.output       a Writable into the output file or S3 object
 *   ctx.options      the job's `processorOptions`
 *   ctx.reportError  records one bad record (`reason`, `{ line }`) and lets processing continue
 *
 * and expects a `{ records }` count back. Rules:
 *
 *   - Stream: a worker thread has a bounded heap, so never read a whole file into memory.
 *   - Respect backpressure: when `output.write()` returns false, wait for "drain"
 *     (`writeChunk` below does this).
 *   - Do not end `ctx.output`: the caller ends it after `process` resolves.
 *   - Bad records → `ctx.reportError(...)` and carry on (a file with more than the job's
 *     `maxBadRecordRatio` of bad records fails as a whole).
 *   - Throwing fails the file as a **file error**: it is retried, and after
 *     `bookmark.deadLetterAfterRuns` runs set aside as a dead letter. For a problem of the job or
 *     its environment (a service down, a missing credential) throw `JobError` from
 *     "tranche/processor" instead: the run fails, nothing is dead-lettered, the files are retried.
 *   - `process` must resolve to `{ records }`; anything else is a job error.
 *   - `outputName(key)` maps an input key to the output key (default: the key itself). It must
 *     be injective: two inputs never share an output. `contentType` sets the output's content type.
 *   - `optionsSchema` (any Standard Schema, e.g. zod) checks ctx.options before anything is leased.
 */
import { readLines, writeChunk } from "../../workers/processors/lines.js";
import type { Processor, ProcessorContext, ProcessorResult } from "../../workers/processors/types.js";

async function processUppercaseNames(ctx: ProcessorContext): Promise<ProcessorResult> {
  const field = typeof ctx.options.field === "string" ? ctx.options.field : "name";
  let records = 0;
  for await (const { line, lineNo } of readLines(ctx.input)) {
    if (line.trim() === "") continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      ctx.reportError(`invalid JSON: ${(err as Error).message}`, { line: lineNo });
      continue;
    }
    if (record === null || typeof record !== "object" || Array.isArray(record)) {
      ctx.reportError(`not a JSON object`, { line: lineNo });
      continue;
    }
    const obj = record as Record<string, unknown>;
    const value = obj[field];
    if (typeof value !== "string") {
      ctx.reportError(value === undefined ? `no "${field}" field` : `"${field}" is not a string`, { line: lineNo });
      continue;
    }
    obj[field] = value.toUpperCase();
    await writeChunk(ctx.output, JSON.stringify(obj) + "\n");
    records++;
  }
  // ctx.output is deliberately not ended: the caller does that.
  return { records };
}

const uppercaseNames: Processor = {
  process: processUppercaseNames,
  outputName: (key) => `${key}.ndjson`,
  contentType: "application/x-ndjson",
};

export default uppercaseNames;
