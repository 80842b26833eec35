import { closeSync, createWriteStream, fsyncSync, openSync, renameSync, writeFileSync, type WriteStream } from "node:fs";
import { mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { threadId } from "node:worker_threads";
import { classifyFsError, messageOf, type TypedFailure } from "../failures.js";
import { fsCheckError } from "../source/check-errors.js";
import { checkOutputKey, fitOutputKey, LOCAL_OUTPUT_LIMITS, TRANCHE_DIR } from "./output-name.js";
import type { Sink, SinkWriter } from "./types.js";
import { processAlive } from "../process-alive.js";

/** Outputs up to this size are kept in memory and written in one blocking call at commit. */
const SMALL_OUTPUT = 1 << 20;

/** Temp files live in `<output root>/_tranche/tmp/`, never next to the final name. */
const TMP_DIR = path.join(TRANCHE_DIR, "tmp");

/** Abandoned temp files older than this are swept whoever wrote them. */
export const DEFAULT_TEMP_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** This host's name as it goes into temp names: safe characters, at most 64. */
const HOST =
  os
    .hostname()
    .replace(/[^A-Za-z0-9_.-]/g, "-")
    .slice(0, 64) || "host";

/** Unique per process and thread: temp names never collide between writers. */
const TAG = `${HOST}.${process.pid}.${threadId}.${randomBytes(4).toString("hex")}`;

/**
 * The writer of a temp file, parsed from its name `<host>.<pid>.<threadId>.<random>.<seq>.tmp`
 * (the host may contain dots, so it is read from the right).
 */
function tempOwner(name: string): { host: string; pid: number } | undefined {
  const parts = name.split(".");
  if (parts.length < 6 || parts.at(-1) !== "tmp") return undefined;
  const pid = Number(parts.at(-5));
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { host: parts.slice(0, -5).join("."), pid };
}

/** When this process started (epoch ms): a temp file with its pid last written before then is not its own. */
const PROCESS_STARTED = Date.now() - process.uptime() * 1000;

/**
 * Removes abandoned temp files in `<root>/_tranche/tmp/`: those this host wrote whose process is
 * gone, and any not written to for `maxAgeMs` (default 24 h; for other hosts' files, where
 * liveness cannot be checked). A temp file of a live process of this host is never removed. A
 * file with this process's own pid written before it started belongs to an earlier process that
 * had the same pid (a restarted container, where tranche is often pid 1) and is removed; a pid
 * reused by another live process keeps a dead writer's file until that pid is free.
 * Returns how many were removed.
 */
export async function sweepTempFiles(root: string, opts: { maxAgeMs?: number; now?: number } = {}): Promise<number> {
  const maxAgeMs = opts.maxAgeMs ?? DEFAULT_TEMP_MAX_AGE_MS;
  const now = opts.now ?? Date.now();
  const dir = path.join(root, TMP_DIR);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw classifyFsError(err, { path: dir, op: "write" });
  }
  /** Last write time of a regular file, or undefined when it is gone or not a file. */
  const writtenAt = async (file: string): Promise<number | undefined> => {
    try {
      const st = await stat(file);
      return st.isFile() ? st.mtimeMs : undefined;
    } catch {
      return undefined;
    }
  };
  let removed = 0;
  for (const name of names) {
    const file = path.join(dir, name);
    const owner = tempOwner(name);
    if (owner !== undefined && owner.host === HOST) {
      if (owner.pid === process.pid) {
        const t = await writtenAt(file);
        if (t === undefined || t >= PROCESS_STARTED - 1000) continue; // this process's own
      } else if (processAlive(owner.pid)) {
        continue;
      }
    } else {
      const t = await writtenAt(file);
      if (t === undefined || now - t < maxAgeMs) continue;
    }
    try {
      await rm(file, { force: true });
      removed++;
    } catch {
      // Not ours to remove (permissions): sweeping is best effort.
    }
  }
  return removed;
}

/** fsyncs a folder, so that a rename into it survives a crash. */
function syncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } catch (err) {
    // Some file systems cannot fsync a folder; the rename is still atomic there.
    if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
  } finally {
    closeSync(fd);
  }
}

/**
 * Buffers output in memory while it is small; past `SMALL_OUTPUT` it opens the temp file and
 * streams from then on (with backpressure), so memory stays bounded for any output size. A write
 * error destroys the stream with the classified failure (e.g. `E_DISK_FULL`).
 */
class OutputFile extends Writable {
  private chunks: Buffer[] = [];
  private size = 0;
  private file: WriteStream | undefined;
  private fileClosed: Promise<void> = Promise.resolve();
  bytes = 0;

