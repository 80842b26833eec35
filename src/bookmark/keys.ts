/**
 * Every Redis key tranche writes, in one place. With a `{tag}` prefix all keys share one Redis
 * Cluster slot (the Lua scripts need that). Writers: P = planner (`tranche run`), W = batch worker,
 * C = the commit script, O = operations (reset, rewind, dead-letters, migrate).
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
    ...runKeys(prefix),
  };
}
export type Keys = ReturnType<typeof keys>;

/**
 * Keys of one run (they do not depend on the job). All expire `RUN_TTL_S` after the run's last
 * write. The run hash's fields: job, status, mode, startedAt, endedAt, batches, filesPlanned,
 * bytesPlanned; counters batchesOk, batchesFailed, progressFiles, progressBytes, filesStaged,
 * bytesStaged, fileFailures, badRecords, deadLettered, gone, archived; `jobFailure` (the first job
 * error); and bookkeeping fields `commit:<id>` (a replayed batch attempt), `batch:<id>` (ok|failed),
 * `batchkind:<id>` (job), `failed:<key@lm>` (a file's failure counted once per run).
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
