import { GetTableCommand, type GlueClient, type StorageDescriptor } from "@aws-sdk/client-glue";
import picomatch from "picomatch";
import { parseBoundOptions, type BoundOptions } from "../config/bounds.js";
import { ConfigError } from "../errors.js";
import { parseS3Uri } from "../source/s3-client.js";
import { classifyGlueError } from "./glue-errors.js";
import { tableName, type CatalogRef } from "./glue-client.js";
import { catalogWhere } from "./where.js";

/** A catalog table as GetTable describes it. */
export interface CatalogTable {
  database: string;
  table: string;
  /** `s3://bucket/prefix/` (with a trailing slash). */
  location: string;
  /** The partition keys, outermost first. */
  partitionKeys: string[];
  /** `Table.Parameters`, as stored. */
  parameters: Record<string, string>;
  /** The table's storage descriptor (copied into the partitions tranche registers). */
  storageDescriptor: StorageDescriptor;
}

/** What tranche reads from a source table's parameters, checked. */
export interface CatalogSourceOptions {
  /** `boundedFiles` / `boundedSize` as stored (at most one; checked). */
  bounds: BoundOptions;
  /** `exclusions`: a JSON list of globs. */
  exclusions: string[];
  /** `recurse` ("true" / "false"); undefined when not set. */
  recurse: boolean | undefined;
  classification?: string;
  compressionType?: string;
}

/** Normalises a table or partition location to `s3://bucket/prefix/`; E_CONFIG naming the table otherwise. */
export function s3Location(location: string | undefined, what: string): string {
  if (!location) throw new ConfigError(`${what} has no storage location (StorageDescriptor.Location); give it an s3:// location`);
  const loc = location.replace(/^s3[an]:\/\//, "s3://");
  if (!loc.startsWith("s3://"))
    throw new ConfigError(
      `${what}: location ${JSON.stringify(location)} is not an s3:// location; tranche reads catalog data from S3 only`,
    );
  try {
    const { bucket, prefix } = parseS3Uri(loc);
    return `s3://${bucket}/${prefix}`;
  } catch (err) {
    throw new ConfigError(`${what}: location ${JSON.stringify(location)}: ${(err as Error).message}`);
  }
}

/** GetTable: the table's location, partition keys, parameters and storage descriptor. Errors are classified (E_CONFIG naming the table when it does not exist). */
export async function getCatalogTable(client: GlueClient, ref: Pick<CatalogRef, "database" | "table">): Promise<CatalogTable> {
  let out;
  try {
    out = await client.send(new GetTableCommand({ DatabaseName: ref.database, Name: ref.table }));
  } catch (err) {
    throw classifyGlueError(err, { table: tableName(ref), op: "GetTable" });
  }
  const t = out.Table;
  if (!t) throw new ConfigError(`Glue GetTable of catalog table ${tableName(ref)} answered no table`);
  const sd = t.StorageDescriptor ?? {};
  return {
    database: ref.database,
    table: ref.table,
    location: s3Location(sd.Location, `catalog table ${tableName(ref)}`),
    partitionKeys: (t.PartitionKeys ?? []).map((k) => k.Name ?? ""),
    parameters: { ...(t.Parameters ?? {}) },
    storageDescriptor: sd,
  };
}

/**
 * Reads tranche's options from a source table's parameters (Glue's names): `boundedFiles` or
 * `boundedSize`, `exclusions` (a JSON list of globs), `recurse`, `classification`,
 * `compressionType`. A value that breaks tranche's rules (both bounds, a bad number, exclusions
 * that are not a JSON list of globs, a recurse that is not true/false) is E_CONFIG naming the table
 * and the parameter.
 */
export function catalogSourceOptions(t: CatalogTable): CatalogSourceOptions {
  const p = t.parameters;
  const where = catalogWhere(t);
  const bounds: BoundOptions = {};
  if (p.boundedFiles !== undefined) bounds.boundedFiles = p.boundedFiles;
  if (p.boundedSize !== undefined) bounds.boundedSize = p.boundedSize;
  parseBoundOptions(bounds, where);
  let exclusions: string[] = [];
  if (p.exclusions !== undefined && p.exclusions.trim() !== "") {
    let v: unknown;
    try {
      v = JSON.parse(p.exclusions);
    } catch {
      v = undefined;
    }
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || x === ""))
      throw new ConfigError(
        `${where}: exclusions = ${JSON.stringify(p.exclusions)} is not valid: give a JSON list of glob patterns, e.g. ["**.tmp", "**/_SUCCESS"]`,
      );
    for (const g of v as string[]) {
      try {
        picomatch.makeRe(g, { strictBrackets: true });
      } catch (err) {
        throw new ConfigError(`${where}: exclusions: ${JSON.stringify(g)} is not a valid glob: ${(err as Error).message}`);
      }
    }
    exclusions = v as string[];
  }
  let recurse: boolean | undefined;
  if (p.recurse !== undefined) {
    const r = p.recurse.trim().toLowerCase();
    if (r !== "true" && r !== "false")
      throw new ConfigError(`${where}: recurse = ${JSON.stringify(p.recurse)} is not valid: give "true" or "false"`);
    recurse = r === "true";
  }
  return {
    bounds,
    exclusions,
    recurse,
    ...(p.classification ? { classification: p.classification } : {}),
    ...(p.compressionType ? { compressionType: p.compressionType } : {}),
  };
}
