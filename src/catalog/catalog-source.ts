import type { GlueClient } from "@aws-sdk/client-glue";
import type { S3Client } from "@aws-sdk/client-s3";
import type { JobConfig, TrancheConfig } from "../config/schema.js";
import { locationsOverlap } from "../config/overlap.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import { compileFilter, type Filter } from "../source/partition-filter.js";
import { parsePartition } from "../source/partitions.js";
import type { SourceObject } from "../source/types.js";
import { makeGlueClient, tableName } from "./glue-client.js";
import { partitionPrefix, type CatalogLocation } from "./location.js";
import { mergeLimited } from "./merge-limited.js";
import { catalogPartitions, type CatalogPartition } from "./partitions.js";
import { catalogSourceOptions, getCatalogTable, s3Location, type CatalogSourceOptions, type CatalogTable } from "./table.js";

/** A catalog source as one run resolved it (GetTable once, in the plan step). */
export type { CatalogLocation } from "./location.js";

export interface ResolvedCatalogSource {
  table: CatalogTable;
  options: CatalogSourceOptions;
}

/**
 * Resolves a job's catalog source: GetTable, its parameters checked (E_CONFIG naming the table and
 * parameter), and the job's partition filter compiled against the table's partition keys.
 */
export async function resolveCatalogSource(cfg: Pick<TrancheConfig, "s3">, job: JobConfig): Promise<ResolvedCatalogSource> {
  const ref = job.source.catalog!;
  const client = makeGlueClient(cfg.s3, ref);
  try {
    const table = await getCatalogTable(client, ref);
    const options = catalogSourceOptions(table);
    if (job.source.partitionFilter !== undefined) compiledFilter(job.source.partitionFilter, table);
    return { table, options };
  } finally {
    client.destroy();
  }
}

/** The job's partition filter over the table's partition keys (E_CONFIG naming the filter and the table's keys). */
export function compiledFilter(src: string, table: CatalogTable): Filter {
  try {
    return compileFilter(src, table.partitionKeys);
  } catch (err) {
    throw new ConfigError(
      `${(err as Error).message} (catalog table ${tableName(table)} has partition keys: ${table.partitionKeys.join(", ") || "none"})`,
    );
  }
}

/** Partition locations listed at once. */
const LIST_CONCURRENCY = 8;

export interface CatalogListing {
  /** The files of the matching partitions, page by page, keyed `k=v/…/rest`. */
  pages: AsyncIterable<SourceObject[]>;
  /** Partition id → where its files are read, for every partition listed so far. */
  locations: Map<string, CatalogLocation>;
  /** Partitions listed and GetPartitions requests made so far. */
  stats: { partitions: number; glueRequests: number; listRequests: number };
}

/**
 * Lists a catalog source: GetPartitions with the partition filter as `Expression` (in `segments`
 * parallel Segments), then each matching partition's own location (up to 8 at once), its files
 * keyed by the partition's values from the catalog (not by folder names). An unpartitioned table
 * lists its location. Files directly under a location only with `recurse: false`.
 */
export function listCatalog(
  cfg: Pick<TrancheConfig, "s3">,
  job: JobConfig,
  cat: ResolvedCatalogSource,
  o: { recurse: boolean; filter?: Filter; log?: Logger },
): CatalogListing {
  const { table } = cat;
  const keys = table.partitionKeys;
  const locations = new Map<string, CatalogLocation>();
  const stats = { partitions: 0, glueRequests: 0, listRequests: 0 };
  const name = tableName(table);
  async function* pages(): AsyncGenerator<SourceObject[]> {
    const [{ S3Source }, { makeS3Client }] = await Promise.all([import("../source/s3-source.js"), import("../source/s3-client.js")]);
    const s3: S3Client = makeS3Client(cfg.s3);
    let glue: GlueClient | undefined;
    async function* listLocation(loc: CatalogLocation): AsyncGenerator<SourceObject[]> {
      for await (const page of new S3Source(loc.uri, s3).list()) {
        stats.listRequests++;
        const out: SourceObject[] = [];
        for (const f of page) if (o.recurse || !f.key.includes("/")) out.push({ ...f, key: loc.strip + f.key });
        if (out.length) yield out;
      }
    }
    try {
      if (keys.length === 0) {
        const loc = { uri: table.location, strip: "" };
        locations.set("_", loc);
        stats.partitions = 1;
        yield* listLocation(loc);
        return;
      }
      glue = makeGlueClient(cfg.s3, job.source.catalog!);
      const parts = catalogPartitions(glue, table, {
        expression: job.source.partitionFilter,
        segments: job.source.catalog!.segments,
        onRequest: () => stats.glueRequests++,
      });
      async function* each(): AsyncGenerator<CatalogLocation> {
        for await (const page of parts)
          for (const p of page) {
            const loc = locate(p);
            if (loc) yield loc;
          }
      }
      const locate = (p: CatalogPartition): CatalogLocation | undefined => {
        const what = `partition (${p.values.map((v) => JSON.stringify(v)).join(", ")}) of catalog table ${name}`;
        if (p.values.length !== keys.length) {
          o.log?.warn(`${what} has ${p.values.length} values for ${keys.length} partition keys: skipped`);
          return undefined;
        }
        const strip = partitionPrefix(keys, p.values);
        const id = parsePartition(`${strip}x`, keys);
        // The catalog filtered already; the same filter here keeps the listing what `covers` says.
        if (o.filter && o.filter(id.values) !== true) return undefined;
        let uri: string;
        try {
          uri = s3Location(p.location, what);
        } catch (err) {
          o.log?.warn(`${(err as Error).message}: skipped`);
          return undefined;
        }
        // A partition located in (or around) the output would list outputs as inputs.
        if (locationsOverlap(uri, job.output.path))
          throw new ConfigError(
            `${what} is located at ${uri}, which overlaps output.path (${job.output.path}): outputs would be read as inputs; point the partition or the output elsewhere`,
          );
        // Values with "/" or "=" can make two catalog partitions one bookmark partition (its id is
        // built from the decoded values): refuse rather than read one from the other's location.
        const seen = locations.get(id.id);
        if (seen && (seen.uri !== uri || seen.strip !== strip))
          throw new ConfigError(
            `catalog table ${name}: partitions (${p.values.map((v) => JSON.stringify(v)).join(", ")}) and another one map to the same partition id ${JSON.stringify(id.id)} (values containing "/" or "="); tranche cannot tell their files apart: rename the values`,
          );
        stats.partitions++;
        const loc = { uri, strip };
        locations.set(id.id, loc);
        return loc;
      };
      yield* mergeLimited(each(), LIST_CONCURRENCY, listLocation);
    } finally {
      s3.destroy();
      glue?.destroy();
    }
  }
  return { pages: pages(), locations, stats };
}
