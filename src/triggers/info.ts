import type { Cluster, Redis } from "ioredis";
import { BookmarkStore } from "../bookmark/store.js";
import type { TrancheConfig } from "../config/schema.js";
import { compileSchedule } from "./schedule.js";

/** A job's triggers as `tranche triggers --json` shows them (and the API's job resource). */
export interface TriggerInfo {
  job: string;
  whenBusy: "skip" | "queue";
  timeoutMinutes: number;
  schedule?: {
    cron: string;
    timezone: string;
    misfire: string;
    /** The next three firings (ISO 8601, UTC). */
    next: string[];
    /** The same in the trigger's time zone. */
    nextLocal: string[];
    lastTick: string | null;
  };
  after?: {
    logical: "AND" | "ANY";
    conditions: { job: string; state: string }[];
    /** Run ends matching a condition since the trigger last fired. */
    met: { job: string; state: string }[];
  };
  drain?: { drainPauseSeconds: number };
  /** Runs fed by S3 events (`POST /v1/events`): the batching condition and the events waiting now. */
  events?: { batchSize: number; batchWindow: number; pending: number };
}

/** A job's triggers with their next firing times and what they wait for. */
export async function triggerInfo(cfg: TrancheConfig, redis: Redis | Cluster, name: string, now = new Date()): Promise<TriggerInfo> {
  const t = cfg.jobs[name]!.triggers;
  const store = new BookmarkStore(redis, cfg.prefix, name);
  const book = await redis.hgetall(store.k.triggers);
  const entry: TriggerInfo = { job: name, whenBusy: cfg.jobs[name]!.whenBusy, timeoutMinutes: cfg.jobs[name]!.timeout };
  if (t?.schedule) {
    const s = compileSchedule(t.schedule, `jobs.${name}.triggers.schedule`);
    const next: string[] = [];
    let at: Date | null = now;
    for (let i = 0; i < 3 && at; i++) {
      at = s.next(at);
      if (at) next.push(at.toISOString());
    }
    const inZone = new Intl.DateTimeFormat("sv-SE", { timeZone: s.timezone, dateStyle: "short", timeStyle: "medium" });
    entry.schedule = {
      cron: s.cron,
      timezone: s.timezone,
      misfire: t.misfire,
      next,
      nextLocal: next.map((n) => inZone.format(new Date(n))),
      lastTick: book["schedule:tick"] ? new Date(Number(book["schedule:tick"])).toISOString() : null,
    };
  }
  if (t?.after)
    entry.after = { ...t.after, met: book["after:met"] ? (JSON.parse(book["after:met"]) as { job: string; state: string }[]) : [] };
  if (t?.drain) entry.drain = { drainPauseSeconds: t.drainPauseSeconds };
  if (t?.events) entry.events = { ...t.events, pending: await redis.zcard(store.k.eventsOrder) };
  return entry;
}
