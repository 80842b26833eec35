import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * The one metrics registry of a tranche process.
 *
 * Every tranche series carries the job's name in the label `tranche_job` (not `job`, which is
 * Prometheus' own target label: a scrape without `honor_labels` would rename ours to
 * `exported_job` and every dashboard query on `job` would miss).
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "tranche_process_" });

/** The label naming a tranche job on every tranche series. */
export const JOB_LABEL = "tranche_job";

export const filesProcessed = new Counter({
  name: "tranche_files_processed_total",
  help: "Input files processed and written to the sink",
  labelNames: [JOB_LABEL],
  registers: [registry],
});
export const bytesProcessed = new Counter({
  name: "tranche_bytes_processed_total",
  help: "Input bytes (as stored, before decompression) of processed files",
  labelNames: [JOB_LABEL],
  registers: [registry],
});
/**
 * Failed file attempts by kind (`file`: the file's own content; `job`: the job or its environment)
 * and code (`E_CORRUPT`, `E_BAD_RECORDS`, `E_OUT_OF_MEMORY`, `E_FILE_TIMEOUT`, `E_SINK`, …).
 */
export const fileFailures = new Counter({
  name: "tranche_file_failures_total",
  help: "File attempts that failed, by kind (file or job error) and error code",
  labelNames: [JOB_LABEL, "kind", "code"],
  registers: [registry],
});
export const badRecords = new Counter({
  name: "tranche_bad_records_total",
  help: "Malformed records reported by processors (skipped, recorded)",
  labelNames: [JOB_LABEL],
  registers: [registry],
});
/** Output columns whose type differs from the first one seen in their partition (sql processor, Parquet output). */
export const schemaDrift = new Counter({
  name: "tranche_schema_drift_total",
  help: "Output columns whose type differs from the first type seen for them in the file's partition (Parquet outputs)",
  labelNames: [JOB_LABEL],
  registers: [registry],
});
export const deadLettersTotal = new Counter({
  name: "tranche_dead_letters_total",
  help: "Files set aside as dead letters after failing with file errors in bookmark.deadLetterAfterRuns runs",
  labelNames: [JOB_LABEL],
  registers: [registry],
});
/** Files not processed for a recorded reason: `gone` (deleted after listing), `archived` (GLACIER / DEEP_ARCHIVE). */
export const filesSkipped = new Counter({
  name: "tranche_files_skipped_total",
  help: "Listed files not processed, by reason (gone: deleted after listing; archived: in an archive storage class)",
  labelNames: [JOB_LABEL, "reason"],
  registers: [registry],
});
export const batchesTotal = new Counter({
  name: "tranche_batches_total",
  help: "Batch attempts finished by this worker, by outcome (ok, retry, failed)",
  labelNames: [JOB_LABEL, "outcome"],
  registers: [registry],
});
export const batchDuration = new Histogram({
  name: "tranche_batch_duration_seconds",
  help: "Wall time of one batch attempt",
  labelNames: [JOB_LABEL],
  buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
  registers: [registry],
});
export const runsTotal = new Counter({
  name: "tranche_runs_total",
  help: "Runs finished by this process, by status",
  labelNames: [JOB_LABEL, "status"],
  registers: [registry],
});
/**
 * Refreshers run at scrape time (figures every process shares, read from Redis: see
 * shared-backlog.ts), at most once a second whatever the number of gauges they feed.
 */
export const scrapeRefreshers = new Set<() => Promise<void>>();
let refreshing: Promise<void> = Promise.resolve();
let refreshedAt = 0;
function refreshShared(): Promise<void> {
  if (Date.now() - refreshedAt < 1000) return refreshing;
  refreshedAt = Date.now();
  refreshing = Promise.all([...scrapeRefreshers].map((f) => f().catch(() => undefined))).then(() => undefined);
  return refreshing;
}

