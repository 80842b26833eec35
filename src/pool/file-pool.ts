import { existsSync } from "node:fs";
import path from "node:path";
import { setFlagsFromString } from "node:v8";
import { Piscina } from "piscina";
import { DEFAULTS } from "../config/defaults.js";
import { FileError, JobError, fromFailure, isTypedFailure, messageOf, type TypedFailure } from "../failures.js";
import type { FileOutcome, FileResult, FileTask, NamesOutcome, NamesTask, PreflightOutcome, PreflightTask } from "./task.js";
import { utilizationSources } from "../metrics/registry.js";
import { packageRoot } from "../package-root.js";
import { removeScratch, sweepDeadScratch } from "./scratch.js";

/** The compiled worker-thread entry (`npm run build` makes it). */
export function threadEntry(): string {
  const f = path.join(packageRoot(), "dist", "workers", "thread.js");
  if (!existsSync(f)) throw new Error(`worker thread entry ${f} is missing; run 'npm run build' (npm ci does it)`);
  return f;
}

export interface FilePoolOptions {
  /** Worker threads. @defaultValue 2 */
  threads?: number;
  /** V8 old-generation heap limit per thread in MiB. @defaultValue 256 */
  maxOldGenerationSizeMb?: number;
  /**
   * Native memory per thread for the `sql` processor's DuckDB (`memory_limit`), in MiB; the
   * threads read it from their workerData. @defaultValue 512
   */
  nativeMemoryMb?: number;
  /**
   * Files one thread works on at once (they share its heap). Default 1: a thread that runs out of
   * memory or hangs then fails only its own file. Raise it for small, I/O-bound files.
   * @defaultValue 1
   */
  filesPerThread?: number;
}

const TIMED_OUT = Symbol("file timeout");

/**
 * How long after a file's timeout its thread is stopped, if the processor has not ended by then:
 * the thread aborts the processor's signal at the timeout itself, so that native work (a DuckDB
 * query) is interrupted first; stopping a thread in the middle of such work can abort the process.
 */
const STOP_GRACE_MS = 3000;

/**
 * The old generation's first GC limit of the threads' heaps (V8's `--initial-old-space-size`, in
 * MiB, at most half of maxOldGenerationSizeMb). With a heap limit set (resourceLimits), V8 starts
 * its threads with a limit so low that the input and output buffers a file passes through (30 MB
 * of gunzipped JSON for a 4 MB file) trigger a full GC every 15 MB or so, although they die young:
 * measured, 51 full GCs over 32 such files in one thread, 1.9 s of its 5.6 s of CPU, and none with
 * this setting. A process-wide V8 flag, read when a thread's heap is made: it changes when GC
 * first runs, not what a thread may hold (maxOldGenerationSizeMb still bounds it).
 */
export function initialOldSpaceMb(maxOldGenerationSizeMb: number): number {
  return Math.max(1, Math.min(64, Math.floor(maxOldGenerationSizeMb / 2)));
}

/**
 * A Piscina pool of worker threads, each under a V8 heap limit. A thread that runs out of memory
 * or passes a file's timeout fails only its own file (with a clear, typed error) and Piscina
 * replaces it. With `filesPerThread` > 1 the thread's other files fail with it and cannot be
 * blamed: they get a retryable job error (`E_THREAD_LOST`), never a dead letter.
 */
export class FilePool {
  private readonly pool: Piscina;
  readonly threads: number;
  readonly maxOldGenerationSizeMb: number;
  readonly nativeMemoryMb: number;
  readonly filesPerThread: number;
  /** Ids of the pool's threads seen alive (a thread's id reads -1 once it has exited). */
  private readonly threadIds = new Set<number>();
  /** Files in the threads now, and files waiting for a place (see {@link run}). */
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(opts: FilePoolOptions = {}) {
    this.threads = opts.threads ?? DEFAULTS.worker.threads;
    this.maxOldGenerationSizeMb = opts.maxOldGenerationSizeMb ?? DEFAULTS.worker.maxOldGenerationSizeMb;
    this.filesPerThread = opts.filesPerThread ?? DEFAULTS.worker.filesPerThread;
    this.nativeMemoryMb = opts.nativeMemoryMb ?? DEFAULTS.worker.nativeMemoryMb;
    sweepDeadScratch();
    setFlagsFromString(`--initial-old-space-size=${initialOldSpaceMb(this.maxOldGenerationSizeMb)}`);
    this.pool = new Piscina({
      filename: threadEntry(),
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: 60_000,
      resourceLimits: { maxOldGenerationSizeMb: this.maxOldGenerationSizeMb },
      recordTiming: false,
      concurrentTasksPerWorker: this.filesPerThread,
      workerData: { nativeMemoryMb: this.nativeMemoryMb },
    });
    // A thread that goes (out of memory, timed out, closed) leaves its scratch folder (spooled inputs) behind.
    this.pool.on("workerCreate", () => {
      for (const t of this.pool.threads) if (t.threadId > 0) this.threadIds.add(t.threadId);
    });
    this.pool.on("workerDestroy", () => setImmediate(() => this.removeGoneScratch()));
    utilizationSources.add(this.reportUtilization);
  }

