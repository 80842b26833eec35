/** Groundwork for the scheduler: cron schedules with time zones and misfires, Glue's predicates, run states (pure). */
import { describe, expect, it } from "vitest";
import { compileSchedule, dueTick } from "../src/triggers/schedule.js";
import { afterFires } from "../src/triggers/after.js";
import { canMove, runOutcome } from "../src/run/states.js";

describe("schedule", () => {
  it("takes 5- and 6-field cron in any IANA zone, and names the field of a bad one", () => {
    const s = compileSchedule({ cron: "0 9 * * *", timezone: "Europe/Paris" }, "jobs.a.triggers.schedule");
    // 09:00 in Paris is 08:00 UTC in winter, 07:00 UTC in summer.
    expect(s.next(new Date("2024-01-15T00:00:00Z"))!.toISOString()).toBe("2024-01-15T08:00:00.000Z");
    expect(s.next(new Date("2024-07-15T00:00:00Z"))!.toISOString()).toBe("2024-07-15T07:00:00.000Z");
    const sec = compileSchedule({ cron: "*/10 * * * * *" }, "f");
    expect(sec.next(new Date("2024-01-01T00:00:01Z"))!.toISOString()).toBe("2024-01-01T00:00:10.000Z");
    expect(() => compileSchedule({ cron: "0 9 * *" }, "jobs.a.triggers.schedule")).toThrow(
      /jobs.a.triggers.schedule.cron: "0 9 \* \*" has 4 fields/,
    );
    expect(() => compileSchedule({ cron: "0 25 * * *" }, "jobs.a.triggers.schedule")).toThrow(
      /jobs.a.triggers.schedule.cron: "0 25 \* \* \*" is not a valid cron pattern/,
    );
    expect(() => compileSchedule({ cron: "0 9 * * *", timezone: "Mars/Olympus" }, "jobs.a.triggers.schedule")).toThrow(
      /jobs.a.triggers.schedule.timezone: unknown time zone "Mars\/Olympus"/,
    );
  });
  it("fires each tick once, and after missed ticks once (runOnce) or not at all (skip)", () => {
    const s = compileSchedule({ cron: "*/10 * * * *" }, "f");
    const at = (iso: string) => new Date(iso);
    expect(dueTick(s, { lastTick: null, now: at("2024-01-01T00:05:00Z"), misfire: "skip" })).toMatchObject({ fire: null });
    expect(dueTick(s, { lastTick: at("2024-01-01T00:00:00Z"), now: at("2024-01-01T00:05:00Z"), misfire: "skip" }).fire).toBeNull();
    const onTime = dueTick(s, { lastTick: at("2024-01-01T00:00:00Z"), now: at("2024-01-01T00:10:02Z"), misfire: "skip" });
    expect(onTime).toEqual({ fire: at("2024-01-01T00:10:00Z"), handled: at("2024-01-01T00:10:00Z"), missed: 0 });
    // Three ticks passed while no scheduler ran.
    const gap = { lastTick: at("2024-01-01T00:00:00Z"), now: at("2024-01-01T00:35:00Z") };
    expect(dueTick(s, { ...gap, misfire: "runOnce" })).toEqual({
      fire: at("2024-01-01T00:30:00Z"),
      handled: at("2024-01-01T00:30:00Z"),
      missed: 2,
    });
    expect(dueTick(s, { ...gap, misfire: "skip" })).toEqual({ fire: null, handled: at("2024-01-01T00:30:00Z"), missed: 3 });
  });
});

describe("after (Glue's Predicate)", () => {
  const t = (logical: "AND" | "ANY") => ({
    logical,
    conditions: [
      { job: "ingest", state: "SUCCEEDED" as const },
      { job: "clean", state: "FAILED" as const },
    ],
  });
  it("AND needs every condition since the last firing, ANY the first", () => {
    expect(afterFires(t("AND"), [{ job: "ingest", state: "SUCCEEDED" }])).toBe(false);
    expect(
      afterFires(t("AND"), [
        { job: "ingest", state: "SUCCEEDED" },
        { job: "clean", state: "FAILED" },
      ]),
    ).toBe(true);
    expect(afterFires(t("ANY"), [{ job: "clean", state: "FAILED" }])).toBe(true);
    expect(afterFires(t("ANY"), [{ job: "clean", state: "SUCCEEDED" }])).toBe(false);
    for (const state of ["TIMEOUT", "STOPPED"] as const)
      expect(afterFires({ logical: "ANY", conditions: [{ job: "x", state }] }, [{ job: "x", state }])).toBe(true);
  });
});

describe("run states", () => {
  it("moves as Glue's runs do, and ends by its partitions", () => {
    expect(canMove("WAITING", "STARTING")).toBe(true);
    expect(canMove("RUNNING", "STOPPING")).toBe(true);
    expect(canMove("SUCCEEDED", "RUNNING")).toBe(false);
    expect(runOutcome({ partitions: ["committed", "committed"] })).toBe("SUCCEEDED");
    expect(runOutcome({ partitions: ["committed", "failed"] })).toBe("FAILED");
    expect(runOutcome({ partitions: ["committed", "pending"], timedOut: true })).toBe("TIMEOUT");
    expect(runOutcome({ partitions: ["pending"], stopped: true })).toBe("STOPPED");
    expect(runOutcome({ partitions: [] })).toBe("SUCCEEDED");
  });
});
