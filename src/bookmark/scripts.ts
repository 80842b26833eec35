import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Cluster, Redis } from "ioredis";

/**
 * Loads the Lua scripts of src/bookmark/lua (each opens with an Input/Output header) and registers
 * them on a connection; ioredis then runs them with EVALSHA. A file named `name-N.lua` takes N
 * keys; one without a count takes a variable number (the caller passes it first). A line
 * `-- @include name` pulls in `includes/name.lua` (once per script): shared rules live there.
 */
const LUA_DIR = new URL("./lua/", import.meta.url);

function source(file: string, included = new Set<string>()): string {
  const text = readFileSync(new URL(file, LUA_DIR), "utf8");
  return text.replace(/^-- @include ([\w-]+)\s*$/gm, (_, name: string) => {
    if (included.has(name)) return "";
    included.add(name);
    return source(`includes/${name}.lua`, included);
  });
}

/** Command name → script file. */
const SCRIPTS = {
  trancheAcquireRun: "acquire-run-1.lua",
  trancheLeaseFiles: "lease-files-10.lua",
  trancheDropLease: "drop-lease-2.lua",
  trancheLock: "lock-1.lua",
  trancheFinishBatch: "finish-batch-8.lua",
  trancheMarkBatchFailed: "mark-batch-failed-2.lua",
  trancheCommitPartition: "commit-partition.lua",
  trancheRestoreState: "restore-state.lua",
  trancheRecordRun: "record-run-5.lua",
  trancheAdvanceKeep: "advance-keep-1.lua",
  trancheAdvanceWatermark: "advance-watermark-6.lua",
  trancheIngestEvents: "ingest-events.lua",
  trancheTakeEvents: "take-events-5.lua",
  trancheReturnEvents: "return-events-3.lua",
  trancheMoveRunState: "move-run-state-1.lua",
  trancheClaimRegistrations: "claim-registrations-2.lua",
  trancheRetryRegistration: "retry-registration-2.lua",
} as const;

let loaded: { name: string; lua: string; numberOfKeys?: number }[] | undefined;

function scripts() {
  loaded ??= Object.entries(SCRIPTS).map(([name, file]) => {
    const n = /-(\d+)\.lua$/.exec(file);
    return { name, lua: source(file), numberOfKeys: n ? Number(n[1]) : undefined };
  });
  return loaded;
}

type Arg = string | number;
export type ScriptRedis = (Redis | Cluster) & {
  trancheAcquireRun(active: string, runId: string, ttlMs: number, max: number): Promise<Arg[]>;
  trancheLeaseFiles(...args: Arg[]): Promise<string[]>;
  trancheDropLease(lease: string, leaseRun: string, key: string, owner: string): Promise<number>;
  trancheLock(lock: string, op: "take" | "keep" | "release", owner: string, ttlMs: number): Promise<number>;
  trancheFinishBatch(...args: Arg[]): Promise<Arg[]>;
  trancheMarkBatchFailed(run: string, runErrors: string, ...args: Arg[]): Promise<number>;
  trancheCommitPartition(nKeys: number, ...args: (Arg | Buffer)[]): Promise<Arg[]>;
  trancheRestoreState(nKeys: number, ...args: (Arg | Buffer)[]): Promise<Arg[]>;
  trancheRecordRun(
    history: string,
    deltas: string,
    jobMeta: string,
    run: string,
    events: string,
    summary: string,
    historySize: number,
    event: string,
    eventsMax: number,
    noHistory: string,
  ): Promise<number>;
  trancheAdvanceKeep(meta: string, edge: number): Promise<number>;
  trancheAdvanceWatermark(
    jobMeta: string,
    meta: string,
    band: string,
    bidx: string,
    lease: string,
    parts: string,
    epoch: string,
    coveredUpTo: number,
    bandMs: number,
    partition: string,
  ): Promise<number>;
  trancheMoveRunState(run: string, to: string, field: string, ...from: string[]): Promise<Arg[]>;
  trancheClaimRegistrations(reg: string, due: string, max: number, leaseMs: number, field: string): Promise<string[]>;
  trancheRetryRegistration(reg: string, due: string, field: string, entry: string, delayMs: number): Promise<number>;
  trancheIngestEvents(nKeys: number, ...args: Arg[]): Promise<number[]>;
  trancheTakeEvents(
    pending: string,
    order: string,
    runEvents: string,
    starting: string,
    run: string,
    n: number,
    runId: string,
    ttlS: number,
    now: number,
  ): Promise<string[]>;
  trancheReturnEvents(pending: string, order: string, runEvents: string, notBefore: number, ...objectKeys: string[]): Promise<number>;
};

/** The SHA-1 Redis knows a script by (EVALSHA, SLOWLOG entries). */
export function scriptSha(name: keyof typeof SCRIPTS): string {
  return createHash("sha1")
    .update(scripts().find((s) => s.name === name)!.lua)
    .digest("hex");
}

/** Registers the scripts on a connection (idempotent). */
export function withScripts(redis: Redis | Cluster): ScriptRedis {
  const r = redis as ScriptRedis;
  if (typeof r.trancheAcquireRun !== "function") {
    for (const s of scripts())
      redis.defineCommand(s.name, s.numberOfKeys === undefined ? { lua: s.lua } : { lua: s.lua, numberOfKeys: s.numberOfKeys });
  }
  return r;
}
