import type { Cluster, Redis } from "ioredis";
import { runKeys } from "../bookmark/keys.js";
import { RunRecords, type RunRecord } from "./run-record.js";
import type { RunSummary } from "./summary.js";

/** One row of `tranche runs` (and of `GET /v1/jobs/{job}/runs`): the run record, with the summary once it ended. */
export interface RunRow {
  runId: string;
  state: string;
  trigger: string;
  createdAt: string;
  endedAt: string | null;
  files: number;
  bytes: number;
  filesPlanned: number;
  /** The bookmark mode asked for (null: the job's), or "reprocess" (a run of `tranche reprocess`: it commits nothing). */
  mode: string | null;
  partitions: RunSummary["partitions"];
  error: string | null;
}

/** A run record (and its partitions' results) as a row. */
export function runRow(r: RunRecord & { runId?: string }, parts: RunSummary["partitions"]): RunRow {
  const s = r.summary ? (JSON.parse(r.summary) as RunSummary) : null;
  return {
    runId: r.runId ?? "",
    state: r.state,
    trigger: r.trigger ?? "",
    createdAt: new Date(Number(r.createdAt || 0)).toISOString(),
    endedAt: r.endedAt ? new Date(Number(r.endedAt)).toISOString() : null,
    files: s ? s.files : Math.max(0, Number(r.progressFiles || 0)),
    bytes: s ? s.bytes : Number(r.progressBytes || 0),
    filesPlanned: Number(r.filesPlanned || 0),
    mode: r.mode || null,
    partitions: s?.partitions ?? parts,
    error: r.error || s?.jobFailure || null,
  };
}

/** The newest runs of a job as rows, newest first. */
export async function runRows(runs: RunRecords, job: string, limit = 20): Promise<RunRow[]> {
  const rows: RunRow[] = [];
  for (const r of await runs.list(job, limit)) rows.push(runRow(r, await runs.partitions(r.runId!)));
  return rows;
}

/** One run in full (`GET /v1/runs/{runId}`): the row, what asked for it, its figures so far, its errors and, once ended, its summary. */
export interface RunDetail extends RunRow {
  job: string;
  /** The bookmark mode asked for (null: the job's). */
  mode: string | null;
  from: string | null;
  to: string | null;
  /** A run-time bound override (`boundedFiles=N` / `boundedSize=N`), or null. */
  bound: string | null;
  whenBusy: string | null;
  startedAt: string | null;
  timeoutAt: string | null;
  stopRequested: boolean;
  /** The reprocess request this run belongs to, or null. */
  reprocess: string | null;
  /** An event-fed run: the batching condition that started it (BatchSize or BatchWindow), or null. */
  eventCondition: string | null;
  /** Events an event-fed run took, and their ids (the first 100; Glue's `aws:eventIds`). */
  eventCount: number;
  eventIds: string[];
  bytesPlanned: number;
  batches: number;
  batchesOk: number;
  batchesFailed: number;
  fileFailures: number;
  badRecords: number;
  deadLettered: number;
  gone: number;
  archived: number;
  jobFailure: string | null;
  /** The run's errors, newest first (at most 100 are kept). */
  errors: string[];
  /** The run's summary once it ended (as `tranche run --json` prints it), else null. */
  summary: RunSummary | null;
}

/** A run's record, partitions and errors, or null when Redis no longer holds it (runs are kept 7 days). */
export async function runDetail(redis: Redis | Cluster, prefix: string, runId: string): Promise<RunDetail | null> {
  const runs = new RunRecords(redis, prefix);
  const rec = await runs.get(runId);
  if (!rec) return null;
  const [parts, errors] = await Promise.all([runs.partitions(runId), redis.lrange(runKeys(prefix).runErrors(runId), 0, 99)]);
  const summary = rec.summary ? (JSON.parse(rec.summary) as RunSummary) : null;
  const num = (v: string | undefined) => Number(v || 0);
  const str = (v: string | undefined) => (v ? v : null);
  const iso = (v: string | undefined) => (v ? new Date(Number(v)).toISOString() : null);
  let bound: string | null = null;
  if (rec.bound) {
    const o = JSON.parse(rec.bound) as { boundedFiles?: unknown; boundedSize?: unknown };
    bound = o.boundedFiles !== undefined ? `boundedFiles=${String(o.boundedFiles)}` : `boundedSize=${String(o.boundedSize)}`;
  }
  return {
    ...runRow({ ...rec, runId }, parts),
    job: rec.job,
    mode: str(rec.mode),
    from: str(rec.from),
    to: str(rec.to),
    bound,
    whenBusy: str(rec.whenBusy),
    startedAt: iso(rec.startedAt),
    timeoutAt: iso(rec.timeoutAt),
    stopRequested: Boolean(rec.stopRequested),
    reprocess: str(rec.reprocess),
    eventCondition: str(rec.eventCondition),
    eventCount: num(rec.eventCount),
    eventIds: rec.eventIds ? (JSON.parse(rec.eventIds) as string[]) : [],
    bytesPlanned: num(rec.bytesPlanned),
    batches: num(rec.batches),
    batchesOk: num(rec.batchesOk),
    batchesFailed: num(rec.batchesFailed),
    fileFailures: num(rec.fileFailures),
    badRecords: num(rec.badRecords),
    deadLettered: num(rec.deadLettered),
    gone: num(rec.gone),
    archived: num(rec.archived),
    jobFailure: summary?.jobFailure ?? str(rec.jobFailure),
    errors: summary?.errors.length && !errors.length ? summary.errors : errors,
    summary,
  };
}
