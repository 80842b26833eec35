import { createHash } from "node:crypto";
import type { S3Settings } from "../source/types.js";

/** Everything a worker needs to run one batch; workers need no job config of their own. */
export interface BatchJobData {
  job: string;
  runId: string;
  prefix: string;
  partition: string;
  partitionValues: Record<string, string>;
  index: number;
  files: { key: string; size: number; lastModified: number; etag: string }[];
  spec: {
    sourceUri: string;
    outputUri: string;
    processor: string;
    processorOptions: Record<string, unknown>;
    s3: S3Settings;
    /** Failed in this many runs (on a batch's last attempt), a file is dead-lettered; 0 = never. */
    deadLetterAfterRuns: number;
    /** false in bookmark modes `disable` and `pause`: process, but leave the bookmark as it is. */
    updateState: boolean;
  };
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
