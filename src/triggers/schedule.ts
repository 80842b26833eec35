import { Cron } from "croner";
import { ConfigError } from "../errors.js";

/**
 * Scheduled triggers (groundwork for `tranche scheduler`): 5- or 6-field cron in any IANA time
 * zone, through croner (not a hand-written parser), and the misfire rule for ticks that fell
 * while no scheduler ran. Pure: the caller passes the times.
 */
export interface ScheduleConfig {
  cron: string;
  /** IANA time zone; default UTC. */
  timezone?: string;
}

export type Misfire = "runOnce" | "skip";

export interface Schedule {
  readonly cron: string;
  readonly timezone: string;
  /** The first tick strictly after `after`, or null when the pattern never fires again. */
  next(after: Date): Date | null;
}

/** Checks a time zone name; throws a ConfigError naming `field`. */
export function checkTimezone(tz: string, field: string): void {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
  } catch {
    throw new ConfigError(`${field}: unknown time zone ${JSON.stringify(tz)}; give an IANA name such as "UTC" or "Europe/Paris"`);
  }
}

/** Compiles a schedule; a bad cron pattern or time zone is a ConfigError naming `field`. */
export function compileSchedule(s: ScheduleConfig, field: string): Schedule {
  const timezone = s.timezone ?? "UTC";
  checkTimezone(timezone, `${field}.timezone`);
  const fields = s.cron.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    throw new ConfigError(
      `${field}.cron: ${JSON.stringify(s.cron)} has ${fields.length} fields; give 5 (minute hour day month weekday) or 6 (with seconds first)`,
    );
  }
  let cron: Cron;
  try {
    cron = new Cron(s.cron, { timezone, paused: true });
  } catch (err) {
    throw new ConfigError(`${field}.cron: ${JSON.stringify(s.cron)} is not a valid cron pattern (${(err as Error).message})`);
  }
  return {
    cron: s.cron,
    timezone,
    next: (after) => cron.nextRun(after) ?? null,
  };
}

/**
 * Which tick to fire now. `lastTick` is the tick the trigger last handled (fired or skipped), or
 * null for a trigger never seen (it starts from `now`: no backfill). Ticks after `lastTick` up to
 * `now` are due; when more than one is due (no scheduler ran, or a leader handover), `runOnce`
 * fires the newest once and `skip` fires only a tick that is not older than `graceMs`.
 * Returns the tick to fire (or null) and the tick to remember.
 */
export function dueTick(
  schedule: Schedule,
  o: { lastTick: Date | null; now: Date; misfire: Misfire; graceMs?: number },
): { fire: Date | null; handled: Date | null; missed: number } {
  if (o.lastTick === null) return { fire: null, handled: o.now, missed: 0 };
  let tick = schedule.next(o.lastTick);
  let newest: Date | null = null;
  let count = 0;
  while (tick && tick.getTime() <= o.now.getTime()) {
    newest = tick;
    count++;
    if (count > 100_000) break;
    tick = schedule.next(tick);
  }
  if (!newest) return { fire: null, handled: o.lastTick, missed: 0 };
  const late = o.now.getTime() - newest.getTime() > (o.graceMs ?? 10_000);
  if (o.misfire === "skip" && (count > 1 || late)) {
    // Fire only an on-time tick; the others are misfires.
    return late ? { fire: null, handled: newest, missed: count } : { fire: newest, handled: newest, missed: count - 1 };
  }
  return { fire: newest, handled: newest, missed: count - 1 };
}
