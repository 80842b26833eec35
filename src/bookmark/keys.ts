/**
 * Every Redis key tranche writes, in one place. With a `{tag}` prefix all keys share one Redis
 * Cluster slot (the Lua scripts need that). Writers: P = planner (`tranche run`), W = batch worker,
 * C = the commit script, O = operations (reset, rewind, dead-letters, migrate), A = the API (events).
 */

/** Keys of one job's bookmark and runs. */
export function keys(prefix: string, job: string) {
  const j = `${prefix}:bm:${job}`;
  return {
    /** set — partitions that have had leases (committed or not; for the lexical cursor). P, O. */
    everLeased: `${j}:leasedp`,
    /** set — partition ids that have bookmark state. C, O. */
    parts: `${j}:parts`,
    /** hash — the job's bookmark: version, runs (committed), lastRunId, updatedAt, epoch (bumped by reset/rewind), historyTrimmed (the newest committed run trimmed off the history). C, O. */
    jobMeta: `${j}:meta`,
    /** hash — one partition: wm (watermark), hwm (highest committed time), floor, files, bandn (records in the band), updatedAt, lastRunId. C, O. */
    meta: (p: string) => `${j}:p:${p}:meta`,
    /**
     * hash — the compact band: files committed at or above the band's lower edge, as 10-byte
     * records (8-byte key hash + millisecond) under 5-byte fields (second + bucket), and a count
     * per second under 4-byte fields (see band.ts). C, O.
     */
    band: (p: string) => `${j}:p:${p}:band`,
    /** zset — the band's seconds (member and score: the second), for pruning by score. C, O. */
    bandIndex: (p: string) => `${j}:p:${p}:bidx`,
    /** zset — leased key → last-modified: files selected by runs that have not committed them (holds wm below them). P, C. */
    lease: (p: string) => `${j}:p:${p}:lease`,
    /**
     * hash — the output schema first seen in a partition (sql processor, Parquet output): column →
     * type; later files with another type for a column are reported as schema drift. Expires 30 days
     * after its last write. W.
     */
    schema: (p: string) => `${j}:p:${p}:schema`,
    /** hash — leased key → owner run id (the other half of a lease). P, C. */
    leaseRun: (p: string) => `${j}:p:${p}:leaserun`,
    /** set — runs whose leases another run took over in this partition (a takeover needs the owner presumed dead). P, C. */
    robbed: (p: string) => `${j}:p:${p}:robbed`,
    /** hash — dead letters put back by `dead-letters retry`: key → last-modified; taken by the next run whatever the band says. O, C. */
    retry: (p: string) => `${j}:p:${p}:retry`,
    /** hash — "key@lastModified" → runs in which that file failed for good (file errors only). W. */
    failures: `${j}:failures`,
    /** hash — dead-lettered files: key → JSON {key, lastModified, partition, runId, runs, reason, at}. W, O. */
    deadLetters: `${j}:deadletters`,
    /** hash — files skipped for a recorded reason (archived storage class): key → JSON. W, O. */
    skipped: `${j}:skipped`,
    /** zset — live runs of the job: run id → slot expiry (epoch ms, Redis clock). P. */
    active: `${prefix}:runs:${job}:active`,
    /** string — held by the run that is planning and leasing (runs of one job plan one at a time). P. */
    planLock: `${prefix}:runs:${job}:planlock`,
    /** list — run summaries (JSON), newest first, trimmed to historySize. P, C. */
    history: `${prefix}:runs:${job}:history`,
    /** hash — history deltas: "<runId>|<partition>" → the band entries (15 bytes each) that run added; trimmed with the history. C, O. */
    deltas: `${prefix}:runs:${job}:deltas`,
    /** zset — for the lexical listing: a committed run's greatest key → its time (see listing-cursor.ts). C, P. */
    lexical: `${prefix}:runs:${job}:lexical`,
    /** hash — what the last run's listing learned (backlog figures for `status`). P. */
    backlog: `${prefix}:runs:${job}:backlog`,
    /** zset — the job's runs: run id → start time (ms); trimmed to the newest 1,000 (`tranche runs`). S. */
    runIndex: `${prefix}:runs:${job}:index`,
    /** hash — trigger bookkeeping: "<trigger>:tick" → last handled tick (ms), "<trigger>:seen" → run-end event id last read. L. */
    triggers: `${prefix}:runs:${job}:triggers`,
    /** hash — S3 events waiting for a run (docs/events.md): object key (relative to the source) → event JSON {id, bucket, key, seq, time, size, at}. A, P, F. */
    eventsPending: `${prefix}:ev:${job}:pending`,
    /** zset — the pending events' object keys → arrival time (ms): the oldest first, and their count. A, P, F. */
    eventsOrder: `${prefix}:ev:${job}:order`,
    /** string — one delivery seen (bucket, key, sequencer), for 24 h: a duplicate delivery counts once. A. */
    eventSeen: (hash: string) => `${prefix}:ev:${job}:seen:${hash}`,
    /** string — the events run the scheduler started and whose plan step has not taken its events yet. L, P. */
    eventsStarting: `${prefix}:ev:${job}:starting`,
    /**
     * hash — output partitions to register in the job's output catalog table (docs/catalog.md):
     * "<runId>|<partition>" → JSON {runId, partition, folders, at, attempts, lastError, lastAttemptAt}; queued by the
     * partition's commit (in the commit script), removed once registered. C, W.
     */
    catalogReg: `${prefix}:cat:${job}:reg`,
    /** zset — the same entries → their next attempt (epoch ms, Redis clock; 0 = at once). C, W. */
    catalogDue: `${prefix}:cat:${job}:due`,
    ...runKeys(prefix),
  };
}
export type Keys = ReturnType<typeof keys>;

