/**
 * The sql processor on DuckDB, in real worker threads and real runs: JSON (gzip, zstd), CSV and
 * Parquet in, Parquet out read back by DuckDB and by a second reader (hyparquet); a SQL transform
 * with partition columns; a file over worker.nativeMemoryMb failing alone; schema drift reported;
 * a pinned schema casting or failing; truncated zstd caught.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { registry } from "../src/metrics/registry.js";
import { FilePool } from "../src/pool/file-pool.js";
import { formatOfKey, sqlOptions, sqlOutputName } from "../workers/processors/sql.js";
import { ZstdFrameCheck } from "../workers/processors/zstd-frames.js";
import { listFiles, writeInput } from "./helpers/files.js";
import { closeHarnesses, harness } from "./helpers/harness.js";

const T0 = Date.UTC(2024, 0, 1);

let db: DuckDBInstance;
let conn: DuckDBConnection;
let scratch: string;

beforeAll(async () => {
  db = await DuckDBInstance.create(":memory:", { threads: "1" });
  conn = await db.connect();
  scratch = await mkdtemp(path.join(os.tmpdir(), "tranche-sqltest-"));
});
afterAll(async () => {
  conn.closeSync();
  db.closeSync();
  await rm(scratch, { recursive: true, force: true });
});
afterEach(closeHarnesses);

/** Rows of a query as plain objects (BIGINTs as numbers). */
async function rows(sql: string): Promise<Record<string, unknown>[]> {
  const r = await conn.runAndReadAll(sql);
  return r.getRowObjectsJS().map((o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v])));
}

/** Bytes DuckDB writes for a query (`COPY … TO` with the given options): Parquet, or CSV/JSON compressed with zstd. */
async function duckBytes(query: string, options: string): Promise<Buffer> {
  const f = path.join(scratch, `gen-${Math.random().toString(36).slice(2)}`);
  await conn.run(`COPY (${query}) TO '${f}' (${options})`);
  const b = await readFile(f);
  await rm(f);
  return b;
}

function ndjson(records: unknown[]): string {
  return records.map((r) => JSON.stringify(r)).join("\n") + "\n";
}

