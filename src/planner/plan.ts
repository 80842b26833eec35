import type { Bound } from "../config/bounds.js";
import { compileExclusions, parsePartition } from "../source/partitions.js";
import type { Source, SourceObject } from "../source/types.js";
import type { PlannedFile } from "./batches.js";
import { BoundedSelector } from "./select.js";

export interface PlanInput {
  source: Source;
  partitionKeys: readonly string[];
  exclusions: readonly string[];
  bound: Bound;
  /** The pages to plan over (a listing strategy's); default: the source's full listing. */
  pages?: AsyncIterable<SourceObject[]>;
  /**
   * Which of one listing page's files are unprocessed (from the bookmark); called once per page,
   * so the bookmark is asked in batches and never loaded whole.
   */
  newIn(files: readonly PageFile[]): Promise<boolean[]>;
  /** Called after each listed page. */
  onPage?(listed: number): void;
}

export interface PageFile {
  key: string;
  lastModified: number;
  partition: string;
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
 * oldest ones within the bound. Memory holds the selection, the partitions' cursors and leases,
 * and one page: never the whole listing, nor the bookmark's band.
 */
export async function planRun(input: PlanInput): Promise<Plan> {
  const selector = new BoundedSelector<PlannedFile>(input.bound);
  const excluded = compileExclusions(input.exclusions);
  const partitionValues = new Map<string, Record<string, string>>();
  let listed = 0;
  let excludedCount = 0;
  const seen = new Map<string, Record<string, string>>();
  for await (const page of input.pages ?? input.source.list()) {
    const kept: PlannedFile[] = [];
    for (const obj of page) {
      listed++;
      if (excluded(obj.key)) {
        excludedCount++;
        continue;
      }
      const p = parsePartition(obj.key, input.partitionKeys);
      if (!seen.has(p.id)) seen.set(p.id, p.values);
      kept.push({ key: obj.key, size: obj.size, lastModified: obj.lastModified, etag: obj.etag, partition: p.id });
    }
    const fresh = await input.newIn(kept);
    kept.forEach((f, i) => fresh[i] && selector.offer(f));
    input.onPage?.(listed);
  }
  const r = selector.result();
  for (const f of r.selected) if (!partitionValues.has(f.partition)) partitionValues.set(f.partition, seen.get(f.partition)!);
  return {
    ...r,
    oldestUnprocessed: selector.oldest?.lastModified ?? null,
    listed,
    excluded: excludedCount,
    partitionValues,
  };
}
