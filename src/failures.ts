/**
 * What went wrong with one file, told apart by type, never by message text. These classes are
 * thrown inside worker threads (sources, sinks, processors) and on the main side; across the
 * thread boundary they travel as a plain {@link Failure} (structured clone keeps only an error's
 * name, message and stack) and are rebuilt with {@link fromFailure}.
 *
 * - {@link FileError}: the file's own content is at fault (corrupt or truncated compression,
 *   undecodable content, the processor throwing on it, its own out-of-memory or timeout, mostly
 *   malformed records, an output name that cannot be written). Only file errors may, after
 *   `bookmark.deadLetterAfterRuns` runs, set a file aside as a dead letter.
 * - {@link JobError}: the job or its environment is at fault (processor or transform that does not
 *   load, sink unreachable or refusing, credentials, full disk, store timeouts and throttling, a
 *   worker whose configuration differs). The run fails, nothing is dead-lettered, files stay leased.
 * - {@link GoneError}: the input was deleted between listing and reading: recorded, dropped from
 *   the run, never a failure of the run.
 * - {@link ArchivedError}: the input sits in an archive storage class (GLACIER, DEEP_ARCHIVE) and
 *   cannot be read: recorded as skipped with its reason, never dead-lettered.
 *
 * Failure semantics are documented in README.md ("Failures: file errors, job errors, dead letters").
 */
export type FailureKind = "file" | "job" | "gone" | "archived";

/** A failure as plain data (it crosses the worker-thread boundary and is stored in run records). */
export interface Failure {
  kind: FailureKind;
  /** Stable code, e.g. `E_CORRUPT`, `E_BAD_RECORDS`, `E_SINK`, `E_THROTTLED`. */
  code: string;
  message: string;
  /** Job errors: whether another attempt may succeed (throttling, a network blip). Default true. */
  retryable?: boolean;
}

export abstract class TypedFailure extends Error {
  abstract readonly kind: FailureKind;
  readonly code: string;
  readonly retryable: boolean;
  constructor(code: string, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options?.retryable ?? true;
  }
  toFailure(): Failure {
    return { kind: this.kind, code: this.code, message: this.message, retryable: this.retryable };
  }
}

/** The file's own content is at fault; may count toward dead letters. */
export class FileError extends TypedFailure {
  readonly kind = "file" as const;
  override readonly name = "FileError";
}

/** The job or its environment is at fault; fails the run, never dead-letters a file. */
export class JobError extends TypedFailure {
  readonly kind = "job" as const;
  override readonly name = "JobError";
}

/** The input no longer exists (deleted after the listing). */
export class GoneError extends TypedFailure {
  readonly kind = "gone" as const;
  override readonly name = "GoneError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_GONE", message, options);
  }
}

/** The input is in an archive storage class and cannot be read without a restore. */
export class ArchivedError extends TypedFailure {
  readonly kind = "archived" as const;
  override readonly name = "ArchivedError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_ARCHIVED", message, options);
  }
}

export function isTypedFailure(err: unknown): err is TypedFailure {
  return err instanceof TypedFailure;
}

/** Rebuilds the typed error from its plain form. */
export function fromFailure(f: Failure): TypedFailure {
  switch (f.kind) {
    case "file":
      return new FileError(f.code, f.message, { retryable: f.retryable });
    case "job":
      return new JobError(f.code, f.message, { retryable: f.retryable });
    case "gone":
      return new GoneError(f.message);
    case "archived":
      return new ArchivedError(f.message);
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Node's errno codes that mean "the environment", with the tranche code they map to. */
const FS_JOB_CODES: Record<string, string> = {
  ENOSPC: "E_DISK_FULL",
  EDQUOT: "E_DISK_FULL",
  EACCES: "E_ACCESS",
  EPERM: "E_ACCESS",
  EROFS: "E_ACCESS",
  EIO: "E_IO",
  EMFILE: "E_IO",
  ENFILE: "E_IO",
  EBUSY: "E_IO",
};

/**
 * Classifies an error of a local file operation on a source or sink path. ENOENT on a source
 * read is {@link GoneError}; environment errno codes are {@link JobError}s; anything else is
 * `fallback` (a file error unless the caller knows better).
 */
export function classifyFsError(err: unknown, o: { path: string; op: "read" | "write"; fallback?: "file" | "job" }): TypedFailure {
  if (isTypedFailure(err)) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (o.op === "read" && code === "ENOENT") return new GoneError(`input file no longer exists: ${o.path}`, { cause: err });
  const jobCode = code ? FS_JOB_CODES[code] : undefined;
  const what = o.op === "read" ? "cannot read input" : "cannot write output";
  if (jobCode) {
    const hint =
      jobCode === "E_DISK_FULL"
        ? "free disk space or point the output elsewhere"
        : jobCode === "E_ACCESS"
          ? "check the folder's permissions"
          : "check the disk and the host";
    return new JobError(jobCode, `${what} ${o.path}: ${messageOf(err)}; ${hint}`, { cause: err, retryable: jobCode !== "E_ACCESS" });
  }
  if (o.op === "write" || o.fallback === "job") return new JobError("E_SINK", `${what} ${o.path}: ${messageOf(err)}`, { cause: err });
  return new FileError("E_READ", `${what} ${o.path}: ${messageOf(err)}`, { cause: err });
}
