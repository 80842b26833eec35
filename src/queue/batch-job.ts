import { createHash } from "node:crypto";
import type { CatalogLocation } from "../catalog/location.js";

/**
 * A batch as it travels through Redis: which files of which run, and nothing secret. Workers take
 * everything else (paths, processor, options, credentials) from their own configuration of the
 * job, and refuse a batch whose `fingerprint` differs from it.
 */
export interface BatchJobData {
  job: string;
  runId: string;
  partition: string;
  partitionValues: Record<string, string>;
  index: number;
  files: { key: string; size: number; lastModified: number; etag: string }[];
  /**
   * A catalog source: where this partition's files are read (its location, as the run's plan step
   * resolved it from the catalog), so that workers never ask the catalog. Absent for path sources.
   */
  location?: CatalogLocation;
  /** jobFingerprint() of the configuration that planned the batch. */
  fingerprint: string;
  /** false in bookmark modes `disable` and `pause`: process, but leave the bookmark as it is. */
  updateState: boolean;
}

/** The other steps of a run, on the same queue as its batches (see docs/runs.md). */
export type StepJobData =
  | { step: "plan"; job: string; runId: string }
  | { step: "commit"; job: string; runId: string; partition: string; batchIds: string[]; plannedEdge?: number }
  | { step: "finish"; job: string; runId: string }
  | { step: "timeout"; job: string; runId: string };

/** Deterministic ids of a run's step jobs (BullMQ ids may not contain ':'). */
export const stepId = {
  plan: (runId: string) => `plan.${runId}`,
  finish: (runId: string) => `finish.${runId}`,
  timeout: (runId: string) => `timeout.${runId}`,
  commit: (runId: string, partition: string) => `commit.${runId}.${createHash("sha1").update(partition).digest("hex").slice(0, 12)}`,
};

/** The BullMQ queue of a job's run steps (plan, batches, commits, finish, timeout). */
export function queueName(job: string): string {
  return `batches.${job}`;
}

/**
 * Deterministic batch id: the same run planning the same batch gets the same id, so enqueuing it
 * twice is a no-op. (BullMQ ids may not contain ':'.)
 */
export function batchId(job: string, runId: string, partition: string, index: number): string {
  const p = createHash("sha1").update(partition).digest("hex").slice(0, 12);
  return `${job}.${runId}.${p}.${index}`;
}
