import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { threadId } from "node:worker_threads";

/** Unique per process and thread: temp names never collide between writers. */
const TAG = `${process.pid}-${threadId}-${randomBytes(3).toString("hex")}`;
import { fileURLToPath } from "node:url";
import { finished } from "node:stream/promises";
import type { Sink, SinkWriter } from "./types.js";

/**
 * A local folder as a sink. Each object is written to a hidden temporary file next to its final
 * name and renamed on commit, so a reader never sees a partial file and a retry overwrites.
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
    const stream = createWriteStream(tmp);
    let bytes = 0;
    const write = stream.write.bind(stream);
    stream.write = ((chunk: Buffer | string, ...rest: never[]) => {
      bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
      return write(chunk, ...rest);
    }) as typeof stream.write;
    return {
      stream,
      async commit() {
        if (!stream.writableEnded) stream.end();
        await finished(stream);
        await rename(tmp, final);
        return { bytes, location: final };
      },
      async abort() {
        stream.destroy();
        await rm(tmp, { force: true });
      },
    };
  }
}
