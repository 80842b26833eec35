/**
 * Scratch folder names: pods that share a TMPDIR volume have alike pids (often 1), so the host
 * name is part of a thread's folder, and a pool sweeps only its own host's dead folders.
 */
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hostTag, scratchDir, sweepDeadScratch } from "../src/pool/scratch.js";

const DEAD_PID = 2 ** 22 + 12_345; // above Linux's pid_max: no process has it
const made: string[] = [];
afterEach(async () => {
  for (const d of made.splice(0)) await rm(d, { recursive: true, force: true });
});

describe("scratch folders", () => {
  it("two hosts with the same pid and thread get two folders", () => {
    expect(scratchDir(1, 1, "pod-a")).not.toBe(scratchDir(1, 1, "pod-b"));
    expect(path.basename(scratchDir(3, 1, "pod-a"))).toBe("tranche-sql-pod-a-1-3");
    expect(hostTag("we/ird host")).toBe("we_ird_host");
  });

  it("a pool sweeps its own host's folders of dead processes, never another host's", async () => {
    const mine = scratchDir(1, DEAD_PID);
    const theirs = scratchDir(1, DEAD_PID, `${hostTag()}-other`);
    const alive = scratchDir(1, process.pid);
    for (const d of [mine, theirs, alive]) {
      await mkdir(path.join(d, "spill"), { recursive: true });
      made.push(d);
    }
    expect(sweepDeadScratch()).toBeGreaterThanOrEqual(1);
    expect([existsSync(mine), existsSync(theirs), existsSync(alive)]).toEqual([false, true, true]);
  });
});
