import type { Readable, Writable } from "node:stream";
import { StringDecoder } from "node:string_decoder";

const CR = 13;
const BOM = "\uFEFF";

/**
 * Splits a byte (or string) stream into lines without buffering the whole input.
 *
 * - Lines end at `\n`; a `\r` right before it is stripped (CRLF input).
 * - A last line without a trailing newline is still yielded; a trailing newline does not yield an extra empty line.
 * - Bytes are decoded as UTF-8 with a `StringDecoder`, so multi-byte characters split across chunks stay intact.
 * - A UTF-8 byte order mark at the very start of the input is dropped.
 * - `lineNo` is 1-based and counts every physical line, including blank ones.
 */
export async function* readLines(input: Readable): AsyncGenerator<{ line: string; lineNo: number }> {
  for await (const { lines, firstLineNo } of readLineChunks(input)) {
    for (let i = 0; i < lines.length; i++) yield { line: lines[i]!, lineNo: firstLineNo + i };
  }
}

/**
 * Like `readLines`, but yields the complete lines of each input chunk at once (same rules), so a
 * caller pays one await per chunk instead of one per line. Line i of a chunk is line
 * `firstLineNo + i` of the input.
 */
export async function* readLineChunks(input: Readable): AsyncGenerator<{ lines: string[]; firstLineNo: number }> {
  const decoder = new StringDecoder("utf8");
  // Pieces of the current, not yet terminated line (a line may span many chunks).
  let pending: string[] = [];
  let lineNo = 0;
  let first = true;

  function split(text: string): string[] {
    if (first && text.length > 0) {
      first = false;
      if (text.startsWith(BOM)) text = text.slice(1);
    }
    const out: string[] = [];
    let start = 0;
    for (let nl = text.indexOf("\n", start); nl !== -1; nl = text.indexOf("\n", start)) {
      let line = text.slice(start, nl);
      if (pending.length > 0) {
        pending.push(line);
        line = pending.join("");
        pending = [];
      }
      start = nl + 1;
      out.push(stripCR(line));
    }
    if (start < text.length) pending.push(text.slice(start));
    return out;
  }

  const emit = (lines: string[]) => {
    const firstLineNo = lineNo + 1;
    lineNo += lines.length;
    return { lines, firstLineNo };
  };
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const text = typeof chunk === "string" ? chunk : decoder.write(chunk);
    if (text.length > 0) {
      const lines = split(text);
      if (lines.length) yield emit(lines);
    }
  }
  const tail = decoder.end();
  const rest = tail.length > 0 ? split(tail) : [];
  if (pending.length > 0) {
    rest.push(stripCR(pending.join("")));
    pending = [];
  }
  if (rest.length) yield emit(rest);
}

function stripCR(line: string): string {
  return line.length > 0 && line.charCodeAt(line.length - 1) === CR ? line.slice(0, -1) : line;
}

/**
 * Writes one chunk and, when the stream asks for it (`write` returned false), waits for `drain`.
 * Rejects if the stream errors, is already destroyed/ended, or closes before draining.
 */
export async function writeChunk(output: Writable, chunk: string | Buffer): Promise<void> {
  if (output.errored) throw output.errored;
  if (output.destroyed || output.writableEnded) {
    throw new Error("cannot write: the output stream is already closed");
  }
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (err?: Error | null): void => {
      if (settled) return;
      settled = true;
      output.off("drain", onDrain);
      output.off("error", onError);
      output.off("close", onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => settle();
    const onError = (err: Error): void => settle(err);
    const onClose = (): void => settle(output.errored ?? new Error("the output stream closed before it drained"));
    output.on("error", onError);
    output.on("close", onClose);
    const ok = output.write(chunk, (err) => {
      if (err) settle(err);
    });
    if (ok) settle();
    else output.on("drain", onDrain);
  });
}

/**
 * Collects small strings (typically one JSON line each) and hands them to {@link writeChunk}
 * as UTF-8 buffers of about `batchChars` characters, so a file of tiny records does not cost one
 * stream write per record. Backpressure is respected on each flush. Call {@link flush} at the end.
 */
export class LineWriter {
  readonly #output: Writable;
  readonly #batchChars: number;
  #parts: string[] = [];
  #size = 0;

  constructor(output: Writable, batchChars = 64 * 1024) {
    this.#output = output;
    this.#batchChars = batchChars;
  }

  async write(text: string): Promise<void> {
    if (this.push(text)) await this.flush();
  }

  /** Buffers text without waiting; returns true when the buffer is full and `flush()` is due. */
  push(text: string): boolean {
    this.#parts.push(text);
    this.#size += text.length;
    return this.#size >= this.#batchChars;
  }

  async flush(): Promise<void> {
    if (this.#size === 0) return;
    const text = this.#parts.length === 1 ? this.#parts[0]! : this.#parts.join("");
    this.#parts = [];
    this.#size = 0;
    await writeChunk(this.#output, Buffer.from(text, "utf8"));
  }
}

/** Strips a trailing `.gz` (any case) from a key. */
export function stripGz(key: string): string {
  return key.replace(/\.gz$/i, "");
}
