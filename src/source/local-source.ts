import { createReadStream, readFileSync } from "node:fs";
import { opendir, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Source, SourceObject } from "./types.js";

/**
 * A local folder as a source. Walks the tree depth-first with `opendir` (which streams entries),
 * yielding pages of `pageSize` objects, so a huge folder is never held in memory at once.
 */
export class LocalSource implements Source {
  readonly root: string;
  constructor(
    readonly uri: string,
    private readonly opts: { pageSize?: number; recurse?: boolean } = {},
  ) {
    this.root = uri.startsWith("file://") ? fileURLToPath(uri) : path.resolve(uri);
  }

  async *list(): AsyncIterable<SourceObject[]> {
    const pageSize = this.opts.pageSize ?? 1000;
    const recurse = this.opts.recurse ?? true;
    let page: SourceObject[] = [];
    const stack: string[] = [""];
    while (stack.length) {
      const rel = stack.pop()!;
      let dir;
      try {
        dir = await opendir(path.join(this.root, rel));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT" && rel !== "") continue; // removed while listing
        if ((err as NodeJS.ErrnoException).code === "ENOENT") {
          throw Object.assign(new Error(`source folder does not exist: ${this.root}`), { code: "ENOENT" });
        }
        throw err;
      }
      for await (const ent of dir) {
        const key = rel ? `${rel}/${ent.name}` : ent.name;
        if (ent.isDirectory()) {
          if (recurse) stack.push(key);
          continue;
        }
        if (!ent.isFile()) continue;
        let st;
        try {
          st = await stat(path.join(this.root, key));
        } catch {
          continue; // deleted between readdir and stat
        }
        const lastModified = Math.floor(st.mtimeMs);
        page.push({ key, size: st.size, lastModified, etag: `${st.size.toString(16)}-${lastModified.toString(16)}` });
        if (page.length >= pageSize) {
          yield page;
          page = [];
        }
      }
    }
    if (page.length) yield page;
  }

  /**
   * Reads a small file in one blocking call. It runs in a worker thread, where blocking stops only
   * that thread, and it saves the four thread-pool round trips of an async read.
   */
  async readSmall(key: string): Promise<Buffer> {
    const full = path.join(this.root, key);
    try {
      return readFileSync(full);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw Object.assign(new Error(`input file no longer exists: ${full}`), { code: "ENOENT" });
      }
      throw err;
    }
  }

  async open(key: string): Promise<NodeJS.ReadableStream> {
    const full = path.join(this.root, key);
    const s = createReadStream(full);
    await new Promise<void>((resolve, reject) => {
      s.once("open", () => resolve());
      s.once("error", (err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") reject(Object.assign(new Error(`input file no longer exists: ${full}`), { code: "ENOENT" }));
        else reject(err);
      });
    });
    return s;
  }
}
