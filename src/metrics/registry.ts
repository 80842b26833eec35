import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The one metrics registry of a tranche process. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "tranche_process_" });

export const filesProcessed = new Counter({
  name: "tranche_files_processed_total",
  help: "Input files processed and written to the sink",
  labelNames: ["job"],
  registers: [registry],
});
export const bytesProcessed = new Counter({
  name: "tranche_bytes_processed_total",
  help: "Input bytes (as stored, before decompression) of processed files",
  labelNames: ["job"],
  registers: [registry],
});
export const fileFailures = new Counter({
  name: "tranche_file_failures_total",
  help: "Files whose processing failed (each attempt counts)",
  labelNames: ["job", "reason"],
  registers: [registry],
});
export const badRecords = new Counter({
  name: "tranche_bad_records_total",
  help: "Malformed records reported by processors (skipped, recorded)",
  labelNames: ["job"],
  registers: [registry],
});
export const batchesTotal = new Counter({
  name: "tranche_batches_total",
  help: "Batches finished by this worker, by outcome",
  labelNames: ["job", "outcome"],
  registers: [registry],
});
export const batchDuration = new Histogram({
  name: "tranche_batch_duration_seconds",
  help: "Wall time of one batch attempt",
  labelNames: ["job"],
  buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
  registers: [registry],
});
export const runsTotal = new Counter({
  name: "tranche_runs_total",
  help: "Runs finished by this process, by status",
  labelNames: ["job", "status"],
  registers: [registry],
});
export const backlogFiles = new Gauge({
  name: "tranche_backlog_files",
  help: "Unprocessed files left after the last plan",
  labelNames: ["job"],
  registers: [registry],
});
export const backlogBytes = new Gauge({
  name: "tranche_backlog_bytes",
  help: "Unprocessed bytes left after the last plan",
  labelNames: ["job"],
  registers: [registry],
});
export const backlogOldestAge = new Gauge({
  name: "tranche_backlog_oldest_age_seconds",
  help: "Age of the oldest unprocessed file at the last plan (0 when none)",
  labelNames: ["job"],
  registers: [registry],
});
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

/** Creates a job's labelled series at zero, so that rate() and increase() see the first event. */
export function initJobMetrics(job: string): void {
  filesProcessed.inc({ job }, 0);
  bytesProcessed.inc({ job }, 0);
  badRecords.inc({ job }, 0);
  for (const reason of ["oom", "missing", "error"]) fileFailures.inc({ job, reason }, 0);
  for (const outcome of ["ok", "retry", "failed"]) batchesTotal.inc({ job, outcome }, 0);
  for (const status of ["succeeded", "failed", "empty"]) runsTotal.inc({ job, status }, 0);
}
