/**
 * JSON schemas of the HTTP API: fastify validates every request with them and serializes every
 * response with them (a field missing from a response schema is not sent), and @fastify/swagger
 * builds the OpenAPI document (`/v1/openapi.json`, docs/api.md) from them. Shared schemas are added
 * with `app.addSchema` and referenced as `{ $ref: "Name#" }`; they become `#/components/schemas/Name`.
 */
import { RUN_STATES } from "../run/states.js";

type Schema = Record<string, unknown>;

const str = (description: string, extra: Schema = {}): Schema => ({ type: "string", description, ...extra });
const time = (description: string): Schema => ({ type: "string", format: "date-time", description });
const int = (description: string, extra: Schema = {}): Schema => ({ type: "integer", description, ...extra });
const num = (description: string): Schema => ({ type: "number", description });
const bool = (description: string): Schema => ({ type: "boolean", description });
/** The same schema, or null. */
const orNull = (s: Schema): Schema => ({
  ...s,
  type: [s.type as string, "null"],
  ...(Array.isArray(s.enum) ? { enum: [...(s.enum as unknown[]), null] } : {}),
});
const ref = (name: string, description?: string): Schema => (description ? { $ref: `${name}#`, description } : { $ref: `${name}#` });
/** A shared schema, or null. */
const refOrNull = (name: string, description: string): Schema => ({ anyOf: [{ $ref: `${name}#` }, { type: "null" }], description });
const list = (items: Schema, description: string): Schema => ({ type: "array", items, description });
/** An object whose every property is required unless listed in `optional`. */
function obj(properties: Record<string, Schema>, o: { optional?: string[]; description?: string; open?: boolean } = {}): Schema {
  return {
    type: "object",
    ...(o.description ? { description: o.description } : {}),
    required: Object.keys(properties).filter((k) => !o.optional?.includes(k)),
    properties,
    ...(o.open ? { additionalProperties: true } : {}),
  };
}

const runState = (description: string): Schema => ({ type: "string", enum: [...RUN_STATES], description });
const bookmarkMode = (description: string): Schema => ({ type: "string", enum: ["enable", "disable", "pause"], description });
/** A bound as Glue takes it: a positive whole number, as an integer or a decimal string. */
const boundValue = (what: string): Schema => ({
  type: ["integer", "string"],
  minimum: 1,
  pattern: "^[0-9]+$",
  description: `${what}, as an integer or a decimal string ("500"); overrides the job's bound for this run`,
});
const jobName: Schema = {
  type: "string",
  minLength: 1,
  maxLength: 200,
  description: "The job's name (a key of `jobs` in the configuration)",
};
const runIdParam: Schema = {
  type: "string",
  pattern: "^[A-Za-z0-9_.:-]{1,128}$",
  description: "A run id, e.g. `20261127T051054010Z-003c2a`",
};

const error = obj(
  {
    error: obj(
      {
        code: str("Stable error code: E_BAD_REQUEST, E_UNAUTHORIZED, E_NOT_FOUND, E_UNKNOWN_JOB, E_UNKNOWN_RUN, E_CONCURRENT_RUNS, …"),
        message: str("What went wrong and what to do"),
        field: str("The request field at fault (`body/boundedFiles`, `querystring/limit`, `params/runId`), on 400s"),
      },
      { optional: ["field"] },
    ),
  },
  { description: "Every error answer" },
);

const partitionResult = obj(
  {
    partition: str('The partition (`dt=2024-01-01`; "" when the source is not partitioned)'),
    state: {
      type: "string",
      enum: ["COMMITTED", "FAILED", "STOPPED", "TIMEOUT", "DONE"],
      description: "How the partition ended (DONE: outside mode enable)",
    },
    files: int("Files of the partition the run took"),
    bytes: int("Their bytes"),
    batches: int("Batches of the partition"),
    batchesFailed: int("Batches that failed for good"),
    error: str("Why the partition did not commit"),
    version: int("The bookmark version after this partition's commit"),
    manifest: str("Where the commit's manifest was written, relative to the output root"),
  },
  { optional: ["error", "version", "manifest"], description: "One partition's outcome in a run (each partition commits on its own)" },
);

