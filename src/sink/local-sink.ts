import { createWriteStream, renameSync, writeFileSync, type WriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { threadId } from "node:worker_threads";
import type { Sink, SinkWriter } from "./types.js";

/** Unique per process and thread: temp names never collide between writers. */
const TAG = `${process.pid}-${threadId}-${randomBytes(3).toString("hex")}`;

/** Outputs up to this size are kept in memory and written in one blocking call at commit. */
const SMALL_OUTPUT = 1 << 20;

/**
 * Buffers output in memory while it is small; past `SMALL_OUTPUT` it opens the temp file and
 * streams from then on (with backpressure), so memory stays bounded for any output size.
 */
class OutputFile extends Writable {
  private chunks: Buffer[] = [];
  private size = 0;
  private file: WriteStream | undefined;
  bytes = 0;

  constructor(private readonly tmp: string) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.bytes += chunk.length;
    if (this.file) {
      if (this.file.write(chunk)) cb();
      else this.file.once("drain", () => cb());
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size <= SMALL_OUTPUT) return cb();
    this.file = createWriteStream(this.tmp);
    this.file.once("error", (err) => this.destroy(err));
    const buffered = Buffer.concat(this.chunks);
    this.chunks = [];
    if (this.file.write(buffered)) cb();
    else this.file.once("drain", () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.file) return cb();
    this.file.end();
    finished(this.file).then(() => cb(), cb);
  }

  /** After `end`: writes a buffered output to the temp file (streamed ones are there already). */
  flushSync(): void {
    if (!this.file) writeFileSync(this.tmp, this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.file?.destroy();
    cb(err);
  }
}

/**
 * A local folder as a sink. Each object is written to a hidden temporary file next to its final
 * name and renamed on commit, so a reader never sees a partial file and a retry overwrites.
 * Small outputs are written with blocking calls: this runs in worker threads, where that blocks
 * only the thread and saves the thread-pool round trips that dominate small files.
 */
export class LocalSink implements Sink {
  readonly root: string;
  /** Folders known to exist, so that most files cost no mkdir. */
  private readonly made = new Set<string>();
  private seq = 0;
  constructor(readonly uri: string) {
    this.root = uri.startsWith("file://") ? fileURLToPath(uri) : path.resolve(uri);
  }

  async create(key: string): Promise<SinkWriter> {
    const final = path.join(this.root, key);
    if (!final.startsWith(this.root + path.sep)) throw new Error(`output key escapes the output folder: ${key}`);
    const dir = path.dirname(final);
    if (!this.made.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.made.add(dir);
    }
    const tmp = path.join(dir, `.${path.basename(final)}.${TAG}-${(this.seq++).toString(36)}.tmp`);
    const stream = new OutputFile(tmp);
    return {
      stream,
      async commit() {
        if (!stream.writableEnded) stream.end();
        await finished(stream);
        stream.flushSync();
        renameSync(tmp, final);
        return { bytes: stream.bytes, location: final };
      },
      async abort() {
        stream.destroy();
        await rm(tmp, { force: true });
      },
    };
  }
}
