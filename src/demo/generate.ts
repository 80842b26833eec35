import { mkdir, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";

export interface GenerateOptions {
  dir: string;
  files: number;
  partitions: number;
  recordsPerFile: number;
  /** Epoch ms of the oldest file; files are spaced `stepMs` apart in last-modified time. */
  startMs?: number;
  stepMs?: number;
}

/**
 * Writes a sample backlog: gzipped JSON-lines files spread over `dt=YYYY-MM-DD` partitions, with
 * last-modified times in the past, one minute apart. One record in the whole backlog is
 * malformed on purpose, to show how bad records are reported.
 */
export async function generateBacklog(o: GenerateOptions): Promise<{ files: number; bytes: number }> {
  const start = o.startMs ?? Date.UTC(2024, 0, 1);
  const step = o.stepMs ?? 60_000;
  let bytes = 0;
  const perPart = Math.ceil(o.files / o.partitions);
  for (let i = 0; i < o.files; i++) {
    const p = Math.floor(i / perPart);
    const dt = new Date(start + p * 86_400_000).toISOString().slice(0, 10);
    const folder = path.join(o.dir, `dt=${dt}`);
    if (i % perPart === 0) await mkdir(folder, { recursive: true });
    const lines: string[] = [];
    for (let r = 0; r < o.recordsPerFile; r++) {
      lines.push(
        JSON.stringify({
          id: `${i}-${r}`,
          ts: new Date(start + i * step + r).toISOString(),
          user: `u${(i * 31 + r) % 997}`,
          event: r % 3 ? "view" : "click",
          value: (i * r) % 101,
        }),
      );
    }
    if (i === Math.floor(o.files / 2)) lines.splice(1, 0, '{"id": "broken", "ts": ');
    const body = gzipSync(lines.join("\n") + "\n");
    const f = path.join(folder, `events-${String(i).padStart(6, "0")}.json.gz`);
    await writeFile(f, body);
    const t = new Date(start + i * step);
    await utimes(f, t, t);
    bytes += body.length;
  }
  return { files: o.files, bytes };
}
