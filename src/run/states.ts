/**
 * Run states, as Glue's job run states (groundwork for durable runs): WAITING (admitted beyond
 * maxConcurrentRuns, whenBusy: queue), STARTING (planning), RUNNING, STOPPING, and the ends
 * STOPPED, SUCCEEDED, FAILED, TIMEOUT, ERROR (could not start: bad config, unreachable source).
 */
export const RUN_STATES = ["WAITING", "STARTING", "RUNNING", "STOPPING", "STOPPED", "SUCCEEDED", "FAILED", "TIMEOUT", "ERROR"] as const;
export type RunState = (typeof RUN_STATES)[number];

export const TERMINAL: ReadonlySet<RunState> = new Set(["STOPPED", "SUCCEEDED", "FAILED", "TIMEOUT", "ERROR"]);

const NEXT: Record<RunState, readonly RunState[]> = {
  WAITING: ["STARTING", "STOPPED", "TIMEOUT", "ERROR"],
  STARTING: ["RUNNING", "SUCCEEDED", "STOPPING", "FAILED", "TIMEOUT", "ERROR"],
  RUNNING: ["SUCCEEDED", "FAILED", "STOPPING", "TIMEOUT"],
  STOPPING: ["STOPPED", "FAILED", "TIMEOUT"],
  STOPPED: [],
  SUCCEEDED: [],
  FAILED: [],
  TIMEOUT: [],
  ERROR: [],
};

/** Whether a run may go from one state to another (a terminal state is final). */
export function canMove(from: RunState, to: RunState): boolean {
  return NEXT[from].includes(to);
}

/**
 * A run's end from its partitions' ends: SUCCEEDED when every partition committed (or there was
 * nothing to do), FAILED when any failed (the others committed), STOPPED / TIMEOUT when the run
 * was stopped or timed out before all partitions ended.
 */
export function runOutcome(o: {
  partitions: readonly ("committed" | "failed" | "pending")[];
  stopped?: boolean;
  timedOut?: boolean;
}): RunState {
  if (o.timedOut && o.partitions.includes("pending")) return "TIMEOUT";
  if (o.stopped && o.partitions.includes("pending")) return "STOPPED";
  if (o.partitions.includes("failed")) return "FAILED";
  if (o.partitions.includes("pending")) return "RUNNING";
  return "SUCCEEDED";
}
