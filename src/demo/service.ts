import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { TrancheConfig } from "../config/schema.js";
import { BookmarkStore } from "../bookmark/store.js";
import { formatBytes, plural } from "../cli/render.js";
import { packageRoot } from "../package-root.js";
import { connectRedis } from "../redis.js";
import { RunRecords } from "../run/run-record.js";
import type { RunSummary } from "../run/summary.js";

/** Starts `tranche <args>` as a child process whose output is prefixed and shown when asked for. */
function child(name: string, args: string[], verbose: boolean): ChildProcess {
  const p = spawn(process.execPath, [path.join(packageRoot(), "bin", "tranche.js"), ...args], {
    env: { ...process.env, TRANCHE_LOG_LEVEL: verbose ? "info" : "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const show = (d: Buffer) => {
    for (const l of d.toString().split("\n")) if (l.trim()) process.stderr.write(`  [${name}] ${l}\n`);
  };
  p.stdout!.on("data", show);
  p.stderr!.on("data", show);
  return p;
}

/**
 * `tranche demo --service`: the job as a service. Starts a `tranche scheduler` and two
 * `tranche worker` processes on the demo's config (its job has a `drain` trigger) and shows the
 * runs the drain trigger starts, until the backlog is drained; then stops them (SIGTERM).
 */
export async function demoService(cfg: TrancheConfig, configFile: string, o: { verbose?: boolean } = {}): Promise<RunSummary[]> {
  const out = process.stdout;
  const redis = await connectRedis((cfg.redis as { url: string }).url);
  const store = new BookmarkStore(redis, cfg.prefix, "events");
  const runs = new RunRecords(redis, cfg.prefix);
  const verbose = o.verbose === true;
  const procs: ChildProcess[] = [];
  const done: RunSummary[] = [];
  try {
    const last = (await store.history())[0] as unknown as RunSummary | undefined;
    if (last && last.remainingFiles === 0 && (await store.slots.live()).length === 0) {
      out.write(`  the last run (${last.runId}) left nothing to drain: nothing to do (--fresh starts over)\n`);
      return [];
    }
    const started = Date.now();
    procs.push(child("scheduler", ["scheduler", "--config", configFile, "--metrics-port", "0"], verbose));
    for (const n of [1, 2])
      procs.push(child(`worker ${n}`, ["worker", "--config", configFile, "--metrics-port", "0", "--threads", "1"], verbose));
    out.write(
      `  started a scheduler and 2 workers (pids ${procs.map((p) => p.pid).join(", ")}); the drain trigger starts one bounded run after another:\n`,
    );
    const seen = new Set<string>();
    for (;;) {
      await new Promise((r) => setTimeout(r, 300));
      if (procs.some((p) => p.exitCode !== null)) throw new Error("a service process exited; run with --verbose to see why");
      for (const r of (await runs.list("events", 100)).reverse()) {
        if (seen.has(r.runId!) || Number(r.createdAt) < started - 1000 || !r.summary) continue;
        seen.add(r.runId!);
        const s = JSON.parse(r.summary) as RunSummary;
        done.push(s);
        out.write(
          `  run ${s.runId} ${s.state} (trigger: ${s.trigger}): ${plural(s.files, "file")}, ${formatBytes(s.bytes)}; ${plural(s.remainingFiles, "file")} left\n`,
        );
      }
      const lastDone = done.at(-1);
      if (lastDone && (await store.slots.live()).length === 0 && (lastDone.remainingFiles === 0 || lastDone.state !== "SUCCEEDED")) break;
    }
    return done;
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => (p.exitCode !== null ? undefined : new Promise((r) => p.once("exit", r)))));
    if (procs.length) out.write("  stopped the scheduler and the workers (SIGTERM: each first finished what it held)\n");
    redis.disconnect();
  }
}
