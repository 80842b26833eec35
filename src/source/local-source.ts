import { createReadStream, readFileSync } from "node:fs";
import { opendir, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AccessDeniedError, ConfigError, UnreachableError } from "../errors.js";
import { classifyFsError } from "../failures.js";
import { TRANCHE_DIR } from "../sink/output-name.js";
import { fsCheckError } from "./check-errors.js";
import type { ListOptions, Source, SourceObject } from "./types.js";

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

  /** The folder exists, is a folder, and can be opened. */
  async check(): Promise<void> {
    let st;
    try {
      st = await stat(this.root);
    } catch (err) {
      throw this.rootError(err);
    }
    if (!st.isDirectory()) throw new ConfigError(`source.path ${this.root} is a file; it must be a folder`);
    try {
      await (await opendir(this.root)).close();
    } catch (err) {
      throw this.rootError(err);
    }
  }

  /** The CLI-level error for a root folder that cannot be listed. */
  private rootError(err: unknown): UnreachableError | AccessDeniedError | ConfigError {
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code === "ENOENT") {
      return new UnreachableError(`source folder does not exist: ${this.root}; create it or fix source.path`, { cause: err });
    }
    if (code === "ENOTDIR") return new ConfigError(`source.path ${this.root} is a file, or inside one; it must be a folder`);
    return fsCheckError(err, `cannot list source folder ${this.root}`);
  }

  async *list(o: ListOptions = {}): AsyncIterable<SourceObject[]> {
    const pageSize = this.opts.pageSize ?? 1000;
    const recurse = this.opts.recurse ?? true;
    const after = o.startAfter;
    let page: SourceObject[] = [];
    const start = (o.under ?? "").replace(/\/+$/, "");
    const stack: string[] = [start];
    while (stack.length) {
      const rel = stack.pop()!;
      const full = path.join(this.root, rel);
      let dir;
      try {
        dir = await opendir(full);
      } catch (err) {
        if (rel === "") throw this.rootError(err);
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // removed while listing
        throw classifyFsError(err, { path: full, op: "read", fallback: "job" });
      }
      for await (const ent of dir) {
        const key = rel ? `${rel}/${ent.name}` : ent.name;
        if (ent.isDirectory()) {
          // tranche's own folder of an output (temp files in flight, probes) is never input.
          if (!recurse || (rel === "" && ent.name === TRANCHE_DIR)) continue;
          // Every key under `key/` is below startAfter when startAfter is past that range.
          if (after !== undefined && `${key}/` < after && !after.startsWith(`${key}/`)) continue;
          stack.push(key);
          continue;
        }
        if (!ent.isFile()) continue;
        if (after !== undefined && key <= after) continue;
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

  async folders(under: string): Promise<string[]> {
    const rel = under.replace(/\/+$/, "");
    const out: string[] = [];
    let dir;
    try {
      dir = await opendir(path.join(this.root, rel));
    } catch (err) {
      if (rel === "") throw this.rootError(err);
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw classifyFsError(err, { path: path.join(this.root, rel), op: "read", fallback: "job" });
    }
    for await (const ent of dir) {
      if (ent.isDirectory() && !(rel === "" && ent.name === TRANCHE_DIR)) out.push(rel ? `${rel}/${ent.name}/` : `${ent.name}/`);
    }
    return out.sort();
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
      throw classifyFsError(err, { path: full, op: "read" });
    }
  }

  /** The file's size and time, or null when it does not exist (or is not a file). */
  async stat(key: string): Promise<SourceObject | null> {
    const full = path.join(this.root, key);
    if (path.relative(this.root, full).startsWith("..")) return null;
    try {
      const st = await stat(full);
      if (!st.isFile()) return null;
      const lastModified = Math.floor(st.mtimeMs);
      return { key, size: st.size, lastModified, etag: `${st.size.toString(16)}-${lastModified.toString(16)}` };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return null;
      throw classifyFsError(err, { path: full, op: "read", fallback: "job" });
    }
  }

  async open(key: string): Promise<NodeJS.ReadableStream> {
    const full = path.join(this.root, key);
    const s = createReadStream(full);
    await new Promise<void>((resolve, reject) => {
      s.once("open", () => resolve());
      s.once("error", (err) => reject(classifyFsError(err, { path: full, op: "read" })));
    });
    return s;
  }
}