const runRowProps: Record<string, Schema> = {
  runId: str("The run id"),
  state: runState("The run's state (Glue's job run states)"),
  trigger: str("What started the run: api, manual, schedule, after, drain, events, …"),
  createdAt: time("When the run was asked for"),
  endedAt: orNull(time("When it ended (null while live)")),
  files: int("Files processed so far (once ended: processed and written)"),
  bytes: int("Their bytes"),
  filesPlanned: int("Files the run took (0 until planned)"),
  mode: orNull(str('The bookmark mode asked for (null: the job\'s), or "reprocess" (a run of a reprocess request: it commits nothing)')),
  partitions: list(ref("PartitionResult"), "Per-partition results, as each partition ends"),
  error: orNull(str("Why the run could not start, or its job error")),
};

const runRow = obj(runRowProps, { description: "One run in a job's list of runs (`tranche runs`)" });

const runSummary = obj(
  {
    runId: str("The run id"),
    job: str("The job"),
    status: {
      type: "string",
      enum: ["succeeded", "failed", "empty", "lost", "stopped", "timeout"],
      description: "How the run ended, in short",
    },
    state: runState("The run's end state"),
    trigger: str("What started the run"),
    partitions: list(ref("PartitionResult"), "Per-partition results"),
    attempt: int("Glue's attempt number (always 0)"),
    previousRunId: orNull(str("The job's run before this one")),
    mode: str("The bookmark mode of the run (enable, disable, pause; `reprocess` for a reprocess run)"),
    bound: str("The bound the run used, e.g. `boundedFiles=500`"),
    files: int("Files processed and written"),
    bytes: int("Their bytes"),
    filesCommitted: int("Files of the partitions that committed (mode enable)"),
    committed: bool("Whether the run moved the bookmark"),
    version: orNull(int("The bookmark version after the run's commits")),
    batches: int("Batches of the run"),
    batchesFailed: int("Batches that failed for good"),
    fileFailures: int("Files that failed with file errors and were not (yet) dead-lettered"),
    badRecords: int("Malformed records skipped"),
    deadLettered: int("Files set aside as dead letters"),
    deadLetteredKeys: list({ type: "string" }, "Their keys (all of them)"),
    gone: int("Files deleted between listing and reading"),
    archived: int("Files in an archive storage class (skipped)"),
    jobFailure: orNull(str("The first job error (the job or its environment failed, not a file)")),
    remainingFiles: int("Files still not committed after the run (the backlog)"),
    remainingBytes: int("Their bytes"),
    listed: int("Objects the run's listing saw"),
    startedAt: time("When the run started planning"),
    endedAt: time("When it ended"),
    durationMs: int("How long it took"),
    errors: list({ type: "string" }, "The run's first 10 errors"),
  },
  {
    open: true,
    description: "A run's outcome, as `tranche run --json` prints it and the history keeps it (later versions may add fields)",
  },
);

const runDetail = obj(
  {
    ...runRowProps,
    job: str("The job"),
    mode: orNull(str("The bookmark mode asked for (enable, disable, pause; `reprocess` for a reprocess run; null: the job's)")),
    from: orNull(str("With mode pause: replay from after this run")),
    to: orNull(str("…up to this run")),
    bound: orNull(str("The run-time bound asked for, e.g. `boundedFiles=500` (null: the job's)")),
    whenBusy: orNull(str("What the start did when the job was at maxConcurrentRuns: skip or queue")),
    startedAt: orNull(time("When the run started planning")),
    timeoutAt: orNull(time("When the run times out if it has not ended")),
    stopRequested: bool("Whether a stop was asked for"),
    reprocess: orNull(str("The reprocess request this run belongs to (mode `reprocess`)")),
    eventCondition: orNull({
      type: "string",
      enum: ["BatchSize", "BatchWindow"],
      description: "An event-fed run (trigger `events`): which batching condition started it",
    }),
    eventCount: int("Events the run took (event-fed runs)"),
    eventIds: list({ type: "string" }, "Their event ids (the first 100): Glue's `aws:eventIds`"),
    bytesPlanned: int("Bytes the run took"),
    batches: int("Batches of the run"),
    batchesOk: int("Batches that succeeded"),
    batchesFailed: int("Batches that failed for good"),
    fileFailures: int("Files that failed with file errors"),
    badRecords: int("Malformed records skipped"),
    deadLettered: int("Files set aside as dead letters"),
    gone: int("Files deleted between listing and reading"),
    archived: int("Files in an archive storage class (skipped)"),
    jobFailure: orNull(str("The first job error")),
    errors: list({ type: "string" }, "The run's errors, newest first (at most 100 are kept)"),
    summary: refOrNull("RunSummary", "The run's summary once it ended, else null"),
  },
  { description: "One run: what asked for it, its state, its figures so far, its partitions and errors" },
);

