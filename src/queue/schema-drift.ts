import type { Cluster, Redis } from "ioredis";

/** How long a partition's first-seen schema is kept after its last write. */
export const SCHEMA_TTL_S = 30 * 24 * 3600;

export interface SchemaDrift {
  column: string;
  /** The type first seen for the column in the partition. */
  was: string;
  /** This file's type. */
  now: string;
}

/**
 * Compares a file's output schema with the first one seen in its partition (`key`, a hash column
 * → type): each column's type is recorded if the partition has none yet (HSETNX), and the columns
 * whose recorded type differs are returned. New and missing columns are not drift. One round trip.
 */
export async function checkSchemaDrift(redis: Redis | Cluster, key: string, schema: Record<string, string>): Promise<SchemaDrift[]> {
  const cols = Object.keys(schema);
  if (!cols.length) return [];
  const m = redis.multi();
  for (const c of cols) m.hsetnx(key, c, schema[c]!);
  m.hmget(key, ...cols).expire(key, SCHEMA_TTL_S);
  const res = await m.exec();
  if (!res) throw new Error(`schema drift check of ${key}: the transaction was discarded`);
  const [err, seen] = res[cols.length]!;
  if (err) throw err;
  const drift: SchemaDrift[] = [];
  (seen as (string | null)[]).forEach((was, i) => {
    const column = cols[i]!;
    if (was !== null && was !== schema[column]) drift.push({ column, was, now: schema[column]! });
  });
  return drift;
}