  constructor(
    private readonly tmp: string,
    private readonly classify: (err: unknown) => TypedFailure,
  ) {
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
    // `flush`: the stream fsyncs the file before it closes it.
    const file = createWriteStream(this.tmp, { flush: true });
    this.file = file;
    this.fileClosed = new Promise((resolve) => file.once("close", resolve));
    file.once("error", (err) => this.destroy(this.classify(err)));
    const buffered = Buffer.concat(this.chunks);
    this.chunks = [];
    if (file.write(buffered)) cb();
    else file.once("drain", () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.file) return cb();
    // Done once the file is written, fsynced and closed; an error destroys this stream instead.
    this.file.once("close", () => {
      if (!this.destroyed) cb();
    });
    this.file.end();
  }

  /** After `end`: writes and fsyncs a buffered output (streamed ones are), then renames it to `final`. */
  publishSync(final: string): void {
    if (!this.file) {
      const fd = openSync(this.tmp, "w");
      try {
        writeFileSync(fd, this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    renameSync(this.tmp, final);
  }

  /** Resolves once no file descriptor of the temp file is open (so that removing it is final). */
  fileReleased(): Promise<void> {
    return this.fileClosed;
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.file?.destroy();
    cb(err);
  }
}

/**
 * A local folder as a sink. Each object is written to a temp file in `<root>/_tranche/tmp/`
 * (short unique names, so a long output name cannot make the temp name too long), fsynced, renamed
 * to its final name on commit, and the folder fsynced: a reader never sees a partial file, a
 * commit survives a crash, and a retry overwrites. Small outputs are written with blocking calls:
 * this runs in worker threads, where that blocks only the thread and saves the thread-pool round
 * trips that dominate small files. Errors are classified (`classifyFsError`): a full disk is a
 * `JobError` `E_DISK_FULL`, and a failed create or commit leaves no temp file.
 */
export class LocalSink implements Sink {
  readonly root: string;
  /** Folders known to exist, so that most files cost no mkdir. */
  private readonly made = new Set<string>();
  private seq = 0;
  private readonly limits: { maxSegmentBytes: number; maxKeyBytes: number };

  constructor(readonly uri: string) {
    this.root = uri.startsWith("file://") ? fileURLToPath(uri) : path.resolve(uri);
    // PATH_MAX counts the whole path: the root, a separator and the terminating NUL.
    this.limits = { ...LOCAL_OUTPUT_LIMITS, maxKeyBytes: LOCAL_OUTPUT_LIMITS.maxKeyBytes - Buffer.byteLength(this.root) - 2 };
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.made.has(dir)) return;
    await mkdir(dir, { recursive: true });
    this.made.add(dir);
  }

  async create(key: string, _contentType?: string, o: { internal?: boolean } = {}): Promise<SinkWriter> {
    checkOutputKey(key, o);
    const fitted = fitOutputKey(key, this.limits);
    const final = path.join(this.root, fitted);
    const classify = (err: unknown) => classifyFsError(err, { path: final, op: "write" });
    const dir = path.dirname(final);
    const tmpDir = path.join(this.root, TMP_DIR);
    try {
      await this.ensureDir(tmpDir);
      await this.ensureDir(dir);
    } catch (err) {
      throw classify(err);
    }
    const tmp = path.join(tmpDir, `${TAG}.${(this.seq++).toString(36)}.tmp`);
    const stream = new OutputFile(tmp, classify);
    const made = this.made;
    const discard = async () => {
      if (!stream.destroyed) stream.destroy();
      await stream.fileReleased();
      await rm(tmp, { force: true });
    };
    return {
      stream,
      async commit() {
        try {
          if (!stream.writableEnded) stream.end();
          await finished(stream);
          stream.publishSync(final);
          syncDir(dir);
          return { bytes: stream.bytes, location: final, key: fitted };
        } catch (err) {
          await discard().catch(() => undefined);
          // A folder removed under us is made again by the next file.
          made.delete(dir);
          made.delete(tmpDir);
          throw classify(err);
        }
      },
      async abort() {
        await discard();
      },
    };
  }

  /**
   * Creates the root if missing, writes `_tranche/probe-<random>` and removes it. A failure to
   * write rejects with `AccessDeniedError` (EACCES, EPERM, EROFS) or `UnreachableError` (anything
   * else, e.g. the root is a file), naming the folder; a failure to remove is only a warning.
   */
  async probe(): Promise<{ warning?: string }> {
    const file = path.join(this.root, TRANCHE_DIR, `probe-${randomBytes(6).toString("hex")}`);
    try {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, "tranche probe\n");
    } catch (err) {
      throw fsCheckError(err, `cannot write to output folder ${this.root}`);
    }
    try {
      await rm(file);
    } catch (err) {
      return { warning: `wrote but could not remove the probe file ${file}: ${messageOf(err)}` };
    }
    return {};
  }

  /** See {@link sweepTempFiles}. */
  sweepTempFiles(opts: { maxAgeMs?: number } = {}): Promise<number> {
    return sweepTempFiles(this.root, opts);
  }
}
