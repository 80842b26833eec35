import type { TrancheConfig } from "../config/schema.js";
import { TrancheError } from "../errors.js";
import { eventsReceived, JOB_LABEL } from "../metrics/registry.js";
import type { StepContext } from "../run/step-context.js";
import { TRANCHE_DIR } from "../sink/output-name.js";
import { compileFilter } from "../source/partition-filter.js";
import { compileExclusions, parsePartition, UNPARTITIONED } from "../source/partitions.js";
import { parseS3Uri } from "../source/s3-client.js";
import { EventShapeError, parseEventBody, type ParsedBody } from "./parse.js";
import { EventQueue, MAX_PENDING, type PendingEvent } from "./queue.js";

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
    super(
      "E_EVENTS_FULL",
      `job "${job}" has ${pending} pending events (at most ${MAX_PENDING}); retry later, once its runs have taken some`,
      1,
    );
    this.name = "EventsFullError";
  }
}

/** A job that takes events: where its objects are, and which of them it takes. */
interface EventJob {
  name: string;
  bucket: string;
  prefix: string;
  takes(rel: string): boolean;
}

function eventJobs(cfg: TrancheConfig): EventJob[] {
  const out: EventJob[] = [];
  for (const [name, j] of Object.entries(cfg.jobs)) {
    if (!j.triggers?.events || !j.source.path?.startsWith("s3://")) continue;
    const { bucket, prefix } = parseS3Uri(j.source.path);
    const excluded = compileExclusions(j.source.exclusions);
    const filter = j.source.partitionFilter?.trim() ? compileFilter(j.source.partitionFilter, j.source.partitionKeys) : null;
    out.push({
      name,
      bucket,
      prefix,
      takes: (rel) => {
        if (rel === "" || rel.endsWith("/") || rel.startsWith(`${TRANCHE_DIR}/`) || excluded(rel)) return false;
        if (!j.source.recurse && rel.split("/").length - 1 > j.source.partitionKeys.length) return false;
        if (!filter) return true;
        const p = parsePartition(rel, j.source.partitionKeys);
        return p.id === UNPARTITIONED || filter(p.values) !== false;
      },
    });
  }
  return out;
}

/**
 * Stores the object-created events of a request body (S3 notification `Records[]`, or an
 * EventBridge "Object Created" event) durably for the jobs whose `triggers.events` source holds
 * the objects, before answering. Throws BadEventError (400) or EventsFullError (503: nothing more
 * is stored for that job; what was stored for others counts as duplicates when the sender retries).
 */
export async function ingestEvents(ctx: StepContext, body: unknown): Promise<IngestResult> {
  let parsed: ParsedBody;
  try {
    parsed = parseEventBody(body);
  } catch (err) {
    if (err instanceof EventShapeError) throw new BadEventError(err.field, err.message.slice(err.field.length + 2));
    throw err;
  }
  const jobs = eventJobs(ctx.cfg);
  const now = Date.now();
  const perJob = new Map<string, PendingEvent[]>();
  let unmatched = 0;
  for (const e of parsed.events) {
    let matched = false;
    for (const j of jobs) {
      if (e.bucket !== j.bucket || !e.key.startsWith(j.prefix)) continue;
      const rel = e.key.slice(j.prefix.length);
      if (!j.takes(rel)) continue;
      matched = true;
      const l = perJob.get(j.name) ?? [];
      l.push({ ...e, rel, at: now });
      perJob.set(j.name, l);
    }
    if (!matched) unmatched++;
  }
  const result: IngestResult = { accepted: 0, duplicates: 0, unmatched, jobs: {}, ignored: parsed.ignored };
  if (unmatched) eventsReceived.inc({ [JOB_LABEL]: "", outcome: "unmatched" }, unmatched);
  if (parsed.ignored) eventsReceived.inc({ [JOB_LABEL]: "", outcome: "ignored" }, parsed.ignored);
  for (const [job, events] of perJob) {
    const r = await new EventQueue(ctx.redis, ctx.cfg.prefix, job).store(events);
    result.accepted += r.accepted;
    result.duplicates += r.duplicates;
    result.jobs[job] = r.accepted;
    if (r.accepted) eventsReceived.inc({ [JOB_LABEL]: job, outcome: "accepted" }, r.accepted);
    if (r.duplicates) eventsReceived.inc({ [JOB_LABEL]: job, outcome: "duplicate" }, r.duplicates);
    if (r.full !== undefined) {
      eventsReceived.inc({ [JOB_LABEL]: job, outcome: "refused" }, events.length - r.accepted - r.duplicates);
      ctx.log.warn("events refused: the job holds the most pending events it may", { job, pending: r.full, max: MAX_PENDING });
      throw new EventsFullError(job, r.full);
    }
  }
  ctx.log.debug("events stored", { ...result });
  return result;
}
