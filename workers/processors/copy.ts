import { z } from "zod";
import { stripGz, writeChunk } from "./lines.js";
import type { Processor, ProcessorContext, ProcessorResult } from "./types.js";

/** Copies the (already gunzipped) input bytes unchanged; `records` counts the chunks written. */
async function processCopy(ctx: ProcessorContext): Promise<ProcessorResult> {
  let records = 0;
  for await (const chunk of ctx.input as AsyncIterable<Buffer | string>) {
    if (chunk.length === 0) continue;
    await writeChunk(ctx.output, chunk);
    records++;
  }
  return { records };
}

const copy: Processor = {
  process: processCopy,
  /** copy takes no options. */
  optionsSchema: z.object({}).strict(),
  outputName: stripGz,
  contentType: "application/octet-stream",
};

export default copy;
