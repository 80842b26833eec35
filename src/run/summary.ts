import type { BookmarkMode } from "../config/schema.js";

/**
 * How a run ended. `succeeded`: every batch succeeded (and, in mode enable, it committed);
 * `failed`: some batch failed for good (nothing committed); `empty`: nothing to do; `lost`: the run
 * may not commit (it lost its slot, Redis lost its data, or the bookmark was reset meanwhile).
 */
export type RunStatus = "succeeded" | "failed" | "empty" | "lost";

/** One run's outcome, as printed by `tranche run --json` and kept in the job's history. */
export interface RunSummary {
  runId: string;
  job: string;
  status: RunStatus;
  attempt: number;
  previousRunId: string | null;
  mode: BookmarkMode;
  bound: string;
  /** Files (and their bytes) this run processed and wrote. */
  files: number;
  bytes: number;
  /** Whether the run moved the bookmark (mode enable and every batch succeeded). */
  committed: boolean;
  /** The bookmark version after the commit, or null. */
  version: number | null;
  batches: number;
  batchesFailed: number;
  /** Files that failed with file errors and were not (yet) dead-lettered. */
  fileFailures: number;
  badRecords: number;
  /** Files this run set aside as dead letters, and their keys (all of them). */
  deadLettered: number;
  deadLetteredKeys: string[];
  /** Files deleted between listing and reading: dropped from the run. */
  gone: number;
  /** Files in an archive storage class: skipped, recorded. */
  archived: number;
  /** The first job error (the job or its environment failed, not a file), or null. */
  jobFailure: string | null;
  remainingFiles: number;
  remainingBytes: number;
  listed: number;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  errors: string[];
}

export interface RunProgress {
  phase: "listing" | "processing";
  listed: number;
  files: number;
  bytes: number;
  filesDone: number;
  bytesDone: number;
}
