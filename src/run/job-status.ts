import type { Cluster, Redis } from "ioredis";
import { BookmarkStore } from "../bookmark/store.js";
import type { TrancheConfig } from "../config/schema.js";
import { lastListing } from "./listing-step.js";
import { pendingRegistrations } from "../catalog/registration.js";
import { RunRecords } from "./run-record.js";
import { backlog } from "./status.js";
import type { RunSummary } from "./summary.js";

/** A job's backlog: as the last run's listing left it (`asOfRun`), or listed now (`asOfRun` null). */
export interface BacklogFigures {
  files: number;
  bytes: number;
  /** Last-modified time (ms) of the oldest unprocessed file, or null. */
  oldestUnprocessed: number | null;
  listed: number;
  /** Files the listing skipped by `exclusions` (listed now only). */
  excluded?: number;
  /** When the figures were taken (ms). */
  asOf: number;
  asOfRun: string | null;
}

/**
 * The backlog as the last run's listing left it (no listing: `status` stays cheap on a big
 * source), or listed now with `fresh`, or when no run has listed yet and `listIfUnknown` (else null).
 */
export async function currentBacklog(
  cfg: TrancheConfig,
  name: string,
  store: BookmarkStore,
  o: { fresh?: boolean; listIfUnknown?: boolean } = {},
): Promise<BacklogFigures | null> {
  const last = o.fresh ? null : await lastListing(store);
  if (last) {
    return {
      files: last.files,
      bytes: last.bytes,
      oldestUnprocessed: last.oldestUnprocessed,
      listed: last.listed,
      asOf: last.at,
      asOfRun: last.runId,
    };
  }
  if (!o.fresh && o.listIfUnknown === false) return null;
  return { ...(await backlog(cfg, name, store)), asOf: Date.now(), asOfRun: null };
}

/**
 * The newest ended runs: from the run records (which also hold reprocess runs, absent from the
 * bookmark's history), completed by the history for runs whose records expired.
 */
async function lastRuns(runs: RunRecords, job: string, hist: string[], n: number): Promise<RunSummary[]> {
  if (n === 0) return [];
  const byId = new Map<string, RunSummary>();
  for (const r of await runs.list(job, n * 2)) if (r.summary) byId.set(r.runId!, JSON.parse(r.summary) as RunSummary);
  for (const h of hist.map((x) => JSON.parse(x) as RunSummary & { kind?: string }))
    if (h.kind !== "commit" && !byId.has(h.runId)) byId.set(h.runId, h);
  return [...byId.values()].sort((a, b) => (a.endedAt < b.endedAt ? 1 : a.endedAt > b.endedAt ? -1 : 0)).slice(0, n);
}

/** What `tranche status --json` shows of one job (and `GET /v1/jobs` builds on). */
export async function jobStatus(
  cfg: TrancheConfig,
  redis: Redis | Cluster,
  name: string,
  o: { fresh?: boolean; listIfUnknown?: boolean; lastRuns?: number } = {},
) {
  const store = new BookmarkStore(redis, cfg.prefix, name);
  const runs = new RunRecords(redis, cfg.prefix);
  const jc = cfg.jobs[name]!;
  const [b, bm, hist, live, dead, listing, registrations] = await Promise.all([
    currentBacklog(cfg, name, store, o),
    store.summary(),
    o.lastRuns === 0 ? Promise.resolve([] as string[]) : redis.lrange(store.k.history, 0, 199),
    store.slots.live(),
    store.deadLetters.count(),
    lastListing(store),
    jc.output.catalog ? pendingRegistrations(redis, cfg.prefix, name) : Promise.resolve(undefined),
  ]);
  return {
    job: name,
    backlog: b,
    /** The bound of the last run that listed, and where it came from (a catalog table's parameters, the job, …). */
    bound: listing?.bound
      ? { bound: listing.bound, source: listing.boundSource ?? null, catalogTable: listing.catalogTable ?? null, asOfRun: listing.runId }
      : null,
    ...(registrations ? { catalogRegistrations: registrations } : {}),
    bookmark: bm,
    deadLetters: dead.deadLetters,
    skipped: dead.skipped,
    runningRuns: await Promise.all(live.map(async (id) => ({ runId: id, state: (await runs.state(id)) ?? "gone" }))),
    lastRuns: await lastRuns(runs, name, hist, o.lastRuns ?? 5),
  };
}
