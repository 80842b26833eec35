import type { Candidate } from "./select.js";

export interface PlannedFile extends Candidate {
  etag: string;
  partition: string;
}

export interface PlannedBatch {
  partition: string;
  /** Index of the batch inside its partition for this run (0-based). */
  index: number;
  files: PlannedFile[];
  bytes: number;
}

/**
 * Splits a selection (oldest first) into batches: one group per partition, cut into batches of at
 * most `batchFiles` files. Order inside a batch stays oldest first. Partitions are ordered by their
 * oldest file, so the oldest work is queued first.
 */
export function splitIntoBatches(selected: readonly PlannedFile[], batchFiles: number): PlannedBatch[] {
  const out: PlannedBatch[] = [];
  for (const [partition, files] of groupByPartition(selected)) {
    for (let i = 0, index = 0; i < files.length; i += batchFiles, index++) {
      const chunk = files.slice(i, i + batchFiles);
      out.push({ partition, index, files: chunk, bytes: chunk.reduce((s, f) => s + f.size, 0) });
    }
  }
  return out;
}

/** Groups files by partition, keeping their order; partitions come in order of first appearance. */
export function groupByPartition<T extends { partition: string }>(files: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const f of files) {
    const list = out.get(f.partition);
    if (list) list.push(f);
    else out.set(f.partition, [f]);
  }
  return out;
}
