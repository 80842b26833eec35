import { getJob, loadConfig } from "../config/load.js";
import { jobStatus } from "../run/job-status.js";
import { openConnections } from "./connect.js";
import { boundFrom } from "./plan-command.js";
import { formatBytes, formatDuration, partitionNote, plural } from "./render.js";

/** `tranche status [job]`: backlog, bookmark summary, dead letters and last runs. */
export async function statusCommand(
  jobName: string | undefined,
  opts: { config?: string; json?: boolean; fresh?: boolean },
): Promise<void> {
  const cfg = loadConfig(opts.config);
  const names = jobName ? [jobName] : Object.keys(cfg.jobs);
  for (const n of names) getJob(cfg, n);
  const conn = await openConnections(cfg, { readOnly: true });
  try {
    const out = [];
    for (const name of names) {
      const s = await jobStatus(cfg, conn.redis, name, { fresh: opts.fresh === true });
      out.push({ ...s, backlog: s.backlog! });
    }
    if (opts.json) {
      process.stdout.write(JSON.stringify(jobName ? out[0] : out, null, 2) + "\n");
      return;
    }
    for (const s of out) {
      const oldest =
        s.backlog.oldestUnprocessed === null
          ? "nothing unprocessed"
          : `oldest unprocessed ${formatDuration(Math.max(0, Date.now() - s.backlog.oldestUnprocessed) / 1000)} old`;
      const committed = s.bookmark.partitions.reduce((a, p) => a + p.files, 0);
      process.stdout.write(
        `job ${s.job}\n` +
          `  backlog: ${plural(s.backlog.files, "file")}, ${formatBytes(s.backlog.bytes)}, ${oldest} (${plural(s.backlog.listed, "object")} listed${s.backlog.asOfRun ? ` by run ${s.backlog.asOfRun}, ${formatDuration((Date.now() - s.backlog.asOf) / 1000)} ago; --fresh lists now` : " now"})\n` +
          (s.bound
            ? `  bound: ${s.bound.bound} from the ${boundFrom(s.bound.source ?? "", s.bound.catalogTable ? splitTable(s.bound.catalogTable) : undefined)} (run ${s.bound.asOfRun})\n`
            : "") +
          (s.catalogRegistrations?.pending
            ? `  catalog registrations: ${plural(s.catalogRegistrations.pending, "partition commit")} waiting to be registered${s.catalogRegistrations.oldestAt ? ` (oldest ${formatDuration((Date.now() - s.catalogRegistrations.oldestAt) / 1000)} ago)` : ""}${s.catalogRegistrations.failing ? `; ${s.catalogRegistrations.failing} failing, last error: ${s.catalogRegistrations.lastError}` : ""}\n`
            : "") +
          `  bookmark: version ${s.bookmark.version}, ${plural(s.bookmark.partitions.length, "partition")}, ${plural(committed, "file version")} committed, last run ${s.bookmark.lastRunId ?? "-"}\n` +
          (s.deadLetters ? `  DEAD LETTERS: ${plural(s.deadLetters, "file")} set aside; see 'tranche dead-letters list ${s.job}'\n` : "") +
          (s.skipped ? `  skipped: ${plural(s.skipped, "file")} (archived storage class)\n` : "") +
          (s.runningRuns.length ? `  live runs: ${s.runningRuns.map((r) => `${r.runId} ${r.state}`).join(", ")}\n` : "") +
          `  last runs:\n` +
          (s.lastRuns.length
            ? s.lastRuns
                .map(
                  (r) =>
                    `    ${r.runId} ${(r.state ?? r.status).padEnd(9)} ${plural(r.files, "file")} ${formatBytes(r.bytes)} ${formatDuration(r.durationMs / 1000)}${r.mode === "reprocess" ? " reprocess (bookmark untouched)" : partitionNote(r)}${r.trigger ? ` (${r.trigger})` : ""}${r.deadLettered ? `, ${r.deadLettered} dead-lettered` : ""}\n`,
                )
                .join("")
            : "    (none)\n"),
      );
    }
  } finally {
    await conn.close();
  }
}

/** `db.table` → its parts. */
function splitTable(t: string): { database: string; table: string } {
  const i = t.indexOf(".");
  return { database: t.slice(0, i), table: t.slice(i + 1) };
}
