import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { JobConfig } from "../config/schema.js";
import { BookmarkStore, type HistoryEntry } from "../bookmark/store.js";
import { globalKeys } from "../bookmark/keys.js";
import { JOB_LABEL, schedulerLeader, triggerFirings } from "../metrics/registry.js";
import { EventQueue } from "../events/queue.js";
import { drainGoesOn } from "../run/drain.js";
import { firingKey, startRun, type StartResult } from "../run/start-run.js";
import type { StepContext } from "../run/step-context.js";
import { TERMINAL, type RunState } from "../run/states.js";
import type { RunSummary } from "../run/summary.js";
import { afterFires, type RunEnd } from "./after.js";
import { LeaderLease } from "./leader.js";
import { compileSchedule, dueTick, type Schedule } from "./schedule.js";

export interface SchedulerOptions {
  /** How often the leader looks at its triggers, and a follower at the lease. Default 500 ms. */
  tickMs?: number;
  /** This replica's id (default host:pid:random). */
  id?: string;
}

/**
 * `tranche scheduler`: owns the triggers of every job of the configuration (docs/runs.md). Any
 * number of replicas run; the one holding the leader lease fires triggers, the others wait for the
 * lease. Each firing gets a deterministic run id (firingRunId) and is claimed once in Redis, so a
 * firing repeated by a new leader, or by two leaders overlapping in a handover, starts one run.
 * Trigger bookkeeping (last tick handled, run ends read) lives in Redis, not in the process.
 */
export class Scheduler {
  readonly id: string;
  readonly lease: LeaderLease;
  private readonly schedules = new Map<string, Schedule>();
  private timer: NodeJS.Timeout | undefined;
  private renewal: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private leading = false;
  private stopped = false;
  private readonly tickMs: number;

