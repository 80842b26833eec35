import { BookmarkStore, type PartitionSummary } from "./store.js";

/** One run of the bookmark's history as `bookmark show` lists it. */
export interface BookmarkHistoryRow {
  runId: string;
  status: string;
  mode: string;
  committed: boolean;
  version: number | null;
  previousRunId: string | null;
  startedAt: string;
  endedAt: string;
  files: number;
  bytes: number;
  deadLettered: number;
}

/**
 * A job's bookmark as Glue's JobBookmarkEntry (JobName, Version, Run, Attempt, PreviousRunId,
 * RunId, JobBookmark as a JSON string) plus tranche's per-partition detail, dead letters and
 * history: what `tranche bookmark show --json` prints and `GET /v1/jobs/{job}/bookmark` answers.
 */
export interface JobBookmarkEntry {
  JobName: string;
  Version: number;
  Run: number;
  Attempt: number;
  PreviousRunId: string | null;
  RunId: string | null;
  JobBookmark: string;
  Partitions: PartitionSummary[];
  DeadLetters: number;
  Skipped: number;
  History: BookmarkHistoryRow[];
}

export async function bookmarkEntry(store: BookmarkStore): Promise<JobBookmarkEntry> {
  const [sum, hist, dead] = await Promise.all([store.summary(), store.history(), store.deadLetters.count()]);
  const last = hist.find((h) => h.runId === sum.lastRunId);
  const state: Record<string, unknown> = {};
  for (const p of sum.partitions) state[p.partition] = { wm: p.wm, hwm: p.hwm, floor: p.floor, bandFiles: p.bandFiles, files: p.files };
  return {
    JobName: store.job,
    Version: sum.version,
    Run: sum.runs,
    Attempt: last?.attempt ?? 0,
    PreviousRunId: last?.previousRunId ?? null,
    RunId: sum.lastRunId,
    JobBookmark: JSON.stringify({ partitions: state }),
    Partitions: sum.partitions,
    DeadLetters: dead.deadLetters,
    Skipped: dead.skipped,
    History: hist.map((h) => ({
      runId: h.runId,
      status: h.status,
      mode: h.mode,
      committed: h.committed,
      version: h.version ?? null,
      previousRunId: h.previousRunId,
      startedAt: h.startedAt,
      endedAt: h.endedAt,
      files: h.files,
      bytes: h.bytes,
      deadLettered: (h.deadLettered as number | undefined) ?? 0,
    })),
  };
}
