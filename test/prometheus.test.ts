/**
 * The shipped dashboard and alerts against a real Prometheus scraping tranche's real /metrics.
 *
 * Two metrics servers (`startMetricsServer`, tranche's registry) play a worker and a run process;
 * Prometheus scrapes them every second with the scrape jobs of deploy/prometheus/prometheus.yml
 * (same job names and relabelling, service discovery replaced by static targets, no honor_labels)
 * and loads deploy/prometheus/alerts.yml. Then every `expr` of deploy/grafana/dashboard.json, with
 * its variables made concrete, must return data labelled tranche_job="events", no series may carry
 * `exported_job`, and the alerts that the activity should trigger must fire.
 *
 * Skipped when `prometheus` is not on PATH (`apt-get install prometheus`; .ci/run installs it).
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  JOB_LABEL,
  backlogBytes,
  backlogFiles,
  backlogOldestAge,
  badRecords,
  batchDuration,
  batchesTotal,
  bytesProcessed,
  deadLettersTotal,
  fileFailures,
  filesProcessed,
  filesSkipped,
  initJobMetrics,
  registry,
  runsTotal,
  runStates,
  utilizationSources,
} from "../src/metrics/registry.js";
import { startMetricsServer } from "../src/metrics/server.js";
import { waitFor } from "./helpers/cli.js";
import { onPath, startPrometheus, type PrometheusServer, type PromSample } from "./helpers/prometheus.js";

const PROMETHEUS = onPath("prometheus");
const JOB = "events";
/** What the dashboard's interval variables become: 10 scrapes at the test's 1 s interval. */
const WINDOW = "10s";
const SCRAPE_JOBS = ["tranche-worker", "tranche-run"];

const DEPLOY = path.resolve("deploy");
const shippedConfig = parse(readFileSync(path.join(DEPLOY, "prometheus/prometheus.yml"), "utf8")) as {
  scrape_configs: Record<string, unknown>[];
};

// ---- the dashboard: every target expression and every variable --------------------------------

interface Target {
  expr?: string;
  refId?: string;
  legendFormat?: string;
}
interface Panel {
  title?: string;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
}
const dashboard = JSON.parse(readFileSync(path.join(DEPLOY, "grafana/dashboard.json"), "utf8")) as {
  panels: Panel[];
  templating: { list: Variable[] };
};

const variables = dashboard.templating.list;
/** Query variables with the `label_values(metric, label)` they list. */
const queryVariables = variables
  .filter((v) => v.type === "query")
  .map((v) => {
    const q = typeof v.query === "string" ? v.query : (v.query?.query ?? "");
    const m = /^label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)$/.exec(q);
    if (!m) throw new Error(`dashboard variable ${v.name}: unsupported query ${q}`);
    return { name: v.name, metric: m[1]!, label: m[2]! };
  });

/** Variable values: every query variable is the job "events"; Grafana's intervals a short window. */
const values: Record<string, string> = {
  __rate_interval: WINDOW,
  __interval: WINDOW,
  __range: "1m",
  ...Object.fromEntries(queryVariables.map((v) => [v.name, JOB])),
};

function concrete(expr: string): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (_m, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c)!;
    const v = values[name];
    if (v === undefined) throw new Error(`${expr}: $${name} is neither a dashboard variable nor a Grafana interval`);
    return v;
  });
}

interface Query {
  name: string;
  expr: string;
  legend: string;
}
function collect(panels: Panel[], out: Query[] = []): Query[] {
  for (const p of panels) {
    for (const t of p.targets ?? [])
      if (t.expr) out.push({ name: `${p.title ?? "?"} [${t.refId ?? "?"}]`, expr: t.expr, legend: t.legendFormat ?? "" });
    collect(p.panels ?? [], out);
  }
  return out;
}
const queries = collect(dashboard.panels);

// ---- tranche's side: the real registry, served by the real metrics server ----------------------

const l = { [JOB_LABEL]: JOB };
/** Activity of a worker and a run process, a little at each tick. */
function tick(): void {
  filesProcessed.inc(l, 3);
  bytesProcessed.inc(l, 3 * 2048);
  badRecords.inc(l);
  fileFailures.inc({ ...l, kind: "file", code: "E_CORRUPT" });
  fileFailures.inc({ ...l, kind: "job", code: "E_SINK" });
  filesSkipped.inc({ ...l, reason: "gone" });
  filesSkipped.inc({ ...l, reason: "archived" });
  deadLettersTotal.inc(l);
  batchesTotal.inc({ ...l, outcome: "ok" });
  batchesTotal.inc({ ...l, outcome: "retry" });
  batchDuration.observe(l, 0.7);
  runsTotal.inc({ ...l, status: "succeeded" });
  runStates.inc({ ...l, state: "TIMEOUT" });
}
const utilization = () => 0.25;