const triggerInfo = obj(
  {
    job: str("The job"),
    whenBusy: {
      type: "string",
      enum: ["skip", "queue"],
      description: "A run asked for while the job is at maxConcurrentRuns: skipped or queued (WAITING)",
    },
    timeoutMinutes: num("Minutes a run may last"),
    schedule: obj(
      {
        cron: str("The cron pattern (5 or 6 fields)"),
        timezone: str("Its IANA time zone"),
        misfire: str("Ticks missed while no scheduler led: skip or runOnce"),
        next: list({ type: "string", format: "date-time" }, "The next three firings (UTC)"),
        nextLocal: list({ type: "string" }, "The same in the trigger's time zone"),
        lastTick: orNull(time("The last tick handled")),
      },
      { description: "A cron schedule trigger" },
    ),
    after: obj(
      {
        logical: { type: "string", enum: ["AND", "ANY"], description: "AND: every condition; ANY: the first" },
        conditions: list(obj({ job: str("Another job"), state: str("Its run end state") }), "Run ends that fire the trigger"),
        met: list(obj({ job: str("The job"), state: str("Its end state") }), "Matching run ends since the trigger last fired"),
      },
      { description: "A conditional trigger over other jobs' run ends" },
    ),
    drain: obj({ drainPauseSeconds: num("Seconds between the runs of a drain") }, { description: "The next run while backlog remains" }),
    events: obj(
      {
        batchSize: int("Pending events that start a run"),
        batchWindow: int("Seconds after the first pending event at the latest"),
        pending: int("Events waiting for a run now"),
      },
      { description: "Runs fed by S3 events posted to `POST /v1/events` (Glue's event trigger)" },
    ),
  },
  {
    optional: ["schedule", "after", "drain", "events"],
    description: "A job's triggers (`tranche triggers`); fired by `tranche scheduler`",
  },
);

const jobInfo = obj(
  {
    job: str("The job's name"),
    processor: str("Its processor"),
    mode: bookmarkMode("Its bookmark mode"),
    bound: str("Its bound, e.g. `boundedFiles=500` (`boundedFiles=10000` when none is set)"),
    boundSource: { type: "string", enum: ["job", "catalog", "default"], description: "Where the bound comes from" },
    maxConcurrentRuns: int("Runs of the job at once"),
    whenBusy: { type: "string", enum: ["skip", "queue"], description: "What a run asked for beyond maxConcurrentRuns does" },
    timeoutMinutes: num("Minutes a run may last"),
    backlog: orNull(
      obj(
        {
          files: int("Unprocessed files"),
          bytes: int("Their bytes"),
          oldestUnprocessed: orNull(time("Last-modified time of the oldest unprocessed file")),
          listed: int("Objects the listing saw"),
          asOf: time("When the figures were taken"),
          asOfRun: orNull(str("The run whose listing they come from")),
        },
        { description: "The backlog as the last run's listing left it; null until a run has listed (`GET …/plan` lists now)" },
      ),
    ),
    bookmark: obj(
      {
        version: int("The bookmark version (one up per partition commit)"),
        runs: int("Committed runs"),
        lastRunId: orNull(str("The last run that committed")),
        partitions: int("Partitions with bookmark state"),
      },
      { description: "The bookmark in short (`GET …/bookmark` has all of it)" },
    ),
    deadLetters: int("Files set aside as dead letters"),
    skipped: int("Files skipped (archive storage class)"),
    liveRuns: list(obj({ runId: str("A live run"), state: { type: "string", description: "Its state" } }), "Runs holding a slot now"),
    lastRun: refOrNull("RunRow", "The newest run, or null"),
    triggers: ref("TriggerInfo"),
  },
  { description: "A job: its settings in short, backlog, bookmark, live and last run, triggers" },
);

