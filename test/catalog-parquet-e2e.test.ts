/**
 * The "done when" of the catalog issue, end to end: a job defined only by a Glue catalog table
 * (location, partition keys and its bound in the table's parameters) converts a partitioned,
 * gzipped NDJSON backlog to Parquet with the sql processor in bounded runs, and registers the
 * output partitions in the output table. Real @aws-sdk/client-glue against the stand-in, real
 * s3rver, real DuckDB in worker threads; the Parquet is read back with hyparquet.
 */
import { gzipSync } from "node:zlib";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { parquetReadObjects } from "hyparquet";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "./helpers/cli.js";
import { startGlueStandin, type GlueStandin } from "./helpers/glue-standin.js";
import { closeHarnesses, harness } from "./helpers/harness.js";
import { startS3, type S3Fixture } from "./helpers/s3rver.js";

let s3: S3Fixture;
let glue: GlueStandin;
beforeAll(async () => {
  [s3, glue] = await Promise.all([startS3(), startGlueStandin()]);
  await s3.createBucket("landing");
  await s3.createBucket("lake");
});
afterAll(async () => {
  await glue?.close();
  await s3?.stop();
});
afterEach(closeHarnesses);

describe("a catalog table to Parquet, registered", () => {
  it("drains a partitioned NDJSON backlog in bounded runs (bound from the table), writes Parquet, registers the output partitions once", async () => {
    const days = ["2024-05-01", "2024-05-02"];
    glue.putTable("raw", "clicks", {
      location: "s3://landing/clicks/",
      partitionKeys: ["dt"],
      parameters: { boundedFiles: "3", classification: "json", compressionType: "gzip" },
    });
    glue.putPartitions(
      "raw",
      "clicks",
      days.map((d) => ({ values: [d], location: `s3://landing/clicks/dt=${d}/` })),
    );
    glue.putTable("curated", "clicks", {
      location: "s3://lake/clicks/",
      partitionKeys: ["dt"],
      storageDescriptor: {
        InputFormat: "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        OutputFormat: "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        SerdeInfo: { SerializationLibrary: "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe" },
      },
    });
    let n = 0;
    for (const d of days)
      for (let i = 0; i < 4; i++) {
        const lines = Array.from({ length: 5 }, (_, j) => JSON.stringify({ user: `u${n}-${j}`, event: j % 2 ? "click" : "view", ms: j }));
        await s3.client.send(
          new PutObjectCommand({ Bucket: "landing", Key: `clicks/dt=${d}/part-${i}.json.gz`, Body: gzipSync(lines.join("\n") + "\n") }),
        );
        n++;
      }
    const h = await harness(
      "clicks2parquet",
      {
        source: { path: undefined, catalog: { database: "raw", table: "clicks", endpoint: glue.endpoint } },
        processor: "sql",
        // snappy: hyparquet reads it without a codec plugin (the default, zstd, is read back by DuckDB in test/sql-processor.test.ts).
        processorOptions: { sql: "select user, event, ms, dt from input where event = 'click'", compression: "snappy" },
        output: { path: "s3://lake/clicks/", catalog: { database: "curated", table: "clicks", endpoint: glue.endpoint } },
      },
      { s3: s3.settings },
    );
    await h.startWorker(2);
    const runs = [];
    for (let i = 0; i < 5; i++) {
      const s = await h.run();
      runs.push(s);
      if (s.remainingFiles === 0) break;
    }
    // 8 files at 3 per run (the table's boundedFiles): 3 runs.
    expect(runs.map((r) => r.files)).toEqual([3, 3, 2]);
    expect(runs.every((r) => r.state === "SUCCEEDED")).toBe(true);
    expect(await h.redis.hget(`${h.prefix}:run:${runs[0]!.runId}`, "boundSource")).toBe("catalog");
    // A last run finds nothing.
    expect((await h.run()).status).toBe("empty");
    const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: "lake", Prefix: "clicks/" }));
    const outputs = (listed.Contents ?? []).map((o) => o.Key!).filter((k) => !k.includes("/_tranche/"));
    expect(outputs.sort()).toEqual(days.flatMap((d) => [0, 1, 2, 3].map((i) => `clicks/dt=${d}/part-${i}.json.gz.parquet`)).sort());
    // Parquet, read back by a second reader: only clicks, the partition value as a column.
    const obj = await s3.client.send(new GetObjectCommand({ Bucket: "lake", Key: "clicks/dt=2024-05-02/part-1.json.gz.parquet" }));
    const bytes = await obj.Body!.transformToByteArray();
    const rows = await parquetReadObjects({
      file: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
    });
    expect(rows).toHaveLength(2);
    expect(rows.every((r) => r.event === "click" && r.dt === "2024-05-02")).toBe(true);
    // The output partitions are registered, once each, with the table's storage descriptor.
    await waitFor(() => glue.partitions("curated", "clicks").length === 2, 20_000, "the output partitions registered");
    const parts = glue.partitions("curated", "clicks");
    expect(parts.map((p) => p.Values)).toEqual(expect.arrayContaining([["2024-05-01"], ["2024-05-02"]]));
    expect(parts.map((p) => p.StorageDescriptor?.Location).sort()).toEqual([
      "s3://lake/clicks/dt=2024-05-01/",
      "s3://lake/clicks/dt=2024-05-02/",
    ]);
    expect(parts.every((p) => p.StorageDescriptor?.SerdeInfo?.SerializationLibrary?.includes("ParquetHiveSerDe"))).toBe(true);
  });
});
