import type { RunSummary } from "./summary.js";

/**
 * Whether `--drain` goes on after a run: yes after a success with files left; after a failure
 * only when it failed on file errors alone and some of those files will be dead-lettered by a
 * later run (so the backlog moves); never after a job error, a lost run, or a run that committed
 * nothing with nothing left to retry (no endless loop, also with deadLetterAfterRuns 0).
 */
export function drainGoesOn(s: RunSummary, deadLetterAfterRuns: number): boolean {
  if (s.mode !== "enable") return false; // without state updates a drain would never end
  if (s.status === "succeeded") return s.remainingFiles > 0;
  if (s.status === "failed") return s.jobFailure === null && s.fileFailures > 0 && deadLetterAfterRuns > 0;
  return false;
}
