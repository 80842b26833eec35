/**
 * The raw limit for `npm run bench:sql`: a bare Piscina task that does the sql processor's DuckDB
 * work on a file and nothing else (no queue, bookmark, spooling or sink): one DuckDB instance per
 * thread with the same settings, one COPY from the gzipped input to a Parquet file.
 */
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";

export interface BareTask {
  input: string;
  output: string;
  dt: string;
  memoryMb: number;
  tempDir: string;
}

let conn: Promise<DuckDBConnection> | undefined;

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

export default async function copyFile(t: BareTask): Promise<number> {
  conn ??= DuckDBInstance.create(":memory:", {
    threads: "1",
    memory_limit: `${t.memoryMb}MiB`,
    temp_directory: t.tempDir,
    preserve_insertion_order: "false",
    autoinstall_known_extensions: "false",
    autoload_known_extensions: "false",
  }).then((db) => db.connect());
  const c = await conn;
  const r = await c.runAndReadAll(
    `COPY (SELECT *, ${lit(t.dt)} AS dt FROM read_json(${lit(t.input)}, format='auto', compression='gzip')) TO ${lit(t.output)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  return Number(r.getRows()[0]?.[0] ?? 0);
}
