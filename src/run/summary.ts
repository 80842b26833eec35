import type { BookmarkMode } from "../config/schema.js";
import type { PartitionResult } from "./run-record.js";
import type { RunState } from "./states.js";

/**
 * How a run ended, in short (its Glue state is `state`). `succeeded`: every partition committed
 * (or, outside mode enable, every batch succeeded); `failed`: some partition failed (the others
 * committed) or the run could not start; `empty`: nothing to do; `stopped`, `timeout`: stopped or
 * timed out; `lost`: Redis lost the run (restarted without persistence).
 */
export type RunStatus = "succeeded" | "failed" | "empty" | "lost" | "stopped" | "timeout";

/** The short status of a run's end state. */
export function statusOf(state: RunState, batches: number): RunStatus {
  switch (state) {
    case "SUCCEEDED":
      return batches === 0 ? "empty" : "succeeded";
    case "STOPPED":
      return "stopped";
    case "TIMEOUT":
      return "timeout";
    default:
      return "failed";
  }
}

/** One run's outcome, as printed by `tranche run --json` and kept in the job's history. */
export interface RunSummary {
  runId: string;
  job: string;
  status: RunStatus;
  /** The run's Glue state (src/run/states.ts). */
  state: RunState;
  /** What started the run ("manual", "schedule", "after", "drain", "api", …). */
  trigger: string;
  /** Per-partition results (each partition commits on its own). */
  partitions: PartitionResult[];
  attempt: number;
  previousRunId: string | null;
  /** The bookmark mode, or "reprocess" (a run of `tranche reprocess`: it commits nothing). */
  mode: BookmarkMode | "reprocess";
  bound: string;
  /** Files (and their bytes) this run processed and wrote. */
  files: number;
  bytes: number;
  /** Files of the partitions that committed (mode enable); the others go to the next run. */
  filesCommitted: number;
  /** Whether the run moved the bookmark (mode enable and at least one partition committed). */
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
