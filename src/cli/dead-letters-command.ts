import { getJob, loadConfig } from "../config/load.js";
import { BookmarkStore } from "../bookmark/store.js";
import { openConnections } from "./connect.js";
import { plural } from "./render.js";

export interface DeadLettersOptions {
  config?: string;
  json?: boolean;
  /** Only these keys (retry, clear). */
  key?: string[];
  /** list: the skipped (archived) files instead. */
  skipped?: boolean;
}

/**
 * `tranche dead-letters list|retry|clear <job>`: every dead letter with its reason (streamed, not
 * capped); `retry` puts them back in the backlog (the next run takes them whatever the bookmark
 * says); `clear` forgets them (they stay done).
 */
export async function deadLettersCommand(action: "list" | "retry" | "clear", jobName: string, opts: DeadLettersOptions): Promise<void> {
  const cfg = loadConfig(opts.config);
  getJob(cfg, jobName);
  const conn = await openConnections(cfg, { readOnly: action === "list" });
  try {
    const dl = new BookmarkStore(conn.redis, cfg.prefix, jobName).deadLetters;
    if (action === "list") {
      let n = 0;
      if (!opts.json) process.stderr.write("# key\tlast-modified\tpartition\trun\tset aside at\treason\n");
      for await (const page of dl.list(opts.skipped ? "skipped" : "deadLetters")) {
        for (const r of page) {
          n++;
          process.stdout.write(
            opts.json
              ? JSON.stringify(r) + "\n"
              : `${r.key}\t${new Date(r.lastModified).toISOString()}\t${r.partition}\t${r.runId}\t${r.at}\t${r.reason}\n`,
          );
        }
      }
      if (!opts.json) process.stderr.write(`${plural(n, opts.skipped ? "skipped file" : "dead letter")} in job ${jobName}\n`);
      return;
    }
    if (opts.key?.length) {
      const known = new Set((await dl.get("deadLetters", opts.key)).map((r) => r.key));
      const unknown = opts.key.filter((k) => !known.has(k));
      if (unknown.length) process.stderr.write(`not dead letters of job ${jobName} (left alone): ${unknown.join(", ")}\n`);
    }
    if (action === "retry") {
      const n = await dl.retry(opts.key);
      process.stdout.write(`${plural(n, "dead letter")} of job ${jobName} put back in the backlog: the next run takes them\n`);
      return;
    }
    const n = await dl.clear(opts.key);
    process.stdout.write(`${plural(n, "dead letter")} of job ${jobName} forgotten (they stay done; output was not touched)\n`);
  } finally {
    await conn.close();
  }
}