const partitionSummary = obj(
  {
    partition: str("The partition"),
    wm: orNull(int("Watermark (ms)")),
    hwm: orNull(int("Highest committed last-modified time (ms)")),
    floor: orNull(int("The band's floor (ms), when the band cap raised it")),
    bandFiles: int("Files remembered inside the band"),
    leased: int("Files leased by runs that have not committed"),
    files: int("File versions committed"),
    lastRunId: orNull(str("The last run that committed in the partition")),
    updatedAt: orNull(int("When the partition last changed (ms)")),
  },
  { description: "One partition's bookmark state" },
);

const bookmarkEntry = obj(
  {
    JobName: str("The job"),
    Version: int("The bookmark version"),
    Run: int("Committed runs"),
    Attempt: int("Attempt of the last run (always 0)"),
    PreviousRunId: orNull(str("The run before the last one")),
    RunId: orNull(str("The last run that committed")),
    JobBookmark: str("The state as a JSON string: `{ partitions: { <p>: { wm, hwm, floor, bandFiles, files } } }`"),
    Partitions: list(ref("PartitionSummary"), "Per-partition state"),
    DeadLetters: int("Files set aside as dead letters"),
    Skipped: int("Files skipped (archive storage class)"),
    History: list(
      obj({
        runId: str("The run"),
        status: str("How it ended"),
        mode: str("Its bookmark mode"),
        committed: bool("Whether it moved the bookmark"),
        version: orNull(int("The bookmark version after it")),
        previousRunId: orNull(str("The run before it")),
        startedAt: str("When it started"),
        endedAt: str("When it ended"),
        files: int("Files"),
        bytes: int("Bytes"),
        deadLettered: int("Files it set aside"),
      }),
      "The runs the history keeps, newest first (`bookmark.historySize`)",
    ),
  },
  { description: "Glue's JobBookmarkEntry plus tranche's partitions, dead letters and history (`tranche bookmark show --json`)" },
);

const bookmarkChange = obj(
  {
    job: str("The job"),
    action: { type: "string", enum: ["reset", "rewind"], description: "What was done" },
    toRun: orNull(str("rewind: the run whose state was restored")),
    version: int("The bookmark version now"),
    incomplete: list(
      { type: "string" },
      "rewind: partitions where runs older than the history may have committed files that pruning dropped from the band: the next run may take them again (duplicates, never losses)",
    ),
    partial: orNull(
      obj(
        {
          state: orNull(str("How the run ended")),
          committed: list({ type: "string" }, "Its partitions that committed (their state after it is used)"),
          notCommitted: list({ type: "string" }, "Its partitions that did not (restored as before the run)"),
        },
        { description: "rewind to a run that committed only some of its partitions" },
      ),
    ),
  },
  { description: "A bookmark reset or rewind (output is never touched)" },
);