/** A zstd decompressor for hyparquet, from the zstd command line tool when there is one. */
function zstdCli(): ((input: Uint8Array, outputLength: number) => Uint8Array) | undefined {
  try {
    execFileSync("zstd", ["--version"], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  return (input) => new Uint8Array(execFileSync("zstd", ["-d", "-c", "-q"], { input }));
}

describe("sql processor: formats in, Parquet out", () => {
  it("reads JSON lines (gzip and zstd), CSV (zstd) and Parquet; writes Parquet that DuckDB and hyparquet read back", async () => {
    const h = await harness("sqlfmt", { processor: "sql", source: { partitionKeys: ["dt"] } });
    const p = "dt=2024-01-01";
    await writeInput(
      h.inDir,
      `${p}/a.json.gz`,
      gzipSync(
        ndjson([
          { id: 1, name: "ann" },
          { id: 2, name: "bob" },
        ]),
      ),
      T0,
    );
    await writeInput(
      h.inDir,
      `${p}/b.csv.zst`,
      await duckBytes("SELECT 3 AS id, 'cy' AS name", "FORMAT csv, HEADER true, COMPRESSION zstd"),
      T0 + 1000,
    );
    await writeInput(h.inDir, `${p}/c.parquet`, await duckBytes("SELECT 4 AS id, 'dee' AS name", "FORMAT parquet"), T0 + 2000);
    await writeInput(
      h.inDir,
      `${p}/d.ndjson.zst`,
      await duckBytes("SELECT 5 AS id, 'eve' AS name", "FORMAT json, COMPRESSION zstd"),
      T0 + 3000,
    );
    await h.startWorker(2);
    const s = await h.run();
    expect(s.status, JSON.stringify(s.errors)).toBe("succeeded");
    expect(s.files).toBe(4);
    const outs = await listFiles(h.outDir);
    expect(outs).toEqual([`${p}/a.json.gz.parquet`, `${p}/b.csv.zst.parquet`, `${p}/c.parquet.parquet`, `${p}/d.ndjson.zst.parquet`]);

    // DuckDB reads every output back, with the partition value as a column.
    const all = await rows(`SELECT id, name, dt FROM read_parquet('${h.outDir}/${p}/*.parquet', hive_partitioning=false) ORDER BY id`);
    expect(all).toEqual([1, 2, 3, 4, 5].map((id, i) => ({ id, name: ["ann", "bob", "cy", "dee", "eve"][i], dt: "2024-01-01" })));
    const meta = await rows(`SELECT DISTINCT compression FROM parquet_metadata('${h.outDir}/${p}/a.json.gz.parquet')`);
    expect(meta).toEqual([{ compression: "ZSTD" }]);

    // A second Parquet reader: the footer (schema, row count) always; the rows when zstd can be decoded here.
    const file = await asyncBufferFromFile(path.join(h.outDir, p, "a.json.gz.parquet"));
    const md = await parquetMetadataAsync(file);
    expect(Number(md.num_rows)).toBe(2);
    expect(md.schema.slice(1).map((c) => c.name)).toEqual(["id", "name", "dt"]);
    const zstd = zstdCli();
    if (zstd) {
      const objs = await parquetReadObjects({ file, compressors: { ZSTD: zstd } });
      expect(objs.map((o) => ({ ...o, id: Number(o.id) }))).toEqual([
        { id: 1, name: "ann", dt: "2024-01-01" },
        { id: 2, name: "bob", dt: "2024-01-01" },
      ]);
    }
  });

  it("writes snappy Parquet in row groups of rowGroupSize that hyparquet reads row by row", async () => {
    const h = await harness("sqlsnappy", {
      processor: "sql",
      processorOptions: { compression: "snappy", rowGroupSize: 2048 },
      source: { partitionKeys: ["dt"] },
    });
    const recs = Array.from({ length: 5000 }, (_, i) => ({ i, s: `v${i}`, f: i / 4 }));
    await writeInput(h.inDir, "dt=2024-01-02/x.jsonl", ndjson(recs), T0);
    await h.startWorker(1);
    const s = await h.run();
    expect(s.status, JSON.stringify(s.errors)).toBe("succeeded");
    const f = path.join(h.outDir, "dt=2024-01-02/x.jsonl.parquet");
    const md = await parquetMetadataAsync(await asyncBufferFromFile(f));
    expect(md.row_groups.length).toBeGreaterThanOrEqual(2);
    expect(md.row_groups.every((g) => g.columns.every((c) => c.meta_data?.codec === "SNAPPY"))).toBe(true);
    const objs = await parquetReadObjects({ file: await asyncBufferFromFile(f) });
    const got = objs.map((o) => ({ i: Number(o.i), s: o.s, f: o.f, dt: o.dt })).sort((a, b) => a.i - b.i);
    expect(got).toEqual(recs.map((r) => ({ ...r, dt: "2024-01-02" })));
  });

  it("names outputs injectively after the whole input key, per output format", () => {
    expect(sqlOutputName("dt=1/a.json.gz")).toBe("dt=1/a.json.gz.parquet");
    expect(sqlOutputName("dt=1/a.json")).not.toBe(sqlOutputName("dt=1/a.json.gz"));
    expect(sqlOutputName("a.csv", { outputFormat: "ndjson" })).toBe("a.csv.ndjson");
    expect(sqlOutputName("a.csv", { outputFormat: "csv", compression: "gzip" })).toBe("a.csv.csv.gz");
    expect(formatOfKey("x/y.NDJSON.zst")).toBe("json");
    expect(formatOfKey("y.tsv.gz")).toBe("csv");
    expect(formatOfKey("y.pq")).toBe("parquet");
    expect(formatOfKey("y.log")).toBeUndefined();
    expect(sqlOptions.safeParse({ outputFormat: "ndjson", compression: "snappy" }).success).toBe(false);
    expect(sqlOptions.safeParse({ sqll: "select 1" }).success).toBe(false);
  });
});

describe("sql processor: the SQL and the partition", () => {
  it("runs the job's SQL over input, with the partition values as columns (a file's own column wins)", async () => {
    const h = await harness("sqltx", {
      processor: "sql",
      processorOptions: {
        sql: "select id, v * 2 as doubled, dt, region from input where v > 1 order by id;",
        outputFormat: "ndjson",
      },
      source: { partitionKeys: ["dt", "region"] },
    });
    await writeInput(
      h.inDir,
      "dt=2024-01-01/region=eu/a.json",
      ndjson([
        { id: 1, v: 1 },
        { id: 2, v: 5 },
      ]),
      T0,
    );
    await writeInput(h.inDir, "dt=2024-01-01/region=us/b.csv", "id,v,region\n3,7,own\n4,0,own\n", T0 + 1000);
    await h.startWorker(2);
    const s = await h.run();
    expect(s.status, JSON.stringify(s.errors)).toBe("succeeded");
    const a = await readFile(path.join(h.outDir, "dt=2024-01-01/region=eu/a.json.ndjson"), "utf8");
    expect(
      a
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([{ id: 2, doubled: 10, dt: "2024-01-01", region: "eu" }]);
    const b = await readFile(path.join(h.outDir, "dt=2024-01-01/region=us/b.csv.ndjson"), "utf8");
    expect(
      b
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([{ id: 3, doubled: 14, dt: "2024-01-01", region: "own" }]);
  });

  it("a SQL naming a column the files lack is the job's error (E_SQL): small batches are not dead-lettered, every file stays in the backlog", async () => {
    // The trial's case: one file per partition (batches far below the 80%-of-5-files rule), dead
    // letters after one run. Before, each run failed its files one by one (E_PROCESSOR) and set them aside.
    const h = await harness("sqltypo", {
      processor: "sql",
      processorOptions: { sql: "select usr_id, dt from input" },
      source: { partitionKeys: ["dt"] },
      attempts: 1,
      bookmark: { deadLetterAfterRuns: 1 },
    });
    await writeInput(h.inDir, "dt=2024-01-01/a.json", ndjson([{ user_id: 1 }]), T0);
    await writeInput(h.inDir, "dt=2024-01-02/b.json", ndjson([{ user_id: 2 }]), T0 + 1000);
    await h.startWorker(1);
    for (let i = 0; i < 2; i++) {
      const s = await h.run();
      expect([s.status, s.deadLettered, s.fileFailures]).toEqual(["failed", 0, 0]);
      expect(s.jobFailure).toMatch(
        /E_SQL.*processorOptions\.sql does not fit this file: Binder Error: Referenced column "usr_id" not found/,
      );
    }
    expect(await h.redis.hlen(`${h.prefix}:bm:${h.name}:deadletters`)).toBe(0);
    // With the SQL fixed, both files are taken.
    h.cfg.jobs[h.name]!.processorOptions = { sql: "select user_id, dt from input" };
    const fixed = await h.run();
    expect([fixed.status, fixed.files]).toEqual(["succeeded", 2]);
  });

  it("refuses SQL that does not parse, several statements, a pinned type DuckDB does not know and unknown options, at preflight", async () => {
    const pool = new FilePool({ threads: 1 });
    try {
      const refused = async (processorOptions: Record<string, unknown>) => {
        const r = await pool.preflight({ processor: "sql", processorOptions });
        if (r.ok) throw new Error(`accepted ${JSON.stringify(processorOptions)}`);
        return `${r.failure.code}: ${r.failure.message}`;
      };
      expect(await refused({ sql: "selec * from input" })).toMatch(/^E_CONFIG: .*processorOptions\.sql.*syntax error/);
      expect(await refused({ sql: "select 1; drop table x" })).toMatch(/^E_CONFIG: .*processorOptions\.sql/);
      expect(await refused({ schema: { v: "BIGNUMBER" } })).toMatch(/^E_CONFIG: .*schema\.v.*not a DuckDB type/);
      expect(await refused({ schema: { v: "INT); select 1 --" } })).toMatch(/^E_CONFIG: .*schema/);
      expect(await refused({ outputFormat: "avro" })).toMatch(/^E_CONFIG: .*outputFormat/);
      const ok = await pool.preflight({ processor: "sql", processorOptions: { sql: "select *, 1 as one from input;" } });
      expect(ok).toMatchObject({ ok: true, warnings: [] });
    } finally {
      await pool.close();
    }
  });
});

describe("sql processor: memory", () => {
  it("a file too big for worker.nativeMemoryMb fails alone (E_OUT_OF_MEMORY naming it); the batch's other files are written", async () => {
    const h = await harness("sqloom", {
      processor: "sql",
      worker: { nativeMemoryMb: 128 },
      attempts: 1,
      source: { partitionKeys: ["dt"] },
    });
    const p = "dt=2024-01-01";
    for (let i = 0; i < 3; i++) await writeInput(h.inDir, `${p}/ok${i}.json`, ndjson([{ i, s: "small" }]), T0 + i * 1000);
    // One record of 20 MB: DuckDB's JSON reader needs buffers of several times that, more than 128 MiB in all.
    await writeInput(h.inDir, `${p}/huge.json`, ndjson([{ i: 9, s: "x".repeat(20e6) }]), T0 + 5000);
    await h.startWorker(2);
    const s = await h.run();
    expect(s.status).toBe("failed");
    expect(s.fileFailures).toBe(1);
    expect(s.jobFailure).toBeFalsy();
    const oom = s.errors.filter((e) => e.includes("E_OUT_OF_MEMORY"));
    expect(oom).toHaveLength(1);
    expect(oom[0]).toContain(`${p}/huge.json`);
    expect(oom[0]).toContain("nativeMemoryMb=128");
    expect(await listFiles(h.outDir)).toEqual([0, 1, 2].map((i) => `${p}/ok${i}.json.parquet`));
  });
});

describe("sql processor: timeouts", () => {
  it("a query past worker.fileTimeoutSeconds is interrupted: its file fails alone (E_FILE_TIMEOUT), the thread and its DuckDB go on", async () => {
    const h = await harness("sqlslow", {
      processor: "sql",
      // Counting n numbers per record: instant for small n, hours for the slow file's.
      processorOptions: { sql: "select i.id, (select count(*) from range(i.n)) as c from input i" },
      worker: { fileTimeoutSeconds: 1 },
      attempts: 1,
    });
    await writeInput(h.inDir, "a.json", ndjson([{ id: 1, n: 3 }]), T0);
    await writeInput(h.inDir, "slow.json", ndjson([{ id: 2, n: 2e10 }]), T0 + 1000);
    await writeInput(h.inDir, "z.json", ndjson([{ id: 3, n: 5 }]), T0 + 2000);
    await h.startWorker(1);
    const t0 = Date.now();
    const s = await h.run();
    expect(s.fileFailures).toBe(1);
    expect(s.errors.filter((e) => e.includes("E_FILE_TIMEOUT"))).toEqual([expect.stringMatching(/slow\.json: timed out after 1 s/)]);
    // Interrupted at the timeout, not stopped after the pool's grace period.
    expect(Date.now() - t0).toBeLessThan(3000 + 2000);
    expect(await rows(`SELECT id, c FROM read_parquet('${h.outDir}/*.parquet') ORDER BY id`)).toEqual([
      { id: 1, c: 3 },
      { id: 3, c: 5 },
    ]);
  });
});

describe("sql processor: schema care", () => {
  async function driftCount(job: string): Promise<number> {
    const m = (await registry.getSingleMetric("tranche_schema_drift_total")?.get())?.values ?? [];
    return m.filter((v) => v.labels.tranche_job === job).reduce((a, v) => a + v.value, 0);
  }

  it("reports a column whose type changes between files of one partition (schema drift), naming the file and column", async () => {
    const h = await harness("sqldrift", { processor: "sql", source: { partitionKeys: ["dt"] } });
    await writeInput(h.inDir, "dt=2024-01-01/a.json", ndjson([{ id: 1, v: 10 }]), T0);
    await writeInput(h.inDir, "dt=2024-01-01/b.json", ndjson([{ id: 2, v: "ten" }]), T0 + 1000);
    // Another partition has its own first schema: no drift there.
    await writeInput(h.inDir, "dt=2024-01-02/c.json", ndjson([{ id: 3, v: "x" }]), T0 + 2000);
    await h.startWorker(1);
    const s = await h.run();
    expect(s.status, JSON.stringify(s.errors)).toBe("succeeded");
    const drift = s.errors.filter((e) => e.includes("schema drift"));
    expect(drift).toEqual([expect.stringMatching(/^dt=2024-01-01\/b\.json: schema drift: column "v" is VARCHAR, was BIGINT/)]);
    expect(await driftCount(h.name)).toBe(1);
    // The next run's file in the same partition is compared with the same first schema.
    await writeInput(h.inDir, "dt=2024-01-01/d.json", ndjson([{ id: 4, v: 1.5 }]), T0 + 3000);
    const s2 = await h.run();
    expect(s2.errors.filter((e) => e.includes("schema drift"))).toEqual([
      expect.stringMatching(/^dt=2024-01-01\/d\.json: schema drift: column "v" is DOUBLE, was BIGINT/),
    ]);
  });

  it("with processorOptions.schema, casts to the pinned types, and fails a file whose values do not cast (E_SCHEMA)", async () => {
    const h = await harness("sqlpin", {
      processor: "sql",
      processorOptions: { schema: { id: "INTEGER", v: "BIGINT", dt: "DATE", note: "VARCHAR" } },
      source: { partitionKeys: ["dt"] },
      attempts: 1,
    });
    await writeInput(h.inDir, "dt=2024-01-01/a.json", ndjson([{ id: 1, v: 10 }]), T0);
    await writeInput(h.inDir, "dt=2024-01-01/b.json", ndjson([{ id: 2, v: "20" }]), T0 + 1000);
    await writeInput(h.inDir, "dt=2024-01-01/c.json", ndjson([{ id: 3, v: "ten" }]), T0 + 2000);
    await h.startWorker(1);
    const s = await h.run();
    expect(s.fileFailures).toBe(1);
    expect(s.errors.filter((e) => e.includes("E_SCHEMA"))).toEqual([
      expect.stringMatching(
        /dt=2024-01-01\/c\.json: does not fit processorOptions\.schema: column "v": 1 value cannot be cast to BIGINT \(e\.g\. "ten"\)/,
      ),
    ]);
    expect(s.errors.some((e) => e.includes("schema drift"))).toBe(false);
    const types = await rows(
      `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${h.outDir}/dt=2024-01-01/b.json.parquet', hive_partitioning=false))`,
    );
    expect(types).toEqual([
      { column_name: "id", column_type: "INTEGER" },
      { column_name: "v", column_type: "BIGINT" },
      { column_name: "dt", column_type: "DATE" },
      { column_name: "note", column_type: "VARCHAR" },
    ]);
    expect(
      await rows(`SELECT id, v, note FROM read_parquet('${h.outDir}/dt=2024-01-01/*.parquet', hive_partitioning=false) ORDER BY id`),
    ).toEqual([
      { id: 1, v: 10, note: null },
      { id: 2, v: 20, note: null },
    ]);
  });
});

describe("sql processor: compressed inputs are whole", () => {
  it("a truncated zstd input fails as E_CORRUPT (DuckDB alone would read its first part), a truncated gzip and a broken Parquet file too", async () => {
    const h = await harness("sqlcut", { processor: "sql", attempts: 1 });
    const lines = ndjson(Array.from({ length: 3000 }, (_, i) => ({ i, s: `row ${i}` })));
    await writeInput(scratch, "l.json", lines, T0);
    const zst = await duckBytes(`SELECT * FROM read_json_auto('${path.join(scratch, "l.json")}')`, "FORMAT json, COMPRESSION zstd");
    await writeInput(h.inDir, "whole.json.zst", zst, T0);
    await writeInput(h.inDir, "cut.json.zst", zst.subarray(0, Math.floor(zst.length / 2)), T0 + 1000);
    await writeInput(h.inDir, "cut.json.gz", gzipSync(lines).subarray(0, 2000), T0 + 2000);
    await writeInput(h.inDir, "bad.parquet", "PAR1 not really PAR1", T0 + 3000);
    await h.startWorker(1);
    const s = await h.run();
    expect(s.fileFailures).toBe(3);
    expect(s.errors.filter((e) => e.startsWith("E_CORRUPT")).sort()).toEqual([
      expect.stringMatching(/^E_CORRUPT: bad\.parquet: corrupt input: .*'bad\.parquet'/),
      expect.stringContaining("cut.json.gz"),
      expect.stringMatching(/cut\.json\.zst: truncated zstd stream/),
    ]);
    expect(await rows(`SELECT count(*) AS n FROM read_parquet('${h.outDir}/whole.json.zst.parquet')`)).toEqual([{ n: 3000 }]);
  });

  it("the frame check passes whole zstd streams, concatenated frames and skippable frames, and fails every truncation", async () => {
    await writeInput(scratch, "r.json", ndjson(Array.from({ length: 20000 }, (_, i) => ({ i, s: `r${i % 977}` }))), T0);
    const zst = await duckBytes(`SELECT * FROM read_json_auto('${path.join(scratch, "r.json")}')`, "FORMAT json, COMPRESSION zstd");
    const check = (b: Buffer, chunk = 4096) => {
      const c = new ZstdFrameCheck();
      for (let i = 0; i < b.length; i += chunk) c.push(b.subarray(i, i + chunk));
      return c.end();
    };
    expect(check(zst)).toBeUndefined();
    expect(check(zst, 1)).toBeUndefined();
    const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
    expect(check(Buffer.concat([zst, skippable, zst]))).toBeUndefined();
    for (let k = 1; k < 50; k++) {
      const cut = Math.floor((zst.length * k) / 50);
      expect(check(zst.subarray(0, cut)), `cut at ${cut}`).toMatch(/truncated|not a zstd frame/);
    }
    expect(check(Buffer.concat([zst, Buffer.from("junk")]))).toMatch(/not a zstd frame/);
  });
});