  constructor(
    private readonly ctx: StepContext,
    o: SchedulerOptions = {},
  ) {
    this.id = o.id ?? `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
    this.tickMs = o.tickMs ?? 500;
    this.lease = new LeaderLease(ctx.redis, ctx.cfg.prefix, this.id);
    for (const [name, job] of Object.entries(ctx.cfg.jobs)) {
      if (job.triggers?.schedule) this.schedules.set(name, compileSchedule(job.triggers.schedule, `jobs.${name}.triggers.schedule`));
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    // The lease is renewed on its own timer, so that a long poll (many jobs, many run ends) never
    // lets it expire while this replica still fires triggers.
    this.renewal = setInterval(() => void this.holdLease().catch(() => undefined), 1000);
    const loop = async () => {
      if (this.stopped) return;
      this.running = this.poll().catch((err: Error) => this.ctx.log.error("scheduler tick failed", { reason: err.message }));
      await this.running;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.tickMs);
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.renewal);
    await this.running;
    if (this.leading) await this.lease.release().catch(() => undefined);
    this.leading = false;
    schedulerLeader().set(0);
  }

  /** One poll: hold (or try to take) the lease; the leader then looks at every trigger once. */
  async poll(): Promise<void> {
    if (!(await this.holdLease())) return;
    for (const [name, job] of Object.entries(this.ctx.cfg.jobs)) {
      if (!job.triggers) continue;
      if (this.schedules.has(name)) await this.scheduleTrigger(name, job);
      if (job.triggers.after) await this.afterTrigger(name, job);
      if (job.triggers.drain) await this.drainTrigger(name, job);
      if (job.triggers.events) await this.eventsTrigger(name, job);
    }
  }

  /** Renews (or takes) the lease; true while this replica leads. */
  private async holdLease(): Promise<boolean> {
    const leads = await this.lease.hold();
    if (leads !== this.leading) {
      this.ctx.log.info(leads ? "scheduler leads: firing triggers" : "scheduler lost the lead", { scheduler: this.id });
      this.leading = leads;
      schedulerLeader().set(leads ? 1 : 0);
    }
    return leads;
  }

  /** Starts one firing (claimed once; a repeated firing starts nothing) and logs and counts it; nothing once the lead is lost. */
  private async fire(job: string, trigger: string, firing: string, detail: Record<string, unknown>): Promise<StartResult> {
    if (!this.leading) throw new Error("lost the lead: stopping this poll");
    const r = await startRun(this.ctx, { job, trigger, firing });
    if (r.started) {
      triggerFirings.inc({ [JOB_LABEL]: job, trigger });
      this.ctx.log.info("trigger fired", { job, trigger, runId: r.runId, state: r.state, ...detail });
    } else if (!r.duplicate) {
      this.ctx.log.warn("trigger fired while the job is at maxConcurrentRuns: skipped (whenBusy: skip)", {
        job,
        trigger,
        running: r.running,
        ...detail,
      });
    }
    return r;
  }

  private async scheduleTrigger(name: string, job: JobConfig): Promise<void> {
    const store = new BookmarkStore(this.ctx.redis, this.ctx.cfg.prefix, name);
    const last = await this.ctx.redis.hget(store.k.triggers, "schedule:tick");
    const now = new Date();
    const due = dueTick(this.schedules.get(name)!, { lastTick: last ? new Date(Number(last)) : null, now, misfire: job.triggers!.misfire });
    if (due.missed > 0)
      this.ctx.log.warn("scheduled ticks missed while no scheduler led", { job: name, missed: due.missed, misfire: job.triggers!.misfire });
    if (due.fire) await this.fire(name, "schedule", `schedule|${due.fire.getTime()}`, { tick: due.fire.toISOString() });
    if (due.handled && String(due.handled.getTime()) !== last)
      await this.ctx.redis.hset(store.k.triggers, "schedule:tick", due.handled.getTime());
  }

  /**
   * Glue's conditional trigger: reads run ends from the events stream after the last one it read;
   * with AND it fires once every condition has a matching end since it last fired, with ANY on
   * the first. What it has seen is kept in Redis (`after:seen`, `after:met`).
   */
  private async afterTrigger(name: string, job: JobConfig): Promise<void> {
    const t = job.triggers!.after!;
    const store = new BookmarkStore(this.ctx.redis, this.ctx.cfg.prefix, name);
    const events = globalKeys(this.ctx.cfg.prefix).events;
    const [seenRaw, metRaw] = await this.ctx.redis.hmget(store.k.triggers, "after:seen", "after:met");
    let seen = seenRaw;
    if (seen === null) {
      // A new trigger starts from now: run ends before it existed do not fire it.
      const lastEv = await this.ctx.redis.xrevrange(events, "+", "-", "COUNT", 1);
      seen = lastEv[0]?.[0] ?? "0-0";
      await this.ctx.redis.hset(store.k.triggers, "after:seen", seen);
    }
    const met: RunEnd[] = metRaw ? (JSON.parse(metRaw) as RunEnd[]) : [];
    const batch = await this.ctx.redis.xrange(events, `(${seen}`, "+", "COUNT", 500);
    for (const [id, flat] of batch) {
      const f = fields(flat);
      const end: RunEnd = { job: f.job ?? "", state: (f.state ?? "") as RunState };
      const relevant = t.conditions.some((c) => c.job === end.job && c.state === end.state);
      if (relevant) met.push(end);
      if (relevant && afterFires(t, met)) {
        await this.fire(name, "after", `after|${id}`, {
          after: `${end.job} ${end.state}`,
          logical: t.logical,
        });
        met.length = 0;
      }
      if (!this.leading) return; // another replica leads now: it carries on from what was saved
      await this.ctx.redis.hset(store.k.triggers, "after:seen", id, "after:met", JSON.stringify(met.slice(-100)));
    }
  }

  /**
   * Drain: when the job has no live run and its last run (by the history) says the backlog goes on
   * (the stopping rule of `run --drain`), start the next one after drainPauseSeconds. A job that
   * never ran starts its first run. One firing per last run (its id names the firing).
   */
  private async drainTrigger(name: string, job: JobConfig): Promise<void> {
    const store = new BookmarkStore(this.ctx.redis, this.ctx.cfg.prefix, name);
    if ((await store.slots.live()).length > 0) return;
    // A queued (WAITING) run holds no slot yet: it is the next run already.
    if ((await this.ctx.runs.list(name, 10)).some((r) => r.state === "WAITING")) return;
    const last = (await this.ctx.redis.lrange(store.k.history, 0, 20))
      .map((h) => JSON.parse(h) as HistoryEntry)
      // An events run's remainingFiles count only its events: the drain follows the listing runs.
      .find((e) => e.kind !== "commit" && (e as unknown as RunSummary).trigger !== "events") as unknown as RunSummary | undefined;
    const epoch = await store.slots.epoch();
    if (last) {
      if (!drainGoesOn(last, job.bookmark.deadLetterAfterRuns)) return;
      const endedAt = Date.parse(last.endedAt);
      if (Date.now() < endedAt + job.triggers!.drainPauseSeconds * 1000) return;
      await this.drainFire(name, store, `drain|${last.runId}`, { after: last.runId });
    } else {
      await this.drainFire(name, store, `drain|first|${epoch}`, { first: true });
    }
  }

  /**
   * Glue's event trigger (docs/events.md): once `batchSize` events are pending, or `batchWindow`
   * seconds after the oldest pending one arrived, start a run that takes them. One such run at a
   * time is waiting to take its events; a busy job (whenBusy: skip) is waited for quietly, since
   * the events keep.
   */
  private async eventsTrigger(name: string, job: JobConfig): Promise<void> {
    const t = job.triggers!.events!;
    const q = new EventQueue(this.ctx.redis, this.ctx.cfg.prefix, name);
    const { count, oldestAt } = await q.pending();
    if (count === 0 || oldestAt === null) return;
    const condition = count >= t.batchSize ? "BatchSize" : Date.now() - oldestAt >= t.batchWindow * 1000 ? "BatchWindow" : null;
    if (!condition) return;
    const starting = await q.starting();
    if (starting) {
      const st = await this.ctx.runs.state(starting);
      const taken = (await this.ctx.redis.hexists(this.ctx.runs.key(starting), "eventCount")) === 1;
      if (st !== null && !TERMINAL.has(st) && !taken) return;
      await q.clearStarting(starting);
    }
    const store = new BookmarkStore(this.ctx.redis, this.ctx.cfg.prefix, name);
    if (job.whenBusy === "skip" && (await store.slots.live()).length >= job.maxConcurrentRuns) return;
    if (!this.leading) throw new Error("lost the lead: stopping this poll");
    const r = await startRun(this.ctx, { job: name, trigger: "events", eventCondition: condition });
    if (!r.started) return;
    await q.markStarting(r.runId);
    triggerFirings.inc({ [JOB_LABEL]: name, trigger: "events" });
    this.ctx.log.info("trigger fired", { job: name, trigger: "events", runId: r.runId, state: r.state, condition, pending: count });
  }

  /** A drain firing skipped because another run took the slot meanwhile is fired again at the next poll. */
  private async drainFire(name: string, store: BookmarkStore, firing: string, detail: Record<string, unknown>): Promise<void> {
    const r = await this.fire(name, "drain", firing, detail);
    if (!r.started && !r.duplicate) await this.ctx.redis.del(firingKey(store, firing));
  }
}

function fields(flat: string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i]!] = flat[i + 1]!;
  return o;
}