const planPreview = obj(
  {
    job: str("The job"),
    mode: bookmarkMode("The bookmark mode planned with"),
    bound: str("The bound, e.g. `boundedFiles=500`"),
    boundSource: { type: "string", enum: ["override", "job", "catalog", "default"], description: "Where the bound came from" },
    next: obj(
      {
        files: int("Files the next run would take"),
        bytes: int("Their bytes"),
        partitions: list(obj({ partition: str("The partition"), files: int("Files"), bytes: int("Bytes") }), "Per partition"),
        oldest: orNull(time("Oldest last-modified time among them")),
        newest: orNull(time("Newest last-modified time among them")),
      },
      { description: "What the next run would take" },
    ),
    backlog: obj(
      {
        files: int("Every unprocessed file (the next run's and those after)"),
        bytes: int("Their bytes"),
        oldestUnprocessed: orNull(time("The oldest unprocessed file's last-modified time")),
      },
      { description: "The whole backlog" },
    ),
    runsNeeded: int("Runs needed at this bound to take the backlog (with a size bound: at least this many)"),
    listing: obj(
      {
        strategy: str("The listing strategy: full, partitions or lexical"),
        objectsListed: int("Objects listed"),
        listRequests: int("Listing pages (one LIST request each on S3)"),
      },
      { description: "What the listing cost" },
    ),
  },
  { description: "What the next run would take (`tranche plan --json`); nothing is leased or written" },
);

const runStarted = obj(
  {
    runId: str("The run id (follow it at `GET /v1/runs/{runId}`)"),
    job: str("The job"),
    state: { type: "string", enum: ["STARTING", "WAITING"], description: "STARTING, or WAITING (whenBusy: queue) until a slot frees" },
  },
  { description: "A run was asked for; workers execute it" },
);

const runStopped = obj(
  {
    runId: str("The run"),
    state: runState("Its state now: STOPPING (batches running finish) or STOPPED; an ended run's end state"),
    removed: int("Queued batches removed"),
    already: bool("The run had already ended: nothing was stopped"),
  },
  { description: "A stop asked for" },
);

const ingestResult = obj(
  {
    accepted: int("Object events stored for later runs, in all jobs"),
    duplicates: int("Deliveries already seen (counted once)"),
    unmatched: int("Objects outside every events-triggered job's source"),
    jobs: { type: "object", additionalProperties: { type: "integer" }, description: "Events stored per job" },
    ignored: int("Records that were not object-created events"),
  },
  { description: "What an events delivery stored" },
);

const reprocessResult = obj(
  {
    reprocessId: str("The reprocess id"),
    runId: orNull(str("Its first run (the others are chained: each starts when the previous ends); null when no file matched")),
    state: orNull({ type: "string", enum: ["STARTING", "WAITING"], description: "The first run's state; null when no file matched" }),
    files: int("Files to reprocess"),
    bytes: int("Their bytes"),
    runs: int("Runs needed at the job's bound"),
    missing: list({ type: "string" }, "Keys asked for that the source does not have"),
    leased: list({ type: "string" }, "Files a live run holds now: skipped"),
  },
  { description: "A reprocess asked for" },
);

const health = obj({ ok: bool("true") }, { description: "The process is up (healthz) or ready (readyz)" });

/** The shared schemas, by name (`$id`). */
export const SHARED_SCHEMAS: Record<string, Schema> = {
  Error: error,
  PartitionResult: partitionResult,
  RunRow: runRow,
  RunSummary: runSummary,
  RunDetail: runDetail,
  TriggerInfo: triggerInfo,
  JobInfo: jobInfo,
  PartitionSummary: partitionSummary,
  JobBookmarkEntry: bookmarkEntry,
  BookmarkChange: bookmarkChange,
  PlanPreview: planPreview,
  RunStarted: runStarted,
  RunStopped: runStopped,
  IngestResult: ingestResult,
  ReprocessResult: reprocessResult,
  Health: health,
};

/** Error answers of a route, each with its description. */
export function errors(...statuses: number[]): Record<number, Schema> {
  const text: Record<number, string> = {
    400: "Bad request: a field is missing or invalid (`error.field` names it)",
    401: "No or wrong bearer token (`WWW-Authenticate: Bearer`)",
    404: "Unknown job or run",
    409: "Conflict with a live run",
    413: "Body over 1 MiB",
    503: "Redis (or the service behind the route) is unavailable",
  };
  return Object.fromEntries(statuses.map((s) => [s, { ...ref("Error"), description: text[s] ?? "Error" }]));
}

export const S = {
  ref,
  obj,
  list,
  str,
  int,
  jobParams: obj({ job: jobName }),
  runParams: obj({ runId: runIdParam }),
  boundValue,
  bookmarkMode,
};
