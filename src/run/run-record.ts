import type { Cluster, Redis } from "ioredis";
import { keys, runKeys } from "../bookmark/keys.js";
import { RUN_TTL_S } from "../bookmark/run-slots.js";
import { withScripts, type ScriptRedis } from "../bookmark/scripts.js";
import { canMove, RUN_STATES, type RunState } from "./states.js";

/** A starter renews its mark this often; the mark expires after STARTER_TTL_S without it. */
export const STARTER_TTL_S = 10;

/** How many runs `runs:<job>:index` keeps (older ones expire with their records anyway). */
export const RUN_INDEX_SIZE = 1000;

/** One partition's outcome in a run (the run hash `parts`; shown by `tranche runs`). */
export interface PartitionResult {
  partition: string;
  state: "COMMITTED" | "FAILED" | "STOPPED" | "TIMEOUT" | "DONE";
  files: number;
  bytes: number;
  batches: number;
  batchesFailed: number;
  error?: string;
  /** The bookmark version after this partition's commit. */
  version?: number;
  /** Where the commit's manifest was written (relative to the output root). */
  manifest?: string;
}

/** A run record as read back (see keys.ts for every field). */
export type RunRecord = Record<string, string> & { job: string; state: RunState };

/** The run records of one prefix: create, read, move between states (atomically), list. */
export class RunRecords {
  private readonly r: ScriptRedis;
  private readonly rk: ReturnType<typeof runKeys>;
  constructor(
    readonly redis: Redis | Cluster,
    readonly prefix: string,
  ) {
    this.r = withScripts(redis);
    this.rk = runKeys(prefix);
  }

  /** Writes a new run record (and, when given, its starter's mark: see wait-run.ts) in one MULTI. */
  async create(runId: string, job: string, fields: Record<string, string | number>, startedAtMs: number, starter?: string): Promise<void> {
    const k = keys(this.prefix, job);
    const m = this.r
      .multi()
      .hset(this.rk.run(runId), { job, ...fields })
      .expire(this.rk.run(runId), RUN_TTL_S)
      .zadd(k.runIndex, startedAtMs, runId)
      .zremrangebyrank(k.runIndex, 0, -(RUN_INDEX_SIZE + 1));
    if (starter) m.set(this.rk.starter(runId), starter, "EX", STARTER_TTL_S);
    await m.exec();
  }

  /** The run hash's key. */
  key(runId: string): string {
    return this.rk.run(runId);
  }

  async get(runId: string): Promise<RunRecord | null> {
    const h = await this.r.hgetall(this.rk.run(runId));
    return h.state ? (h as RunRecord) : null;
  }

  async state(runId: string): Promise<RunState | null> {
    return (await this.r.hget(this.rk.run(runId), "state")) as RunState | null;
  }

  /**
   * Moves the run to `to` when the state diagram allows it from its current state (src/run/states.ts),
   * atomically. `field` is set to Redis' time with the move (e.g. "endedAt").
   */
  async move(runId: string, to: RunState, field = ""): Promise<{ moved: boolean; from: RunState | null }> {
    const from = RUN_STATES.filter((s) => canMove(s, to));
    const [ok, cur] = await this.r.trancheMoveRunState(this.rk.run(runId), to, field, ...from);
    return { moved: Number(ok) === 1, from: cur === "" ? null : (cur as RunState) };
  }

  async setPartition(runId: string, r: PartitionResult): Promise<void> {
    await this.r.multi().hset(this.rk.runParts(runId), r.partition, JSON.stringify(r)).expire(this.rk.runParts(runId), RUN_TTL_S).exec();
  }

  async partitions(runId: string): Promise<PartitionResult[]> {
    const h = await this.r.hgetall(this.rk.runParts(runId));
    return Object.values(h)
      .map((v) => JSON.parse(v) as PartitionResult)
      .sort((a, b) => (a.partition < b.partition ? -1 : a.partition > b.partition ? 1 : 0));
  }

  /** The newest runs of a job, newest first. */
  async list(job: string, limit = 20): Promise<RunRecord[]> {
    const ids = await this.r.zrevrange(keys(this.prefix, job).runIndex, 0, limit - 1);
    const out: RunRecord[] = [];
    for (const id of ids) {
      const rec = await this.get(id);
      if (rec) out.push({ ...rec, runId: id });
    }
    return out;
  }

  /** Which job a run belongs to (null when its record is gone). */
  async jobOf(runId: string): Promise<string | null> {
    return this.r.hget(this.rk.run(runId), "job");
  }
}
