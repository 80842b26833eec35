import { createHash } from "node:crypto";

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
  /** jobFingerprint() of the configuration that planned the batch. */
  fingerprint: string;
  /** false in bookmark modes `disable` and `pause`: process, but leave the bookmark as it is. */
  updateState: boolean;
}

/** The BullMQ queue of a job's batches. */
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