  /**
   * Processes one file. Resolves with its result; rejects with a typed failure (FileError,
   * JobError, GoneError, ArchivedError). `timeoutMs` aborts the file's thread when it is exceeded.
   */
  async run(task: FileTask, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<FileResult> {
    // A file's timeout counts from when a thread has a place for it (threads × filesPerThread),
    // not from when its batch handed it over: a file that waited behind others is not blamed.
    while (this.running >= this.threads * this.filesPerThread) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      if (opts.signal?.aborted) throw new JobError("E_STOPPED", `${task.key}: stopped (${String(opts.signal.reason)})`);
      return await this.runNow(task, opts);
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  private async runNow(task: FileTask, opts: { timeoutMs?: number; signal?: AbortSignal }): Promise<FileResult> {
    const ctl = new AbortController();
    const timer = opts.timeoutMs ? setTimeout(() => ctl.abort(TIMED_OUT), opts.timeoutMs + STOP_GRACE_MS) : undefined;
    const onOuter = () => ctl.abort(opts.signal?.reason);
    opts.signal?.addEventListener("abort", onOuter, { once: true });
    try {
      const out = (await this.pool.run(opts.timeoutMs ? { ...task, timeoutMs: opts.timeoutMs } : task, {
        signal: ctl.signal,
      })) as FileOutcome;
      if (out.ok) return out.result;
      throw fromFailure(out.failure);
    } catch (err) {
      throw this.poolFailure(err, task, ctl.signal, opts.timeoutMs);
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onOuter);
    }
  }

  /** Types what Piscina itself rejects with: out of memory, our timeout, a thread that died. */
  private poolFailure(err: unknown, task: FileTask, signal: AbortSignal, timeoutMs: number | undefined): TypedFailure {
    if (isTypedFailure(err)) return err;
    const shared = this.filesPerThread > 1;
    const others = `with filesPerThread=${this.filesPerThread} its other files failed with it; set worker.filesPerThread: 1 to tell which file is at fault`;
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code === "ERR_WORKER_OUT_OF_MEMORY") {
      const msg = `${task.key}: worker thread ran out of memory (maxOldGenerationSizeMb=${this.maxOldGenerationSizeMb}); raise worker.maxOldGenerationSizeMb or make the processor stream its input`;
      return shared ? new JobError("E_THREAD_LOST", `${msg}; ${others}`) : new FileError("E_OUT_OF_MEMORY", msg);
    }
    if (signal.aborted && signal.reason === TIMED_OUT) {
      const msg = `${task.key}: timed out after ${Math.round((timeoutMs ?? 0) / 1000)} s (worker.fileTimeoutSeconds); its thread was stopped`;
      return shared ? new JobError("E_THREAD_LOST", `${msg}; ${others}`) : new FileError("E_FILE_TIMEOUT", msg);
    }
    if (signal.aborted) return new JobError("E_STOPPED", `${task.key}: stopped (${String(signal.reason)})`);
    return new JobError("E_THREAD_LOST", `${task.key}: its worker thread stopped: ${messageOf(err)}`, { cause: err });
  }

  /** Loads the processor and transform and validates options in every thread, as a run will. */
  async preflight(task: PreflightTask): Promise<PreflightOutcome> {
    // On every thread at once (Piscina hands each task to the least busy one): each loads the
    // processor and starts what it keeps (the sql processor's DuckDB) now, side by side, rather
    // than on its first file one after another. The threads' answers are the same; the first failure wins.
    const outs = (await Promise.all(
      Array.from({ length: this.threads * this.filesPerThread }, () => this.pool.run(task, { name: "preflight" })),
    )) as PreflightOutcome[];
    return outs.find((o) => !o.ok) ?? outs[0]!;
  }

  /** The processor's output names for some keys (for the planner's collision check). */
  async outputNames(task: NamesTask): Promise<(string | null)[]> {
    const out = (await this.pool.run(task, { name: "outputNames" })) as NamesOutcome;
    if (!out.ok) throw fromFailure(out.failure);
    return out.names;
  }

  /** Removes the scratch folders of threads no longer in the pool. */
  private removeGoneScratch(): Promise<unknown> {
    const live = new Set(this.pool.threads.map((t) => t.threadId));
    const gone = [...this.threadIds].filter((id) => !live.has(id));
    for (const id of gone) this.threadIds.delete(id);
    return Promise.all(gone.map((id) => removeScratch(id)));
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
    const ids = [...this.threadIds];
    this.threadIds.clear();
    await Promise.all(ids.map((id) => removeScratch(id)));
  }
}
