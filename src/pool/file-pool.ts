import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import type { FileResult, FileTask } from "./task.js";
import { utilizationSources } from "../metrics/registry.js";

/** The package root (the folder holding package.json), from the compiled or the source tree. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find tranche's package.json");
    dir = up;
  }
  return dir;
}

/** The compiled worker-thread entry (`npm run build` makes it). */
export function threadEntry(): string {
  const f = path.join(packageRoot(), "dist", "workers", "thread.js");
  if (!existsSync(f)) throw new Error(`worker thread entry ${f} is missing; run 'npm run build' (npm ci does it)`);
  return f;
}

export interface FilePoolOptions {
  /** Worker threads. Default 2. */
  threads?: number;
  /** V8 old-generation heap limit per thread in MiB. Default 256. */
  maxOldGenerationSizeMb?: number;
  /**
   * Files one thread works on at once (they share its heap). Default 1: a thread that runs out of
   * memory then fails only its own file. Raise it for small, I/O-bound files.
   */
  filesPerThread?: number;
}

/**
 * A Piscina pool of worker threads, each under a V8 heap limit. A thread that runs out of memory
 * fails only its own file (with a clear error) and Piscina replaces it.
 */
export class FilePool {
  private readonly pool: Piscina<FileTask, FileResult>;
  readonly threads: number;
  readonly maxOldGenerationSizeMb: number;
  readonly filesPerThread: number;

  constructor(opts: FilePoolOptions = {}) {
    this.threads = opts.threads ?? 2;
    this.maxOldGenerationSizeMb = opts.maxOldGenerationSizeMb ?? 256;
    this.filesPerThread = opts.filesPerThread ?? 1;
    this.pool = new Piscina<FileTask, FileResult>({
      filename: threadEntry(),
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: 60_000,
      resourceLimits: { maxOldGenerationSizeMb: this.maxOldGenerationSizeMb },
      recordTiming: false,
      concurrentTasksPerWorker: this.filesPerThread,
    });
    utilizationSources.add(this.reportUtilization);
  }

  async run(task: FileTask): Promise<FileResult> {
    try {
      return await this.pool.run(task);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e?.code === "ERR_WORKER_OUT_OF_MEMORY" || /out of memory/i.test(e?.message ?? "")) {
        throw Object.assign(
          new Error(
            `${task.key}: worker thread ran out of memory (maxOldGenerationSizeMb=${this.maxOldGenerationSizeMb}); raise worker.maxOldGenerationSizeMb or make the processor stream its input`,
          ),
          { code: "E_OUT_OF_MEMORY" },
        );
      }
      throw err;
    }
  }

  private readonly reportUtilization = () => this.pool.utilization;

  get utilization(): number {
    return this.pool.utilization;
  }
  get queueSize(): number {
    return this.pool.queueSize;
  }

  async close(): Promise<void> {
    utilizationSources.delete(this.reportUtilization);
    await this.pool.close();
  }
}
