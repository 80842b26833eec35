/**
 * In-process word that a run was recorded as ended, so that a wait in the same process (a
 * `tranche run` whose worker finished the run) returns at once instead of at its next poll. Waits
 * in other processes still poll: this is a shortcut, never the only signal.
 */
import { EventEmitter } from "node:events";

const ended = new EventEmitter();
ended.setMaxListeners(0);

/** Says that run `runId` was recorded as ended. */
export function announceRunEnded(runId: string): void {
  ended.emit(runId);
}

/** Resolves after `ms`, or as soon as run `runId` is announced as ended in this process. */
export function untilRunEndedOr(runId: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      ended.off(runId, done);
      resolve();
    };
    const t = setTimeout(done, ms);
    ended.once(runId, done);
  });
}
