import { TrancheError } from "../errors.js";
import type { StepContext } from "./step-context.js";

/** Which files to reprocess: any combination narrows (all given criteria must hold). */
export interface ReprocessSpec {
  /** Partition values as `k=v`: several values of one key are alternatives, different keys must all match. */
  partitions?: string[];
  /** Last-modified at or after this instant (ISO 8601 or epoch ms). */
  since?: string;
  /** Last-modified before this instant. */
  until?: string;
  /** Exactly these keys (relative to the source root). */
  keys?: string[];
}

export interface ReprocessResult {
  reprocessId: string;
  /** The first run (the others are chained: each starts when the previous ends). */
  runId: string;
  state: "STARTING" | "WAITING";
  files: number;
  bytes: number;
  /** Runs the reprocess needs at the job's bound. */
  runs: number;
  /** Keys of `keys` that do not exist in the source. */
  missing: string[];
  /** Files a live run holds now: skipped (reprocess them once it ended). */
  leased: string[];
}

/**
 * Reprocesses exactly the files a spec names, through the queue, in bounded runs with mode
 * `reprocess`, chained; outputs are overwritten in place and the bookmark never moves.
 */
export async function startReprocess(_ctx: StepContext, _job: string, _spec: ReprocessSpec, _trigger = "manual"): Promise<ReprocessResult> {
  await Promise.resolve();
  throw new TrancheError("E_UNAVAILABLE", "reprocessing is being built", 1);
}
