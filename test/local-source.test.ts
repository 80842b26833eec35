import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, UnreachableError } from "../src/errors.js";
import { GoneError } from "../src/failures.js";
import { LocalSource } from "../src/source/local-source.js";
import { runUnprivileged } from "./helpers/unprivileged.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), "tranche-lsrc-"));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function keys(src: LocalSource): Promise<string[]> {
  const out: string[] = [];
  for await (const page of src.list()) out.push(...page.map((o) => o.key));
  return out.sort();
}

describe("LocalSource.check", () => {
  it("passes for a folder", async () => {
    await expect(new LocalSource(pathToFileURL(await tempDir()).href).check()).resolves.toBeUndefined();
  });

  it("a missing folder is an UnreachableError naming it and source.path", async () => {
    const missing = path.join(await tempDir(), "nope");
    const err = await new LocalSource(missing).check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toBe(`source folder does not exist: ${missing}; create it or fix source.path`);
    expect(err).toMatchObject({ code: "E_UNREACHABLE", exitCode: 4 });
    // list() says the same.
    await expect(keys(new LocalSource(missing))).rejects.toBeInstanceOf(UnreachableError);
  });

  it("a file is a ConfigError naming it and saying it must be a folder", async () => {
    const file = path.join(await tempDir(), "data.json");
    await writeFile(file, "{}\n");
    const err = await new LocalSource(file).check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(/must be a folder/);
    const under = await new LocalSource(path.join(file, "sub")).check().catch((e: unknown) => e);
    expect(under).toBeInstanceOf(ConfigError);
  });

  it("an unreadable folder is an AccessDeniedError naming it", async () => {
    const { chmod } = await import("node:fs/promises");
    const parent = await tempDir();
    const dir = path.join(parent, "locked");
    await mkdir(dir);
    await chmod(parent, 0o755);
    await chmod(dir, 0o000);
    // Root reads through chmod 000: the check runs as nobody then.
    const r = await runUnprivileged(`const { LocalSource } = await import(DIST + "src/source/local-source.js");
      return new LocalSource(${JSON.stringify(dir)}).check();`);
    expect(r).toMatchObject({ ok: false, name: "AccessDeniedError", code: "E_ACCESS", message: expect.stringContaining(dir) });
  });
});

describe("LocalSource reads", () => {
  it("open and readSmall of a deleted file reject with a GoneError naming it", async () => {
    const dir = await tempDir();
    const src = new LocalSource(dir);
    const full = path.join(dir, "dt=1/gone.json");
    for (const read of [() => src.open("dt=1/gone.json"), () => src.readSmall("dt=1/gone.json")]) {
      const err = await read().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GoneError);
      expect(err).toMatchObject({ code: "E_GONE", message: expect.stringContaining(full) });
    }
  });

  it("lists everything but tranche's own _tranche/ folder at the root", async () => {
    const dir = await tempDir();
    for (const k of ["a.json", "dt=1/b.json", "_tranche/tmp/host.1.1.ab.0.tmp", "_tranche/probe-1", "x/_tranche/c.json"]) {
      await mkdir(path.dirname(path.join(dir, k)), { recursive: true });
      await writeFile(path.join(dir, k), "{}\n");
    }
    expect(await keys(new LocalSource(dir))).toEqual(["a.json", "dt=1/b.json", "x/_tranche/c.json"]);
  });
});
