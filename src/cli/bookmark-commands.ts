import { getJob, loadConfig } from "../config/load.js";
import { bookmarkEntry } from "../bookmark/entry.js";
import { BookmarkStore } from "../bookmark/store.js";
import { ConfigError } from "../errors.js";
import { openConnections } from "./connect.js";
import { plural } from "./render.js";

/**
 * `tranche bookmark show <job>`: the bookmark as Glue's JobBookmarkEntry (JobName, Version, Run,
 * Attempt, PreviousRunId, RunId, JobBookmark as a JSON string) plus tranche's per-partition detail.
 */
export async function bookmarkShowCommand(jobName: string, opts: { config?: string; json?: boolean }): Promise<void> {
  const cfg = loadConfig(opts.config);
  getJob(cfg, jobName);
  const conn = await openConnections(cfg, { readOnly: true });
  try {
    const store = new BookmarkStore(conn.redis, cfg.prefix, jobName);
    const entry = await bookmarkEntry(store);
    if (opts.json) {
      process.stdout.write(JSON.stringify(entry, null, 2) + "\n");
      return;
    }
    const t = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString());
    const sum = { version: entry.Version, runs: entry.Run, lastRunId: entry.RunId, partitions: entry.Partitions };
    const dead = { deadLetters: entry.DeadLetters, skipped: entry.Skipped };
    const hist = entry.History;
    process.stdout.write(
      `bookmark of job ${jobName}: version ${sum.version}, ${plural(sum.runs, "committed run")}, last run ${sum.lastRunId ?? "-"}\n`,
    );
    for (const p of sum.partitions) {
      process.stdout.write(
        `  ${p.partition}: watermark ${t(p.wm)}, ${plural(p.bandFiles, "file")} in band, ${p.leased} leased, ${plural(p.files, "file version")} committed${p.floor !== null ? `, floor ${t(p.floor)}` : ""}\n`,
      );
    }
    if (dead.deadLetters)
      process.stdout.write(`dead letters: ${plural(dead.deadLetters, "file")}; see 'tranche dead-letters list ${jobName}'\n`);
    if (dead.skipped) process.stdout.write(`skipped (archived): ${plural(dead.skipped, "file")}\n`);
    process.stdout.write(`history (newest first):\n`);
    for (const h of hist.slice(0, 20)) {
      process.stdout.write(
        `  ${h.runId} ${h.status.padEnd(9)} ${h.mode.padEnd(7)} ${h.committed ? `v${h.version}` : "-"} ${plural(h.files, "file")}\n`,
      );
    }
  } finally {
    await conn.close();
  }
}

/** `tranche bookmark reset <job>` and `tranche bookmark rewind <job> --to-run RUN`. Output is never touched. */
export async function bookmarkChangeCommand(
  jobName: string,
  action: "reset" | "rewind",
  opts: { config?: string; toRun?: string },
): Promise<void> {
  const cfg = loadConfig(opts.config);
  getJob(cfg, jobName);
  if (action === "rewind" && !opts.toRun)
    throw new ConfigError("bookmark rewind needs --to-run RUN_ID (see 'tranche bookmark show JOB' for run ids)");
  const conn = await openConnections(cfg);
  try {
    const store = new BookmarkStore(conn.redis, cfg.prefix, jobName);
    if (action === "reset") {
      await store.reset();
      process.stdout.write(
        `bookmark of job ${jobName} reset: the next run starts over; dead letters were forgotten (output was not touched)\n`,
      );
    } else {
      const { version, incomplete } = await store.rewind(opts.toRun!, getJob(cfg, jobName).bookmark.maxBand * 1000);
      process.stdout.write(
        `bookmark of job ${jobName} rewound to the state after run ${opts.toRun} (version ${version}), rebuilt from the current state and the history's deltas; output was not touched\n`,
      );
      const partial = await partialNote(store, opts.toRun!);
      if (partial) process.stdout.write(partial);
      if (incomplete.length) {
        process.stdout.write(
          `warning: runs older than the history keeps (bookmark.historySize) committed files in partition${incomplete.length > 1 ? "s" : ""} ${incomplete.join(", ")} whose band entries pruning has dropped since; the next run may take those files again (duplicates, never losses)\n`,
        );
      }
    }
  } finally {
    await conn.close();
  }
}

/** For a run that committed only some of its partitions: a line saying which state `rewind` / `pause --from/--to` use. */
export async function partialNote(store: BookmarkStore, runId: string): Promise<string> {
  const c = await store.committedPartitions(runId);
  const missed = c.planned.filter((p) => !c.partitions.includes(p));
  if (!missed.length) return "";
  return `note: run ${runId} ended ${c.state ?? "?"} and committed only partition${c.partitions.length === 1 ? "" : "s"} ${c.partitions.join(", ") || "(none)"}; the state used is the one after those commits (partition${missed.length === 1 ? "" : "s"} ${missed.join(", ")} as before the run)\n`;
}
