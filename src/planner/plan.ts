import type { Bound } from "../config/bounds.js";
import { compileExclusions, parsePartition } from "../source/partitions.js";
import type { Source } from "../source/types.js";
import type { PlannedFile } from "./batches.js";
import { BoundedSelector } from "./select.js";

export interface PlanInput {
  source: Source;
  partitionKeys: readonly string[];
  exclusions: readonly string[];
  bound: Bound;
  /**
   * Returns the test "is this file unprocessed?" for one partition (from its bookmark); called once
   * per partition seen.
   */
  isNew(partition: string): Promise<(file: { key: string; lastModified: number }) => boolean>;
  /** Called after each listed page. */
  onPage?(listed: number): void;
}

export interface Plan {
  selected: PlannedFile[];
  files: number;
  bytes: number;
  /** Unprocessed files and bytes left for later runs. */
  remainingFiles: number;
  remainingBytes: number;
  /** Last-modified time of the oldest unprocessed file (selected or not), or null. */
  oldestUnprocessed: number | null;
  listed: number;
  excluded: number;
  /** Partition id → its values, for the partitions selected. */
  partitionValues: Map<string, Record<string, string>>;
}

/**
 * Plans one run: streams the listing page by page, keeps only unprocessed files, and selects the
 * oldest ones within the bound. Memory holds the selection, one bookmark view per partition, and
 * one page: never the whole listing.
 */
export async function planRun(input: PlanInput): Promise<Plan> {
  const selector = new BoundedSelector<PlannedFile>(input.bound);
  const excluded = compileExclusions(input.exclusions);
  const views = new Map<string, (file: { key: string; lastModified: number }) => boolean>();
  const partitionValues = new Map<string, Record<string, string>>();
  let listed = 0;
  let excludedCount = 0;
  for await (const page of input.source.list()) {
    for (const obj of page) {
      listed++;
      if (excluded(obj.key)) {
        excludedCount++;
        continue;
      }
      const p = parsePartition(obj.key, input.partitionKeys);
      let view = views.get(p.id);
      if (!view) {
        view = await input.isNew(p.id);
        views.set(p.id, view);
        partitionValues.set(p.id, p.values);
      }
      if (view(obj)) {
        selector.offer({ key: obj.key, size: obj.size, lastModified: obj.lastModified, etag: obj.etag, partition: p.id });
      }
    }
    input.onPage?.(listed);
  }
  const r = selector.result();
  const used = new Set(r.selected.map((f) => f.partition));
  for (const id of [...partitionValues.keys()]) if (!used.has(id)) partitionValues.delete(id);
  return {
    ...r,
    oldestUnprocessed: selector.oldest?.lastModified ?? null,
    listed,
    excluded: excludedCount,
    partitionValues,
  };
}
