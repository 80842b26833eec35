import { readFileSync } from "node:fs";
import { runKeys } from "../bookmark/keys.js";
import { getJob, loadConfig } from "../config/load.js";
import { ConfigError, RunFailedError } from "../errors.js";
import { log } from "../log.js";
import { initJobMetrics } from "../metrics/registry.js";
import { FilePool } from "../pool/file-pool.js";
import { BatchWorker } from "../queue/batch-worker.js";
import { preflight } from "../run/preflight.js";
import { startReprocess, type ReprocessResult, type ReprocessSpec } from "../run/reprocess.js";
import { stepContext, type StepContext } from "../run/step-context.js";
import type { RunSummary } from "../run/summary.js";
import { waitForRun } from "../run/wait-run.js";
import { openConnections } from "./connect.js";
import { ProgressReporter } from "./progress.js";
import { formatBytes, plural } from "./render.js";

export interface ReprocessOptions {
  config?: string;
  partition?: string[];
  since?: string;
  until?: string;
  keysFrom?: string;
  detach?: boolean;
  json?: boolean;
  threads?: number;
}

/** One key per line; blank lines and lines starting with # are skipped. `-` reads standard input. */
function readKeys(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (err) {
    throw new ConfigError(`--keys-from ${file}: ${(err as Error).message}`);
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

function describe(r: ReprocessResult, job: string): string {
  const lines = [
    `reprocess ${r.reprocessId} of job ${job}: ${plural(r.files, "file")}, ${formatBytes(r.bytes)} in ${plural(r.runs, "run")} (mode reprocess: outputs overwritten, the bookmark does not move)`,
  ];
  if (r.missing.length)
    lines.push(
      `  ${plural(r.missing.length, "key")} not found (skipped): ${r.missing.slice(0, 5).join(", ")}${r.missing.length > 5 ? ", …" : ""}`,
    );
  if (r.leased.length)
    lines.push(
      `  ${plural(r.leased.length, "file")} held by a live run (skipped; reprocess them once it ended): ${r.leased.slice(0, 5).join(", ")}${r.leased.length > 5 ? ", …" : ""}`,
    );
  return lines.join("\n") + "\n";
}

/** Waits for run `n` of a request to be started (the previous run's end starts it). */
async function runIdOf(ctx: StepContext, id: string, n: number): Promise<string | null> {
  const key = runKeys(ctx.cfg.prefix).reprocess(id);
  for (;;) {
    const [runId, state] = await ctx.redis.hmget(key, `run:${n}`, "state");
    // The id is reserved before the run's record is written.
    if (runId && (await ctx.redis.exists(runKeys(ctx.cfg.prefix).run(runId))) === 1) return runId;
    if (state && state !== "RUNNING") return null;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * `tranche reprocess <job>`: reprocesses exactly the files named (by partition, time range or key
 * list) in bounded runs through the queue, overwriting their outputs; the bookmark does not move.
 * Works on the runs in this process (as `tranche run` does) unless --detach.
 */
export async function reprocessCommand(job: string, opts: ReprocessOptions): Promise<RunSummary[]> {
  const cfg = loadConfig(opts.config);
  const jc = getJob(cfg, job);
  const spec: ReprocessSpec = {
    partitions: opts.partition,
    since: opts.since,
    until: opts.until,
    keys: opts.keysFrom !== undefined ? readKeys(opts.keysFrom) : undefined,
  };
  const threads = opts.threads ?? jc.worker.threads;
  const pool = opts.detach
    ? undefined
    : new FilePool({
        threads,
        maxOldGenerationSizeMb: jc.worker.maxOldGenerationSizeMb,
        nativeMemoryMb: jc.worker.nativeMemoryMb,
        filesPerThread: jc.worker.filesPerThread,
      });
  let conn: Awaited<ReturnType<typeof openConnections>>;
  try {
    if (pool) await preflight({ cfg, job, pool, log });
    conn = await openConnections(cfg);
  } catch (err) {
    await pool?.close();
    throw err;
  }
  const ctx = stepContext({ redis: conn.redis, bull: conn.bull, cfg, log, pool });
  let worker: BatchWorker | undefined;
  const summaries: RunSummary[] = [];
  try {
    const r = await startReprocess(ctx, job, spec, "manual");
    if (opts.detach || !r.runId) {
      process.stdout.write(opts.json ? JSON.stringify(r) + "\n" : describe(r, job));
      return summaries;
    }
    // The request (with its missing and leased keys) first: one JSON line, then one per run.
    process.stdout.write(opts.json ? JSON.stringify(r) + "\n" : "");
    if (!opts.json) process.stderr.write(describe(r, job));
    initJobMetrics(job);
    worker = new BatchWorker({
      redis: conn.redis,
      connection: conn.bull,
      cfg,
      jobs: [job],
      pool: pool!,
      concurrency: Math.max(jc.worker.concurrency, 2 * threads),
      log,
    });
    await worker.start();
    for (let n = 0; n < r.runs; n++) {
      const runId = n === 0 ? r.runId : await runIdOf(ctx, r.reprocessId, n);
      if (!runId) break;
      const progress = new ProgressReporter(`[${job}] reprocess run ${n + 1}/${r.runs}`);
      let s: RunSummary;
      try {
        s = await waitForRun(ctx, job, runId, { onProgress: (p) => progress.update(p) });
      } finally {
        progress.done();
      }
      summaries.push(s);
      process.stdout.write(
        opts.json
          ? JSON.stringify({ reprocessId: r.reprocessId, ...s }) + "\n"
          : `run ${s.runId} (${n + 1}/${r.runs}): ${s.state.toLowerCase()} — ${plural(s.files, "file")} reprocessed, ${formatBytes(s.bytes)} in ${(s.durationMs / 1000).toFixed(1)}s${s.errors[0] ? `; first error: ${s.errors[0]}` : ""}\n`,
      );
      if (s.state === "STOPPED" || s.state === "TIMEOUT")
        throw new RunFailedError(`reprocess ${r.reprocessId}: run ${s.runId} ended ${s.state}; the runs after it were not started`);
    }
    const failed = summaries.filter((s) => s.state === "FAILED");
    if (failed.length)
      throw new RunFailedError(
        `reprocess ${r.reprocessId}: ${plural(failed.length, "run")} failed (${failed.map((s) => s.runId).join(", ")}); see 'tranche runs ${job}'`,
      );
    return summaries;
  } finally {
    await worker?.close();
    await ctx.queues.close();
    await pool?.close();
    await conn.close();
  }
}
