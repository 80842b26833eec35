import { afterEach, describe, expect, it } from "vitest";
import path from "node:path";
import { readFile } from "node:fs/promises";
import { closeHarnesses, harness, type Harness } from "./helpers/harness.js";
import { listFiles, writeInput } from "./helpers/files.js";

let h: Harness | undefined;
afterEach(closeHarnesses);

describe("worker pool", () => {
  it("a thread that runs out of memory fails only its file, with a clear error, and is replaced", async () => {
    h = await harness("oom", { processor: path.resolve("test/fixtures/hog-processor.mjs"), attempts: 1 });
    for (let i = 0; i < 6; i++) await writeInput(h.inDir, `ok-${i}.json`, `{"i":${i}}\n`, Date.UTC(2024, 0, 1) + i * 1000);
    await writeInput(h.inDir, "hog.json", "{}\n", Date.UTC(2024, 0, 1) + 2500);
    h.startWorker(2);
    const r = await h.run();
    expect(r.status).toBe("failed");
    expect(r.files).toBe(6); // written, but the failed run commits nothing
    expect(r.errors.join("\n")).toMatch(/hog\.json: worker thread ran out of memory \(maxOldGenerationSizeMb=64\)/);
    expect(await listFiles(h.outDir)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `ok-${i}.json`));
    // The pool still works after losing a thread; the next run retakes the failed run's files.
    const { rm } = await import("node:fs/promises");
    await rm(path.join(h.inDir, "hog.json"));
    await writeInput(h.inDir, "ok-late.json", "{}\n", Date.UTC(2024, 0, 2));
    const r2 = await h.run();
    expect([r2.status, r2.files]).toEqual(["succeeded", 7]);
  });

  it("decompresses gzip inputs transparently and runs csv and copy processors", async () => {
    const { gzipSync } = await import("node:zlib");
    h = await harness("csv", { processor: "csv" });
    await writeInput(h.inDir, "dt=2024-01-01/a.csv.gz", gzipSync('id,name\n1,"Smith, J"\n2,"say ""hi"""\n'), Date.UTC(2024, 0, 1));
    h.startWorker(1);
    expect((await h.run()).files).toBe(1);
    expect(await readFile(path.join(h.outDir, "dt=2024-01-01/a.csv.gz.ndjson"), "utf8")).toBe(
      '{"id":"1","name":"Smith, J"}\n{"id":"2","name":"say \\"hi\\""}\n',
    );
  });

  it("streams a large gzip input (beyond the small-file fast path) and a plain one", async () => {
    const { gzipSync } = await import("node:zlib");
    const { randomBytes } = await import("node:crypto");
    h = await harness("bigfile", {});
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i++) lines.push(JSON.stringify({ i, pad: randomBytes(75).toString("base64") }));
    const body = lines.join("\n") + "\n";
    const gz = gzipSync(body);
    expect(gz.length).toBeGreaterThan(1 << 20);
    await writeInput(h.inDir, "big.json.gz", gz, Date.UTC(2024, 0, 1));
    await writeInput(h.inDir, "big-plain.json", body, Date.UTC(2024, 0, 1) + 1000);
    h.startWorker(2);
    const r = await h.run();
    expect([r.status, r.files]).toEqual(["succeeded", 2]);
    expect(await readFile(path.join(h.outDir, "big.json.gz.ndjson"), "utf8")).toBe(body);
    expect(await readFile(path.join(h.outDir, "big-plain.json.ndjson"), "utf8")).toBe(body);
  });
});

describe("local sink", () => {
  it("buffers small outputs, streams large ones, renames on commit and leaves nothing on abort", async () => {
    const { LocalSink } = await import("../src/sink/local-sink.js");
    const { mkdtemp, readFile: rf, readdir } = await import("node:fs/promises");
    const os = await import("node:os");
    const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-sink-"));
    const sink = new LocalSink(dir);
    const small = await sink.create("a/small.txt");
    small.stream.write("hello ");
    small.stream.write("world\n");
    expect(await small.commit()).toEqual({ bytes: 12, location: path.join(dir, "a/small.txt"), key: "a/small.txt" });
    const big = await sink.create("a/big.bin");
    const chunk = Buffer.alloc(300_000, 7);
    for (let i = 0; i < 10; i++) if (!big.stream.write(chunk)) await new Promise((r) => big.stream.once("drain", r));
    expect((await big.commit()).bytes).toBe(3_000_000);
    expect((await rf(path.join(dir, "a/big.bin"))).length).toBe(3_000_000);
    const aborted = await sink.create("a/never.txt");
    aborted.stream.write("partial");
    await aborted.abort();
    expect((await readdir(path.join(dir, "a"))).sort()).toEqual(["big.bin", "small.txt"]);
    expect(await rf(path.join(dir, "a/small.txt"), "utf8")).toBe("hello world\n");
    const { rm } = await import("node:fs/promises");
    await rm(dir, { recursive: true, force: true });
  });
});
