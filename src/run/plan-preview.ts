import { randomBytes } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { describeBound, resolveBound, type BoundOptions } from "../config/bounds.js";
import type { BookmarkMode, TrancheConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import { BookmarkStore } from "../bookmark/store.js";
import { listAndSelect } from "./plan-step.js";
import type { StoredCatalog } from "./enqueue-step.js";
import { catalogWhere } from "../catalog/where.js";

/** What the next run of a job would take, and what is left (`tranche plan`). */
export interface PlanPreview {
  job: string;
  mode: BookmarkMode;
  bound: string;
  /** Where the bound came from: a run-time override, the job, the catalog table, or the default. */
  boundSource: "override" | "job" | "catalog" | "default";
  next: {
    files: number;
    bytes: number;
    partitions: { partition: string; files: number; bytes: number }[];
    oldest: string | null;
    newest: string | null;
  };
  /** Every unprocessed file: the next run's and those left after it. */
  backlog: { files: number; bytes: number; oldestUnprocessed: string | null };
  /** Runs needed at the current bound to take the whole backlog (with a size bound: at least this many). */
  runsNeeded: number;
  listing: { strategy: string; objectsListed: number; listRequests: number };
  /** A catalog source: the table as read now (location, partition keys, the parameters tranche uses, partitions listed). */
  catalog?: StoredCatalog;
}

/**
 * Plans the next run of a job as a run would (same listing strategy, same selection through the
 * bookmark), without leasing or writing anything: the listing figures are not recorded and no
 * metric moves. Files leased by live runs are not counted (they are theirs).
 */
export async function previewPlan(
  cfg: TrancheConfig,
  jobName: string,
  redis: Redis | Cluster,
  log: Logger,
  o: { override?: BoundOptions; mode?: BookmarkMode } = {},
): Promise<PlanPreview> {
  const jc = cfg.jobs[jobName]!;
  const catalog = jc.source.catalog ? await (await import("../catalog/catalog-source.js")).resolveCatalogSource(cfg, jc) : undefined;
  const { bound, source } = resolveBound({
    override: o.override,
    job: jc.source,
    catalog: catalog?.options.bounds,
    catalogWhere: catalog && catalogWhere(catalog.table),
  });
  const mode = o.mode ?? jc.bookmark.mode;
  const store = new BookmarkStore(redis, cfg.prefix, jobName);
  const plan = await listAndSelect({ cfg, job: jobName, log }, store, {
    runId: `preview-${randomBytes(3).toString("hex")}`,
    mode,
    bound,
    boundSource: source,
    catalog,
    bandMs: jc.bookmark.maxBand * 1000,
    from: mode === jc.bookmark.mode ? jc.bookmark.from : undefined,
    to: mode === jc.bookmark.mode ? jc.bookmark.to : undefined,
    preview: true,
  });
  const parts = new Map<string, { files: number; bytes: number }>();
  for (const f of plan.selected) {
    const p = parts.get(f.partition) ?? { files: 0, bytes: 0 };
    parts.set(f.partition, { files: p.files + 1, bytes: p.bytes + f.size });
  }
  const times = plan.selected.map((f) => f.lastModified);
  const iso = (t: number | null | undefined) => (t === null || t === undefined || !Number.isFinite(t) ? null : new Date(t).toISOString());
  const files = plan.files + plan.remainingFiles;
  const bytes = plan.bytes + plan.remainingBytes;
  return {
    job: jobName,
    mode,
    bound: describeBound(bound),
    boundSource: source,
    next: {
      files: plan.files,
      bytes: plan.bytes,
      partitions: [...parts].map(([partition, v]) => ({ partition, ...v })).sort((a, b) => (a.partition < b.partition ? -1 : 1)),
      oldest: iso(times.length ? Math.min(...times) : null),
      newest: iso(times.length ? Math.max(...times) : null),
    },
    backlog: { files, bytes, oldestUnprocessed: iso(plan.oldestUnprocessed) },
    runsNeeded: files === 0 ? 0 : Math.ceil((bound.kind === "files" ? files : bytes) / bound.limit),
    listing: { strategy: plan.listingStrategy ?? "full", objectsListed: plan.listed, listRequests: plan.pages ?? 0 },
    ...(plan.catalog ? { catalog: plan.catalog } : {}),
  };
}
