import { getJob, loadConfig } from "../config/load.js";
import { log } from "../log.js";
import { RunRecords } from "../run/run-record.js";
import { runRows } from "../run/run-rows.js";
import { stepContext } from "../run/step-context.js";
import { stopRun } from "../run/stop-run.js";
import { openConnections } from "./connect.js";
import { formatBytes, formatDuration, plural } from "./render.js";

/** `tranche runs <job>`: the job's newest runs with state, trigger, partitions and figures. */
export async function runsCommand(job: string, opts: { config?: string; json?: boolean; limit?: number }): Promise<void> {
  const cfg = loadConfig(opts.config);
  getJob(cfg, job);
  const conn = await openConnections(cfg, { readOnly: true });
  try {
    const runs = new RunRecords(conn.redis, cfg.prefix);
    const rows = await runRows(runs, job, opts.limit ?? 20);
    if (opts.json) {
      process.stdout.write(JSON.stringify(rows, null, 2) + "\n");
      return;
    }
    if (!rows.length) {
      process.stdout.write(`no runs of job ${job} yet\n`);
      return;
    }
    for (const r of rows) {
      const took = r.endedAt ? formatDuration((Date.parse(r.endedAt) - Date.parse(r.createdAt)) / 1000) : "running";
      const committed = r.partitions.filter((p) => p.state === "COMMITTED").length;
      process.stdout.write(
        `${r.runId}  ${r.state.padEnd(9)} ${r.trigger.padEnd(8)} ${plural(r.files, "file")}${r.endedAt ? "" : ` of ${r.filesPlanned}`} ${formatBytes(r.bytes)} ${took}` +
          (r.mode === "reprocess"
            ? `  reprocess (bookmark untouched)${r.partitions.length ? `: ${r.partitions.filter((p) => p.state === "DONE").length}/${r.partitions.length} partitions done` : ""}`
            : r.partitions.length
              ? `  partitions: ${committed}/${r.partitions.length} committed`
              : "") +
          (r.error ? `  error: ${r.error}` : "") +
          "\n",
      );
      for (const p of r.partitions.filter((x) => x.state !== "COMMITTED" && x.state !== "DONE"))
        process.stdout.write(`    ${p.partition || "(unpartitioned)"} ${p.state}${p.error ? `: ${p.error}` : ""}\n`);
    }
  } finally {
    await conn.close();
  }
}

/** `tranche stop <runId>`: in-flight files finish, the rest goes to the next run; prints the state. */
export async function stopCommand(runId: string, opts: { config?: string }): Promise<void> {
  const cfg = loadConfig(opts.config);
  const conn = await openConnections(cfg);
  const ctx = stepContext({ redis: conn.redis, bull: conn.bull, cfg, log });
  try {
    const r = await stopRun(ctx, runId);
    if (r.already) {
      process.stdout.write(`run ${runId} had already ended ${r.state}: nothing to stop\n`);
      return;
    }
    process.stdout.write(
      `run ${runId}: ${r.state}${r.state === "STOPPING" ? " (batches running now finish; the run ends STOPPED)" : ""}; ${plural(r.removed, "queued batch", "queued batches")} removed\n`,
    );
  } finally {
    await ctx.queues.close();
    await conn.close();
  }
}
