import { mkdir, readdir, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";

/** Writes one input file with a chosen last-modified time (epoch ms). */
export async function writeInput(root: string, key: string, body: string | Buffer, mtimeMs: number): Promise<void> {
  const f = path.join(root, key);
  await mkdir(path.dirname(f), { recursive: true });
  await writeFile(f, body);
  const t = new Date(mtimeMs);
  await utimes(f, t, t);
}

/** Every file under a folder, as keys relative to it (hidden files and tranche's own `_tranche/` excluded). */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    let ents;
    try {
      ents = await readdir(path.join(root, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const k = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (!(rel === "" && e.name === "_tranche")) await walk(k);
      } else if (!e.name.startsWith(".")) out.push(k);
    }
  }
  await walk("");
  return out.sort();
}

export async function sizeOf(f: string): Promise<number> {
  return (await stat(f)).size;
}
