import { TrancheError } from "../errors.js";
import type { StepContext } from "../run/step-context.js";

/** What `POST /v1/events` answers (202): how many objects were stored per job, duplicates and objects outside every job's source. */
export interface IngestResult {
  /** Object events stored for later runs, in all jobs. */
  accepted: number;
  /** Deliveries already seen (same bucket, key and sequencer within 24 h): counted once. */
  duplicates: number;
  /** Objects outside every events-triggered job's source (answered and counted, not errors). */
  unmatched: number;
  /** Events stored per job. */
  jobs: Record<string, number>;
  /** Records that were not object-created events (deletions, tests): ignored. */
  ignored: number;
}

/** A body that is neither S3's `Records[]` nor an EventBridge event: 400, naming the field. */
export class BadEventError extends TrancheError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super("E_BAD_REQUEST", `${field}: ${message}`, 2);
    this.name = "BadEventError";
  }
}

/** A job already holds the most pending events it may (100,000): 503, nothing of the request stored. */
export class EventsFullError extends TrancheError {
  constructor(job: string, pending: number) {
    super("E_EVENTS_FULL", `job "${job}" has ${pending} pending events (at most 100000); retry later, once its runs have taken some`, 1);
    this.name = "EventsFullError";
  }
}

/**
 * Stores the object-created events of a request body (S3 notification `Records[]`, or an
 * EventBridge "Object Created" event) durably for the jobs whose `triggers.events` source holds
 * the objects, before answering. Throws BadEventError (400) or EventsFullError (503).
 */
export async function ingestEvents(_ctx: StepContext, _body: unknown): Promise<IngestResult> {
  await Promise.resolve();
  throw new TrancheError("E_UNAVAILABLE", "event ingestion is being built", 1);
}
