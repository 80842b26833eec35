/**
 * Scratch folders of worker threads: `<os.tmpdir()>/tranche-sql-<host>-<pid>-<threadId>`, where a thread
 * spools its input, writes its output before it streams it to the sink, and lets DuckDB spill (the
 * `sql` processor). The pool removes a thread's folder when the thread goes (a file that timed out
 * or ran out of heap leaves its spool behind), and folders of dead processes of this host when a
 * pool starts. The host name is in the name because containers sharing a TMPDIR volume have the
 * same pids (often 1): without it two pods would spool into one folder, and sweep each other's.
 * Set `TMPDIR` to a disk-backed volume: a memory-backed /tmp counts spills against the pod's memory.
 */
import { readdirSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { processAlive } from "../process-alive.js";

const PREFIX = "tranche-sql-";

/** This host's name as a folder name part (a pod's name in Kubernetes). */
export function hostTag(host = os.hostname()): string {
  return host.replace(/[^A-Za-z0-9.]/g, "_").slice(0, 100) || "host";
}

/** The scratch folder of one thread of one process. */
export function scratchDir(threadId: number, pid = process.pid, host = hostTag()): string {
  return path.join(os.tmpdir(), `${PREFIX}${host}-${pid}-${threadId}`);
}

/** Removes one thread's scratch folder (it is gone or going). */
export async function removeScratch(threadId: number, pid = process.pid): Promise<void> {
  await rm(scratchDir(threadId, pid), { recursive: true, force: true }).catch(() => undefined);
}

/** Removes the scratch folders of processes that no longer run (on this host); returns how many. */
export function sweepDeadScratch(): number {
  let n = 0;
  let names: string[];
  try {
    names = readdirSync(os.tmpdir());
  } catch {
    return 0;
  }
  for (const name of names) {
    // Only this host's folders: another host's pids mean nothing here.
    const m = /^tranche-sql-(.+)-(\d+)-\d+$/.exec(name);
    if (!m || m[1] !== hostTag() || processAlive(Number(m[2]))) continue;
    try {
      rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
      n++;
    } catch {
      /* another process swept it, or it is not ours to remove */
    }
  }
  return n;
}