export const backlogFiles = new Gauge({
  name: "tranche_backlog_files",
  help: "Unprocessed files left after the last plan (any process's: read from Redis at scrape time)",
  labelNames: [JOB_LABEL],
  registers: [registry],
  async collect() {
    await refreshShared();
  },
});
export const backlogBytes = new Gauge({
  name: "tranche_backlog_bytes",
  help: "Unprocessed bytes left after the last plan (any process's: read from Redis at scrape time)",
  labelNames: [JOB_LABEL],
  registers: [registry],
  async collect() {
    await refreshShared();
  },
});
export const backlogOldestAge = new Gauge({
  name: "tranche_backlog_oldest_age_seconds",
  help: "Age now of the oldest file the last plan left unprocessed (0 when none; read from Redis at scrape time)",
  labelNames: [JOB_LABEL],
  registers: [registry],
  async collect() {
    await refreshShared();
  },
});
export const lexicalMissed = new Counter({
  name: "tranche_lexical_missed_files_total",
  help: "Unprocessed files a periodic full listing found at or before the lexical cursor (keys not written in increasing order)",
  labelNames: [JOB_LABEL],
  registers: [registry],
});
/** Output partitions registered in the output catalog table (`created`, `existing`: already there) and failed registration attempts (`failed`). */
export const catalogRegistrations = new Counter({
  name: "tranche_catalog_registrations_total",
  help: "Output partitions registered in the output catalog table (created, existing; elsewhere: existing at another location, left as is) and failed registration attempts (failed)",
  labelNames: [JOB_LABEL, "outcome"],
  registers: [registry],
});
export const runStates = new Counter({
  name: "tranche_run_ends_total",
  help: "Runs that ended, by Glue run state (counted by the process that finished them)",
  labelNames: [JOB_LABEL, "state"],
  registers: [registry],
});
export const triggerFirings = new Counter({
  name: "tranche_trigger_firings_total",
  help: "Runs started by a trigger of tranche scheduler, by trigger",
  labelNames: [JOB_LABEL, "trigger"],
  registers: [registry],
});
/** S3 events posted to the API: accepted (stored for a run), duplicate, unmatched (outside every events job's source), ignored (not object creations), refused (503). */
export const eventsReceived = new Counter({
  name: "tranche_events_received_total",
  help: "S3 object events posted to POST /v1/events, by outcome (accepted, duplicate, unmatched, ignored, refused)",
  labelNames: [JOB_LABEL, "outcome"],
  registers: [registry],
});
export const triggerSkips = new Counter({
  name: "tranche_trigger_skipped_total",
  help: "Runs asked for while the job was at maxConcurrentRuns and skipped (whenBusy: skip), by trigger",
  labelNames: [JOB_LABEL, "trigger"],
  registers: [registry],
});
let leaderGauge: Gauge | undefined;
/** 1 while this `tranche scheduler` leads; registered by schedulers only (workers do not export it). */
export function schedulerLeader(): Gauge {
  leaderGauge ??= new Gauge({
    name: "tranche_scheduler_leader",
    help: "1 while this tranche scheduler holds the leader lease",
    registers: [registry],
  });
  return leaderGauge;
}
/** Pools report their utilization here; it is read at scrape time only (computing it is not free). */
export const utilizationSources = new Set<() => number>();
export const poolUtilization = new Gauge({
  name: "tranche_pool_utilization",
  help: "Piscina pool utilization (0..1), the busiest pool of this process",
  registers: [registry],
  collect() {
    let u = 0;
    for (const f of utilizationSources) u = Math.max(u, f());
    this.set(u);
  },
});

/** Run statuses counted in `tranche_runs_total`. */
export const RUN_STATUSES = ["succeeded", "failed", "empty", "lost", "stopped", "timeout"] as const;

/** Creates a job's labelled series at zero, so that rate() and increase() see the first event. */
export function initJobMetrics(job: string): void {
  const l = { [JOB_LABEL]: job };
  filesProcessed.inc(l, 0);
  bytesProcessed.inc(l, 0);
  badRecords.inc(l, 0);
  deadLettersTotal.inc(l, 0);
  schemaDrift.inc(l, 0);
  for (const reason of ["gone", "archived"]) filesSkipped.inc({ ...l, reason }, 0);
  for (const outcome of ["ok", "retry", "failed"]) batchesTotal.inc({ ...l, outcome }, 0);
  for (const status of RUN_STATUSES) runsTotal.inc({ ...l, status }, 0);
}
