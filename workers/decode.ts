/**
 * Turns a source's raw bytes into the processor's input: gunzipped when the bytes start with the
 * gzip magic number (unless the processor wants them as stored). Errors are typed by where they
 * come from, never by their text: the source stream breaking off is a job error (the store or the
 * network), the decompressor refusing the bytes is a file error (corrupt or truncated gzip).
 */
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { FileError, JobError, isTypedFailure, messageOf, type TypedFailure } from "../src/failures.js";

export interface DecodedInput {
  input: Readable;
  /** The first failure of the source stream or the decompressor, typed; undefined while all is well. */
  failure(): TypedFailure | undefined;
}

function isGzip(b: Buffer): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

class Failures {
  first: TypedFailure | undefined;
  note(e: TypedFailure): TypedFailure {
    this.first ??= e;
    return e;
  }
}

function sourceFailure(key: string, err: unknown): TypedFailure {
  if (isTypedFailure(err)) return err;
  return new JobError("E_SOURCE_READ", `reading ${key} broke off: ${messageOf(err)}; it is retried`, { cause: err });
}

function gunzipped(raw: Readable, key: string, f: Failures): Readable {
  // 256 KiB output chunks: gunzipping a large input takes 40% of the CPU time it takes with zlib's 16 KiB.
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  raw.on("error", (e) => gunzip.destroy(f.note(sourceFailure(key, e))));
  gunzip.on("error", (e) => {
    // The decompressor's own error (not one handed on from the source) is the file's fault.
    if (!isTypedFailure(e)) f.note(new FileError("E_CORRUPT", `${key}: corrupt or truncated gzip: ${messageOf(e)}`, { cause: e }));
  });
  return raw.pipe(gunzip);
}

/** The input of a file read whole (small local files): gunzipped when it is gzip. */
export function decodeBuffer(buf: Buffer, key: string, decompress: boolean): DecodedInput {
  const f = new Failures();
  const raw = Readable.from(buf.length ? [buf] : [], { objectMode: false });
  const input = decompress && isGzip(buf) ? gunzipped(raw, key, f) : raw;
  return { input: quiet(input), failure: () => f.first };
}

/** The input of a streamed file: peeks at the first chunk to detect gzip. */
export async function decodeStream(raw: Readable, key: string, decompress: boolean): Promise<DecodedInput> {
  const f = new Failures();
  let head: Buffer | null;
  try {
    head = await firstChunk(raw);
  } catch (err) {
    throw f.note(sourceFailure(key, err));
  }
  if (head === null) return { input: Readable.from([]), failure: () => f.first };
  // Hand the peeked chunk on first, then the rest. (`unshift` loses data when the first chunk
  // was also the last one, as with small S3 bodies.)
  const whole = Readable.from(
    (async function* () {
      yield head;
      try {
        for await (const chunk of raw) yield chunk as Buffer;
      } catch (err) {
        throw f.note(sourceFailure(key, err));
      }
    })(),
    { objectMode: false },
  );
  const input = decompress && isGzip(head) ? gunzipped(whole, key, f) : whole;
  return { input: quiet(input), failure: () => f.first };
}

/** Keeps a stream error from becoming an uncaught exception; readers see it through iteration. */
function quiet(input: Readable): Readable {
  input.on("error", () => undefined);
  return input;
}

function firstChunk(raw: Readable): Promise<Buffer | null> {
  return new Promise<Buffer | null>((resolve, reject) => {
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
}
