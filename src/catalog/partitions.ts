import { GetPartitionsCommand, type GlueClient } from "@aws-sdk/client-glue";
import { classifyGlueError } from "./glue-errors.js";
import { tableName, type CatalogRef } from "./glue-client.js";
import { mergeLimited } from "./merge-limited.js";

/** One partition of a catalog table: its values (in partition-key order) and its own location. */
export interface CatalogPartition {
  values: string[];
  /** `StorageDescriptor.Location` as stored (may be anywhere, or missing). */
  location: string | undefined;
}

/** Glue's cap on GetPartitions' MaxResults. */
export const MAX_PARTITIONS_PAGE = 1000;
/** Glue's cap on GetPartitions' TotalSegments. */
export const MAX_SEGMENTS = 10;

/**
 * Streams a table's partitions, page by page, with GetPartitions: `expression` is passed as Glue's
 * `Expression` (the catalog filters), pages of at most `pageSize` (≤ 1000) follow `NextToken`,
 * and with `segments` > 1 the table is read as that many disjoint `Segment`s in parallel (Glue's
 * TotalSegments, at most 10); pages then arrive in no particular order. Errors are classified
 * (E_CONFIG naming the table for a missing table or a filter Glue refuses).
 */
export function catalogPartitions(
  client: GlueClient,
  ref: Pick<CatalogRef, "database" | "table">,
  o: { expression?: string; segments?: number; pageSize?: number; onRequest?(): void } = {},
): AsyncGenerator<CatalogPartition[]> {
  const total = Math.min(MAX_SEGMENTS, Math.max(1, Math.floor(o.segments ?? 1)));
  const pageSize = Math.min(MAX_PARTITIONS_PAGE, Math.max(1, Math.floor(o.pageSize ?? MAX_PARTITIONS_PAGE)));
  const expression = o.expression?.trim() ? o.expression : undefined;
  async function* segment(n: number): AsyncGenerator<CatalogPartition[]> {
    let token: string | undefined;
    do {
      let out;
      try {
        o.onRequest?.();
        out = await client.send(
          new GetPartitionsCommand({
            DatabaseName: ref.database,
            TableName: ref.table,
            MaxResults: pageSize,
            NextToken: token,
            ExcludeColumnSchema: true,
            ...(expression ? { Expression: expression } : {}),
            ...(total > 1 ? { Segment: { SegmentNumber: n, TotalSegments: total } } : {}),
          }),
        );
      } catch (err) {
        throw classifyGlueError(err, {
          table: tableName(ref),
          op: "GetPartitions",
          hint: expression ? `partition filter ${JSON.stringify(expression)}` : undefined,
        });
      }
      const page = (out.Partitions ?? []).map((p) => ({ values: p.Values ?? [], location: p.StorageDescriptor?.Location }));
      if (page.length) yield page;
      token = out.NextToken || undefined;
    } while (token);
  }
  return mergeLimited(
    Array.from({ length: total }, (_, i) => i),
    total,
    segment,
  );
}
