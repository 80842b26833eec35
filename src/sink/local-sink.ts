import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { finished } from "node:stream/promises";
import type { Sink, SinkWriter } from "./types.js";

/**
 * A local folder as a sink. Each object is written to a hidden temporary file next to its final
 * name and renamed on commit, so a reader never sees a partial file and a retry overwrites.
 */
export class LocalSink implements Sink {
  readonly root: string;
  constructor(readonly uri: string) {
    this.root = uri.startsWith("file://") ? fileURLToPath(uri) : path.resolve(uri);
  }

  async create(key: string): Promise<SinkWriter> {
    const final = path.join(this.root, key);
    if (!final.startsWith(this.root + path.sep)) throw new Error(`output key escapes the output folder: ${key}`);
    await mkdir(path.dirname(final), { recursive: true });
    const tmp = path.join(path.dirname(final), `.${path.basename(final)}.${randomBytes(4).toString("hex")}.tmp`);
    const stream = createWriteStream(tmp);
    return {
      stream,
      async commit() {
        if (!stream.writableEnded) stream.end();
        await finished(stream);
        await rename(tmp, final);
        return { bytes: (await stat(final)).size, location: final };
      },
      async abort() {
        stream.destroy();
        await rm(tmp, { force: true });
      },
    };
  }
}
