import { z } from "zod";
import { writeChunk } from "./lines.js";
import type { Processor, ProcessorContext, ProcessorResult } from "./types.js";

/**
 * Copies the input's bytes unchanged, as stored (gzip stays gzip: `decompress: false`), under the
 * input's own key; `records` counts the chunks written.
 */
async function processCopy(ctx: ProcessorContext): Promise<ProcessorResult> {
  let records = 0;
  for await (const chunk of ctx.input as AsyncIterable<Buffer | string>) {
    if (chunk.length === 0) continue;
    await writeChunk(ctx.output, chunk);
    records++;
  }
  return { records };
}

/** A true copy: the output key is the input key. */
export function copyOutputName(key: string): string {
  return key;
}

const copy: Processor = {
  process: processCopy,
  /** copy takes no options. */
  optionsSchema: z.object({}).strict(),
  outputName: copyOutputName,
  contentType: "application/octet-stream",
  decompress: false,
};

export default copy;
