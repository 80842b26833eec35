import { StringDecoder } from "node:string_decoder";
import { z } from "zod";
import { CsvParseError, CsvParser, type CsvRow } from "./csv-parser.js";
import { LineWriter, stripGz } from "./lines.js";
import type { Processor, ProcessorContext, ProcessorResult } from "./types.js";

/**
 * `processorOptions.delimiter` if set (one character); otherwise a tab for `.tsv` / `.tsv.gz` keys
 * and a comma for everything else.
 */
function delimiterFor(ctx: ProcessorContext): string {
  const d = ctx.options.delimiter;
  if (d === undefined || d === null) return /\.tsv$/i.test(stripGz(ctx.key)) ? "\t" : ",";
  if (typeof d !== "string" || d.length !== 1) {
    throw new Error(`csv: processorOptions.delimiter must be a single character, got ${JSON.stringify(d)}`);
  }
  return d;
}

async function processCsv(ctx: ProcessorContext): Promise<ProcessorResult> {
  const parser = new CsvParser({ delimiter: delimiterFor(ctx) });
  const decoder = new StringDecoder("utf8");
  const writer = new LineWriter(ctx.output);
  let header: string[] | undefined;
  let records = 0;
  let first = true;

  const handle = async (rows: CsvRow[]): Promise<void> => {
    for (const row of rows) {
      if (!header) {
        header = row;
        continue;
      }
      if (row.length !== header.length) {
        ctx.reportError(`row has ${row.length} fields, header has ${header.length}`, { line: row.line });
        continue;
      }
      // No prototype, so a column named `__proto__` is an ordinary key.
      const record = Object.create(null) as Record<string, string>;
      for (let k = 0; k < header.length; k++) record[header[k]!] = row[k]!;
      await writer.write(JSON.stringify(record) + "\n");
      records++;
    }
  };

  const feed = async (text: string): Promise<void> => {
    if (text.length === 0) return;
    if (first) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // UTF-8 byte order mark
    }
    await handle(parser.push(text));
  };

  for await (const chunk of ctx.input as AsyncIterable<Buffer | string>) {
    await feed(typeof chunk === "string" ? chunk : decoder.write(chunk));
  }
  await feed(decoder.end());

  let last: CsvRow[] = [];
  try {
    last = parser.end();
  } catch (err) {
    if (!(err instanceof CsvParseError)) throw err;
    ctx.reportError(err.message, { line: err.line });
  }
  await handle(last);
  await writer.flush();
  return { records };
}

/**
 * The whole input key plus `.ndjson` (`dt=1/a.csv.gz` → `dt=1/a.csv.gz.ndjson`): injective, so
 * `x.csv` and `x.tsv` side by side get two outputs.
 */
export function csvOutputName(key: string): string {
  return `${key}.ndjson`;
}

/** csv's options: `delimiter`, one character (default: tab for `.tsv`, else comma). Unknown keys are refused. */
export const csvOptions = z.object({ delimiter: z.string().length(1, "must be a single character").optional() }).strict();

const csv: Processor = {
  process: processCsv,
  optionsSchema: csvOptions,
  outputName: csvOutputName,
  contentType: "application/x-ndjson",
};

export default csv;