/**
 * Keys of one run (they do not depend on the job). All expire `RUN_TTL_S` after the run's last
 * write. The run hash's fields:
 * - written at start (S): job, state (a Glue run state, src/run/states.ts), mode, from, to, bound
 *   (a --bounded-* override, JSON), trigger (what started it), whenBusy, createdAt, epoch (the
 *   bookmark epoch), timeoutAt (ms);
 * - by the plan step (P): startedAt, planned (1 once the plan is stored), partitions, batches,
 *   filesPlanned, bytesPlanned, boundSource (override, job, catalog, default), catalog (a catalog
 *   source: the table as the run used it, JSON), error (ERROR: why it could not start);
 * - by batches (W): counters batchesOk, batchesFailed, progressFiles, progressBytes, filesStaged,
 *   bytesStaged, fileFailures, badRecords, deadLettered, gone, archived; `jobFailure` (the first
 *   job error); bookkeeping `commit:<id>` (a replayed batch attempt), `batch:<id>` (ok|failed),
 *   `batchkind:<id>` (job), `failed:<key@lm>` (a file's failure counted once per run);
 * - by commits (C): `committed:<partition>` → bookmark version, committedParts;
 * - by the finish step (F): finished (1 once recorded), endedAt, summary (the RunSummary JSON);
 * - by stop/timeout (O): stopRequested, timedOut.
 * Writers: S = start (`tranche run`, the scheduler, the API), P = plan step, W = batch step,
 * C = commit step, F = finish step, O = `tranche stop` or the timeout step, L = scheduler leader.
 */
export function runKeys(prefix: string) {
  return {
    /** hash — the run record (fields above). P, W. */
    run: (runId: string) => `${prefix}:run:${runId}`,
    /** list — the run's errors, newest first, at most 100. W. */
    runErrors: (runId: string) => `${prefix}:run:${runId}:errors`,
    /** list — keys the run dead-lettered. W. */
    runDead: (runId: string) => `${prefix}:run:${runId}:dead`,
    /** zset — files a run's batches wrote in one partition (key → last-modified), awaiting its commit. W, C. */
    staged: (runId: string, p: string) => `${prefix}:run:${runId}:staged:${p}`,
    /** set — the keys a run leased in one partition (its commit drops exactly these leases). P, C. */
    runLeased: (runId: string, p: string) => `${prefix}:run:${runId}:leased:${p}`,
    /** set — partitions a run leased files in. P, C. */
    leasedParts: (runId: string) => `${prefix}:run:${runId}:leasedparts`,
    /** set — partitions a run staged files in. W, C. */
    stagedParts: (runId: string) => `${prefix}:run:${runId}:stagedparts`,
    /** hash — per-partition results: partition → JSON {state, files, bytes, batches, batchesFailed, error, version, manifest}. C, F. */
    runParts: (runId: string) => `${prefix}:run:${runId}:parts`,
    /** string — the stored plan (JSON: batches with their files, figures, band keeping); a retried plan step reuses it. P. */
    runPlan: (runId: string) => `${prefix}:run:${runId}:plan`,
    /** list — partitions waiting for a place under partitionConcurrency (JSON sub-flows). P, C. */
    queuedParts: (runId: string) => `${prefix}:run:${runId}:queuedparts`,
    /** hash — input key → output key written, per partition (the commit's manifest). W, C. */
    outputs: (runId: string, p: string) => `${prefix}:run:${runId}:out:${p}`,
    /** string — the process that started the run and waits for it; expires 10 s after it dies. S. */
    starter: (runId: string) => `${prefix}:run:${runId}:starter`,
    /** hash — the events an event-fed run took: object key → event JSON; settled or put back by its finish step. P, F. */
    runEvents: (runId: string) => `${prefix}:run:${runId}:events`,
    /** hash — a reprocess request: job, files, bytes, chunks (runs), next (the chunk started last), runs (JSON list of run ids), spec, createdAt. S, F. */
    reprocess: (id: string) => `${prefix}:reprocess:${id}`,
    /** string — one chunk of a reprocess request: the files of one run (JSON). S, P. */
    reprocessChunk: (id: string, n: number) => `${prefix}:reprocess:${id}:chunk:${n}`,
  };
}

/** Keys shared by all jobs of a prefix. */
export function globalKeys(prefix: string) {
  return {
    /** stream — run ends (job, runId, state, trigger, at), at most ~10,000: `after` triggers and the API read it. F. */
    events: `${prefix}:events`,
    /** string — the scheduler leader's lease: its id, expiring 10 s after its last renewal. L. */
    leader: `${prefix}:scheduler:leader`,
  };
}

/** The state-format key of a prefix (see src/state-version.ts). */
export function stateKey(prefix: string): string {
  return `${prefix}:state`;
}

/**
 * The hash tag of a prefix as Redis Cluster reads it: the text between the first `{` and the first
 * `}` after it, when not empty; `null` otherwise. Every key starts with the prefix, so with a tag
 * all of them (BullMQ's included) hash to one slot.
 */
export function prefixHashTag(prefix: string): string | null {
  const open = prefix.indexOf("{");
  if (open < 0) return null;
  const close = prefix.indexOf("}", open + 1);
  return close > open + 1 ? prefix.slice(open + 1, close) : null;
}
