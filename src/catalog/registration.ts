import type { Cluster, Redis } from "ioredis";
import { keys } from "../bookmark/keys.js";
import type { JobConfig } from "../config/schema.js";

/**
 * The queued side of output registration (`output.catalog`; docs/catalog.md): what a partition
 * commit queues, how output folders map to the output table's partitions, the retry schedule and
 * what `tranche status` shows. No AWS SDK here (src/catalog/register.ts talks to Glue).
 */

/** A queued registration: what one partition commit of a run wrote. */
export interface RegistrationEntry {
  runId: string;
  /** The run's (input) partition. */
  partition: string;
  /** The output folders written (relative to the output root, without trailing slash). */
  folders: string[];
  /** When it was queued (ms). */
  at: number;
  attempts?: number;
  lastError?: string;
  lastAttemptAt?: number;
}

/** An output partition to create: its values in the table's partition-key order and its location. */
export interface OutputPartition {
  values: string[];
  location: string;
}

/** Delay before the n-th retry: 2 s doubling, at most 5 minutes. */
export function retryDelayMs(attempts: number): number {
  return Math.min(300_000, 2000 * 2 ** Math.max(0, attempts - 1));
}

/** The registration a partition commit queues, or undefined when it wrote no output folder (or the job has no output.catalog). */
export function registrationOf(
  jc: JobConfig,
  runId: string,
  partition: string,
  outputKeys: readonly string[],
): RegistrationEntry | undefined {
  if (!jc.output.catalog) return undefined;
  const folders = [...new Set(outputKeys.map((k) => k.slice(0, Math.max(0, k.lastIndexOf("/")))).filter((f) => f !== ""))].sort();
  return folders.length ? { runId, partition, folders, at: Date.now() } : undefined;
}

function decode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/**
 * Maps output folders to the output table's partitions (pure): a folder's `k=v` segments give the
 * values of the table's partition keys (each key's first segment), and the partition's location is
 * the output root plus the folder up to the last of them. Folders without a value for every key are
 * returned as `unmatched`. Duplicates are merged.
 */
export function outputPartitions(
  outputRoot: string,
  partitionKeys: readonly string[],
  folders: readonly string[],
): { partitions: OutputPartition[]; unmatched: string[] } {
  const root = outputRoot.endsWith("/") ? outputRoot : `${outputRoot}/`;
  const byValues = new Map<string, OutputPartition>();
  const unmatched: string[] = [];
  for (const folder of folders) {
    const segs = folder.split("/");
    const found = new Map<string, string>();
    let last = -1;
    segs.forEach((seg, i) => {
      const eq = seg.indexOf("=");
      if (eq <= 0) return;
      const k = seg.slice(0, eq);
      if (partitionKeys.includes(k) && !found.has(k)) {
        found.set(k, decode(seg.slice(eq + 1)));
        last = i;
      }
    });
    if (partitionKeys.length === 0 || partitionKeys.some((k) => !found.has(k))) {
      unmatched.push(folder);
      continue;
    }
    const values = partitionKeys.map((k) => found.get(k)!);
    const id = values.join("\u0000");
    if (!byValues.has(id)) byValues.set(id, { values, location: `${root}${segs.slice(0, last + 1).join("/")}/` });
  }
  return { partitions: [...byValues.values()], unmatched };
}

/** A job's pending registrations, for `tranche status`: how many, the oldest, and the newest error. */
export async function pendingRegistrations(
  redis: Redis | Cluster,
  prefix: string,
  job: string,
): Promise<{ pending: number; oldestAt: number | null; failing: number; lastError: string | null }> {
  const k = keys(prefix, job);
  const n = await redis.hlen(k.catalogReg);
  if (n === 0) return { pending: 0, oldestAt: null, failing: 0, lastError: null };
  let oldestAt: number | null = null;
  let failing = 0;
  let last: RegistrationEntry | undefined;
  // Bounded: what is pending is what failed or is in flight (each commit's entry goes once registered).
  for await (const chunk of redis.hscanStream(k.catalogReg, { count: 200 }) as AsyncIterable<string[]>) {
    for (let i = 1; i < chunk.length; i += 2) {
      const e = JSON.parse(chunk[i]!) as RegistrationEntry;
      if (oldestAt === null || e.at < oldestAt) oldestAt = e.at;
      if (e.attempts) {
        failing++;
        if (!last || (e.lastAttemptAt ?? 0) > (last.lastAttemptAt ?? 0)) last = e;
      }
    }
  }
  return { pending: n, oldestAt, failing, lastError: last?.lastError ?? null };
}
