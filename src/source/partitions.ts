import picomatch from "picomatch";

/** Partition values parsed from Hive-style folders, in `partitionKeys` order. */
export interface PartitionInfo {
  /** Stable id: `dt=2024-01-01/region=eu`, or `_` for unpartitioned data. */
  id: string;
  values: Record<string, string>;
}

export const UNPARTITIONED = "_";

/**
 * Parses Hive-style partitions (`dt=2024-01-01/…`) from a key. Only the configured keys are used;
 * a key whose folders do not carry every partition key lands in the `_` partition, so nothing is dropped.
 */
export function parsePartition(key: string, partitionKeys: readonly string[]): PartitionInfo {
  if (partitionKeys.length === 0) return { id: UNPARTITIONED, values: {} };
  const folders = key.split("/").slice(0, -1);
  const found: Record<string, string> = {};
  for (const f of folders) {
    const eq = f.indexOf("=");
    if (eq > 0) {
      const k = f.slice(0, eq);
      if (partitionKeys.includes(k) && !(k in found)) found[k] = decodeURIComponentSafe(f.slice(eq + 1));
    }
  }
  if (partitionKeys.some((k) => !(k in found))) return { id: UNPARTITIONED, values: {} };
  const values: Record<string, string> = {};
  for (const k of partitionKeys) values[k] = found[k]!;
  return { id: partitionKeys.map((k) => `${k}=${found[k]}`).join("/"), values };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Compiles Glue-style exclusion globs (`**.tmp`, `dt=2024-01-01/**`) into one predicate. */
export function compileExclusions(patterns: readonly string[]): (key: string) => boolean {
  if (patterns.length === 0) return () => false;
  const m = picomatch(patterns as string[], { dot: true });
  // Glue writes `**.tmp` for "any key ending .tmp"; picomatch reads `**` inside a segment as `*`,
  // so also try each pattern against the key's basename.
  const base = picomatch(
    patterns.filter((p) => !p.includes("/")),
    { dot: true },
  );
  return (key) => m(key) || base(key.slice(key.lastIndexOf("/") + 1));
}
