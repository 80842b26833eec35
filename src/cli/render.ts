import type { RunSummary } from "../run/summary.js";

/** `1 file`, `2 files`, `1 bad record`. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString("en-US")} ${n === 1 ? one : many}`;
}

export function formatBytes(n: number): string {
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

/** A duration for people: `45s`, `12m05s`, `3h20m`, `4d06h`. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "--";
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, "0")}h`;
}

/** The one line (or object) `tranche run` prints per run. */
export function runLine(s: RunSummary): string {
  if (s.status === "empty") return `run ${s.runId}: nothing to do, no unprocessed files (${plural(s.listed, "object")} listed)\n`;
  if (s.status === "lost") return `run ${s.runId}: lost — ${s.errors[0] ?? "it may not commit"}\n`;
  const parts = [
    `run ${s.runId}: ${s.status} — ${plural(s.files, "file")}, ${formatBytes(s.bytes)} in ${(s.durationMs / 1000).toFixed(1)}s${partitionNote(s)}`,
    `${plural(s.remainingFiles, "file")} (${formatBytes(s.remainingBytes)}) remain`,
  ];
  if (s.badRecords) parts.push(`${plural(s.badRecords, "bad record")} skipped`);
  if (s.deadLettered)
    parts.push(
      `${plural(s.deadLettered, "file")} DEAD-LETTERED: ${s.deadLetteredKeys.slice(0, 5).join(", ")}${s.deadLetteredKeys.length > 5 ? ", …" : ""}`,
    );
  if (s.gone) parts.push(`${plural(s.gone, "file")} gone (deleted after listing)`);
  if (s.archived) parts.push(`${plural(s.archived, "file")} skipped (archived storage class)`);
  for (const p of (s.partitions ?? []).filter((x) => x.state === "FAILED" && s.partitions.length > 1).slice(0, 3))
    parts.push(`partition ${p.partition || "(none)"} ${p.state}: ${p.error ?? ""}`);
  if (s.jobFailure) parts.push(`job error: ${s.jobFailure}`);
  else if (s.fileFailures) parts.push(`${plural(s.fileFailures, "file")} failed: ${s.errors[0] ?? ""}`);
  else if (s.batchesFailed) parts.push(`${plural(s.batchesFailed, "batch", "batches")} failed: ${s.errors[0] ?? ""}`);
  return parts.join("; ") + "\n";
}

/** `, 2/3 partitions committed` when a run committed only some of its partitions (else ""). */
export function partitionNote(s: Pick<RunSummary, "partitions">): string {
  const parts = s.partitions ?? [];
  const committed = parts.filter((p) => p.state === "COMMITTED").length;
  return parts.length > 1 && committed < parts.length ? `, ${committed}/${parts.length} partitions committed` : "";
}
