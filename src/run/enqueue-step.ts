import type { FlowJob } from "bullmq";
import { jobFingerprint } from "../config/fingerprint.js";
import type { BookmarkMode } from "../config/schema.js";
import type { BoundSource } from "../config/bounds.js";
import type { CatalogLocation } from "../catalog/location.js";
import { BookmarkStore } from "../bookmark/store.js";
import type { PlannedBatch, PlannedFile } from "../planner/batches.js";
import { batchId, queueName, stepId, type BatchJobData, type StepJobData } from "../queue/batch-job.js";
import { KEEP_DONE, type StepContext } from "./step-context.js";

/** A run's plan as the plan step stores it (`run:<id>:plan`): a retried plan step resumes from it. */
export interface StoredPlan {
  /** "selected": chosen, maybe partly leased; "leased": final (only leased files). */
  stage: "selected" | "leased";
  mode: BookmarkMode;
  bound: string;
  /** Where the bound came from: override, job, catalog (the table's parameters) or default. */
  boundSource?: BoundSource;
  /** A catalog source: the table as the run used it. */
  catalog?: StoredCatalog;
  /** A catalog source: where each selected partition's files are read (batches carry it). */
  locations?: Record<string, CatalogLocation>;
  selected: PlannedFile[];
  partitionValues: Record<string, Record<string, string>>;
  keepMode: "" | "lexical" | "full" | "events";
  /** An event-fed run: object keys of its events already settled (gone or done). */
  eventsDone?: string[];
  leaseKeep: boolean;
  keepEdges: [string, number][];
  fullListing: boolean;
  listed: number;
  files: number;
  bytes: number;
  remainingFiles: number;
  remainingBytes: number;
}

/** What a run used of its catalog table (read once, by its plan step). */
export interface StoredCatalog {
  database: string;
  table: string;
  location: string;
  partitionKeys: string[];
  /** The table parameters tranche read (boundedFiles, boundedSize, exclusions, recurse, classification, compressionType), as stored. */
  parameters: Record<string, string>;
  classification?: string;
  /** The partition filter passed to GetPartitions as Expression. */
  expression?: string;
  /** Partitions whose locations were listed, and GetPartitions requests made. */
  partitionsListed: number;
  glueRequests: number;
}

/**
 * Enqueues a planned run as one BullMQ flow (docs/runs.md): the finish job's children are one
 * commit job per partition, whose children are that partition's batches. Children ignore their
 * failures for their parent (`ignoreDependencyOnFailure`): a failed batch still lets its
 * partition's commit step run (it records the partition FAILED, and the others still commit), and
 * a failed commit step still lets the run finish. With `partitionConcurrency`, the partitions
 * beyond it wait in a list; each commit step starts the next (see {@link startNextPartition}).
 * Idempotent: a flow already added is not added again.
 */
export async function enqueueRun(ctx: StepContext, job: string, runId: string, plan: StoredPlan, batches: PlannedBatch[]): Promise<void> {
  const jc = ctx.cfg.jobs[job]!;
  const queue = ctx.queues.queue(job);
  if (await queue.getJob(stepId.finish(runId))) return;
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, job);
  const fingerprint = jobFingerprint(ctx.cfg, jc);
  const edges = new Map(plan.keepEdges);
  const parts = new Map<string, PlannedBatch[]>();
  for (const b of batches) parts.set(b.partition, [...(parts.get(b.partition) ?? []), b]);
  const flows: FlowJob[] = [...parts].map(([p, bs]) => {
    const ids = bs.map((b) => batchId(job, runId, p, b.index));
    const data: StepJobData = { step: "commit", job, runId, partition: p, batchIds: ids, plannedEdge: edges.get(p) };
    return {
      name: "commit",
      queueName: queueName(job),
      data,
      opts: {
        jobId: stepId.commit(runId, p),
        attempts: 5,
        backoff: { type: "exponential", delay: 1000 },
        ignoreDependencyOnFailure: true,
        ...KEEP_DONE,
      },
      children: bs.map((b, i) => ({
        name: "batch",
        queueName: queueName(job),
        data: {
          job,
          runId,
          partition: p,
          partitionValues: plan.partitionValues[p] ?? {},
          index: b.index,
          files: b.files.map((f) => ({ key: f.key, size: f.size, lastModified: f.lastModified, etag: f.etag })),
          ...(plan.locations?.[p] ? { location: plan.locations[p] } : {}),
          fingerprint,
          updateState: plan.mode === "enable",
        } satisfies BatchJobData,
        opts: {
          jobId: ids[i],
          // The n-th batch of every partition before the (n+1)-th of any: partitions side by side.
          priority: Math.min(b.index + 1, 2_000_000),
          attempts: jc.attempts,
          backoff: { type: "exponential", delay: jc.backoffMs },
          ignoreDependencyOnFailure: true,
          ...KEEP_DONE,
        },
      })),
    };
  });
  const limit = jc.partitionConcurrency ?? flows.length;
  const now = flows.slice(0, limit);
  const later = flows.slice(limit);
  const m = ctx.redis.multi().del(store.k.queuedParts(runId));
  if (later.length)
    m.rpush(store.k.queuedParts(runId), ...later.map((f) => JSON.stringify(f))).expire(store.k.queuedParts(runId), 7 * 24 * 3600);
  await m.exec();
  await ctx.queues.flow().add({
    name: "finish",
    queueName: queueName(job),
    data: { step: "finish", job, runId } satisfies StepJobData,
    opts: { jobId: stepId.finish(runId), attempts: 5, backoff: { type: "exponential", delay: 1000 }, ...KEEP_DONE },
    children: now,
  });
  ctx.log.info("run enqueued", { job, runId, partitions: flows.length, batches: batches.length, partitionsAtOnce: now.length });
}

/**
 * Starts the next partition waiting under `partitionConcurrency`, as a new child of the run's
 * finish job (called by a commit step before it completes, so the finish job is still waiting for
 * children). A partition popped by a process that dies before adding it is reported by the finish
 * step as never run (FAILED): its files stay leased for the next run.
 */
export async function startNextPartition(ctx: StepContext, job: string, runId: string): Promise<void> {
  const store = new BookmarkStore(ctx.redis, ctx.cfg.prefix, job);
  const raw = await ctx.redis.lpop(store.k.queuedParts(runId));
  if (!raw) return;
  const f = JSON.parse(raw) as FlowJob;
  const queue = ctx.queues.queue(job);
  await ctx.queues.flow().add({ ...f, opts: { ...f.opts, parent: { id: stepId.finish(runId), queue: queue.qualifiedName } } });
}
