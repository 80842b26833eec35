import { getJob, loadConfig } from "../config/load.js";
import { log } from "../log.js";
import { startMetricsServer } from "../metrics/server.js";
import { exportBacklogFromRedis } from "../metrics/shared-backlog.js";
import { stepContext } from "../run/step-context.js";
import { Scheduler } from "../triggers/scheduler.js";
import { triggerInfo } from "../triggers/info.js";
import { apiToken, checkExposure } from "../api/auth.js";
import { startApi } from "../api/server.js";
import { registerUi } from "../api/ui.js";
import { openConnections } from "./connect.js";

/**
 * `tranche scheduler`: fires the configuration's triggers while it leads (any number of replicas),
 * and serves the HTTP API when `api.port` (or `--api-port`) is set, until SIGTERM.
 */
export async function schedulerCommand(opts: { config?: string; metricsPort?: number; apiPort?: number; tickMs?: number }): Promise<void> {
  const cfg = loadConfig(opts.config);
  const apiPort = opts.apiPort ?? cfg.api.port;
  // An API other hosts could reach without a token is refused before anything else happens.
  if (apiPort) checkExposure(cfg.api.host, apiToken());
  const conn = await openConnections(cfg);
  const ctx = stepContext({ redis: conn.redis, bull: conn.bull, cfg, log });
  const port = opts.metricsPort ?? cfg.metrics.port;
  const scheduler = new Scheduler(ctx, { tickMs: opts.tickMs });
  const metrics = port
    ? await startMetricsServer(port, () => true, "0.0.0.0", opts.metricsPort !== undefined ? "--metrics-port" : "metrics.port").catch(
        async (e) => {
          await conn.close();
          throw e;
        },
      )
    : undefined;
  const api = apiPort
    ? await startApi(
        ctx,
        { host: cfg.api.host, port: apiPort },
        {
          token: apiToken(),
          option: opts.apiPort !== undefined ? "--api-port" : "api.port",
          // The queue dashboard (docs/ui.md): every job's queue, read-only unless api.uiWritable.
          extend: (app) =>
            registerUi(app, {
              queues: Object.keys(cfg.jobs).map((j) => ctx.queues.queue(j)),
              writable: cfg.api.uiWritable,
              token: apiToken(),
            }),
        },
      ).catch(async (e) => {
        await metrics?.close();
        await ctx.queues.close();
        await conn.close();
        throw e;
      })
    : undefined;
  const triggered = Object.entries(cfg.jobs).filter(([, j]) => j.triggers);
  log.info("scheduler started", {
    scheduler: scheduler.id,
    jobsWithTriggers: triggered.map(([n]) => n),
    metricsPort: metrics?.port,
    apiPort: api?.port,
    pid: process.pid,
  });
  const stopBacklog = exportBacklogFromRedis(conn.redis, cfg.prefix, Object.keys(cfg.jobs));
  scheduler.start();
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  await api?.close();
  await scheduler.stop();
  stopBacklog();
  await ctx.queues.close();
  await metrics?.close();
  await conn.close();
  log.info("scheduler stopped", { scheduler: scheduler.id });
}

/** `tranche triggers [job]`: each job's triggers with their next firing times and what they wait for. */
export async function triggersCommand(job: string | undefined, opts: { config?: string; json?: boolean }): Promise<void> {
  const cfg = loadConfig(opts.config);
  if (job) getJob(cfg, job);
  const names = job ? [job] : Object.keys(cfg.jobs);
  const conn = await openConnections(cfg, { readOnly: true });
  try {
    const out = [];
    const now = new Date();
    for (const name of names) out.push(await triggerInfo(cfg, conn.redis, name, now));
    if (opts.json) {
      process.stdout.write(JSON.stringify(job ? out[0] : out, null, 2) + "\n");
      return;
    }
    for (const e of out) {
      const lines = [`job ${e.job} (whenBusy: ${e.whenBusy}, timeout ${e.timeoutMinutes} min)`];
      const s = e.schedule;
      if (s)
        lines.push(
          `  schedule: "${s.cron}" in ${s.timezone}, misfire ${s.misfire}; next: ${s.next.join(", ") || "never"}` +
            (s.timezone !== "UTC" && s.nextLocal.length ? ` (${s.timezone} time: ${s.nextLocal.join(", ")})` : "") +
            (s.lastTick ? `; last tick ${s.lastTick}` : ""),
        );
      const a = e.after;
      if (a)
        lines.push(
          `  after (${a.logical}): ${a.conditions.map((c) => `${c.job} ${c.state}`).join(", ")}; met since last firing: ${a.met.length}`,
        );
      if (e.drain) lines.push(`  drain: next run after a committed run while backlog remains (pause ${e.drain.drainPauseSeconds} s)`);
      if (e.events)
        lines.push(
          `  events: a run once ${e.events.batchSize} events are pending or ${e.events.batchWindow} s after the first; ${e.events.pending} pending now`,
        );
      if (!s && !a && !e.drain && !e.events) lines.push("  no triggers (runs start from the CLI or the API)");
      process.stdout.write(lines.join("\n") + "\n");
    }
  } finally {
    await conn.close();
  }
}
