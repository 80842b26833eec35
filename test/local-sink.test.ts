import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { UnreachableError } from "../src/errors.js";
import { classifyFsError, FileError, JobError } from "../src/failures.js";
import { LocalSink, sweepTempFiles } from "../src/sink/local-sink.js";
import { runUnprivileged } from "./helpers/unprivileged.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), "tranche-lsink-"));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** Every file under a folder, `_tranche/` included, relative to it. */
async function allFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (e.isFile() || e.isSymbolicLink()) out.push(path.relative(root, path.join(e.parentPath, e.name)));
  }
  return out.sort();
}

async function writeAll(stream: NodeJS.WritableStream, chunk: Buffer, times: number): Promise<void> {
  for (let i = 0; i < times; i++) if (!stream.write(chunk)) await new Promise((r) => stream.once("drain", r));
}

const TEMP_NAME = /^_tranche\/tmp\/[A-Za-z0-9_.-]+\.\d+\.\d+\.[0-9a-f]+\.[0-9a-z]+\.tmp$/;

describe("LocalSink names", () => {
  it("writes a 250-byte output name (its temp name stays short), and fits a 300-byte one", async () => {
    const root = await tempDir();
    const sink = new LocalSink(root);
    const name250 = "dt=1/" + "n".repeat(250 - ".ndjson".length) + ".ndjson";
    expect(Buffer.byteLength(name250.split("/")[1]!)).toBe(250);
    const w = await sink.create(name250);
    w.stream.end("x\n");
    expect(await w.commit()).toEqual({ bytes: 2, location: path.join(root, name250), key: name250 });
    expect(await readFile(path.join(root, name250), "utf8")).toBe("x\n");

    const name300 = "dt=1/" + "ü".repeat(150) + ".json.gz.ndjson";
    const w2 = await sink.create(name300);
    w2.stream.end("y\n");
    const { key, location } = await w2.commit();
    expect(key).toMatch(/^dt=1\/ü+~[0-9a-f]{16}\.ndjson$/);
    expect(Buffer.byteLength(key.split("/")[1]!)).toBeLessThanOrEqual(255);
    expect(location).toBe(path.join(root, key));
    expect(await readFile(location, "utf8")).toBe("y\n");
  });

  it("refuses a//b and ../x with a FileError before touching the disk", async () => {
    const root = path.join(await tempDir(), "out");
    const sink = new LocalSink(root);
    for (const bad of ["a//b", "../x", "/abs", "a/./b"]) {
      await expect(sink.create(bad)).rejects.toMatchObject({ name: "FileError", code: "E_OUTPUT_NAME" });
    }
    expect(existsSync(root)).toBe(false);
  });
});

describe("LocalSink temp files", () => {
  it("keeps temp files in _tranche/tmp only, and none after commit or abort", async () => {
    const root = await tempDir();
    const sink = new LocalSink(root);
    const big = await sink.create("a/big.bin");
    await writeAll(big.stream, Buffer.alloc(256 * 1024, 1), 8); // 2 MiB: streamed to the temp file
    const during = await allFiles(root);
    expect(during).toHaveLength(1);
    expect(during[0]).toMatch(TEMP_NAME);
    expect(during[0]).toContain(`.${process.pid}.`);
    const small = await sink.create("a/small.txt");
    small.stream.write("hello");
    expect((await big.commit()).bytes).toBe(2 * 1024 * 1024);
    await small.commit();
    expect(await allFiles(root)).toEqual(["a/big.bin", "a/small.txt"]);

    const abortedBig = await sink.create("b/big.bin");
    await writeAll(abortedBig.stream, Buffer.alloc(256 * 1024, 2), 8);
    const abortedSmall = await sink.create("b/small.txt");
    abortedSmall.stream.write("partial");
    await abortedBig.abort();
    await abortedSmall.abort();
    expect(await allFiles(root)).toEqual(["a/big.bin", "a/small.txt"]);
  });

  it("a failed create or commit is a typed JobError and leaves no temp file", async () => {
    const root = await tempDir();
    const sink = new LocalSink(root);
    await writeFile(path.join(root, "file"), "x");
    // create: a folder of the output name is a file.
    await expect(sink.create("file/x.ndjson")).rejects.toBeInstanceOf(JobError);
    // commit: the final name is a non-empty folder, for a buffered and a streamed output.
    await mkdir(path.join(root, "taken/sub"), { recursive: true });
    await writeFile(path.join(root, "taken/sub/keep"), "k");
    const small = await sink.create("taken");
    small.stream.write("small");
    await expect(small.commit()).rejects.toMatchObject({ name: "JobError", message: expect.stringContaining(path.join(root, "taken")) });
    const big = await sink.create("taken");
    await writeAll(big.stream, Buffer.alloc(256 * 1024, 3), 8);
    await expect(big.commit()).rejects.toBeInstanceOf(JobError);
    expect(await allFiles(root)).toEqual(["file", "taken/sub/keep"]);
  });
});

