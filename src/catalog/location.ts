import { parseS3Uri } from "../source/s3-client.js";

/**
 * Where the files of one partition are read: the file with key K is the object
 * `uri + K.slice(strip.length)`. Keys are `k=v/…/rest` (the partition's values from the catalog,
 * escaped as Hive does, then the path under the partition's own location), so that the bookmark's
 * partition id and the output names look as for a path source whatever the partition's location.
 */
export interface CatalogLocation {
  /** The partition's location, `s3://bucket/prefix/`. */
  uri: string;
  /** The key prefix that stands for it (`dt=2024-01-01/`; "" for an unpartitioned table). */
  strip: string;
}

/** Characters Hive escapes in partition values (FileUtils.escapePathName), plus '%' itself. */
// eslint-disable-next-line no-control-regex -- Hive escapes the control characters too
const HIVE_ESCAPE = /[\u0000-\u001f"#%'*/:=?\\\u007f{[\]^]/g;

/** A partition value as a folder name, escaped as Hive does (`a/b` → `a%2Fb`); parsePartition decodes it back exactly. */
export function escapePartitionValue(v: string): string {
  return v.replace(HIVE_ESCAPE, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

/** The key prefix of a partition: `k1=v1/k2=v2/`. */
export function partitionPrefix(keys: readonly string[], values: readonly string[]): string {
  return keys.map((k, i) => `${k}=${escapePartitionValue(values[i] ?? "")}/`).join("");
}

/** Where a worker reads one file of a catalog partition: the bucket's root and the object key. */
export function catalogRead(loc: CatalogLocation, key: string): { sourceUri: string; sourceKey: string } {
  const { bucket, prefix } = parseS3Uri(loc.uri);
  return { sourceUri: `s3://${bucket}/`, sourceKey: prefix + key.slice(loc.strip.length) };
}