// ---- the test ------------------------------------------------------------------------------------

const title = PROMETHEUS
  ? "dashboard and alerts on a real Prometheus"
  : "dashboard and alerts on a real Prometheus (SKIPPED: `prometheus` is not on PATH; apt-get install -y prometheus)";

describe(title, () => {
  let dir: string | undefined;
  let prom: PrometheusServer | undefined;
  let ticker: ReturnType<typeof setInterval> | undefined;
  const servers: { port: number; close(): Promise<void> }[] = [];

  /** Why a query may have come back empty: the targets' health and Prometheus' last log lines. */
  async function diagnose(): Promise<string> {
    const t = await prom!
      .api<{ activeTargets: { labels: Record<string, string>; health: string; lastError: string }[] }>("/api/v1/targets")
      .catch((e: Error) => ({ activeTargets: [], error: e.message }));
    const targets = t.activeTargets.map((x) => `${x.labels.job} ${x.labels.instance} ${x.health} ${x.lastError}`).join("\n");
    return `targets:\n${targets}\n--- prometheus log (last lines) ---\n${prom!.log(20)}`;
  }

  beforeAll(async () => {
    if (!PROMETHEUS) {
      console.warn("test/prometheus.test.ts: Prometheus tests skipped: `prometheus` is not on PATH (apt-get install -y prometheus)");
      return;
    }
    initJobMetrics(JOB);
    backlogFiles.set(l, 1234);
    backlogBytes.set(l, 1234 * 2048);
    backlogOldestAge.set(l, 5400);
    utilizationSources.add(utilization);
    tick();
    ticker = setInterval(tick, 250);

    const worker = await startMetricsServer(0, () => true, "127.0.0.1");
    servers.push(worker);
    const run = await startMetricsServer(0, () => true, "127.0.0.1");
    servers.push(run);
    const targets: Record<string, string> = { "tranche-worker": `127.0.0.1:${worker.port}`, "tranche-run": `127.0.0.1:${run.port}` };

    // The shipped scrape jobs, with static targets instead of service discovery and a 1 s interval.
    const scrapeConfigs = SCRAPE_JOBS.map((name) => {
      const shipped = shippedConfig.scrape_configs.find((c) => c.job_name === name);
      if (!shipped) throw new Error(`deploy/prometheus/prometheus.yml has no scrape job ${name}`);
      const job = Object.fromEntries(Object.entries(shipped).filter(([k]) => !k.endsWith("_sd_configs") && k !== "static_configs"));
      delete job.honor_labels; // tranche must work without it
      return { ...job, scrape_interval: "1s", scrape_timeout: "1s", static_configs: [{ targets: [targets[name]!] }] };
    });
    dir = await mkdtemp(path.join(os.tmpdir(), "tranche-prometheus-"));
    prom = await startPrometheus(PROMETHEUS, dir, {
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [path.join(DEPLOY, "prometheus/alerts.yml")],
      scrape_configs: scrapeConfigs,
    });

    // Enough scrapes of both targets for rate() over WINDOW.
    await waitFor(
      async () => {
        const r = await prom!.query(`count_over_time(up{job=~"${SCRAPE_JOBS.join("|")}"}[${WINDOW}]) >= 3 and up == 1`);
        return (r.result as PromSample[]).length === SCRAPE_JOBS.length;
      },
      45_000,
      "three successful scrapes of each target",
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnose()}`);
    });
  }, 90_000);

  afterAll(async () => {
    if (ticker) clearInterval(ticker);
    utilizationSources.delete(utilization);
    await prom?.stop();
    for (const s of servers) await s.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("the shipped scrape jobs do not need honor_labels", () => {
    for (const name of SCRAPE_JOBS) {
      const job = shippedConfig.scrape_configs.find((c) => c.job_name === name);
      expect(job, `scrape job ${name}`).toBeDefined();
      expect(job!.honor_labels ?? false, `scrape job ${name}: honor_labels`).toBe(false);
    }
  });

  it("the dashboard has queries and a job variable on tranche_job", () => {
    expect(queries.length).toBeGreaterThanOrEqual(20);
    expect(queryVariables.map((v) => v.label)).toEqual([JOB_LABEL]);
  });

  it.skipIf(!PROMETHEUS)('tranche series carry tranche_job="events" and the scrape job; none has exported_job', async () => {
    const r = (await prom!.query(`{__name__=~"tranche_.+", job=~"${SCRAPE_JOBS.join("|")}"}`)).result as PromSample[];
    expect(r.length).toBeGreaterThan(0);
    const registered = new Set((await registry.getMetricsAsJSON()).filter((m) => m.name.startsWith("tranche_")).map((m) => m.name));
    const perJob = r.filter((s) => !s.metric.__name__!.startsWith("tranche_process_") && s.metric.__name__ !== "tranche_pool_utilization");
    expect(perJob.length).toBeGreaterThan(0);
    for (const s of perJob) expect(s.metric[JOB_LABEL], JSON.stringify(s.metric)).toBe(JOB);
    for (const s of r) {
      expect(s.metric, JSON.stringify(s.metric)).not.toHaveProperty("exported_job");
      expect(SCRAPE_JOBS).toContain(s.metric.job);
      expect(s.metric.pod, "the shipped relabelling sets pod").toBe(s.metric.instance);
    }
    // Every series the dashboard and alerts are about made it (histograms as _bucket/_sum/_count).
    const seen = new Set(r.map((s) => s.metric.__name__!.replace(/_(bucket|sum|count)$/, "")));
    for (const name of ["tranche_dead_letters_total", "tranche_files_skipped_total", "tranche_file_failures_total", "tranche_runs_total"]) {
      expect(registered).toContain(name);
      expect(seen).toContain(name);
    }
    expect((await prom!.query(`count({exported_job!=""})`)).result).toEqual([]);
  });

  for (const v of queryVariables) {
    it.skipIf(!PROMETHEUS)(`variable $${v.name}: label_values(${v.metric}, ${v.label}) lists "${JOB}"`, async () => {
      const names = await prom!.api<string[]>(`/api/v1/label/${v.label}/values?${new URLSearchParams({ "match[]": v.metric })}`);
      expect(names).toContain(JOB);
    });
  }

  for (const q of queries) {
    it.skipIf(!PROMETHEUS)(`${q.name}: ${q.expr}`, async () => {
      const expr = concrete(q.expr);
      const data = await prom!.query(expr);
      const rows = data.resultType === "scalar" ? [{ metric: {} }] : (data.result as PromSample[]);
      if (rows.length === 0) throw new Error(`${expr}\nreturned nothing\n${await diagnose()}`);
      // A legend naming {{tranche_job}} (or any label) needs it in every result.
      const legendLabels = [...q.legend.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!);
      for (const s of rows) {
        const what = `${expr}: ${JSON.stringify(s.metric)}`;
        expect(s.metric, what).not.toHaveProperty("exported_job");
        for (const label of legendLabels) expect(s.metric, `${what}: legend ${q.legend}`).toHaveProperty(label);
        if (JOB_LABEL in s.metric || legendLabels.includes(JOB_LABEL)) expect(s.metric[JOB_LABEL], what).toBe(JOB);
      }
    });
  }

  it.skipIf(!PROMETHEUS)("the alert rules load and evaluate; dead letters, job errors and timed-out runs fire for events", async () => {
    type Alert = { labels: Record<string, string>; state: string };
    const firing = async (name: string) =>
      (await prom!.api<{ alerts: Alert[] }>("/api/v1/alerts")).alerts.filter((a) => a.labels.alertname === name && a.state === "firing");
    const expected = ["TrancheDeadLetters", "TrancheJobErrors", "TrancheRunsTimedOutOrErrored"];
    await waitFor(
      async () => (await Promise.all(expected.map(firing))).every((a) => a.length > 0),
      20_000,
      `alerts ${expected.join(", ")} firing`,
    ).catch(async (err: Error) => {
      const all = await prom!.api<{ alerts: Alert[] }>("/api/v1/alerts");
      throw new Error(
        `${err.message}\nactive: ${JSON.stringify(all.alerts.map((a) => [a.labels.alertname, a.state]))}\n${await diagnose()}`,
      );
    });
    for (const name of expected) for (const a of await firing(name)) expect(a.labels[JOB_LABEL], name).toBe(JOB);
    expect((await firing("TrancheJobErrors")).map((a) => a.labels.code)).toEqual(["E_SINK"]);
    // outcome="failed" sits at 0 (initJobMetrics): a new series alone must not fire.
    expect(await firing("TrancheBatchesFailed")).toEqual([]);

    const rules = await prom!.api<{ groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] }>(
      "/api/v1/rules",
    );
    const all = rules.groups.flatMap((g) => g.rules);
    expect(all.length).toBeGreaterThan(0);
    for (const r of all) expect(`${r.name}: ${r.health} ${r.lastError ?? ""}`.trim()).toBe(`${r.name}: ok`);
  });
});