/** Mounts a tmpfs of `size` at a new folder, or returns undefined when this host does not allow it. */
function mountTinyTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("LocalSink on a full disk", () => {
  it("classifyFsError: ENOSPC and EDQUOT are JobError E_DISK_FULL naming the path", () => {
    for (const code of ["ENOSPC", "EDQUOT"]) {
      const err = classifyFsError(Object.assign(new Error(`${code}: no space left on device, write`), { code }), {
        path: "/out/x",
        op: "write",
      });
      expect(err).toBeInstanceOf(JobError);
      expect(err).toMatchObject({ code: "E_DISK_FULL", message: expect.stringContaining("/out/x") });
    }
  });

  it("a write past a tiny tmpfs fails commit with E_DISK_FULL, and leaves no temp file", async (ctx) => {
    const mnt = await tempDir();
    if (!mountTinyTmpfs(mnt, "512k")) ctx.skip(); // needs CAP_SYS_ADMIN (root in a privileged container)
    try {
      const sink = new LocalSink(path.join(mnt, "out"));
      const small = await sink.create("small.bin"); // buffered: fails in the blocking write at commit
      small.stream.write(Buffer.alloc(900 * 1024, 1));
      await expect(small.commit()).rejects.toMatchObject({ name: "JobError", code: "E_DISK_FULL" });
      const big = await sink.create("big.bin"); // streamed: fails while writing
      const failed = new Promise((resolve) => big.stream.once("error", resolve));
      void writeAll(big.stream, Buffer.alloc(256 * 1024, 2), 8).catch(() => undefined);
      expect(await failed).toMatchObject({ name: "JobError", code: "E_DISK_FULL" });
      await expect(big.commit()).rejects.toMatchObject({ code: "E_DISK_FULL" });
      expect(await allFiles(path.join(mnt, "out"))).toEqual([]);
    } finally {
      execFileSync("umount", [mnt]);
    }
  });
});

describe("sweepTempFiles", () => {
  it("removes a dead process's temp file and old ones, never a live process's", async () => {
    const root = await tempDir();
    const sink = new LocalSink(root);
    // A real temp file of this (live) process tells the host part of the name.
    const w = await sink.create("live.bin");
    await writeAll(w.stream, Buffer.alloc(256 * 1024), 8);
    const [live] = await allFiles(root);
    const host = path.basename(live!).split(".").slice(0, -5).join(".");
    const tmp = path.join(root, "_tranche/tmp");

    const child = spawn(process.execPath, ["-e", ""]);
    const deadPid = child.pid!;
    await new Promise((r) => child.once("exit", r));
    const sleeper = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60_000)"]);
    try {
      const dead = `${host}.${deadPid}.1.abcdef01.0.tmp`;
      const liveOld = `${host}.${sleeper.pid}.7.abcdef01.0.tmp`; // a live process, idle for days
      const earlierSelf = `${host}.${process.pid}.3.abcdef01.0.tmp`; // our pid, before we started
      const otherOld = "other-host.example.123.1.abcdef01.0.tmp";
      const otherNew = "other-host.example.124.1.abcdef01.0.tmp";
      for (const f of [dead, liveOld, earlierSelf, otherOld, otherNew]) await writeFile(path.join(tmp, f), "x");
      const old = new Date(Date.now() - 48 * 3600_000);
      for (const f of [liveOld, earlierSelf, otherOld]) await utimes(path.join(tmp, f), old, old);

      expect(await sweepTempFiles(root)).toBe(3);
      expect((await readdir(tmp)).sort()).toEqual([path.basename(live!), liveOld, otherNew].sort());
      // With maxAgeMs 0 the other host's recent file goes too; live processes' files stay.
      expect(await sink.sweepTempFiles({ maxAgeMs: 0 })).toBe(1);
      expect((await readdir(tmp)).sort()).toEqual([path.basename(live!), liveOld].sort());
    } finally {
      sleeper.kill();
    }
    await w.commit();
    expect(await sweepTempFiles(path.join(root, "nothing-here"))).toBe(0);
  });
});

describe("LocalSink.probe", () => {
  it("creates a missing root, writes and removes its probe", async () => {
    const root = path.join(await tempDir(), "new/out");
    expect(await new LocalSink(root).probe()).toEqual({});
    expect(await readdir(path.join(root, "_tranche"))).toEqual([]);
  });

  it("a root under a regular file is an UnreachableError naming the folder", async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, "plain"), "x");
    const root = path.join(dir, "plain/out");
    const err = await new LocalSink(root).probe().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toContain(root);
    expect(err).toMatchObject({ code: "E_UNREACHABLE", exitCode: 4 });
  });

  it("a read-only root is an AccessDeniedError naming the folder", async () => {
    const { chmod } = await import("node:fs/promises");
    const parent = await tempDir();
    const root = path.join(parent, "ro");
    await mkdir(root);
    await chmod(parent, 0o755);
    await chmod(root, 0o555);
    // Root writes through chmod 555: the probe runs as nobody then.
    const r = await runUnprivileged(`const { LocalSink } = await import(DIST + "src/sink/local-sink.js");
      return new LocalSink(${JSON.stringify(root)}).probe();`);
    expect(r).toMatchObject({ ok: false, name: "AccessDeniedError", code: "E_ACCESS", message: expect.stringContaining(root) });
  });

  it("FileError stays a FileError (output names are the file's fault, not the job's)", async () => {
    await expect(new LocalSink(await tempDir()).create("")).rejects.toBeInstanceOf(FileError);
  });
});
